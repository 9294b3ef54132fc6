"""Buffer reuse in generated steps: same-shaped buffers whose lifetimes do not overlap become
one, the step stays exact, and a buffer is never taken while anything may still read it."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2.compiler.buffers import reuse_buffers


def test_equal_width_layers_share_buffers_and_stay_equal_to_eager():
    sizes = (12, 16, 16, 16, 16, 3)
    results = []
    for compiled in (False, True):
        model = tl.nn.MLP(sizes, activation="tanh", dtype=np.float64, rng=0)
        opt = tl.optim.Adam(model.parameters(), lr=1e-2)

        def step(x, y):
            opt.zero_grad()
            loss = tl.nn.softmax_cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss
        step = tl.compile(step) if compiled else step
        rng = np.random.default_rng(3)
        losses = [step(rng.standard_normal((7, 12)), rng.integers(0, 3, 7)).item() for _ in range(6)]
        results.append((losses, [p.data.copy() for p in model.parameters()],
                        [p.grad.copy() for p in model.parameters()], step))
    (want, params, grads, _), (got, cparams, cgrads, step) = results
    assert got == pytest.approx(want, rel=1e-13)
    for a, b in zip(params + grads, cparams + cgrads):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-15)
    matmuls = step.source.count("np.matmul(")
    assert len(set(part.split(")")[0] for part in step.source.split("out=BUF")[1:])) < matmuls


def test_a_buffer_is_not_reused_while_a_view_of_it_is_still_read():
    buffers = {"BUF0": np.empty((2, 2)), "BUF1": np.empty((2, 2))}
    source = ("def step(a):\n"
              "    x = np.matmul(a, a, out=BUF0)\n"
              "    v = x.T\n"                       # v is a view of BUF0
              "    y = np.matmul(a, a, out=BUF1)\n"  # BUF1 may not be BUF0: v is read below
              "    return [v + y], []\n")
    renamed, kept = reuse_buffers(source, buffers)
    assert renamed == source and set(kept) == {"BUF0", "BUF1"}


def test_a_buffer_whose_readers_are_done_is_taken_and_new_arrays_do_not_hold_it():
    buffers = {"BUF0": np.empty((2, 2)), "BUF1": np.empty((2, 2))}
    source = ("def step(a):\n"
              "    x = np.matmul(a, a, out=BUF0)\n"
              "    s = x.sum(axis=(0,))\n"           # a new array: does not hold BUF0
              "    y = np.matmul(a, a, out=BUF1)\n"
              "    return [y, s], []\n")
    renamed, kept = reuse_buffers(source, buffers)
    assert "out=BUF0)\n    return" in renamed and set(kept) == {"BUF0"}


def test_the_line_that_reads_a_buffer_never_writes_the_same_buffer():
    buffers = {"BUF0": np.empty((2, 2)), "BUF1": np.empty((2, 2))}
    source = ("def step(a):\n"
              "    x = np.matmul(a, a, out=BUF0)\n"
              "    y = np.matmul(x, a, out=BUF1)\n"  # reads BUF0 while writing: must differ
              "    return [y], []\n")
    renamed, kept = reuse_buffers(source, buffers)
    assert renamed == source and len(kept) == 2
