"""Table: rows of named columns that print as aligned text and convert to a list of dicts."""
import math


def _cell(value):
    if value is None:
        return "—"
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


class Table:
    """Printable result: `str(table)` is aligned text, `table.to_rows()` a list of dicts."""

    def __init__(self, columns, rows, title=None):
        self.columns = list(columns)
        self.rows = [list(r) for r in rows]
        self.title = title
        for row in self.rows:
            if len(row) != len(self.columns):
                raise ValueError(f"Table: a row has {len(row)} cells for {len(self.columns)} columns")

    def to_rows(self):
        return [dict(zip(self.columns, row)) for row in self.rows]

    def column(self, name):
        i = self.columns.index(name)
        return [row[i] for row in self.rows]

    def __len__(self):
        return len(self.rows)

    def __str__(self):
        cells = [self.columns] + [[_cell(v) for v in row] for row in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(([self.title] if self.title else []) + lines)

    def __repr__(self):
        return str(self)
