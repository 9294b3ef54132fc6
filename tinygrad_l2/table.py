"""Table: rows of named columns that print as aligned text, render as HTML in Jupyter and
convert to a list of dicts; Result: the base of result objects that show as a table."""
from __future__ import annotations

import abc
import html
import math
import sys
from typing import Any, Iterable, Sequence


ROUNDING_ULPS = 64
"""A difference within this many units in the last place of the values compared is rounding."""


def rounding_bound(scale: float, eps: float = sys.float_info.epsilon) -> float:
    """The power of ten just above ROUNDING_ULPS·eps·scale: the size below which a difference
    between two computations of values up to `scale` is rounding (its digits depend on the BLAS
    kernel the CPU runs and on the order of the sums, not on the maths); nan for a non-finite scale."""
    if not math.isfinite(scale):
        return math.nan
    return 10.0 ** math.ceil(math.log10(ROUNDING_ULPS * eps * max(scale, sys.float_info.min)))


class Rounding(float):
    """max |a − b| for two computations of the same values, up to `scale` in size.  It prints as
    "≤ 1e-N (rounding)" when it is within rounding_bound(scale) (0 included: whether a kernel
    rounds the same way twice is luck), and as a number otherwise."""

    bound: float

    def __new__(cls, value: float, scale: float, eps: float = sys.float_info.epsilon) -> "Rounding":
        self = super().__new__(cls, value)
        self.bound = rounding_bound(scale, eps)
        return self

    @property
    def is_rounding(self) -> bool:
        return abs(self) <= self.bound

    def __str__(self) -> str:
        return f"≤ {self.bound:.0e} (rounding)".replace("e-0", "e-") if self.is_rounding else _cell(float(self))


def how_close(differences: Sequence[Rounding]) -> str:
    """In words: 'to rounding (every difference ≤ 1e-N)', or 'only to' the largest difference."""
    if all(d.is_rounding for d in differences):
        return f"to rounding (every difference ≤ {max(d.bound for d in differences):.0e})".replace("e-0", "e-")
    return f"only to {max(float(d) for d in differences):.1e}"


def _cell(value):
    if value is None:
        return "—"
    if isinstance(value, Rounding):
        return str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if math.isfinite(value) and (abs(value) >= 1e4 or abs(value) < 1e-3):
            return f"{value:.3e}"
        return f"{value:.4g}"
    if isinstance(value, tuple):
        return "(" + ", ".join(str(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return str(value)


WIDTH = 100
"""Columns of text a table may take: a wider one prints as several, each led by the key columns."""


def _column_groups(widths: Sequence[int], width: int, keys: int = 1) -> list[list[int]]:
    """Column indices in groups whose printed width fits `width`, each led by the `keys` first."""
    lead = list(range(min(keys, len(widths))))
    groups: list[list[int]] = [list(lead)]
    for i in range(len(lead), len(widths)):
        used = sum(widths[j] + 2 for j in groups[-1])
        if len(groups[-1]) > len(lead) and used + widths[i] > width:
            groups.append(list(lead))
        groups[-1].append(i)
    return groups


class Table:
    """Printable result: `str(table)` is aligned text, `table.to_rows()` a list of dicts."""

    def __init__(self, columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None,
                 keys: int = 1) -> None:
        self.columns = list(columns)
        self.keys = keys  # the leading columns that name a row, repeated when the table is split
        self.rows = [list(r) for r in rows]
        self.title = title
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"Table: a row has {len(row)} cells for {len(self.columns)} columns")

    def to_rows(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __str__(self) -> str:
        cells = [self.columns] + [[_cell(v) for v in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        blocks = []
        for group in _column_groups(widths, WIDTH, self.keys):  # too wide: printed in parts
            lines = ["  ".join(r[i].ljust(widths[i]) for i in group).rstrip() for r in cells]
            lines.insert(1, "  ".join("-" * widths[i] for i in group))
            blocks.append("\n".join(lines))
        return "\n".join(([self.title] if self.title else []) + ["\n\n".join(blocks)])

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        """The table in a notebook: a caption, a header row, one row per entry."""
        head = "".join(f"<th>{html.escape(c)}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                       for row in self.rows)
        caption = f"<caption>{html.escape(self.title)}</caption>" if self.title else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Result(abc.ABC):
    """A result object (a dataclass holding the arrays and figures) that shows as a table:
    subclasses define `columns`, `title` and `rows()`; `str(result)` prints the table, a
    notebook shows it as HTML, `to_rows()` gives a list of dicts."""

    columns: Sequence[str] = ()
    keys: int = 1  # the leading columns that name a row

    @property
    def title(self) -> str | None:
        return None

    @abc.abstractmethod
    def rows(self) -> list[list[Any]]:
        """The table's rows, one list of cells per row, in `columns` order."""

    def table(self) -> Table:
        return Table(self.columns, self.rows(), title=self.title, keys=self.keys)

    def tables(self) -> list[Table]:
        """Every table the result shows (one by default)."""
        return [self.table()]

    def to_rows(self) -> list[dict[str, Any]]:
        return self.table().to_rows()

    def __str__(self) -> str:
        return "\n\n".join(str(t) for t in self.tables())

    def _repr_html_(self) -> str:
        return "".join(t._repr_html_() for t in self.tables())
