"""Every example runs (in seconds) and says what it shows."""
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from helpers import readme_tool  # (runs an example once: the README quotes it too)


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(name, *args, cwd):
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_examples_directory_holds_the_nine_examples():
    assert len(list(EXAMPLES.glob("0*.py"))) == 9


def test_01_render_l2_graph(tmp_path):
    result = run("01_render_l2_graph.py", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for stem in ("l2_graph", "l2_model"):
        ET.parse(tmp_path / f"{stem}.svg")
        assert (tmp_path / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"


def test_02_manual_vs_autodiff(tmp_path):
    result = run("02_manual_vs_autodiff.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "L2 changed: dW3, dW2, dW1" in result.stdout and "bit-identical" in result.stdout


def test_03_l2_vs_weight_decay(tmp_path):
    result = run("03_l2_vs_weight_decay.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for needle in ("Keras", "Nielsen", "deeplearning.ai", "AdamW", "1 − ηλ/n"):
        assert needle in result.stdout


def test_04_digits_overfitting(tmp_path):
    result = run("04_digits_overfitting.py", "30", cwd=tmp_path)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        assert result.returncode == 1 and "pip install 'tinygrad-l2[datasets]'" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert "L2 lam=0 " in result.stdout and "test accuracy" in result.stdout


def test_05_particle_swarm(tmp_path):
    result = run("05_particle_swarm.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [l for l in result.stdout.splitlines() if l.startswith("L2 lam=")]
    assert len(lines) == 2 and all("gradients computed: 0" in l for l in lines)
    norms = [float(l.split("‖W‖ = ")[1].split()[0]) for l in lines]
    assert norms[1] < norms[0]  # the L2 term the swarm sees shrinks the weights


def test_06_convnet_l2(tmp_path):
    result = run("06_convnet_l2.py", "3", str(tmp_path), cwd=tmp_path)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        assert result.returncode == 2 and "pip install 'tinygrad-l2[datasets]'" in result.stderr
        return
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "test accuracy" in line]
    assert [r.split("  ")[0].strip() for r in rows] == ["no regularization", "L2 reg=0.001", "Dropout p=0.3",
                                                         "BatchNorm, wd=0.002"]
    assert penalized(tmp_path / "convnet_l2.svg", "l2") == {"0.weight", "3.weight", "7.weight"}  # kernels only
    assert penalized(tmp_path / "convnet_bn_decay.svg", "decay") == {"0.weight", "4.weight", "8.weight"}  # not γ, β


def penalized(svg_path, term):
    """The parameters the edges of `term`'s gradient leave, in a rendered SVG."""
    svg = ET.parse(svg_path).getroot()
    tag = "{http://www.w3.org/2000/svg}"
    label = {g.find(tag + "title").text: " ".join(t.text or "" for t in g.iter(tag + "text"))
             for g in svg.iter(tag + "g") if g.get("class") == "node"}
    tails = {g.find(tag + "title").text.split("->")[0] for g in svg.iter(tag + "g")
             if f"term-{term}" in (g.get("class") or "").split()}
    return {label[t].split()[0] for t in tails if label.get(t, "").split()[0].endswith(("weight", "bias"))}


def test_07_compiled_step(tmp_path):
    result = run("07_compiled_step.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "\ndef step(X, y):" in result.stdout and "traced 1 time" in result.stdout
    accuracy = float(result.stdout.split("test accuracy ")[1].split()[0])
    assert accuracy > 0.8


def test_08_keras_to_torch():
    import importlib.util
    if not (importlib.util.find_spec("torch") and importlib.util.find_spec("keras")):
        pytest.skip("needs the interop extra (torch, keras): pip install -e '.[interop]'")
    printed = readme_tool().run("python examples/08_keras_to_torch.py")  # raises if it fails
    penalty = printed.split("penalty: Keras sum(model.losses) = ")[1].split(",")[0]
    assert f"tl regularization_loss() = {penalty}" in printed
    assert "torch group weight_decay=0.002: conv2d.weight, conv2d_1.weight, dense.weight" in printed
    assert "parameters agree to < 1e-10" in printed


def test_09_l2_hessian(tmp_path):
    result = run("09_l2_hessian.py", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("= κ·v,  max |(H_total − H_data)·v − κ·v| ≤") == 2
    assert result.stdout.count("= 0,    max |(H_total − H_data)·v| = 0\n") == 2
    assert "every eigenvalue moved by κ: max |shift − κ| ≤" in result.stdout
