"""check=N: snapshot the state a step changes, restore it, and name the first difference.

Replay and eager compute the same formulas in a different order (a dot product for Σw², the
learning rate in the backward's seed, another BLAS kernel for another memory layout), so equal
steps differ by rounding.  Two arrays agree when

    ‖got − want‖₂ ≤ TOLERANCE · eps(dtype) · ‖want‖₂

(eps: the dtype's machine epsilon, 1.19e-7 for float32, 2.2e-16 for float64: tight), NaN and
±inf in the same places, same shape and dtype; integer and boolean arrays agree when equal.  A
norm-wise bound, not an element-wise one: one element of a float32 gradient that is the small
difference of large terms may be off by many ulps of itself yet by one ulp of the terms.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from .. import random

TOLERANCE = 64  # measured: ≤ 0.85·eps·‖want‖ on 20 correct steps of 96 MLPs (float32 and
# float64; SGD, momentum, Adam; batch 32 and 256; two BLAS kernels): a margin of 75×, while a
# real difference stays visible (L2's λ doubled: the weights off by 2e-4 = 1700·eps in float32)


def agree(got: Any, want: Any, dtype: Any = None) -> bool:
    """Do `got` and `want` agree to rounding at `dtype` (default: want's)?  See the docstring."""
    got, want = np.asarray(got), np.asarray(want)
    dtype = np.dtype(dtype or want.dtype)
    if got.shape != want.shape or (dtype == want.dtype and got.dtype != want.dtype):
        return False
    if dtype.kind not in "fc":
        return bool(np.array_equal(got, want))
    finite = np.isfinite(want)
    if not (np.array_equal(finite, np.isfinite(got)) and np.array_equal(got[~finite], want[~finite], equal_nan=True)):
        return False
    difference = np.linalg.norm((got[finite] - want[finite]).astype(np.float64).ravel())
    return bool(difference <= TOLERANCE * np.finfo(dtype).eps * np.linalg.norm(want[finite].astype(np.float64).ravel()))


def _optimizers(program):
    return list(dict.fromkeys(e[1] for e in program.events if e[0] == "step"))


def snapshot(program):
    params = [(p, p._data.copy(), None if p._grad is None else p._grad.copy(), p._data) for p in program.params]
    states = [(o, {k: {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in s.items()}
                   for k, s in o.state.items()}, [dict(g) for g in o.param_groups]) for o in _optimizers(program)]
    schedulers = [(e[1], e[1].state_dict()) for e in program.events if e[0] == "schedule"]
    return params, states, schedulers, random.generator_states(program.generators)


def restore(program, snapshot):
    """The state `snapshot` holds: parameters, gradients, optimizers' state and groups,
    schedulers (a SequentialLR's own schedules too), every random generator."""
    params, states, schedulers, generators = snapshot
    for p, data, grad, array in params:  # into the same array: a view the user holds, or two
        if p._data is array:              # weights sharing one array, stay what they were
            np.copyto(array, data)
        else:
            p.data = data.copy()
        p._grad = None if grad is None else grad.copy()
    for optimizer, saved, groups in states:
        current = optimizer.state
        optimizer.state = {k: {n: _into(current.get(k, {}).get(n), v) for n, v in s.items()}
                           for k, s in saved.items()}
        for group, values in zip(optimizer.param_groups, groups):
            group.update(values)  # the learning rate a scheduler changed
    for scheduler, saved in schedulers:
        scheduler.load_state_dict(saved)
    random.restore_generators(generators)


def _into(current, saved):
    """`saved` (a snapshot's value) written into the optimizer's current array when it fits."""
    if isinstance(saved, np.ndarray):
        if isinstance(current, np.ndarray) and current.shape == saved.shape and current.dtype == saved.dtype:
            np.copyto(current, saved)
            return current
        return saved.copy()
    return saved


def compare(program, template, replayed, eager, after) -> Iterator[tuple[str, Any, Any]]:
    """(name, replayed value, eager value) for each observable that differs: the returned
    values (walked along the results template, see results.py), parameters and gradients."""
    yield from _compare_results(template, replayed, eager, program.outputs, "")
    names = program.names
    for (p, data, grad, _) in after[0]:
        name = names.get(id(p), "a parameter")
        if not agree(data, p.data):
            yield f"parameter {name}", data, p.data
        if (grad is None) != (p.grad is None) or (grad is not None and not agree(grad, p.grad)):
            yield f"gradient of {name}", grad, p.grad


def _compare_results(template, got, want, traced, where):
    kind = template[0]
    if kind == "tensor":
        same = isinstance(want, type(got)) and agree(got.data, want.data)
        if not same:
            yield f"returned tensor {template[1]}", _data(got), _data(want)
    elif kind == "number":
        if type(got) is not type(want) or not agree(got, want, traced[template[1]].dtype):
            yield f"the returned number{where}", got, want
    elif kind == "constant":
        if type(got) is not type(want) or got != want:
            yield f"the returned constant{where}", got, want
    elif type(got) is not type(want) or len(got) != len(want) or (kind == "dict" and list(got) != list(want)):
        yield f"the returned structure{where}", got, want
    else:
        pairs = template[2] if kind == "dict" else enumerate(template[2])
        for key, child in pairs:
            yield from _compare_results(child, got[key], want[key], traced, f"{where}[{key!r}]")


def _data(value):
    return value.data if hasattr(value, "data") else value


def describe(got: Any, want: Any) -> str:
    """How large a difference is, for the error message."""
    try:
        got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
        relative = np.linalg.norm((got - want).ravel()) / max(np.linalg.norm(want.ravel()), np.finfo(float).tiny)
        return f"max |difference| {np.max(np.abs(got - want), initial=0):.3g}, relative (norm) {relative:.3g}"
    except (TypeError, ValueError):
        return f"replayed {got!r}, eager {want!r}"
