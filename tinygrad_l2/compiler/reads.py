"""Numbers a step reads from tensors (`.item()`, `float()`): a replay recomputes them to
return them, but cannot redo what Python did with them; here, whether one reached an op."""
from __future__ import annotations

import functools
import sys
import types

import numpy as np

from .guards import scope_reads, user_helpers
from .results import code_literals


def read_into_ops(made, numbers, first_read, literals=()):
    """Why replay would use a stale number, or '': a number read from a tensor (`.item()`,
    `float()`: ("number", tensor, value, convert, where) observations) reaching an op, which a
    replay would hold at its traced value.  Directly (`loss * n`, `clip(min=s)`), told by
    identity (an int read is a TracedInt, a float an object of its own); or computed from it in
    Python (`2 - n / m`, `x[:n]`, `ones(n + 1)`): so after the first read (`first_read` arrays
    made before it), an op given a number, or a tensor made from numbers, is refused too (an
    axis or keepdims aside; and a number its own code or this package's writes as a constant,
    or a guarded number of its scope, `literals`: λ of an L2 penalty added after
    `data_loss.item()`; by identity, so never a small int, one object Python shares).  Reads
    at the end of a step (`return loss.item()`) pass."""
    read = {id(value): where for _, _, value, _, where in numbers}
    if not read:
        return ""
    constant = {id(v) for v in literals} | _package_constants()
    first = next(iter(read.values()))
    for k, (node, _) in enumerate(made.values()):
        after = first_read is not None and k >= first_read
        if node is None:
            if after:
                return f"a tensor made from Python numbers after reading a number from a tensor at {first}"
            continue
        for key, value in [*getattr(node, "given", {}).items(), *((None, v) for v in getattr(node, "arguments", ()))]:
            for number in _numbers_in(value):
                if id(number) in read:
                    return (f"the number {number!r} read from a tensor at {read[id(number)]} is given to "
                            f"the op {type(node).__name__}: a replay would use its traced value")
                if after and key not in ("axis", "keepdims") and (id(number) not in constant or _shared(number)):
                    return (f"the op {type(node).__name__} is given the number {number!r} after a number "
                            f"was read from a tensor at {first}: it may be computed from it")
    return ""


def _shared(number):
    """A small int (or a bool): one object Python shares, so being a constant's object proves
    nothing (`n // 2 + 1` computed from a read is the package's `2`)."""
    return type(number) in (int, bool) and -5 <= number <= 256


def _numbers_in(value):
    """The numbers in an op's argument (Python's or numpy's): itself, or in a tuple, list or
    slice (an index)."""
    if isinstance(value, bool | np.bool_) or value is None:
        return []
    if isinstance(value, int | float | complex | np.number):
        return [value]
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return [value]
    if isinstance(value, tuple | list):
        return [n for v in value for n in _numbers_in(v)]
    if isinstance(value, slice):
        return _numbers_in((value.start, value.stop, value.step))
    return []


@functools.cache
def _package_constants():
    """ids of the numbers this package's code writes as constants (kept alive by its code)."""
    found, seen = set(), set()
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] == "tinygrad_l2" and module is not None:
            for value in list(vars(module).values()):
                for member in [value, *(vars(value).values() if isinstance(value, type) else ())]:
                    code = getattr(getattr(member, "__func__", member), "__code__", None)
                    if isinstance(code, types.CodeType) and id(code) not in seen:
                        seen.add(id(code))
                        found.update(id(c) for c in _constants(code))
    return frozenset(found)


def _constants(code):
    """The int and float constants of a code object and the code nested in it."""
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            yield from _constants(constant)
        elif type(constant) in (int, float):
            yield constant


def helper_literals(fn):
    """The constants of the user's own functions the step calls (a `_l2(params)` helper's 0.5),
    through the helpers they call in turn (guards.user_helpers)."""
    values = [read() for _, _, read in scope_reads(fn)]  # (scope_reads leaves unbound names out)
    return [c for helper in user_helpers(values) for c in code_literals(helper)]
