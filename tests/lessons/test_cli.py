"""The tinygrad-l2 command end to end, in a temporary directory."""
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
    out = result.stdout
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
                 "--m", "20", "--out", str(tmp_path), "--rankdir", "TB"]) == 0
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
    assert "without L2" in out and "with L2(0.001)" in out and "test accuracy" in out


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
    (["explain", "--lambd", "-1"], "must be >= 0"),
    (["compare", "--convention", "keras"], "invalid choice: 'keras'"),
    (["train", "--steps", "0"], "must be a positive integer"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_bad_arguments_give_one_line_error_and_nonzero_exit(args, message, tmp_path):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["explain", "compare", "train"])
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
    assert "def step(" in code and "dW1 = W1 * (2 * " in code
    compile(code.split(":\n\n", 1)[1].split("\ngraph (")[0], "<explain>", "exec")  # valid Python
