"""Guards on the Python numbers a step reads directly: a global or closure variable that is a
number (`lam`, `scale`, a flag) is baked into the generated code as a literal, so a change
makes the step trace again instead of replaying the old value.

Only the function's own names are seen: a number read inside another function or from an
object's attribute (a regularizer's λ changed in place) is not; `check=N` catches that, and
`step.retrace()` forces a new trace.
"""
import numbers

import numpy as np


class Guards:
    """The step function's scalar globals and closure cells, as they were at the trace."""

    def __init__(self, fn):
        code = getattr(getattr(fn, "__func__", fn), "__code__", None)
        function = getattr(fn, "__func__", fn)
        self.reads = []  # (description, read-the-current-value)
        if code is None:
            return
        namespace = getattr(function, "__globals__", {})
        for name in dict.fromkeys(_names(code)):
            if name in namespace and _is_scalar(namespace[name]):
                self.reads.append((f"global {name}", lambda n=name: namespace.get(n)))
        for name, cell in zip(code.co_freevars, getattr(function, "__closure__", None) or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if _is_scalar(value):
                self.reads.append((f"closure variable {name}", lambda c=cell: c.cell_contents))
        self.values = [read() for _, read in self.reads]

    def changed(self):
        """The first guarded name whose value changed since the trace, or None."""
        for (what, read), value in zip(self.reads, self.values):
            current = read()
            if type(current) is not type(value) or current != value:
                return what
        return None


def _names(code):
    """The global names a code object reads, including those of the comprehensions, generator
    expressions and lambdas inside it (their own code objects)."""
    names = list(code.co_names)
    for constant in code.co_consts:
        if hasattr(constant, "co_names"):
            names += _names(constant)
    return names


def _is_scalar(value):
    return isinstance(value, (numbers.Number, np.generic, str)) and not isinstance(value, np.ndarray)
