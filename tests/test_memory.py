"""Memory stays flat over a training loop, with no help from the cyclic garbage collector."""
import gc
import tracemalloc

import numpy as np

import tinygrad_l2 as tl

from tinygrad_l2 import Tensor
from tinygrad_l2 import memory


def test_2000_training_steps_keep_peak_memory_flat_without_gc():
    rng = np.random.default_rng(0)
    X, y = Tensor(rng.standard_normal((32, 4))), rng.integers(0, 3, 32)
    model = tl.nn.MLP([4, 32, 32, 3], kernel_regularizer=tl.nn.L2(1e-3), dtype=np.float64, rng=0)
    opt = tl.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(X), y) + model.regularization_loss()
        loss.backward()
        opt.step()

    def run_1000_steps():
        # A full collection that finds nothing proves no cycle was left for the collector; as a
        # side effect it empties CPython's free lists (spare tuples, kept by the interpreter
        # and counted by tracemalloc), so each phase starts from the same interpreter state.
        assert gc.collect() == 0
        tracemalloc.reset_peak()
        for _ in range(1000):
            step()
        assert gc.collect() == 0  # nothing was waiting for the cycle collector
        return tracemalloc.get_traced_memory()

    gc.collect()
    gc.disable()
    try:
        tracemalloc.start()
        current_1000, peak_1000 = run_1000_steps()
        current_2000, peak_2000 = run_1000_steps()
        tracemalloc.stop()
    finally:
        gc.enable()
    assert peak_2000 - peak_1000 < 16_000, (peak_1000, peak_2000)
    assert current_2000 - current_1000 < 16_000, (current_1000, current_2000)
    assert memory.held_count() == 0


def test_a_dropped_graph_is_freed_by_reference_counting():
    import weakref
    x = Tensor(np.ones(3), requires_grad=True)
    y = (x * 2).exp().sum()
    node = weakref.ref(y.grad_fn)
    gc.disable()
    try:
        del y
        assert node() is None
    finally:
        gc.enable()
