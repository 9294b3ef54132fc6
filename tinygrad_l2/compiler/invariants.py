"""Loop-invariant code motion for 0-d values: a number the step computes from no input (the
seed dL = 1 and what the backward makes of it, such as the penalty's 2·λ·dL) is computed once,
when the step is built, instead of on every call.  Its lines are printed above `def step`.

Only values nobody can change or keep are hoisted: never written in place, not returned, not
handed to `.grad`, to an opaque op or to a check (each of those could hold on to the array
and see the next call's value)."""
from __future__ import annotations

import numpy as np

from .analysis import replace_uses
from .symbolic import Value

PHASE = "constants"


def hoist_constants(ir):
    """Move the instructions that compute 0-d values from constants alone to the front, in
    the `constants` phase (the lr-seeded step has no such seed: lr is an argument)."""
    kept = _kept_values(ir)
    known, hoisted = set(), []
    for instr in ir.instrs:
        out = instr.out
        if out is None or not _number(out.example) or id(out) in kept:
            continue
        if instr.kind == "seed" or instr.kind == "constant" or (
                _plain_ufunc(instr) and all(id(v) in known for v in instr.reads())):
            known.add(id(out))
            hoisted.append(instr)
    for instr in hoisted:
        instr.phase = PHASE
    moved = {id(i) for i in hoisted}
    ir.instrs = _shared(ir, hoisted) + [i for i in ir.instrs if id(i) not in moved]


def _shared(ir, hoisted):
    """The hoisted lines with repeats computed once: each weight's penalty makes the same
    2·λ·dL, and one line says so."""
    first, kept = {}, []
    for instr in hoisted:
        args = tuple(("value", id(a)) if isinstance(a, Value) else (type(a), repr(a)) for a in instr.args)
        key = (instr.fn, args)
        if key in first and instr.kind == "call":  # (constants and the seed stay apart)
            replace_uses(ir, instr.out, first[key])
            continue
        first[key] = instr.out
        kept.append(instr)
    return kept


def _number(example):
    return isinstance(example, np.ndarray | np.generic) and example.ndim == 0


def _plain_ufunc(instr):
    """An elementwise ufunc call with at least one recorded operand and no out= or options."""
    return (instr.kind == "call" and isinstance(instr.fn, np.ufunc) and instr.fn.signature is None
            and not instr.kwargs and instr.writes is None
            and any(isinstance(a, Value) for a in instr.args))


def _kept_values(ir):
    """ids of the Values something may write into or hold beyond one call."""
    kept = {id(v) for v in [*ir.outputs, *ir.grads.values()]}
    for instr in ir.instrs:
        if instr.writes is not None:
            kept.add(id(instr.writes))
        if instr.kind in ("opaque", "event", "grads", "check"):  # (a written value is copied)
            kept.update(id(v) for v in instr.reads())
    return kept
