"""The README's code runs as printed."""
import re
from pathlib import Path

import numpy as np
import pytest

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
    assert "dW1 = W1 * (2 * " in quoted and "# penalty term" in quoted


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


def _quoted_outputs():
    import sys
    sys.path.insert(0, str(README.parent / "docs"))
    import update_readme
    return update_readme


OUTPUTS = [command for command, _ in _quoted_outputs().blocks()]


@pytest.mark.parametrize("command", OUTPUTS)
def test_every_quoted_output_is_what_the_command_prints_now(command):
    if "08_keras_to_torch" in command:
        import importlib.util
        if not (importlib.util.find_spec("torch") and importlib.util.find_spec("keras")):
            pytest.skip("needs the interop extra (torch, keras): pip install -e '.[interop]'")
    update_readme = _quoted_outputs()
    quoted = dict(update_readme.blocks())[command]
    assert update_readme.run(command) == quoted, f"stale: run python docs/update_readme.py ({command})"


def test_the_readme_quotes_an_output_for_every_question_command():
    for command in ("tinygrad-l2 explain", "tinygrad-l2 dcda", "tinygrad-l2 decay",
                    "tinygrad-l2 loss-or-update", "tinygrad-l2 train --quiet"):
        assert command in OUTPUTS
    assert any("--optimizer pso" in c for c in OUTPUTS)
