"""What the interop tests share: the frameworks (skipped with a reason when the `interop` extra
is not installed), the tolerances, and each framework's loss and per-term gradients."""
import os

import numpy as np
import pytest

import tinygrad_l2 as tl

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras' default backend, TensorFlow, is not in the extra
REASON = "needs the interop extra (torch, keras): pip install -e '.[interop]'"
TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


def need_torch():
    return pytest.importorskip("torch", reason=REASON)


def need_keras():
    need_torch()
    return pytest.importorskip("keras", reason=REASON)


def assert_close(actual, expected, what=""):
    """Equal within the dtype's tolerance (float64 1e-10, float32 1e-5), relative to the
    larger of 1 and the expected values' magnitude."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    tolerance = TOLERANCE[np.dtype(expected.dtype)]
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    worst = float(np.abs(actual - expected).max(initial=0.0))
    assert worst <= tolerance * scale, f"{what}: differ by {worst:.3g} > {tolerance:.0e}·{scale:.3g}"


def tl_terms(model, X, loss):
    """(data loss, penalty, {name: (data gradient, penalty gradient)}) of a tl model in eval
    mode; a gradient the term does not reach is zeros."""
    model.eval()
    data = loss(model(tl.Tensor(X)))
    penalty = model.regularization_loss()
    params = dict(model.named_parameters())
    grads = {}
    for term in (data, penalty):
        found = (tl.grad(term, list(params.values()), allow_unused=True) if term.requires_grad
                 else [None] * len(params))
        for (name, p), g in zip(params.items(), found):
            grads.setdefault(name, []).append(np.zeros_like(p.data) if g is None else g)
    return data.item(), penalty.item(), {k: tuple(v) for k, v in grads.items()}


def torch_grads(torch, term, tensors):
    """d term / d tensor for each tensor (zeros where the term does not reach it)."""
    if not term.requires_grad:
        return [np.zeros(tuple(t.shape)) for t in tensors]
    found = torch.autograd.grad(term, tensors, allow_unused=True, retain_graph=True)
    return [np.zeros(tuple(t.shape), dtype=str(t.dtype).replace("torch.", "")) if g is None
            else g.detach().numpy() for g, t in zip(found, tensors)]
