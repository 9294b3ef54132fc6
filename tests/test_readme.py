"""The README's code runs as printed."""
import re
from pathlib import Path

import numpy as np
import pytest

import kernel_checks
from helpers import readme_tool

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(section):
    """The ```python blocks of one `## section` of the README."""
    text = README.read_text()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end if end > 0 else None], re.S)


def test_write_your_own_op_runs_and_renders(tmp_path, monkeypatch):
    (block,) = python_blocks("Write your own op")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(block, "README.md", "exec"), namespace)
    svg = (tmp_path / "l2_op.svg").read_text()
    assert "L2Penalty" in svg and ">W<" in svg.replace("\n", "")
    w = namespace["W"]
    np.testing.assert_array_equal(w.grad, 0.02 * w.data)


def test_the_compiled_source_in_the_readme_is_what_the_tool_writes_now():
    import subprocess
    import sys
    example = README.parent / "examples" / "07_compiled_step.py"
    generated = subprocess.run([sys.executable, str(example), "--source"], capture_output=True,
                               text=True, check=True).stdout
    text = README.read_text()
    quoted = text.split("<!-- compiled-source:start -->\n```python\n", 1)[1].split("```\n<!-- compiled-source:end -->")[0]
    assert quoted == generated
    dW1 = next(line for line in quoted.splitlines() if line.strip().startswith("dW1 = "))
    assert "penalty term" in dW1 and "# penalty term" in quoted  # where the L2 gradient joins dW1


def test_the_compiled_update_in_the_readme_is_what_the_tool_writes_now():
    import subprocess
    import sys
    example = README.parent / "examples" / "07_compiled_step.py"
    generated = subprocess.run([sys.executable, str(example), "--update-source"], capture_output=True,
                               text=True, check=True).stdout
    quoted = README.read_text().split("<!-- compiled-update:start -->\n```python\n", 1)[1].split(
        "```\n<!-- compiled-update:end -->")[0]
    assert quoted == generated
    assert "W1 *= 1 - kW1" in quoted and "b1 *= " not in quoted


def test_every_file_the_readme_names_exists():
    import re
    paths = set(re.findall(r"`((?:tinygrad_l2|tests|examples|benchmarks)/[\w/.]*)", README.read_text()))
    assert len(paths) > 15
    missing = sorted(p for p in paths if not (README.parent / p).exists())
    assert not missing, missing


def _blocks_to_run():
    """Every ```python block of the README except the generated sources (checked above)."""
    text = README.read_text()
    for marker in ("compiled-source", "compiled-update"):
        head, rest = text.split(f"<!-- {marker}:start -->", 1)
        text = head + rest.split(f"<!-- {marker}:end -->", 1)[1]
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_every_python_block_in_the_readme_runs(tmp_path, monkeypatch):
    blocks = _blocks_to_run()
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i}", "exec"), {})
    assert (tmp_path / "graph.svg").exists()


OUTPUTS = [command for command, _ in readme_tool().blocks()]


@pytest.mark.parametrize("command", OUTPUTS)
def test_every_quoted_output_is_what_the_command_prints_now(command):
    if "08_keras_to_torch" in command or "--model" in command:
        import importlib.util
        if not (importlib.util.find_spec("torch") and importlib.util.find_spec("keras")):
            pytest.skip("needs the interop extra (torch, keras): pip install -e '.[interop]'")
    update_readme = readme_tool()
    quoted = dict(update_readme.blocks())[command]
    found = update_readme.differences(quoted, update_readme.run(command), command)
    assert not found, f"stale: run python docs/update_readme.py ({command}): {found}"


TRAIN_OUTPUT = """\
run          data loss  train accuracy  gap    ‖W_l‖ per layer
-----------  ---------  --------------  -----  ---------------
without L2   0.02203    0.995           0.163  14.1 77.4 9.24

L2 made the kernels 0.15× as large, and test accuracy rose from 0.832 to 0.865.
"""


def _differences(quoted, printed, command="tinygrad-l2 train --quiet"):
    return readme_tool().differences(quoted, printed, command)


def test_a_trained_output_matches_within_each_quantitys_tolerance():
    other_kernel = (TRAIN_OUTPUT.replace("0.02203", "0.01859").replace("0.995    ", "0.98     ")
                    .replace("77.4", "73.8").replace("0.865", "0.857"))
    assert _differences(TRAIN_OUTPUT, other_kernel) == []


@pytest.mark.parametrize("old, new", [("0.995", "0.970"), ("0.865", "0.89"), ("0.02203", "0.03"),
                                      ("77.4", "40.1"), ("0.163", "0.2")])
def test_a_trained_quantity_beyond_its_tolerance_is_stale(old, new):
    assert len(_differences(TRAIN_OUTPUT, TRAIN_OUTPUT.replace(old, new))) == 1


def test_text_and_numbers_outside_training_runs_compare_exactly():
    assert _differences(TRAIN_OUTPUT, TRAIN_OUTPUT.replace("rose", "fell"))
    assert _differences(TRAIN_OUTPUT, TRAIN_OUTPUT.replace("0.832", "0.831"), "tinygrad-l2 explain")
    assert _differences("3000 adam steps\n", "3001 adam steps\n")
    assert _differences("≤ 1e-13 (rounding)\n", "≤ 1e-14 (rounding)\n")


def test_a_wider_number_moving_the_columns_is_not_a_difference():
    wider = TRAIN_OUTPUT.replace("0.02203    ", "0.0220312  ").replace("-----------  ---------", "-----------  -----------")
    assert _differences(TRAIN_OUTPUT, wider) == []


@pytest.mark.parametrize("coretype", kernel_checks.CORETYPES)
def test_the_quoted_outputs_hold_under_every_x86_blas_kernel(coretype):
    """BLAS kernels round differently (the order of the sums); the README's check must not care
    (kernel_checks.py: started at collection, beside the rest of the suite)."""
    found = kernel_checks.verdict(coretype)
    if isinstance(found, str):
        pytest.skip(found)
    returncode, printed = found
    assert returncode == 0, printed


def test_the_readme_quotes_an_output_for_every_question_command():
    for command in ("tinygrad-l2 explain", "tinygrad-l2 dcda", "tinygrad-l2 decay",
                    "tinygrad-l2 loss-or-update", "tinygrad-l2 train --quiet"):
        assert command in OUTPUTS
    assert any("--optimizer pso" in c for c in OUTPUTS)
