"""Regenerate every command output the README quotes, and its pictures.

    python docs/update_readme.py          # rewrite README.md's output blocks and docs/*.png
    python docs/update_readme.py --check  # exit 1 and name the blocks that differ

A quoted output sits between `<!-- output: COMMAND -->` and `<!-- /output -->`, as a ```text
block.  COMMAND is `tinygrad-l2 ...` (run in-process, in a temporary directory so that files it
writes land there) or `python examples/...` (run as a script from the repository root).
tests/test_readme.py runs each one and fails when the README's text differs from the output.
"""
import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"<!-- output: (?P<command>.+?) -->\n```text\n(?P<text>.*?)```\n<!-- /output -->", re.S)


def blocks(text=None):
    """[(command, quoted text)] in README order."""
    return [(m["command"], m["text"]) for m in BLOCK.finditer(text if text is not None else README.read_text())]


def run(command):
    """What `command` prints now (stdout), as the README should quote it."""
    words = command.split()
    if words[0] == "tinygrad-l2":
        from tinygrad_l2.lessons.cli import main
        out, here = io.StringIO(), os.getcwd()
        with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(out):
            os.chdir(scratch)
            try:
                status = main(words[1:])
            finally:
                os.chdir(here)
        if status != 0:
            raise RuntimeError(f"{command} exited with {status}")
        return out.getvalue()
    if words[:2] == ["python", words[1]] and words[1].startswith("examples/"):
        return subprocess.run([sys.executable, *words[1:]], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout
    raise ValueError(f"update_readme: don't know how to run {command!r}")


SOURCES = {"compiled-source": "--source", "compiled-update": "--update-source"}  # examples/07's code


def update(text):
    text = BLOCK.sub(lambda m: f"<!-- output: {m['command']} -->\n```text\n{run(m['command'])}```\n"
                               f"<!-- /output -->", text)
    for marker, flag in SOURCES.items():
        code = run(f"python examples/07_compiled_step.py {flag}")
        head, rest = text.split(f"<!-- {marker}:start -->\n", 1)
        text = f"{head}<!-- {marker}:start -->\n```python\n{code}```\n<!-- {marker}:end -->" + \
            rest.split(f"<!-- {marker}:end -->", 1)[1]
    return text


def main(argv):
    text = README.read_text()
    if "--check" in argv:
        stale = [command for command, quoted in blocks(text) if run(command) != quoted]
        print("\n".join(f"stale: {c}" for c in stale) or "README outputs are current")
        return 1 if stale else 0
    README.write_text(update(text))
    print(f"updated {len(blocks(text))} output blocks in {README}")
    pictures()
    return 0


def pictures():
    """The README's pictures: explain's graph, and the tl.nn model of examples/01."""
    import shutil
    run(f"tinygrad-l2 explain --out {ROOT / 'docs'}")
    with tempfile.TemporaryDirectory() as scratch:
        subprocess.run([sys.executable, "examples/01_render_l2_graph.py", scratch], cwd=ROOT, check=True,
                       capture_output=True)
        shutil.copy(Path(scratch) / "l2_model.png", ROOT / "docs" / "l2_model.png")
    print("redrew docs/l2_graph.svg, docs/l2_graph.png and docs/l2_model.png")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
