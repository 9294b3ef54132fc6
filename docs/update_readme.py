"""Regenerate every command output the README quotes, and its pictures.

    python docs/update_readme.py          # rewrite README.md's output blocks and docs/*.png
    python docs/update_readme.py --check  # exit 1 and name the blocks that differ

A quoted output sits between `<!-- output: COMMAND -->` and `<!-- /output -->`, as a ```text
block.  COMMAND is `tinygrad-l2 ...` (run in-process, in a temporary directory so that files it
writes land there) or `python examples/...` (run as a script from the repository root).
tests/test_readme.py runs each one and fails when the README's text differs from the output.

What "differs" means (`differences`): the text around the numbers must be the same (spacing
aside: a wider number moves a table's columns); numbers must be equal, except in the outputs of
training runs (TRAINED), where a measured quantity may differ as much as a run on another CPU's
BLAS kernel makes it differ (TOLERANCES: accuracies by 0.02, i.e. 20 test points in 1000;
losses, penalties and weight norms by 30%, since the overfitting run without L2 is chaotic;
each also by one unit of its last printed digit).
The commands print differences at rounding level as "≤ 1e-N (rounding)", so those are text.
Only --check and the tests compare; a rewrite keeps a quoted block that still matches.
"""
import contextlib
import functools
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


TRAINED = ("tinygrad-l2 train", "python examples/04_digits_overfitting.py")
TOLERANCES = {"accuracy": (0.02, 0.0), "gap": (0.02, 0.0),  # label -> (absolute, relative)
              "data loss": (0.0, 0.3), "L2 penalty": (0.0, 0.3), "‖W": (0.0, 0.3), "kernels": (0.0, 0.3)}
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?(?!\w|\.\d)")


def differences(quoted, printed, command):
    """What differs between a quoted output and a fresh one (empty: they match; see above)."""
    text_quoted, text_printed = (" ".join(re.sub("-{2,}", "--", NUMBER.sub("#", t)).split())
                                 for t in (quoted, printed))
    if text_quoted != text_printed:
        return [f"the text differs: {_first_difference(quoted, printed)}"]
    trained = command.startswith(TRAINED)
    found = []
    for (label, q), p in zip(_labelled_numbers(quoted), NUMBER.findall(printed)):
        absolute, relative = _tolerance(label) if trained else (0.0, 0.0)
        if (absolute or relative) and "e" not in q and "." in q:  # and the last digit printed
            absolute += 10.0 ** -len(q.split(".")[1])
        if abs(float(p) - float(q)) > absolute + relative * abs(float(q)):
            found.append(f"{label.strip() or 'a number'}: {q} quoted, {p} printed")
    return found


def _tolerance(label):
    """(absolute, relative) for the quantity a label names: the last TOLERANCES key in it."""
    at = {key: label.rfind(key) for key in TOLERANCES}
    key = max(at, key=at.get)
    return TOLERANCES[key] if at[key] >= 0 else (0.0, 0.0)


def _labelled_numbers(text):
    """[(label, number)]: in a table, the column's header; in prose, the line up to the number."""
    lines, numbers, header = text.splitlines(), [], None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and re.fullmatch(r"-+(  -+)*", lines[i + 1]):
            header = (line, [m.span() for m in re.finditer("-+", lines[i + 1])])
        if not line.strip():
            header = None
        for m in NUMBER.finditer(line):
            label = re.split("[:;,]", line[:m.start()])[-1]  # the clause the number ends
            if header is not None and not set(line) <= set("- "):
                label = next((header[0][a:b] for a, b in header[1] if a <= m.start() < b + 2), label)
            numbers.append((label, m.group()))
    return numbers


def _first_difference(quoted, printed):
    for q, p in zip(quoted.splitlines() + [""] * 999, printed.splitlines() + [""] * 999):
        if q != p:
            return f"quoted {q!r}, printed {p!r}"
    return "(whitespace)"


def run(command):
    """What `command` prints now (stdout), as the README should quote it."""
    words = command.split()
    if words[0] == "tinygrad-l2":
        from tinygrad_l2.lessons.cli import main
        out, here = io.StringIO(), os.getcwd()
        with tempfile.TemporaryDirectory() as scratch, contextlib.redirect_stdout(out):
            _copy_named_files(words, Path(scratch))
            os.chdir(scratch)
            try:
                status = main(words[1:])
            finally:
                os.chdir(here)
        if status != 0:
            raise RuntimeError(f"{command} exited with {status}")
        return out.getvalue()
    if words[:2] == ["python", words[1]] and words[1].startswith("examples/"):
        return _example_output(tuple(words[1:]))
    raise ValueError(f"update_readme: don't know how to run {command!r}")


@functools.cache  # (the tests quote an example twice: its own test and the README's)
def _example_output(words):
    return subprocess.run([sys.executable, *words], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def _copy_named_files(words, scratch):
    """A repository file an argument names (examples/my_torch_net.py in
    `--model examples/my_torch_net.py:model`) copied to the same relative path in the scratch
    directory the command runs in, so that the printed path is the README's."""
    for word in words:
        name = word.split(":")[0]
        if not Path(name).is_absolute() and (ROOT / name).is_file():
            (scratch / name).parent.mkdir(parents=True, exist_ok=True)
            (scratch / name).write_bytes((ROOT / name).read_bytes())


SOURCES = {"compiled-source": "--source", "compiled-update": "--update-source"}  # examples/07's code


def update(text):
    def fresh(m):
        printed = run(m["command"])
        kept = m["text"] if not differences(m["text"], printed, m["command"]) else printed
        return f"<!-- output: {m['command']} -->\n```text\n{kept}```\n<!-- /output -->"
    text = BLOCK.sub(fresh, text)
    for marker, flag in SOURCES.items():
        code = run(f"python examples/07_compiled_step.py {flag}")
        head, rest = text.split(f"<!-- {marker}:start -->\n", 1)
        text = f"{head}<!-- {marker}:start -->\n```python\n{code}```\n<!-- {marker}:end -->" + \
            rest.split(f"<!-- {marker}:end -->", 1)[1]
    return text


def main(argv):
    text = README.read_text()
    if "--check" in argv:
        stale = {command: differences(quoted, run(command), command) for command, quoted in blocks(text)}
        stale = {command: found for command, found in stale.items() if found}
        print("\n".join(f"stale: {c}: {'; '.join(found)}" for c, found in stale.items())
              or "README outputs are current")
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
