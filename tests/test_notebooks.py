"""The notebooks under examples/notebooks execute top to bottom, show their tables as HTML and
their graph as SVG."""
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "examples" / "notebooks").glob("*.ipynb"))


def execute(path, tmp_path):
    book = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(book, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    return [o for cell in book.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 2


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_only_the_public_api(path):
    """A learner's notebook imports numpy and tinygrad_l2 and reaches nothing private: no
    lessons module, no underscore name."""
    code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
    imported = re.findall(r"^\s*(?:from|import)\s+([\w.]+)", code, re.M)
    assert imported and set(imported) <= {"numpy", "tinygrad_l2"}
    assert "lessons" not in code and not re.search(r"\btl(\.\w+)*\._", code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_executed(path):
    """Its outputs are in the file (readable on GitHub): every code cell ran, in order, without
    error, and the tables and the graph are there."""
    cells = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1))
    outputs = [o for c in cells for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any("text/html" in o.get("data", {}) for o in outputs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_and_shows_tables_as_html(path, tmp_path):
    outputs = execute(path, tmp_path)
    assert not [o for o in outputs if o.output_type == "error"]
    html = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
    assert html and all(h.startswith("<table>") for h in html)
    if path.name.startswith("01_"):
        svg = [o["data"]["image/svg+xml"] for o in outputs if "image/svg+xml" in o.get("data", {})]
        assert len(svg) == 1 and "regularization: depends on weights only" in svg[0]
