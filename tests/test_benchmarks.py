"""The benchmark's floor computes the same step as the engine; float32 stays float32."""
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import numpy_floor  # noqa: E402
import run  # noqa: E402,F401  (the benchmark runner, smoke-tested below)

SIZES = (20, 16, 12, 5)  # the benchmark's architecture, smaller
LAM = 1e-2


def engine_model(params, regularize=True):
    sizes = [params[0][0].shape[1]] + [W.shape[0] for W, _ in params]
    model = tl.nn.MLP(sizes, kernel_regularizer=tl.nn.L2(LAM) if regularize else None,
                      dtype=params[0][0].dtype)
    for linear, (W, b) in zip(model.linears, params):
        linear.weight.data, linear.bias.data = W.copy(), b.copy()
    return model


def batch(dtype, m=8):
    rng = np.random.default_rng(0)
    return rng.standard_normal((m, SIZES[0])).astype(dtype), rng.integers(0, SIZES[-1], m)


def test_floor_gradients_equal_the_engines():
    """The floor's data gradient plus the L2 gradient 2·lam·W is the engine's W.grad."""
    params = numpy_floor.init_params(SIZES, dtype=np.float64)
    x, labels = batch(np.float64)
    loss, grads = numpy_floor.Floor([(W.copy(), b.copy()) for W, b in params]).loss_and_data_grads(
        x, labels, LAM)
    model = engine_model(params)
    engine_loss = tl.nn.softmax_cross_entropy(model(Tensor(x)), labels) + model.regularization_loss()
    engine_loss.backward()
    assert engine_loss.item() == pytest.approx(loss, rel=1e-13)
    linears = [m for m in model if isinstance(m, tl.nn.Linear)]
    for linear, (W, _), (dW, db) in zip(linears, params, grads):
        np.testing.assert_allclose(linear.weight.grad, dW + 2 * LAM * W, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(linear.bias.grad, db, rtol=1e-12, atol=1e-15)


def test_floor_train_step_equals_engine_sgd_step():
    """The decay form (1 − 2·lr·lam)·W − lr·dW_data is SGD on the L2 loss, up to rounding."""
    params = numpy_floor.init_params(SIZES, dtype=np.float64)
    x, labels = batch(np.float64)
    model = engine_model(params)
    floor = numpy_floor.Floor([(W.copy(), b.copy()) for W, b in params])
    for _ in range(3):
        floor.train_step(x, labels, LAM, 0.1)
    opt = tl.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        opt.zero_grad()
        (tl.nn.softmax_cross_entropy(model(Tensor(x)), labels) + model.regularization_loss()).backward()
        opt.step()
    for linear, (W, b) in zip([m for m in model if isinstance(m, tl.nn.Linear)], floor.params):
        np.testing.assert_allclose(linear.weight.data, W, rtol=1e-13, atol=1e-16)
        np.testing.assert_allclose(linear.bias.data, b, rtol=1e-13, atol=1e-16)


def test_floor_keeps_float32_float32():
    params = numpy_floor.init_params(SIZES, dtype=np.float32)
    x, labels = batch(np.float32)
    floor = numpy_floor.Floor(params)
    floor.train_step(x, labels, LAM, 0.1)
    _, grads = floor.loss_and_data_grads(x, labels, LAM)
    assert all(W.dtype == b.dtype == dW.dtype == db.dtype == np.float32
               for (W, b), (dW, db) in zip(floor.params, grads))


def test_float32_train_step_stays_float32_end_to_end():
    """No float64 temporaries from seeds, scalars or reductions: every value and gradient of a
    float32 train step, intermediates included, is float32."""
    params = numpy_floor.init_params(SIZES, dtype=np.float32)
    x, labels = batch(np.float32)
    model = engine_model(params)
    loss = tl.nn.softmax_cross_entropy(model(Tensor(x)), labels) + model.regularization_loss()
    for node in tl.topological_order(loss, include_constants=True):
        dtype = node.dtype if isinstance(node, Tensor) else node.out_dtype
        assert dtype == np.float32, node
    nodes = tl.topological_order(loss)  # every op node and parameter on the backward path
    grads = tl.grad(loss, nodes, retain_graph=True)  # the gradient of every node, as computed
    assert len(grads) > 20 and all(g.dtype == np.float32 for g in grads)
    loss.backward()
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
    opt = tl.optim.Adam(model.parameters())
    opt.step()
    assert all(p.dtype == np.float32 for p in model.parameters())
    assert all(s["exp_avg_sq"].dtype == np.float32 for s in opt.state.values())


def test_runner_pairs_blocks_and_replaces_the_readme_section(tmp_path, monkeypatch):
    import run
    monkeypatch.setattr(run, "PAUSE", 0.0)
    pairs = run.worker(dict(kind="chain", name="tinygrad_l2", n=10, rounds=2))
    assert len(pairs) == 2 and all(b > 0 and c > 0 for b, c in pairs)
    median, low, high = run.ratios([(1.0, 2.0), (1.0, 3.0), (2.0, 2.0)])
    assert (median, low, high) == (2.0, 1.0, 3.0)
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- benchmark:start -->\nold\n<!-- benchmark:end -->\nrest\n")
    run.update_readme("| new | table |", readme)
    assert readme.read_text() == ("intro\n<!-- benchmark:start -->\n| new | table |\n"
                                  "<!-- benchmark:end -->\nrest\n")
