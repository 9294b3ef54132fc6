"""The tinygrad-l2 command end to end, in a temporary directory."""
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tinygrad_l2.lessons.cli import main


def run(*args, cwd):
    return subprocess.run([sys.executable, "-m", "tinygrad_l2", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_explain_prints_tables_and_writes_svg_and_png(tmp_path):
    result = run("explain", "--out", str(tmp_path / "pics"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())  # prose is wrapped to 100 columns
    assert "autodiff vs manual backprop" in out and "Gradient contribution of each loss term" in out
    assert "L2 changed only: dW3, dW2, dW1" in out
    assert "Why does L2 change only dW?" in out
    ET.parse(tmp_path / "pics" / "l2_graph.svg")
    assert (tmp_path / "pics" / "l2_graph.png").read_bytes()[:4] == b"\x89PNG"


def test_explain_runs_with_no_arguments(tmp_path):
    assert run("explain", cwd=tmp_path).returncode == 0
    assert (tmp_path / "out" / "l2_graph.svg").exists()


def test_explain_options(tmp_path, capsys):
    assert main(["explain", "--lambd", "0", "--layers", "2,4,1", "--cost", "quadratic", "--seed", "1",
                 "--m", "20", "--out", str(tmp_path), "--rankdir", "LR"]) == 0
    out = capsys.readouterr().out
    assert "L2 changed only: nothing (λ = 0)" in out and "quadratic cost" in out and "m=20" in out


@pytest.mark.parametrize("convention", ["dlai", "nielsen"])
def test_compare(convention, capsys):
    assert main(["compare", "--convention", convention, "--layers", "2,5,1", "--lambd", "1.5"]) == 0
    out = capsys.readouterr().out
    assert "largest difference autodiff vs manual" in out


def test_train_reports_both_runs(tmp_path, capsys):
    assert main(["train", "--steps", "30", "--layers", "2,16,1", "--quiet", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "without L2" in out and "with L2 (κ = 0.002)" in out and "test accuracy" in out


def test_train_shows_a_progress_bar(tmp_path):
    result = run("train", "--steps", "20", "--layers", "2,8,1", cwd=tmp_path)
    assert result.returncode == 0
    assert "[##############################] 20/20" in result.stderr


def test_train_plot(tmp_path):
    result = run("train", "--steps", "20", "--layers", "2,8,1", "--quiet", "--plot", "--out", str(tmp_path), cwd=tmp_path)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert result.returncode == 1
        assert "pip install 'tinygrad-l2[plot]'" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        for name in ("train_curves.png", "decision_boundaries.png"):
            assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("args,message", [
    (["explain", "--layers", "3,4,1"], "first layer size must be 2"),
    (["explain", "--layers", "2,x"], "expected comma-separated layer sizes"),
    (["explain", "--lambd", "-1"], "must be a finite number >= 0, got -1"),
    (["explain", "--lambd", "inf"], "must be a finite number >= 0, got inf"),
    (["dcda", "--lambd", "nan"], "must be a finite number >= 0, got nan"),
    (["decay", "--seed", "-3"], "--seed: must be a finite number >= 0, got -3"),
    (["explain", "--cost", "hinge"], "invalid choice: 'hinge'"),
    (["explain", "--out", "/dev/null/pictures"], "--out /dev/null/pictures: cannot write there"),
    (["compare", "--convention", "keras"], "invalid choice: 'keras'"),
    (["compare", "--convention", "nielsen", "--m", "50"], "--m is used by --convention dlai only, not nielsen"),
    (["compare", "--convention", "dlai", "--eta", "0.3"], "--eta is used by --convention nielsen only, not dlai"),
    (["decay", "--batch-size", "500", "--n", "100"], "--batch-size 500 is larger than --n 100"),
    (["train", "--steps", "0"], "must be a finite number >= 1, got 0"),
    (["train", "--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_arguments_give_one_line_error_and_exit_status_2(args, message, tmp_path):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_diverging_run_is_explained_not_reported_as_a_difference(tmp_path):
    result = run("compare", "--convention", "nielsen", "--eta", "100", cwd=tmp_path)
    assert result.returncode == 1
    assert "training diverged at η = 100" in result.stderr and "Traceback" not in result.stderr
    assert "largest difference" not in result.stdout


def test_every_option_of_every_command_states_its_default():
    from tinygrad_l2.lessons.cli import make_parser
    _, sub = make_parser()
    assert set(sub.choices) == {"explain", "compare", "train", "dcda", "decay", "loss-or-update"}
    for name, parser in sub.choices.items():
        for action in parser._actions:
            if action.dest != "help":
                assert action.help and "default" in action.help, (name, action.dest)


@pytest.mark.parametrize("convention", ["dlai", "nielsen", "keras", "torch"])
def test_every_output_header_gives_the_meaning_of_lambda_and_kappa(convention, capsys):
    assert main(["dcda", "--convention", convention, "--lambd", "0.5", "--m", "20"]) == 0
    header = " ".join(capsys.readouterr().out.split("\n\n")[0].split("\n")[:2])  # wrapped at 100 columns
    assert f"λ = 0.5 in" in header and "κ = " in header and "κ/2 = " in header


def test_dcda_says_l2_adds_nothing_to_dc_da(capsys):
    assert main(["dcda", "--m", "32"]) == 0
    out = capsys.readouterr().out
    assert "The L2 term contributes 0 to dC/da because it has no path from a" in " ".join(out.split())
    rows = [line.split() for line in out.splitlines() if line.startswith(("quadratic", "cross_entropy"))]
    assert len(rows) == 8 and all(row[2] == "no" for row in rows[4:])  # the table printed in two parts


def test_decay_prints_the_fraction_the_conversions_and_agreeing_weights(capsys):
    assert main(["decay", "--eta", "0.5", "--lambd", "5", "--n", "100", "--batch-size", "10"]) == 0
    out = capsys.readouterr().out
    assert "f = ηλ/n = 0.025" in out and "PyTorch SGD weight_decay  0.05" in out
    differences = [line.split("  ")[-1].strip() for line in out.splitlines()
                   if line.startswith(("SGD weight_decay", "plain step", "Nielsen's own"))]
    assert len(differences) == 3 and all(d.endswith("(rounding)") for d in differences)


def test_loss_or_update_gives_identical_trajectories(capsys):
    assert main(["loss-or-update", "--steps", "3"]) == 0
    out = capsys.readouterr().out
    assert "two trajectories agree to rounding (every difference ≤ 1e-" in " ".join(out.split())
    assert "0 output  activation  0" in out


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "pso"])
def test_train_reports_loss_and_penalty_apart_and_a_verdict(optimizer, capsys):
    assert main(["train", "--optimizer", optimizer, "--steps", "5", "--layers", "2,8,1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "data loss" in out and "L2 penalty" in out and f"5 {optimizer} steps" in out
    assert "made the kernels" in out


def test_output_piped_into_head_ends_without_a_traceback(tmp_path):
    import sys
    result = subprocess.run(f"{sys.executable} -m tinygrad_l2 decay | head -1", shell=True, cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.startswith("λ = 5 in Nielsen's convention") and "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["explain", "compare", "train", "dcda", "decay", "loss-or-update"])
def test_every_subcommand_has_help(command, tmp_path):
    result = run(command, "--help", cwd=tmp_path)
    assert result.returncode == 0 and "usage: tinygrad-l2 " + command in result.stdout


@pytest.mark.skipif(shutil.which("tinygrad-l2") is None, reason="console script not installed")
def test_console_script(tmp_path):
    result = subprocess.run(["tinygrad-l2", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "explain" in result.stdout


def test_explain_show_code_prints_the_generated_backprop(tmp_path):
    import subprocess
    import sys
    result = subprocess.run([sys.executable, "-m", "tinygrad_l2", "explain", "--show-code", "--out",
                             str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    code = result.stdout.split("The backprop tl.compile writes", 1)[1]
    dW1 = next(line for line in code.splitlines() if line.strip().startswith("dW1 = "))
    assert "def step(" in code and "penalty term" in dW1
    assert not any("penalty" in line for line in code.splitlines()
                   if line.strip().startswith(("dA", "dZ", "db")))
    compile(code.split(":\n\n", 1)[1].split("\ngraph (")[0], "<explain>", "exec")  # valid Python


@pytest.mark.parametrize("args", [["decay", "--lambd", "1e308"], ["explain", "--lambd", "1e308"],
                                  ["loss-or-update", "--lr", "1e308", "--steps", "2"],
                                  ["train", "--optimizer", "sgd", "--lr", "1e6", "--steps", "30",
                                   "--layers", "2,16,1", "--quiet"]])
def test_an_overflowing_run_says_so_with_exit_1_no_verdict_and_no_numpy_warning(args, tmp_path):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "overflowed to inf/nan" in result.stderr or "diverged" in result.stderr
    assert "Warning" not in result.stderr and len(result.stderr.splitlines()) == 1
    for verdict in ("same weights", "agree", "identical", "did not help", "rose", "fell", "nan", "inf"):
        assert verdict not in result.stdout


@pytest.mark.parametrize("command", ["explain", "compare"])
def test_an_m_beyond_the_built_in_examples_is_refused_not_silently_cut(command, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit:
        main([command, "--m", "500"])
    assert exit.value.code == 2
    assert "--m 500: the built-in dataset has 200 training examples" in capsys.readouterr().err
    assert main(["explain", "--m", "200", "--layers", "2,3,1", "--out", str(tmp_path)]) == 0


def test_adamw_runs_are_named_decoupled_decay_not_l2(capsys):
    assert main(["train", "--optimizer", "adamw", "--steps", "5", "--layers", "2,8,1", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "with AdamW wd = 0.002" in out and "Decoupled weight decay made the kernels" in out
    assert "with L2" not in out and "L2 made" not in out


def test_a_test_accuracy_change_within_noise_is_called_a_tie():
    from tinygrad_l2.lessons.lam import Lambda
    from tinygrad_l2.lessons.training import Run, TrainingComparison
    model = tl_mlp()
    runs = [Run("without L2", model, [], 0.1, 0.0, 0.9, 0.832), Run("with L2", model, [], 0.1, 0.0, 0.9, 0.833)]
    comparison = TrainingComparison((2, 4, 1), "adam", 10, 0.01, Lambda("keras", 1e-3), 200, 1000, runs)
    assert "a tie" in comparison.verdict() and "rose" not in comparison.verdict()
    runs[1].test = 0.865
    assert "rose from 0.832 to 0.865" in comparison.verdict()
    runs[1].test = 0.80
    assert "fell from 0.832 to 0.800" in comparison.verdict()


def tl_mlp():
    from tinygrad_l2.nn import MLP
    return MLP([2, 4, 1])


def test_explain_out_naming_a_graph_file_writes_that_file_not_a_folder(tmp_path):
    assert main(["explain", "--layers", "2,3,1", "--m", "20", "--out", str(tmp_path / "mygraph.png")]) == 0
    assert (tmp_path / "mygraph.png").is_file()
    assert (tmp_path / "mygraph.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mygraph.png"]


def test_train_plot_out_naming_a_file_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main(["train", "--plot", "--out", str(tmp_path / "plots.png")])
    assert exit.value.code == 2 and "names the directory for the plots" in capsys.readouterr().err
    assert not (tmp_path / "plots.png").exists()


def test_no_arguments_prints_the_usage_and_the_commands(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: tinygrad-l2") and "loss-or-update" in err and "--help" in err


@pytest.mark.parametrize("args, said", [(["train", "--steps", "1e11"], "at most 100,000"),
                                        (["train", "--layers", "2,100000,1"], "at most 4096 units"),
                                        (["decay", "--n", "10000000000"], "at most 100,000"),
                                        (["loss-or-update", "--steps", "5000"], "at most 1,000")])
def test_absurd_sizes_are_refused_before_running(args, said, capsys):
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code == 2 and said in capsys.readouterr().err


WIDE_OUTPUTS = [["explain", "--layers", "2,3,1", "--m", "20"], ["dcda"], ["decay"], ["loss-or-update", "--steps", "1"],
                ["train", "--steps", "5", "--layers", "2,8,1", "--quiet"],
                ["train", "--optimizer", "adamw", "--steps", "5", "--layers", "2,8,1", "--quiet"],
                ["compare", "--convention", "nielsen", "--epochs", "1"], ["compare", "--layers", "2,3,1"]]


@pytest.mark.parametrize("args", WIDE_OUTPUTS, ids=" ".join)
def test_every_line_of_every_command_fits_in_100_columns(args, capsys, tmp_path):
    assert main(args + (["--out", str(tmp_path)] if args[0] == "explain" else [])) == 0
    wide = [line for line in capsys.readouterr().out.splitlines() if len(line) > 100]
    assert not wide, wide


@pytest.mark.parametrize("args", [["dcda"], ["decay"], ["explain", "--layers", "2,3,1", "--m", "20"],
                                  ["train", "--steps", "3", "--layers", "2,4,1"], ["decay", "--n", "0"]])
def test_a_console_without_greek_gets_ascii_spellings_not_a_crash(args, tmp_path):
    env = {**os.environ, "PYTHONIOENCODING": "cp1252"}
    result = subprocess.run([sys.executable, "-m", "tinygrad_l2", *args], cwd=tmp_path, capture_output=True,
                            env=env, timeout=300)
    out, err = result.stdout.decode("cp1252"), result.stderr.decode("cp1252")
    assert "UnicodeEncodeError" not in err and "Traceback" not in err
    assert result.returncode == (2 if "0" in args else 0), err
    assert "λ" not in out + err and ("lambda" in out or "--n" in err)


@pytest.mark.parametrize("convention, term", [("keras", "λ·Σw²"), ("nielsen", "(λ/2n)·Σw²"), ("torch", "(λ/2)·Σw²"),
                                              ("dlai", "(1/m)(λ/2)·Σ‖W‖²")])
def test_explains_why_paragraph_speaks_the_chosen_convention(convention, term, capsys, tmp_path):
    assert main(["explain", "--convention", convention, "--lambd", "0.5", "--layers", "2,3,1", "--m", "20",
                 "--out", str(tmp_path)]) == 0
    why = " ".join(capsys.readouterr().out.split("Why does L2 change only dW?")[1].split("graph (")[0].split())
    assert f"The L2 term, {term}" in why and "with λ = 0.5" in why
    if convention != "dlai":
        assert "λ/2m" not in why and "(λ/m)" not in why


def test_a_pso_run_prints_no_learning_rate_it_ignores(capsys):
    assert main(["train", "--optimizer", "pso", "--steps", "2", "--layers", "2,4,1", "--quiet"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "lr" not in out.replace("no lr", "") and "30 particles, no gradient" in out


def _kappa_in_header(out):
    import re
    return re.search(r"κ = ([0-9.e+-]+),", out).group(1)


def test_every_converted_value_comes_with_a_command_that_gives_its_kappa_back(capsys):
    assert main(["decay", "--lambd", "3", "--n", "120", "--eta", "0.4"]) == 0
    out = capsys.readouterr().out
    kappa = _kappa_in_header(out)
    commands = [line.strip() for line in out.splitlines() if line.startswith("  tinygrad-l2 decay")]
    assert {c.split("--convention ")[1].split()[0] for c in commands} == {"nielsen", "keras", "torch", "dlai"}
    for command in commands:
        assert main(command.split()[1:]) == 0
        assert _kappa_in_header(capsys.readouterr().out) == kappa == "0.025", command


def test_decay_shows_the_bias_update_bit_identical_with_and_without_l2(capsys):
    assert main(["decay", "--eta", "0.5", "--lambd", "5", "--n", "200"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line[:2] in ("w1", "w2", "b1", "b2")}
    assert rows["b1"] == rows["b2"] == ["1", "yes"] and rows["w1"] == rows["w2"] == ["0.9875", "no"]
    assert "A bias's update is bit-identical with and without L2 (factor exactly 1)" in " ".join(out.split())
    assert "every parameter in its group" in out and "(weights only)" not in out


def test_a_loss_spike_on_the_way_is_not_a_divergence_but_a_worse_end_is():
    from tinygrad_l2.lessons.training import _divergence
    model = tl_mlp()
    assert _divergence(model, (100, 1.5, 0.0), 0.69, final=False) == ""
    assert "grew from 0.69 (untrained) to 1.5" in _divergence(model, (3000, 1.5, 0.0), 0.69, final=True)
    assert "overflowed" in _divergence(model, (100, float("nan"), 0.0), 0.69, final=False)
