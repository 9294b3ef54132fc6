"""Shared test helpers."""
import threading

import numpy as np

import tinygrad_l2 as tl


def assert_machine_equal(actual, expected, ulps=8):
    """Equal up to a few units in the last place of the largest magnitude involved: the same
    arithmetic in a different order, not an approximation."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(np.abs(actual).max(initial=0), np.abs(expected).max(initial=0), 1e-300)
    bound = ulps * np.finfo(actual.dtype).eps * scale
    worst = np.abs(actual - expected).max(initial=0)
    assert worst <= bound, f"differ by {worst:.3g} > {ulps} ulps of {scale:.3g} ({bound:.3g})"


def three_layer_network(seed=0, m=16, lambd=0.7, sizes=(2, 5, 3, 1)):
    """The canonical network of the tracing tests: relu, relu, sigmoid; cross-entropy plus
    λ/(2m)·Σ‖W‖², written out tensor by tensor with every tensor named."""
    rng = np.random.default_rng(seed)
    X = tl.Tensor(rng.standard_normal((m, sizes[0])), name="X")
    y = (rng.random((m, 1)) > 0.5).astype(np.float64)
    named = {"X": X}
    A = X
    for layer, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        W = tl.Tensor(rng.standard_normal((n_out, n_in)), requires_grad=True, name=f"W{layer}")
        b = tl.Tensor(rng.standard_normal(n_out) * 0.1, requires_grad=True, name=f"b{layer}")
        Z = A @ W.T + b
        A = Z.relu() if layer < len(sizes) - 1 else Z.sigmoid()
        Z.name, A.name = f"Z{layer}", f"A{layer}"
        named.update({f"W{layer}": W, f"b{layer}": b, f"Z{layer}": Z, f"A{layer}": A})
    cost = tl.nn.binary_cross_entropy(A, y)
    squares = None
    for layer in range(1, len(sizes)):
        s = (named[f"W{layer}"] ** 2).sum()
        squares = s if squares is None else squares + s
    penalty = (lambd / (2 * m)) * squares
    cost.name, penalty.name = "cost", "L2 penalty"
    loss = cost + penalty
    loss.name = "loss"
    return dict(named=named, cost=cost, penalty=penalty, loss=loss, m=m, lambd=lambd)


def run_in_other_thread_while(context, fn):
    """Run fn in another thread while this thread is inside `context`; return its result."""
    result = []
    thread = threading.Thread(target=lambda: result.append(fn()))
    with context:
        thread.start()
        thread.join()
    return result[0]


def readme_tool():
    """docs/update_readme.py as a module: what writes the README's quoted outputs (it runs each
    example once per process and keeps what it printed)."""
    import sys
    from pathlib import Path
    docs = str(Path(__file__).resolve().parent.parent / "docs")
    if docs not in sys.path:
        sys.path.insert(0, docs)
    import update_readme
    return update_readme
