"""Thread-local state of graph building: grad mode, anomaly mode, and tl.compile's recorder."""
from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
from typing import Iterator

class _State(threading.local):
    """Per-thread state; class attributes are each new thread's defaults."""
    grad_enabled = True
    anomaly = False
    recorder = None  # a list while tl.compile traces a step: backward/step/zero_grad events
    hooks = False  # anomaly or recorder: the one flag Function.apply checks for either
    observed = None  # a list while tl.compile traces: what the step read that replay must
    # see again, each with the user's "file:line": ("module", m, where) for each module call,
    # ("number", tensor, value, convert, where) for each item()/float()/int()/bool()/index of a
    # tensor; unlike the recorder's events, never replayed


def observe(*what: object) -> None:
    """Tell a tracing tl.compile what the step read (see `_State.observed`); the user's line
    that led here (the first frame outside this package) is appended."""
    if state.observed is not None:
        frame = sys._getframe(1)
        while frame.f_back is not None and frame.f_code.co_filename.startswith(_PACKAGE):
            frame = frame.f_back
        state.observed.append((*what, f"{frame.f_code.co_filename}:{frame.f_lineno}"))


_PACKAGE = os.path.dirname(os.path.abspath(__file__))


state = _State()  # read directly on the hot path (Function.apply, Tensor._make)


class _Unreplayable:
    """A recorded event for an effect outside the graph (see `record_unreplayable`)."""

    def __init__(self, what: str) -> None:
        self.what = what

    def step(self) -> None:
        raise RuntimeError(f"{self.what} cannot be replayed; tl.compile runs this step eagerly")


def record_unreplayable(what: str) -> None:
    """Tell a tracing tl.compile that this call has an effect the graph does not hold (a
    BatchNorm's running statistics, a scheduler fed a measured metric): recorded as a "step"
    of something without parameter groups, which tl.compile never replays, so the whole step
    runs eagerly every call and the effect happens each time.  Nothing when not tracing."""
    if state.recorder is not None:
        state.recorder.append(("step", _Unreplayable(what)))


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
