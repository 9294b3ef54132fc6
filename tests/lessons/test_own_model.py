"""`tinygrad-l2 explain --model FILE.keras`: the analysis on a learner's own Keras file."""
import xml.etree.ElementTree as ET

import pytest

from interop.frameworks import need_keras
from tinygrad_l2.lessons.cli import main

keras = need_keras()
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
L, R = keras.layers, keras.regularizers


def saved(path, *layers):
    keras.utils.set_random_seed(0)
    keras.Sequential([keras.Input((6, 6, 1)), *layers]).save(path)
    return str(path)


def test_explain_answers_loss_or_update_on_the_users_file(tmp_path, capsys):
    path = saved(tmp_path / "mine.keras",
                 L.Conv2D(3, 3, padding="same", activation="relu", name="conv", kernel_regularizer=R.L2(1e-3)),
                 L.Flatten(name="flat"), L.Dense(4, name="out", kernel_regularizer=R.L2(1e-2)))
    assert main(["explain", "--model", path, "--m", "16", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    keras_sum = float(out.split("sum(model.losses) = ")[1].split(",")[0])
    ours = float(out.split("regularization_loss() = ")[1].split()[0])
    assert keras_sum > 0 and abs(ours - keras_sum) <= 1e-5 * keras_sum  # float32 model
    assert "L2 reaches only: conv.weight, out.weight\n" in out
    assert "∂(L2)/∂conv.weight = 0.002·conv.weight" in out and "∂(L2)/∂out.weight = 0.02·out.weight" in out
    ET.parse(tmp_path / "out" / "model_graph.svg")


def test_an_option_that_does_not_apply_with_model_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["explain", "--model", str(tmp_path / "m.keras"), "--lambd", "0.1"])
    assert exit_.value.code == 2
    assert "--lambd does not apply with --model" in capsys.readouterr().err


def test_a_file_that_is_not_a_model_file_is_a_one_line_error(tmp_path, capsys):
    assert main(["explain", "--model", str(tmp_path / "weights.h5"), "--weight-decay", "0"]) == 2
    err = capsys.readouterr().err
    assert "expected a .keras file, a .pt2 file" in err and len(err.strip().splitlines()) == 1


def test_an_unsupported_layer_in_the_file_is_a_one_line_error(tmp_path, capsys):
    path = saved(tmp_path / "m.keras", L.Flatten(), L.LayerNormalization(name="norm"))
    assert main(["explain", "--model", path, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "layer 'norm' is a LayerNormalization, which is not supported" in err
    assert len(err.strip().splitlines()) == 1


def test_a_batch_normalization_gamma_regularizer_shows_in_what_l2_reaches(tmp_path, capsys):
    path = saved(tmp_path / "bn.keras", L.Conv2D(2, 3, name="conv"), L.BatchNormalization(
        name="bn", gamma_regularizer=R.L2(0.25)), L.Flatten(name="flat"), L.Dense(3, name="out"))
    assert main(["explain", "--model", path, "--m", "8", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "L2 reaches only: bn.weight\n" in out and "∂(L2)/∂bn.weight = 0.5·bn.weight" in out
    assert "BatchNorm2d(2, eps=0.001, momentum=0.0" in out and "running_var_correction=0" in out
