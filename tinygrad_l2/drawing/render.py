"""Rendering: find a Graphviz renderer (the system `dot`, else the pip-installed graphviz-pure),
turn DOT source into SVG/PNG/PDF bytes, and write files."""
import shutil
import subprocess
import sys
from pathlib import Path

import graphviz

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}


class RendererNotFound(RuntimeError):
    """No Graphviz renderer on this machine (or none that writes the requested format)."""


class Digraph(graphviz.Digraph):
    """A graphviz.Digraph whose `pipe` (and so Jupyter display) uses `find_renderer()`: the
    system `dot` when it is on PATH, else the pip-installed `graphviz-pure`."""

    def pipe(self, format=None, renderer=None, formatter=None, neato_no_op=None, quiet=False,
             *, engine=None, encoding=None):
        data = pipe_source(self.source, format or self.format or "svg")
        return data.decode(encoding) if encoding else data


def find_renderer(fmt="svg"):
    """The command that renders `fmt`: `dot` on PATH, else `graphviz-pure` (no PDF)."""
    dot = shutil.which("dot")
    if dot:
        return dot
    pure = shutil.which("graphviz-pure") or _beside_python("graphviz-pure")
    if pure and fmt != "pdf":
        return pure
    if pure:
        raise RendererNotFound(
            "render: PDF needs the system Graphviz `dot` (apt-get install graphviz, brew "
            "install graphviz, or conda install graphviz); the pip-installed graphviz-pure "
            "writes SVG and PNG but not PDF")
    raise RendererNotFound(
        "render: no Graphviz renderer found: install graphviz-pure (pip install graphviz-pure, "
        "a dependency of tinygrad-l2) or the system Graphviz (apt-get install graphviz)")


def _beside_python(name):
    """A console script installed next to this interpreter (a venv that is not activated)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


def pipe_source(source, fmt):
    """Render DOT `source` to bytes in format `fmt` with the renderer find_renderer picks."""
    if fmt == "dot":
        return source.encode()
    command = [find_renderer(fmt), f"-T{fmt}"]
    result = subprocess.run(command, input=source.encode(), capture_output=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"render: {Path(command[0]).name} failed to write {fmt}: "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def save(graph, path):
    """Write `graph` (a graphviz.Digraph) to `path`, in the format its suffix names (.svg,
    .png, .pdf, .dot/.gv); returns the path.  If rendering fails, the DOT source is still
    saved beside it (`path` with suffix .dot) and the error says so."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"render: unknown format {path.suffix!r} in {path}; use one of "
                         f"{', '.join(sorted(FORMATS))}")
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True)
    try:
        data = pipe_source(graph.source, fmt)
    except (RendererNotFound, RuntimeError) as err:
        saved = path.with_suffix(".dot")
        saved.write_text(graph.source)
        raise type(err)(f"{err} (the DOT source was saved to {saved})") from None
    path.write_bytes(data)
    return path
