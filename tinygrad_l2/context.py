"""Thread-local state of graph building: grad mode, anomaly mode, and tl.compile's recorder."""
from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
import weakref
from typing import Any, Iterator

import numpy as np

class _State(threading.local):
    """Per-thread state; class attributes are each new thread's defaults."""
    grad_enabled = True
    anomaly = False
    recorder: Trace | None = None  # while tl.compile traces a step: what it is told (Trace)
    hooks = False  # anomaly or recorder: the one flag Function.apply checks for either
    steps_running = 0  # optimizer step() calls in progress (one inside another: Lookahead)


class Trace:
    """What a tracing tl.compile is told: the one interface between the library and the
    compiler.  Every hook below is a no-op (one attribute check) when nothing traces.

    - `events`, replayed in their order (`record`): ("backward", root, grad, retain_graph)
      from engine.backward; ("zero_grad", owner, set_to_none) from an optimizer or a module;
      ("step", optimizer, args, kwargs) from an optimizer's outermost step(); ("schedule",
      scheduler); ("mode", module, training, [(each module below it, its flag before)]) from
      train()/eval(); ("requires_grad", tensor, flag) when a tensor is frozen or unfrozen.
    - `observed`, what the step read that a replay must see again (`observe`), each with the
      user's "file:line": ("module", m, where) per module call; ("number", tensor, value,
      convert, where) per item()/float()/int()/bool()/index of a tensor.
    - `unreplayable`, effects the graph does not hold (`record_unreplayable`: a BatchNorm's
      running statistics, a scheduler fed a measured metric), each with the user's line: the
      step then runs eagerly every call, so the effect happens each time.
    - each op node (`op`): what it was given (its non-tensor arguments and apply's keyword
      arguments: a replay must not hold stale arrays among them) and how many events came
      before it; `made`, each op's output array and node, also of ops that recorded no node
      (an argmax, an op under no_grad): a tensor the graph takes as a constant is then
      computed again each call, as its op computed it, instead of being baked in.  Node None:
      an array the library made from a Python number (`where(mask, x, 0.0)`), a constant as
      the number is (`number_array`).
    - `watched`: the parameters whose array the user's code read (`.data`, `.numpy()`,
      `np.asarray`), with a copy: a write into that array (a max-norm clip in place) is an
      effect the graph does not hold; `check_watched` compares, at each optimizer step and at
      the end of the trace.
    """

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.observed: list[tuple] = []
        self.first_read: int | None = None  # how many arrays ops had made at the first number read
        self.new_tensors: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # made by the step
        self.unreplayable: list[tuple[str, str]] = []
        self.watched: dict[int, tuple] = {}
        self.made: dict[int, tuple] = {}  # id(output array) -> (node, the array, kept alive)

    def check_watched(self) -> None:
        """A watched parameter's array changed since the user's code read it (or since an
        optimizer last wrote it): unreplayable."""
        for tensor, array, copy, where in self.watched.values():
            if _is_part_of(array, tensor) and array.tobytes() != copy.tobytes():  # (NaN == NaN here)
                whose = "a parameter's" if tensor._requires_grad else "a computed tensor's"
                self.unreplayable.append((f"the step writes into {whose} array in place", where))

    def rewatch(self) -> None:
        """An optimizer's step has written the parameters: watch the arrays as it left them
        (one it replaced by a new array is no longer the parameter's)."""
        self.watched = {k: (tensor, array, array.copy(), where)
                        for k, (tensor, array, _, where) in self.watched.items() if _is_part_of(array, tensor)}

    def op(self, node: Any, arguments: tuple, given: dict, out: np.ndarray) -> None:
        node.arguments = arguments  # replayed with the same values
        node.given = given  # the keyword arguments of apply()
        node.events_before = len(self.events)  # ... and in order
        node.ran = len(self.made)  # (ops that draw random numbers must draw in this order)
        if not state.grad_enabled:  # (no_grad: apply linked no inputs) what it was computed from
            node.parents = tuple(a._ctx or a._node() if hasattr(a, "_node") else None for a in arguments)
        node.out_shape, node.out_dtype, node.output = out.shape, out.dtype, _no_tensor  # (apply
        self.made[id(out)] = (node, out)  # sets the output of an op that records a node)


def _no_tensor() -> None:
    """The output of an op that recorded no node: not held by the graph."""
    return None


def _is_part_of(array: Any, tensor: Any) -> bool:
    """Is `array` the tensor's array or a view of it (not one an optimizer replaced)?"""
    data = tensor._data
    return array is data or (array.base is not None and np.may_share_memory(array, data))


def record(kind: str, *details: object) -> None:
    """An event a tracing tl.compile replays in order (see `Trace.events`); none while an
    optimizer's step() runs (a scheduler it steps is part of that step, replayed with it)."""
    trace = state.recorder
    if trace is not None and not state.steps_running:
        if kind == "step":  # (before the optimizer writes into the parameters)
            trace.check_watched()
        trace.events.append((kind, *details))


def step_begins(optimizer: object, args: tuple, kwargs: dict) -> bool:
    """An optimizer's step() starts: True if it is the outermost (then it is the event)."""
    outermost = state.steps_running == 0
    if outermost:
        record("step", optimizer, args, kwargs)
    state.steps_running += 1
    return outermost


def step_ends(outermost: bool) -> None:
    """That step() has returned: the parameters' arrays are as it left them (`Trace.rewatch`)."""
    state.steps_running -= 1
    trace = state.recorder
    if outermost and trace is not None and trace.watched:
        trace.rewatch()


def user_reads_array(tensor: Any) -> None:
    """While tracing: the user's code takes the array (`.data`, `.numpy()`, `np.asarray`) of a
    parameter or of a tensor an op made, which it may write into; watched (see `Trace.watched`)."""
    trace = state.recorder
    if (trace is not None and id(tensor) not in trace.watched
            and (tensor._requires_grad or id(tensor._data) in trace.made)
            and not sys._getframe(2).f_code.co_filename.startswith(_PACKAGE)):
        array = tensor._data
        trace.watched[id(tensor)] = (tensor, array, array.copy(), user_line())


def read_number(tensor: Any, value: Any, convert: Any) -> Any:
    """`value`, a number (or a list) read from `tensor`: observed while tracing, as ("number",
    tensor, value, convert), so that tl.compile recomputes it each call with `convert`."""
    observe("number", tensor, value, convert)
    return value


def observe(*what: object) -> None:
    """Tell a tracing tl.compile what the step read (see `Trace.observed`)."""
    trace = state.recorder
    if trace is not None:
        trace.observed.append((*what, user_line()))
        if what[0] == "number" and trace.first_read is None:
            trace.first_read = len(trace.made)  # (what is made after it may be made from it)



class TracedInt(int):
    """An integer a traced step read with `.item()`: an object of its own (Python shares one
    object for each small int), so tl.compile tells it from an equal literal or batch size.
    Otherwise an int; the compiled step returns plain ints."""
    __slots__ = ()

    def __reduce__(self) -> tuple:
        return int, (int(self),)

    def __repr__(self) -> str:
        return int.__repr__(self)


def traced_int(value: Any) -> Any:
    """`value`, an int read from a tensor while tracing, as its own object (`TracedInt`)."""
    return TracedInt(value) if type(value) is int and state.recorder is not None else value


def read_from_tensor(value: object) -> bool:
    """While tracing: is `value` a number the step read from a tensor (`.item()`)?"""
    trace = state.recorder
    return trace is not None and any(o[0] == "number" and o[2] is value for o in trace.observed)


def number_array(array: np.ndarray) -> np.ndarray:
    """`array`, made from a Python number for an op (see `Trace.made`)."""
    trace = state.recorder
    if trace is not None:
        trace.made[id(array)] = (None, array)
    return array


def record_unreplayable(what: str) -> None:
    """Tell a tracing tl.compile that this call has an effect the graph does not hold (see
    `Trace.unreplayable`).  Nothing when not tracing."""
    trace = state.recorder
    if trace is not None:
        trace.unreplayable.append((what, user_line()))


def record_user_access(what: str) -> None:
    """While tracing, a read or write of a tensor's `.grad` or a write of its `.data` made by
    the user's own code (not by the library: the caller's caller is outside this package) is
    an effect a replay cannot repeat: the step runs eagerly (gradient clipping by hand, an
    update written by hand)."""
    trace = state.recorder
    if trace is not None and not sys._getframe(2).f_code.co_filename.startswith(_PACKAGE):
        trace.unreplayable.append((what, user_line()))


def user_stacklevel() -> int:
    """The `stacklevel` that makes a warnings.warn next to this call point at the first frame
    outside this package (the user's line), however many of ours are between."""
    frame, level = sys._getframe(1), 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def user_line() -> str:
    """"file:line" of the first frame outside this package: the user's line that led here."""
    frame = sys._getframe(1)
    while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame = frame.f_back
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


state = _State()  # read directly on the hot path (Function.apply, Tensor._make)


def is_grad_enabled() -> bool:
    """True unless this thread is inside `no_grad()` (or `set_grad_enabled(False)`)."""
    return state.grad_enabled


@contextlib.contextmanager
def set_grad_enabled(mode: bool) -> Iterator[None]:
    """Turn graph building on or off in this thread for the `with` block."""
    previous = is_grad_enabled()
    state.grad_enabled = bool(mode)
    try:
        yield
    finally:
        state.grad_enabled = previous


def no_grad() -> contextlib.AbstractContextManager[None]:
    """`with no_grad():` ops compute values but record no graph (PyTorch's torch.no_grad)."""
    return set_grad_enabled(False)


def enable_grad() -> contextlib.AbstractContextManager[None]:
    """`with enable_grad():` re-enables graph building inside a no_grad block."""
    return set_grad_enabled(True)


_pauses = [0, False]  # [backward sweeps running, was the collector enabled before the first]
_pause_mutex = threading.Lock()


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off during a sweep, then exactly as it was.

    A sweep allocates a few small objects per node; with a large graph alive, that triggers
    full collections that each traverse the whole graph (measured: about a third of a
    100,000-op backward).  A sweep makes no cycles of its own, so nothing is lost by
    waiting.  Counted, so concurrent sweeps in several threads restore the state the first
    one found."""
    with _pause_mutex:
        if _pauses[0] == 0:
            _pauses[1] = gc.isenabled()
            gc.disable()
        _pauses[0] += 1
    try:
        yield
    finally:
        with _pause_mutex:
            _pauses[0] -= 1
            if _pauses[0] == 0 and _pauses[1]:
                gc.enable()
