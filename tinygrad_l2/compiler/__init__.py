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

What it returns: what the function returns, in the same structure (tuples, lists, dicts,
namedtuples, None, constants; see results.py).  A number the function got from a tensor with
`.item()`, `float()`, `int()` or `bool()` is recomputed each call; the tensors a replay returns
hold the results but no graph.  Keyword arguments work (`step(X, y=y)`; their names are part
of what a trace depends on).  Arrays the function reads from its globals or enclosing scope
(`rows`, `y` in `-logp[rows, y].mean()`), and tensors there that are not parameters, are read
afresh each call like arguments (rows equal to arange(m) when traced give the cross-entropy's
backward as softmax − one-hot; each call checks they still are, else it traces again).

It traces again, never replaying stale, when any of these changed (see guards.py, keys.py):
an array argument's shape or dtype, any other argument's value (a number; a dict, list or
dataclass element by element; any other object by identity), grad mode, a parameter's shape, which arguments are the same object,
the keyword names, a number or string the function reads as a global or closure variable, the
object any other global or closure variable refers to (`opt = Adam(...)` after the trace), the
`training` flag of a module the step called (train()/eval()), an optimizer's parameter groups,
a traced parameter's requires_grad, the function's default arguments (by value).  A changed
hyper-parameter (momentum, weight_decay, betas; the learning rate is read each call) needs no
new trace: the written update steps aside and the replay calls the optimizer's own step().
The last 8 traces are kept: a call replays the first whose conditions all hold again (a smaller
last batch each epoch, eval() then train() again), and traces only when none does.

What replay cannot see, documented: Python control flow that depends on data (the traced path
is replayed), a Python number computed from the data inside the function and used there
(`1 / float(x.data.max())` is replayed as the traced value), a model that starts using other
parameters, a value read from an object or inside another function and changed later (a
number on an object of the user's that is not a module, `self.opt` rebound, a global config
dict changed in place: call `step.retrace()`, or pass the dict as an argument: arguments are
keyed by value), and other side effects (assigning `.grad` by hand, printing, a file numpy
writes).  The settings of modules, regularizers and configs are guarded (settings.py), and
what the step changes in its scope is seen (scope_state.py).  `scheduler.step()` inside the
function is replayed.

When it cannot replay a step, it runs the function eagerly every call instead, warns once
(`tl.CompileWarning`, naming the reason and the function's file and line) and says why in
`step.fallback_reason` (None while it replays): an op computed after `opt.step()`, a constant
tensor, `where` condition or index array computed from data, a returned number computed with
numpy rather than `.item()`, a PSO step, backward with an explicit gradient or retain_graph,
an input array (`X /= 255`), a parameter's array (a clip in place) or an argument (a config
dict) written by the step's own code, an optimizer's step() called with arguments (a closure).  A compiled function called while another one traces runs eagerly inside that trace.

Random numbers: an op or an optimizer update that draws them (its plain arrays differ when
recorded twice) replays through its own methods, drawing each call as eager does; building the
step leaves as they were numpy's global generator, ours, and the generators in the step's scope,
given to an op, or held by a custom op or optimizer (or in its module, class, or a method's
closure); one held deeper (an attribute of an object in the scope) moves.  check=N restores
them, and schedulers' state, between its runs.

An error the replay raises before it changed anything (a label out of range) is raised by
running the function eagerly instead, so its message is the op's own; an error after (in a
custom op, a scheduler's step) is raised as it is, never run twice.

`check=N` runs the eager function beside the first N replays (from the same state) and raises
`CompileCheckError` naming the first returned value, parameter or gradient that differs beyond
rounding (a norm-wise tolerance scaled by the dtype's epsilon, see check.py).  When the
gradients die with the call and the optimizer is plain SGD, the update itself is written in
(update.py).  Not re-entrant: a call from a second thread while one runs is refused.
"""
from __future__ import annotations

import functools
import threading
import types
import warnings
from typing import Any, Callable, overload


from ..context import Trace, state
from ..tensor import Tensor
from . import effects
from .scope_state import ScopeState
from .check import compare, describe, restore, snapshot
from .guards import Guards, array_inputs, scope_reads
from .keys import batched, program_inputs, trace_key
from .program import KEPT_TRACES, Cached, Program
from .reads import helper_literals, read_into_ops
from .naming import parameter_names
from .results import (Unreplayable, code_literals, flatten, plain_numbers, rebuild, returned_literals,
                      returned_tensors)


class CompileCheckError(AssertionError):
    """check=N: the replayed step and the eager step disagree."""


class CompileWarning(UserWarning):
    """A step tl.compile cannot replay: it runs eagerly every call (said once per step)."""


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
    the traced graph's root (draw it with `tl.draw_dot`), `.traces` how often it traced,
    `.fallback_reason` why it runs eagerly (None while it replays)."""

    def __init__(self, fn: Callable[..., Any], check: int) -> None:
        self.fn, self.checks_left, self.program, self.traces = fn, check, None, 0
        self.fallback_reason: str | None = None
        self._cache: list[Cached] = []  # the traces kept, the one used last first
        self._in_a_row = 0  # calls traced one after another
        self._busy = threading.Lock()
        functools.update_wrapper(self, fn)

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        """A method compiled in its class body: each instance gets its own compiled step of the
        bound method (its own traces), kept in the instance's `__dict__` under a key of this
        step's (a copy of the instance, holding the original's, makes its own)."""
        if instance is None:
            return self
        held = getattr(instance, "__dict__", None)  # (a class with __slots__: the one used last)
        held = held if isinstance(held, dict) else self.__dict__.setdefault("_slotted", {})
        key = f"_tl_compiled_{id(self)}"
        bound = held.get(key)
        if bound is None or getattr(bound.fn, "__self__", None) is not instance:
            bound = held[key] = CompiledStep(types.MethodType(self.fn, instance), self.checks_left)
        return bound

    def __reduce__(self) -> tuple[Any, ...]:
        """Copied or pickled as the function it compiles: the copy traces anew (its traces, its
        lock and its buffers are its own)."""
        return CompiledStep, (self.fn, self.checks_left)

    def retrace(self) -> None:
        """Trace again on the next call (after changing something the trace cannot see, such
        as a regularizer's coefficient set in place); a step that ran eagerly tries again."""
        self.program, self.fallback_reason, self._cache = None, None, []

    @property
    def source(self) -> str | None:
        if self.fallback_reason is not None and self.program is None:
            return f"# not compiled: {self.fallback_reason}"
        return None if self.program is None else self.program.source

    @property
    def graph(self) -> Tensor | None:
        return None if self.program is None or not self.program.roots else self.program.roots[0]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self._busy.acquire(blocking=False):
            raise RuntimeError(f"compile: {self.fn.__name__} is already running in another thread; "
                               f"a compiled step is not re-entrant (it reuses its buffers)")
        try:
            if self.fallback_reason is not None or state.anomaly or state.recorder is not None:
                return self.fn(*args, **kwargs)  # detect_anomaly() checks each op: eager; and a
                # compiled function tracing around this call records this call's ops itself
            inputs = self._find(args, kwargs)
            if inputs is None:
                self._in_a_row += 1  # (traced again each call: a guard fails every time)
                if self._in_a_row > 2 * KEPT_TRACES:
                    return self._fall_back(f"traced again on {self._in_a_row - 1} calls in a row: something "
                                           f"it depends on changes every call", self.fn(*args, **kwargs))
                return plain_numbers(self._trace(args, kwargs))
            self._in_a_row = 0
            if self.checks_left:
                self.checks_left -= 1
                return self._checked(inputs, args, kwargs)
            return self._replay(inputs, args, kwargs)
        finally:
            self._busy.release()

    def _find(self, args, kwargs):
        """The inputs of this call for a kept trace whose guards hold and whose program fits
        them (it becomes the current one: .program, .source), or None.  Several traces are
        kept (a smaller last batch, eval() then train()), the one used last tried first."""
        keywords = tuple(sorted(kwargs)) if kwargs else ()
        for k, cached in enumerate(self._cache):
            if cached.keywords != keywords or cached.guards.changed():
                continue
            inputs = program_inputs(args, kwargs, keywords, [read() for _, read in cached.arrays])
            if cached.program.fits(inputs):
                if k:
                    self._cache.insert(0, self._cache.pop(k))
                    self.program, self.guards, self.template = cached.program, cached.guards, cached.template
                return inputs
        return None

    def _trace(self, args, kwargs):
        keywords, readers = tuple(sorted(kwargs)), array_inputs(self.fn)
        arrays = [read() for _, read in readers]  # as the function is about to read them
        inputs = program_inputs(args, kwargs, keywords, arrays)
        names = parameter_names(self.fn, len(args)) + list(keywords)
        names += [f"{names[i]}_{k}" for (i, k), _ in batched(args + tuple(kwargs[k] for k in keywords))]
        names += [n for n, _ in readers]
        held = {name: read() for _, name, read in scope_reads(self.fn)}
        parameters = effects.parameters_of(list(held.values()) + list(inputs))
        before, given = effects.scope_values(self.fn), effects.given_copies(inputs, names, parameters)
        scope_state = ScopeState(self.fn)  # (a counter in an object, lr changed by hand)
        key = trace_key(inputs)  # (before the call: a step may change a dict it is given)
        trace, previous = Trace(), (state.recorder, state.hooks)
        trace.watched.update(effects.parameter_views(inputs, names, parameters, list(held.values())))
        state.recorder, state.hooks = trace, True
        try:
            result = self.fn(*args, **kwargs)
            trace.check_watched()
        finally:
            state.recorder, state.hooks = previous[0], previous[1] or state.anomaly
        self.traces += 1
        found = trace.unreplayable + effects.own_effects(self.fn, inputs, given, key, before)
        if found:  # an effect outside the graph: it must happen every call
            return self._fall_back(f"{found[0][0]} (at {found[0][1]}) happens outside the graph, so "
                                   f"a replay would skip it", result)
        return self._build(args, kwargs, trace, result, (inputs, names, key, keywords, readers),
                           scope_state.changes(trace.events, custom_ops=any(
                               type(n).__module__.partition(".")[0] != "tinygrad_l2" for n, _ in trace.made.values()
                               if n is not None)))

    def _build(self, args, kwargs, trace, result, traced, changed):
        """The program of a trace with no effect outside the graph, kept, or the fallback
        (`changed`: what the call changed in its scope; said after a number not returned, which
        names its line)."""
        inputs, names, key, keywords, readers = traced
        events, observed = trace.events, trace.observed
        entered = {id(m): was for e in reversed(events) if e[0] == "mode" for m, was in e[3]}
        flags = {id(e[1]): (e[1], not e[2]) for e in reversed(events) if e[0] == "requires_grad"}
        guards = Guards(self.fn, modules=[o[1] for o in observed if o[0] == "module"],
                        optimizers=[e[1] for e in events if e[0] in ("step", "zero_grad")
                                    and hasattr(e[1], "param_groups")], entered=entered, flags=flags)
        held = {name: read() for _, name, read in scope_reads(self.fn)}
        try:
            tensors, template = flatten(result, [o[1:] for o in observed if o[0] == "number"],
                                        code_literals(self.fn) + guards.scalars,
                                        returned_literals(self.fn, held))
        except Unreplayable as error:
            return self._fall_back(str(error), result)
        if changed:
            return self._fall_back(f"{changed[0][0]} (at {changed[0][1]}): a replay would skip it", result)
        if not any(e[0] == "backward" for e in events) and any(
                tensors[slot].requires_grad for slot in returned_tensors(template)):
            return self._fall_back("it returns a tensor that requires grad and calls no backward(): a "
                                   "replay returns tensors without a graph, so a backward() or tl.grad() "
                                   "after it would fail (compile the whole step, with backward() and "
                                   "opt.step(); a forward for inference, under tl.no_grad())", result)
        try:
            program = Program(inputs, tensors, events, names, {id(v): k for k, v in held.items()},
                              list(held.values()), key, trace.made, guards.buffers)
        except Exception as error:  # noqa: BLE001 - a fault of the compiler's: this call's result
            return self._fall_back(f"building the replay failed ({type(error).__name__}: {error})",  # is
                                   result)  # eager's already; say so, never raise it to the user
        if program.eager_only:
            return self._fall_back(program.eager_only, result)
        baked = read_into_ops(trace.made, [o for o in observed if o[0] == "number"], trace.first_read,
                              code_literals(self.fn) + guards.scalars + guards.settings + helper_literals(self.fn))
        if baked:
            return self._fall_back(baked, result)
        if any(trace.new_tensors.get(id(p)) is p for p in program.params):
            return self._fall_back("a tensor requiring grad is made inside the step: a new leaf each call", result)
        guards.add_parameters(program.params)
        self.program, self.guards, self.template = program, guards, template
        self._cache.insert(0, Cached(program, guards, template, keywords, readers))
        del self._cache[KEPT_TRACES:]
        return result

    def _fall_back(self, reason, result):
        """Run eagerly from now on, and say so once, with the function's file and line."""
        self.fallback_reason, self.program, self._cache = reason, None, []
        code = getattr(getattr(self.fn, "__func__", self.fn), "__code__", None)
        where = f" ({code.co_filename}:{code.co_firstlineno})" if code is not None else ""
        warnings.warn(f"tl.compile: {getattr(self.fn, '__name__', 'the step')}{where} runs eagerly every "
                      f"call: {reason}", CompileWarning, stacklevel=4)
        return result

    def _replay(self, inputs, args, kwargs):
        """The program's results in the function's structure.  An error raised before the
        program changed anything (a label out of range) is raised by running the step eagerly
        instead: with the op's own message, as eager raises it.  Should the step then run, the
        replay was wrong: it runs eagerly from then on, with a warning that says so."""
        try:
            replayed = self.program.run(inputs)
        except Exception as error:
            if not self.program.failed_before_effects(error):
                raise
            result = self.fn(*args, **kwargs)  # raises the op's own error, as eager does; if it
            return self._fall_back(f"the replay raised {type(error).__name__} ({error}) where "  # does
                                   f"the step itself runs", result)  # not, the replay was wrong
        return rebuild(self.template, [replayed] if len(self.program.outputs) == 1 else list(replayed))

    def _checked(self, inputs, args, kwargs):
        """Replay, then run eagerly from the same state; compare everything observable."""
        before = snapshot(self.program)
        replayed = self._replay(inputs, args, kwargs)
        if self.program is None:  # the replay failed and the step ran eagerly instead (a warning
            return replayed       # said so): nothing to compare
        after = snapshot(self.program)
        restore(self.program, before)
        eager = self.fn(*args, **kwargs)
        for name, got, want in compare(self.program, self.template, replayed, eager, after):
            raise CompileCheckError(
                f"compile(check=...): {name} differs between the replayed and the eager step "
                f"({describe(got, want)}); something the trace cannot see changed: data-dependent "
                f"control flow, or a value read from an object or inside another function")
        return eager
