"""The commands' console: prose wrapped to 100 columns, ASCII spellings where Greek cannot go."""
import io

from tinygrad_l2.lessons.console import AsciiFallback, fit

TABLE = "name  value\n----  -----\n" + "x" * 120 + "  1"


def test_fit_wraps_long_prose_and_keeps_its_indent():
    prose = "  " + " ".join(["word"] * 60)
    wrapped = fit(prose).splitlines()
    assert len(wrapped) > 1 and all(len(line) <= 100 and line.startswith("  word") for line in wrapped)
    assert " ".join(fit(prose).split()) == " ".join(prose.split())


def test_fit_leaves_table_rows_whole():
    assert fit(TABLE) == TABLE and fit("title\n" + TABLE + "\n\nend") == "title\n" + TABLE + "\n\nend"


def test_ascii_fallback_spells_what_the_encoding_lacks_and_keeps_what_it_has():
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="cp1252")
    AsciiFallback(stream).write("λ = 0.5: κ·W, Σ‖W‖² ≤ 1e-13 − done ✓")
    stream.flush()
    assert raw.getvalue().decode("cp1252") == "lambda = 0.5: kappa·W, sum ||W||² <= 1e-13 - done ?"
