"""tl.compile: trace a training step once, then replay its forward and backward as one
straight-line numpy function — the backprop code the engine writes for you.

    step = tl.compile(train_step)        # or @tl.compile; tl.compile(fn, check=N)
    loss = step(x, y)                    # Tensors or numpy arrays
    print(step.source)                   # the generated numpy code, forward then backward

How it works.  The first call runs `train_step` eagerly while recording what it does: the
graph it builds, each `backward()`, each `opt.zero_grad()` / `model.zero_grad()` and
`opt.step()`.  From the graph it writes one Python function: the forward (one line per op,
variables named after the tensors: W1, Z1, A1, ...), then the backward in reverse order
(dZ1, dW1, ...), the lines of a penalty term (a scalar made of parameters alone, such as L2)
marked as such.  Later calls run that function on the new arguments, write the gradients into
`.grad` exactly as backward would, and call the optimizers' own `zero_grad`/`step` at the
recorded places — so parameters, `.grad` and optimizer state are as eager leaves them, a
learning-rate schedule is honoured, and eager and compiled steps mix freely.

What replay cannot see, documented: Python control flow that depends on data (the traced path
is replayed), a Python number computed from the data (`1 / float(x.data.max())` is replayed as
the traced value), a model that starts using other parameters (the traced ones are replayed),
a number read from an object or inside another function and changed later (a regularizer's λ
set in place: call `step.retrace()`), and Python side effects other than the calls above
(assigning `.grad` by hand, printing).  `scheduler.step()` inside the function is replayed; an
op computed after `opt.step()` (it reads the updated weights) makes the step run eagerly.  The tensors a replay returns hold the results but no
graph.  A step whose graph holds a constant that is not an argument (a mask such as `x > 0`,
data captured by closure), a `where` condition or an index array computed from data, runs
eagerly every time instead of replaying stale values.  `check=N` runs the eager function
beside the first N replays (from the same state) and raises `CompileCheckError` naming the
first tensor that differs.  A new argument shape or dtype, a different grad mode, a parameter
whose shape changed, a different pattern of arguments passed as the same object, or a number
the function reads as a global or closure variable that changed (see guards.py) makes it
trace again; a step it cannot replay (a PSO step, backward
with an explicit gradient or retain_graph) runs eagerly every time.  When the gradients die
with the call and the optimizer is plain SGD, the update itself is written in (update.py).
Not re-entrant: a call from a second thread while one runs is refused with an error.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, overload
import threading

import numpy as np

from ..context import state
from ..function import TensorBase
from ..tensor import Tensor
from .check import compare, restore, snapshot
from .guards import Guards
from .program import Program
from .naming import parameter_names


class CompileCheckError(AssertionError):
    """check=N: the replayed step and the eager step disagree."""


@overload
def compile(fn: Callable[..., Any], *, check: int = 0) -> CompiledStep: ...
@overload
def compile(fn: None = None, *, check: int = 0) -> Callable[[Callable[..., Any]], CompiledStep]: ...


def compile(fn: Callable[..., Any] | None = None, *, check: int = 0) -> Any:  # noqa: A001 - torch.compile
    """Trace `fn` on its first call and replay it afterwards (see the module docstring)."""
    if fn is None:
        return lambda f: compile(f, check=check)
    if not callable(fn):
        raise TypeError(f"compile: expected a function, got {type(fn).__name__}")
    if not isinstance(check, int) or check < 0:
        raise ValueError(f"compile: check must be an integer >= 0, got {check!r}")
    return CompiledStep(fn, check)


class CompiledStep:
    """The compiled function: call it like `fn`; `.source` is the generated code, `.graph`
    the traced graph's root (draw it with `tl.draw_dot`), `.traces` how often it traced."""

    def __init__(self, fn: Callable[..., Any], check: int) -> None:
        self.fn, self.checks_left, self.program, self.traces = fn, check, None, 0
        self._busy = threading.Lock()
        functools.update_wrapper(self, fn)

    def retrace(self) -> None:
        """Trace again on the next call (after changing something the trace cannot see, such
        as a regularizer's coefficient set in place)."""
        self.program = None

    @property
    def source(self) -> str | None:
        return None if self.program is None else self.program.source

    @property
    def graph(self) -> Tensor | None:
        return None if self.program is None else self.program.roots[0]

    def __call__(self, *args: Any) -> Any:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"compile: {self.fn.__name__} is already running in another thread; "
                               f"a compiled step is not re-entrant (it reuses its buffers)")
        try:
            args = tuple(_as_input(a) for a in args)
            if self.program is not None and self.program.eager_only:
                return self.fn(*args)  # a step replay cannot reproduce: always eager
            if self.program is None or not self.program.fits(args) or self.guards.changed():
                return self._trace(args)
            if self.checks_left:
                self.checks_left -= 1
                return self._checked(args)
            return self.program.run(args)
        finally:
            self._busy.release()

    def _trace(self, args):
        events, previous = [], (state.recorder, state.hooks)
        state.recorder, state.hooks = events, True
        try:
            result = self.fn(*args)
        finally:
            state.recorder, state.hooks = previous[0], previous[1] or state.anomaly
        self.traces += 1
        self.guards = Guards(self.fn)
        self.program = Program(args, result, events, parameter_names(self.fn, len(args)))
        return result

    def _checked(self, args):
        """Replay, then run eagerly from the same state; compare everything observable."""
        before = snapshot(self.program)
        replayed = self.program.run(args)
        after = snapshot(self.program)
        restore(self.program, before)
        eager = self.fn(*args)
        for name, got, want in compare(self.program, replayed, eager, after):
            raise CompileCheckError(
                f"compile(check=...): {name} differs between the replayed and the eager step "
                f"(max |difference| {np.max(np.abs(got - want), initial=0):.3g}); something the "
                f"trace cannot see changed: data-dependent control flow, or an array captured "
                f"by closure that is not an argument")
        return eager


def _as_input(value):
    if isinstance(value, TensorBase) or not isinstance(value, np.ndarray):
        return value
    return Tensor(value) if value.dtype.kind == "f" else value
