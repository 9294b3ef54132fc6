"""gradcheck: the engine's gradients against central finite differences, in float64."""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .context import no_grad
from .tensor import Tensor


class GradcheckError(AssertionError):
    """Raised by gradcheck with the worst element, both values and the input it belongs to."""


def gradcheck(fn: Callable[..., Tensor], inputs: Sequence[Tensor], eps: float = 1e-6, atol: float = 1e-5,
              rtol: float = 1e-3, seed: int = 0) -> bool:
    """Check `fn(*inputs)`'s gradients against central differences; True or GradcheckError.

    Every input that requires grad is copied to float64.  For a non-scalar output, a fixed
    random cotangent v turns the output into the scalar s = Σ v ⊙ fn(x), so one backward gives
    the vector-Jacobian product vᵀJ, compared element by element with
    (s(x + eps·e_i) − s(x − eps·e_i)) / (2·eps).  An element fails when
    |analytical − numerical| > atol + rtol·|numerical| (PyTorch's gradcheck tolerances).
    """
    inputs = list(inputs)
    for i, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(f"gradcheck: input {i} is a {type(t).__name__}, expected a Tensor")
    checked = [Tensor(t.data.astype(np.float64), requires_grad=t.requires_grad, name=t.name)
               for t in inputs]
    if not any(t.requires_grad for t in checked):
        raise ValueError("gradcheck: no input has requires_grad=True; nothing to check")

    out = fn(*checked)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    cotangent = np.random.default_rng(seed).standard_normal(out.shape)
    (out * cotangent).sum().backward()
    del out  # its graph (one a gradient's graph may keep alive) holds the inputs read-only

    def scalar(at):
        with no_grad():
            return float((fn(*at).data * cotangent).sum())

    for i, t in enumerate(checked):
        if t.requires_grad:
            analytical = t.grad if t.grad is not None else np.zeros_like(t.data)
            _compare(i, t, analytical, _numerical(t, lambda: scalar(checked), eps), atol, rtol)
    return True


def _numerical(t, scalar, eps):
    """(s(x + eps·e_i) − s(x − eps·e_i)) / (2·eps) for every element i of t."""
    numerical = np.zeros_like(t.data)
    for index in np.ndindex(t.shape):
        original = t.data[index]
        t.data[index] = original + eps
        plus = scalar()
        t.data[index] = original - eps
        minus = scalar()
        t.data[index] = original
        numerical[index] = (plus - minus) / (2 * eps)
    return numerical


def _compare(i, t, analytical, numerical, atol, rtol):
    excess = np.abs(analytical - numerical) - (atol + rtol * np.abs(numerical))
    if excess.size and (excess.max() > 0 or not np.all(np.isfinite(analytical))):
        worst = np.unravel_index(np.nanargmax(np.where(np.isfinite(excess), excess, np.inf)), t.shape)
        who = f"'{t.name}'" if t.name else f"#{i}"
        raise GradcheckError(
            f"gradcheck: gradient of input {who} (shape {t.shape}) is wrong at index "
            f"{tuple(int(k) for k in worst)}: analytical {float(analytical[worst])!r}, numerical "
            f"{float(numerical[worst])!r} (|diff| {abs(analytical[worst] - numerical[worst]):.3g} "
            f"> atol {atol} + rtol {rtol}·|numerical|)")
