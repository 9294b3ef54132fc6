"""BatchNorm1d/2d and LayerNorm: gradients from the graph checked by finite differences in
float64, running statistics by their formula, buffers in the state dict, clear errors."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from helpers import assert_machine_equal
from tinygrad_l2 import Tensor

rng = np.random.default_rng(5)


def with_parameters(layer, x):
    """fn(x, γ, β) for gradcheck: the layer's output with γ and β swapped in."""
    def fn(x, weight, bias):
        layer.weight, layer.bias = weight, bias
        return layer(x)
    return fn, [Tensor(x, requires_grad=True), Tensor(rng.standard_normal(layer.weight.shape), requires_grad=True),
                Tensor(rng.standard_normal(layer.bias.shape), requires_grad=True)]


@pytest.mark.parametrize("layer, shape", [(tl.nn.BatchNorm1d(3, dtype=np.float64), (5, 3)),
                                          (tl.nn.BatchNorm1d(2, dtype=np.float64), (3, 2, 4)),
                                          (tl.nn.BatchNorm2d(2, dtype=np.float64), (3, 2, 2, 3))])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_gradients_match_finite_differences(layer, shape, training):
    layer.train(training)
    layer.running_mean, layer.running_var = rng.standard_normal(shape[1]), rng.random(shape[1]) + 0.5
    fn, inputs = with_parameters(layer, rng.standard_normal(shape) * 2 + 1)
    assert tl.gradcheck(fn, inputs)


def test_layernorm_gradients_match_finite_differences():
    fn, inputs = with_parameters(tl.nn.LayerNorm((3, 4), dtype=np.float64), rng.standard_normal((2, 3, 4)))
    assert tl.gradcheck(fn, inputs)


def test_training_normalizes_each_channel_to_mean_zero_variance_one():
    x = Tensor(rng.standard_normal((16, 3, 4, 4)) * [[[[5.0]], [[0.1]], [[2.0]]]] + 7.0)
    y = tl.nn.BatchNorm2d(3, eps=0.0, dtype=np.float64)(x).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-13)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-12)


def test_running_statistics_follow_momentum_and_the_unbiased_variance():
    layer = tl.nn.BatchNorm1d(2, momentum=0.25, dtype=np.float64)
    x = rng.standard_normal((6, 2))
    layer(Tensor(x))
    np.testing.assert_allclose(layer.running_mean.data, 0.25 * x.mean(0), rtol=1e-14)
    np.testing.assert_allclose(layer.running_var.data, 0.75 + 0.25 * x.var(0, ddof=1), rtol=1e-14)


def test_running_var_correction_0_stores_the_biased_variance_and_leaves_the_output_alone():
    """Keras' moving_variance update: the σ² the batch was normalized with, not n/(n − 1)·σ²."""
    x = rng.standard_normal((6, 2))
    biased = tl.nn.BatchNorm1d(2, momentum=0.25, dtype=np.float64, running_var_correction=0)
    unbiased = tl.nn.BatchNorm1d(2, momentum=0.25, dtype=np.float64)
    assert np.array_equal(biased(Tensor(x)).data, unbiased(Tensor(x)).data)
    np.testing.assert_allclose(biased.running_var.data, 0.75 + 0.25 * x.var(0), rtol=1e-14)
    assert np.array_equal(biased.running_mean.data, unbiased.running_mean.data)
    single = tl.nn.BatchNorm1d(2, running_var_correction=0)(Tensor(np.ones((1, 2), np.float32)))
    assert np.array_equal(single.data, np.zeros((1, 2), np.float32))  # one value: σ² = 0, as Keras
    with pytest.raises(ValueError, match=r"running_var_correction must be 1 .* or 0 .*, got 2"):
        tl.nn.BatchNorm2d(2, running_var_correction=2)


def test_momentum_none_is_the_cumulative_average_of_the_batches():
    layer = tl.nn.BatchNorm1d(2, momentum=None, dtype=np.float64)
    batches = [rng.standard_normal((4, 2)) + i for i in range(3)]
    for x in batches:
        layer(Tensor(x))
    np.testing.assert_allclose(layer.running_mean.data, np.mean([b.mean(0) for b in batches], 0), rtol=1e-13)
    np.testing.assert_allclose(layer.running_var.data, np.mean([b.var(0, ddof=1) for b in batches], 0), rtol=1e-13)
    assert int(layer.num_batches_tracked.data) == 3


def test_eval_uses_running_statistics_and_leaves_them_alone():
    layer = tl.nn.BatchNorm1d(2, dtype=np.float64)
    layer.running_mean, layer.running_var = np.array([1.0, -2.0]), np.array([4.0, 0.25])
    x = rng.standard_normal((3, 2))
    y = layer.eval()(Tensor(x)).data
    np.testing.assert_allclose(y, (x - [1.0, -2.0]) / np.sqrt(np.array([4.0, 0.25]) + 1e-5), rtol=1e-14)
    assert int(layer.num_batches_tracked.data) == 0 and list(layer.running_mean.data) == [1.0, -2.0]


def test_without_running_statistics_both_modes_use_the_batch():
    layer = tl.nn.BatchNorm1d(2, track_running_stats=False, dtype=np.float64)
    x = Tensor(rng.standard_normal((5, 2)))
    np.testing.assert_array_equal(layer.train()(x).data, layer.eval()(x).data)
    assert list(layer.state_dict()) == ["weight", "bias"] and layer.running_mean is None


def test_running_statistics_are_buffers_not_parameters(tmp_path):
    model = tl.nn.Sequential(tl.nn.Linear(3, 2, dtype=np.float64, rng=0), tl.nn.BatchNorm1d(2, dtype=np.float64))
    model(Tensor(rng.standard_normal((4, 3))))
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert [n for n, _ in model.named_buffers()] == ["1.running_mean", "1.running_var", "1.num_batches_tracked"]
    assert list(model.state_dict()) == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                        "1.running_var", "1.num_batches_tracked"]
    model.save(tmp_path / "bn.npz")
    fresh = tl.nn.Sequential(tl.nn.Linear(3, 2, dtype=np.float64, rng=1), tl.nn.BatchNorm1d(2, dtype=np.float64))
    fresh.load(tmp_path / "bn.npz")
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    x = Tensor(rng.standard_normal((2, 3)))
    np.testing.assert_array_equal(fresh.eval()(x).data, model.eval()(x).data)


def test_a_buffer_refuses_a_tensor_that_requires_grad():
    layer = tl.nn.BatchNorm1d(2)
    with pytest.raises(TypeError, match="BatchNorm1d.running_mean: a buffer must be a Tensor without requires_grad"):
        layer.running_mean = Tensor(np.zeros(2), requires_grad=True)
    assert layer.parameters() == [layer.weight, layer.bias]


def test_gamma_and_beta_carry_no_penalty_unless_given_one():
    assert dict(tl.nn.BatchNorm2d(3).named_penalties()) == {}
    layer = tl.nn.BatchNorm2d(3, gamma_regularizer=tl.nn.L2(0.5), dtype=np.float64)
    assert [name for name, _ in layer.named_penalties()] == ["weight"]
    assert layer.regularization_loss().item() == pytest.approx(1.5)  # 0.5·Σ1², three channels
    norm = tl.nn.LayerNorm(4, beta_regularizer=tl.nn.L2(0.5), dtype=np.float64)
    assert [name for name, _ in norm.named_penalties()] == ["bias"]
    with pytest.raises(ValueError, match="LayerNorm: a gamma/beta regularizer was given for a parameter"):
        tl.nn.LayerNorm(4, bias=False, beta_regularizer=tl.nn.L2(0.5))


@pytest.mark.parametrize("make, x, message", [
    (lambda: tl.nn.BatchNorm1d(3), np.zeros((1, 3)), "expected more than 1 value per channel when training"),
    (lambda: tl.nn.BatchNorm1d(3), np.zeros((2, 4)), r"has 4 channels on axis 1, expected num_features=3"),
    (lambda: tl.nn.BatchNorm2d(3), np.zeros((2, 3, 4)), r"BatchNorm2d: expected 4D input, got 3D input of shape \(2, 3, 4\)"),
    (lambda: tl.nn.LayerNorm((3, 4)), np.zeros((2, 4, 3)), r"last dims are \(3, 4\), got shape \(2, 4, 3\)"),
])
def test_bad_inputs_get_a_clear_error(make, x, message):
    with pytest.raises(ValueError, match=message):
        make()(Tensor(x))


def test_a_refused_batch_changes_no_statistic():
    layer = tl.nn.BatchNorm1d(3, dtype=np.float64)
    before = layer.state_dict()
    with pytest.raises(ValueError, match="expected more than 1 value per channel"):
        layer(Tensor(np.ones((1, 3))))
    for name, value in layer.state_dict().items():
        assert np.array_equal(value, before[name]), name


def test_non_float_dtypes_are_refused():
    with pytest.raises(TypeError, match="BatchNorm2d: dtype must be a floating-point type, got int64"):
        tl.nn.BatchNorm2d(3, dtype=np.int64)


def test_a_compiled_training_step_still_updates_the_running_statistics():
    def setup():
        model = tl.nn.Sequential(tl.nn.Linear(3, 4, dtype=np.float64, rng=0), tl.nn.BatchNorm1d(4, dtype=np.float64))
        opt = tl.optim.SGD(model.parameters(), lr=0.1)

        def step(x):
            opt.zero_grad()
            loss = (model(x) ** 2).mean()
            loss.backward()
            opt.step()
            return loss
        return model, step

    (eager, eager_step), (compiled, step) = setup(), setup()
    step = tl.compile(step)
    for i in range(3):
        x = Tensor(rng.standard_normal((5, 3)) + i)
        eager_step(x), step(x)
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def composed_batch_norm(x, weight, bias, eps):
    """Training-mode batch norm as a graph of small ops (what BatchNormalize replaced)."""
    axes, shape = (0,) + tuple(range(2, x.ndim)), (1, -1) + (1,) * (x.ndim - 2)
    centered = x - x.mean(axis=axes, keepdims=True)
    out = centered / ((centered * centered).mean(axis=axes, keepdims=True) + eps).sqrt()
    out = out * weight.reshape(shape) if weight is not None else out
    return out + bias.reshape(shape) if bias is not None else out


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 4), (4, 3, 2, 3)])
@pytest.mark.parametrize("given", [(True, True), (False, False), (True, False), (False, True)])
def test_batch_normalize_has_the_composed_graphs_values_and_gradients(shape, given):
    """γ and β each given or not (torch's F.batch_norm takes either alone)."""
    x, g = rng.standard_normal(shape) * 3 + 2, rng.standard_normal(shape)
    params = [rng.standard_normal(shape[1]) * (i + 1) if wanted else None for i, wanted in enumerate(given)]
    results = []
    for fn in (lambda *a: tl.nn.functional.batch_norm(a[0], None, None, *a[1:], training=True, eps=1e-3),
               lambda *a: composed_batch_norm(*a, eps=1e-3)):
        xt = Tensor(x, requires_grad=True)
        ps = [None if p is None else Tensor(p, requires_grad=True) for p in params]
        out = fn(xt, *ps)
        out.backward(g)
        results.append([out.data, xt.grad] + [p.grad for p in ps if p is not None])
    assert len(results[0]) == 2 + sum(given)
    for ours, composed in zip(*results):
        assert_machine_equal(ours, composed, ulps=64)


@pytest.mark.parametrize("affine", [True, False])
def test_batch_normalize_gradients_match_finite_differences_with_or_without_affine(affine):
    x = Tensor(rng.standard_normal((4, 3, 2, 2)) * 2 - 1, requires_grad=True)
    params = [Tensor(rng.standard_normal(3), requires_grad=True) for _ in range(2)] if affine else []
    fn = lambda x, *p: tl.nn.functional.batch_norm(x, None, None, *p, training=True)  # noqa: E731
    assert tl.gradcheck(fn, [x, *params])


def test_running_statistics_are_the_same_whether_or_not_a_graph_is_recorded():
    x = rng.standard_normal((6, 3, 2, 2)) * 2 + 1
    layers = [tl.nn.BatchNorm2d(3, momentum=0.3, dtype=np.float64) for _ in range(2)]
    layers[0](Tensor(x, requires_grad=True))
    with tl.no_grad():
        layers[1](Tensor(x))
    np.testing.assert_array_equal(layers[0].running_mean.data, layers[1].running_mean.data)
    np.testing.assert_array_equal(layers[0].running_var.data, layers[1].running_var.data)
    np.testing.assert_allclose(layers[1].running_var.data, 0.7 + 0.3 * x.var(axis=(0, 2, 3), ddof=1), rtol=1e-14)


def test_a_weight_that_is_not_one_per_channel_is_refused_by_name():
    with pytest.raises(ValueError, match=r"batch_norm: weight of shape \(4,\) does not fit an input of shape \(2, 3\)"):
        tl.nn.functional.batch_norm(Tensor(np.ones((2, 3))), None, None, Tensor(np.ones(4)), training=True)
