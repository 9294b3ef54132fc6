"""`opt.step()` written into the program: each parameter's update is the optimizer's own
`update` method (SGD with any momentum, Adam, AdamW, several groups) run on recorded arrays,
so its math is written once.  The step reads its Python numbers each call: the learning rate
from the group, Adam's bias corrections from `opt.advance` (which counts the step); its
arrays (momentum buffers, moments) from `opt.state`.

The written form runs only when the eager step would compute exactly that (`ready()`):
the same groups, parameters and hyper-parameters as traced (lr aside), every parameter's
gradient None before this call's backward (so `.grad` is this call's gradient), the state the
update reads present, every parameter writable in place.  Otherwise the program calls
`opt.step()` itself.  The gradients still reach `.grad` unless a zero_grad(set_to_none)
after the step clears them anyway.
"""
from __future__ import annotations

import inspect

import numpy as np

from ..memory import held_count, is_held
from .guards import groups_unchanged
from .lower import plain_arrays, same_constants
from .symbolic import Instr, NotSymbolic, Recording, Value, recording


def _hyper(group):
    return {k: v for k, v in group.items() if k not in ("params", "lr")}


class WrittenStep:
    """What a written `opt.step()` was traced with, and its per-call check."""

    def __init__(self, optimizer, params, grads_dead, cleared_before):
        self.optimizer, self.params = optimizer, params
        self.groups = [(_hyper(g), list(g["params"])) for g in optimizer.param_groups]
        self.everyone = [p for _, params in self.groups for p in params]
        self.state_keys = [_array_keys(optimizer.state.get(p)) for p in self.everyone]
        self.grads_dead, self.cleared_before = grads_dead, cleared_before
        self.hyper_unchanged = groups_unchanged(optimizer)  # (a change runs opt.step() instead)

    def ready(self):
        """May this call run the written step?  The groups and hyper-parameters are as traced
        (the step's guards check that before every replay); no gradient is left to accumulate
        into, the optimizer's state holds the arrays the code reads, every parameter is
        writable in place."""
        everyone = self.everyone  # (the guards have checked that the groups are as traced)
        if not self.cleared_before and any(p._grad is not None for p in everyone):
            return False
        if not self.hyper_unchanged():
            return False
        if list(map(_array_keys, map(self.optimizer.state.get, everyone))) != self.state_keys:
            return False
        held = held_count() > 0
        return all(p._data.flags.writeable and not (held and is_held(p._data)) for p in self.params)

    @property
    def title(self):
        return (f"update: {type(self.optimizer).__name__}.step() written in (its own update() per "
                f"parameter, numbers read each call)")

    def arguments(self):
        return ()

    def write(self, ir):
        """Replace the step event by each parameter's update (and drop the hand-over to
        `.grad` when nothing can read it)."""
        step = next(i for i in ir.instrs if i.kind == "event" and i.fn[0] == "step")
        grads = {id(t): g for t, g in ((t, ir.grad_value(t)) for t, _ in ir.params) if g is not None}
        if self.grads_dead:
            ir.instrs = [i for i in ir.instrs if i.kind != "grads"]
            ir.grads = {}
        at = ir.instrs.index(step)
        lines = []
        for k, group in enumerate(self.optimizer.param_groups):
            lr = _input(lines, ("group", self.optimizer, k, "lr"), group["lr"])
            for p in group["params"]:
                index = next((i for i, (t, _) in enumerate(ir.params) if t is p), None)
                if index is not None and id(p) in grads:
                    lines += self._update(ir, index, grads[id(p)], dict(group, lr=lr), k)
        for instr in lines:
            instr.phase = "update"
        ir.instrs[at:at + 1] = lines

    def _update(self, ir, index, grad, group, k):
        """The optimizer's own update for parameter `index`, recorded."""
        tensor, weight = ir.params[index]
        lines, stored = [], self.optimizer.state.get(tensor, {})
        state = {key: _input(lines, ("state", self.optimizer, index, key), value.copy(), role="state")
                 for key, value in stored.items() if isinstance(value, np.ndarray)}
        ir.state_names += [(value, key, weight) for key, value in state.items()]
        scalars = ()
        advance = getattr(self.optimizer, "advance", None)
        if advance is not None:  # Python numbers of this step (Adam: the bias corrections)
            example = advance(dict(group, lr=self.optimizer.param_groups[k]["lr"]), dict(stored))
            whole = _input(lines, ("advance", self.optimizer, k, index), example)
            scalars = tuple(_piece(lines, whole, i, x) for i, x in enumerate(example))
        extra = {}
        if "out" in inspect.signature(self.optimizer.update).parameters:  # SGD's lr·g scratch
            extra["out"] = Value(np.empty_like(weight.example), role="buffer")
            extra["out"].name = f"SCRATCH{index}"
        runs = []
        for _ in range(2):  # twice: an update drawing random numbers would have them as constants
            rec = Recording()
            with recording(rec):
                self.optimizer.update(weight, grad, state, group, *scalars, **extra)
            runs.append(rec)
        if not same_constants(plain_arrays(runs[0].instrs), plain_arrays(runs[1].instrs)):
            raise NotSymbolic(f"{type(self.optimizer).__name__}.update draws random numbers")
        return lines + runs[0].instrs


def _array_keys(state):
    """The sorted keys of the arrays in one parameter's optimizer state (None: no state)."""
    return sorted(k for k, v in state.items() if isinstance(v, np.ndarray)) if state else []


def _input(lines, what, example, role="hyper"):
    value = Value(example, role=role)
    lines.append(Instr("read", what, out=value))
    return value


def _piece(lines, whole, i, example):
    value = Value(example)
    lines.append(Instr("getitem", "getitem", (whole, i), out=value))
    return value
