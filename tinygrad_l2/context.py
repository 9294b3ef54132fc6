"""Thread-local state of graph building: grad mode, anomaly mode, and tl.compile's recorder."""
import contextlib
import threading

class _State(threading.local):
    """Per-thread state; class attributes are each new thread's defaults."""
    grad_enabled = True
    anomaly = False
    recorder = None  # a list while tl.compile traces a step: backward/step/zero_grad events
    hooks = False  # anomaly or recorder: the one flag Function.apply checks for either


state = _State()  # read directly on the hot path (Function.apply, Tensor._make)


def is_grad_enabled():
    """True unless this thread is inside `no_grad()` (or `set_grad_enabled(False)`)."""
    return state.grad_enabled


@contextlib.contextmanager
def set_grad_enabled(mode):
    """Turn graph building on or off in this thread for the `with` block."""
    previous = is_grad_enabled()
    state.grad_enabled = bool(mode)
    try:
        yield
    finally:
        state.grad_enabled = previous


def no_grad():
    """`with no_grad():` ops compute values but record no graph (PyTorch's torch.no_grad)."""
    return set_grad_enabled(False)


def enable_grad():
    """`with enable_grad():` re-enables graph building inside a no_grad block."""
    return set_grad_enabled(True)

