"""The README's code runs as printed."""
import re
from pathlib import Path

import numpy as np

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
