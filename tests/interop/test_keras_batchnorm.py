"""Keras BatchNormalization through tl.from_keras, against Keras itself in training mode
(`model(x, training=True)`: outputs, data and penalty gradients, the moving statistics after
the step) and in inference mode (float64 1e-10, float32 1e-5)."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from interop.frameworks import assert_close, need_keras, torch_grads
from interop.test_keras_import import build, tl_layout

keras = need_keras()
import torch  # noqa: E402  (after the skip: keras needs it as its backend here)

L, R = keras.layers, keras.regularizers
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")
TL_NAME = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}


def batch_norm(**options):
    return L.BatchNormalization(gamma_regularizer=R.L2(0.02), beta_regularizer=R.L1(0.01), **options)


CASES = {  # (input shape, layers): BatchNormalization after Dense (2D) and after Conv2D (4D)
    "after Dense": ((5,), lambda: [L.Dense(4, kernel_regularizer=R.L2(0.01)), batch_norm(),
                                   L.ReLU(), L.Dense(3)]),
    "after Conv2D, momentum 0.9, epsilon 0.1": ((5, 4, 2), lambda: [
        L.Conv2D(3, 3, padding="same", kernel_regularizer=R.L2(0.01)),
        batch_norm(momentum=0.9, epsilon=0.1), L.Flatten()]),
    "on the input, center=False": ((5,), lambda: [L.BatchNormalization(center=False,
                                                                       gamma_regularizer=R.L2(0.5))]),
    "on the input, scale=False": ((3, 3, 2), lambda: [L.BatchNormalization(scale=False),
                                                      L.Conv2D(2, 2, kernel_regularizer=R.L2(0.1)),
                                                      L.Flatten()]),
}
FLOAT64_CASES = [case for case in CASES if "Dense" not in case]  # Keras' float64 Dense is float32


def randomize_statistics(kmodel, seed=5):
    """γ, β and the moving statistics away from 1, 0, 0, 1, so that a swap would show."""
    rng = np.random.default_rng(seed)
    for layer in kmodel.layers:
        if isinstance(layer, L.BatchNormalization):
            for variable, low in ((layer.gamma, 0.5), (layer.beta, -1.0), (layer.moving_mean, -1.0),
                                  (layer.moving_variance, 0.5)):
                if variable is not None:
                    variable.assign(rng.uniform(low, low + 1.5, variable.shape).astype(variable.dtype))


def test_keras_on_torch_computes_a_float64_batch_normalization_in_float32():
    """Why the float64 checks run Keras' BatchNormalization.call without its first line: it
    casts the input to result_type(dtype, "float32"), which Keras 3 maps to float32 for float64
    on the torch backend (as for Dense, see test_keras_import).  If Keras changes this, compare
    with the layer itself in float64 too."""
    layer = L.BatchNormalization(dtype="float64")
    x = torch.tensor(np.random.default_rng(7).standard_normal((4, 3)) * 3 + 1)
    exact = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=False) + 1e-3)
    assert (layer(x, training=True) - exact).abs().max() > 1e-9


def keras_batch_norm_in_float64(layer, x, training):
    """keras.layers.BatchNormalization.call (Keras 3.x source), its float32 cast left out: the
    batch's moments while training, the moving statistics updated as Keras writes it, else the
    moving statistics; then keras.ops.batch_normalization."""
    if training:  # torch arithmetic: Keras' own on its variables would promote to float32
        mean, variance = keras.ops.moments(x, axes=layer._reduction_axes)
        with torch.no_grad():
            for moving, batch in ((layer.moving_mean, mean), (layer.moving_variance, variance)):
                moving.assign(moving.value * layer.momentum + batch * (1.0 - layer.momentum))
    else:
        mean, variance = layer.moving_mean.value, layer.moving_variance.value
    return keras.ops.batch_normalization(x, mean, variance, axis=layer.axis, epsilon=layer.epsilon,
                                         offset=None if layer.beta is None else layer.beta.value,
                                         scale=None if layer.gamma is None else layer.gamma.value)


def keras_forward(kmodel, X, training):
    """The model's output: Keras' own call in float32; layer by layer in float64, its
    BatchNormalization in float64 (see above)."""
    if X.dtype == np.float32:
        return kmodel(torch.tensor(X), training=training)
    out = torch.tensor(X)
    for layer in kmodel.layers:
        if isinstance(layer, L.BatchNormalization):
            out = keras_batch_norm_in_float64(layer, out, training)
        elif not isinstance(layer, L.InputLayer):
            out = layer(out, training=training)
    return out


def keras_step(kmodel, X, T):
    """Keras in training mode: output, {tl name: (data gradient, penalty gradient)}, moving stats."""
    out = keras_forward(kmodel, X, training=True)
    data = ((out - torch.tensor(T)) ** 2).mean()
    penalty = sum(kmodel.losses)
    variables = kmodel.trainable_variables
    per_term = [torch_grads(torch, term, [v.value for v in variables]) for term in (data, penalty)]
    grads = {}
    for v, g_data, g_penalty in zip(variables, *per_term):
        layer, kind = v.path.split("/")[-2:]
        grads[f"{layer}.{TL_NAME[kind]}"] = (tl_layout(g_data), tl_layout(g_penalty))
    moving = {f"{layer.name}.running_{kind}": getattr(layer, f"moving_{name}").numpy()
              for layer in kmodel.layers if isinstance(layer, L.BatchNormalization)
              for kind, name in (("mean", "mean"), ("var", "variance"))}
    return out.detach().numpy(), grads, moving


def tl_step(model, X, T):
    model.train()
    out = model(tl.Tensor(X))
    data = ((out - T) ** 2).mean()
    penalty = model.regularization_loss()
    params = dict(model.named_parameters())
    per_term = [tl.grad(term, list(params.values()), allow_unused=True) for term in (data, penalty)]
    grads = {name: [np.zeros_like(p.data) if g is None else g for g in found]
             for (name, p), *found in zip(params.items(), *per_term)}
    return out.data, grads, dict(model.named_buffers())


def make_case(case, dtype, tmp_path):
    shape, make_layers = CASES[case]
    kmodel = build(dtype, shape, make_layers, tmp_path / "model.keras")
    randomize_statistics(kmodel)  # converted in memory: a float64 file read under Keras'
    rng = np.random.default_rng(6)
    X = (rng.standard_normal((6,) + shape) * 2 + 0.5).astype(dtype)
    T = rng.standard_normal((6,) + tuple(kmodel.output.shape[1:])).astype(dtype)
    return kmodel, tl.from_keras(kmodel), X, T  # float32 floatx would round its λ to float32


def assert_training_step_matches_keras(kmodel, model, X, T):
    k_out, k_grads, k_moving = keras_step(kmodel, X, T)
    t_out, t_grads, t_buffers = tl_step(model, X, T)
    assert_close(t_out, k_out, "training-mode output")
    assert sorted(t_grads) == sorted(k_grads)
    for name, (g_data, g_penalty) in k_grads.items():
        assert_close(t_grads[name][0], g_data, f"{name} data gradient")
        assert_close(t_grads[name][1], g_penalty, f"{name} penalty gradient")
    for name, value in k_moving.items():  # the update Keras made in that step, and ours
        assert_close(t_buffers[name].data, value, name)
    model.eval()  # inference: both normalize with the updated moving statistics
    assert_close(model(tl.Tensor(X)).data, keras_forward(kmodel, X, training=False).detach().numpy(),
                 "inference output after the step")


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_training_step_matches_keras_in_float32(case, tmp_path):
    assert_training_step_matches_keras(*make_case(case, "float32", tmp_path))


@pytest.mark.parametrize("case", FLOAT64_CASES)
def test_a_training_step_matches_keras_in_float64(case, tmp_path):
    assert_training_step_matches_keras(*make_case(case, "float64", tmp_path))


def test_keras_numbers_are_carried_not_torch_defaults(tmp_path):
    kmodel, model, _, _ = make_case("after Conv2D, momentum 0.9, epsilon 0.1", "float32", tmp_path)
    layer = next(layer for layer in kmodel.layers if isinstance(layer, L.BatchNormalization))
    bn = getattr(model, layer.name)
    assert isinstance(bn, tl.nn.BatchNorm2d) and bn.running_var_correction == 0
    assert (bn.eps, bn.momentum) == (0.1, pytest.approx(0.1, abs=1e-15))
    assert np.array_equal(bn.running_var.data, layer.moving_variance.numpy())
    assert (bn.regularizers["weight"].lam, bn.regularizers["bias"].lam) == (  # as Keras holds them
        layer.gamma_regularizer.get_config()["l2"], layer.beta_regularizer.get_config()["l1"])
    default = tl.from_keras(build("float32", (3,), lambda: [L.BatchNormalization()], tmp_path / "d.keras"))
    assert next(m for m in default.children()).eps == 1e-3  # Keras' default epsilon, not torch's 1e-5


def test_the_biased_running_variance_is_what_makes_the_step_match(tmp_path):
    """The same step with torch's unbiased update misses Keras' moving_variance: the option is
    what the match rests on (and it leaves the training-mode output alone)."""
    kmodel, model, X, T = make_case("after Dense", "float32", tmp_path)
    bn = next(m for m in model.children() if isinstance(m, tl.nn.BatchNorm1d))
    bn.running_var_correction = 1
    _, _, k_moving = keras_step(kmodel, X, T)
    _, _, t_buffers = tl_step(model, X, T)
    name = next(name for name in k_moving if name.endswith("running_var"))
    with pytest.raises(AssertionError, match="running_var"):
        assert_close(t_buffers[name].data, k_moving[name], name)


@pytest.mark.parametrize("shape, make, message", [
    ((4, 3, 2), lambda: [L.Conv2D(2, 1), L.BatchNormalization(axis=1)], "axis=1 on a 4D input"),
    ((6,), lambda: [L.Dense(3), L.BatchNormalization(renorm=True)], "renorm is not supported"),
    ((6,), lambda: [L.Dense(3), L.BatchNormalization(gamma_constraint="non_neg")],
     "gamma_constraint is not supported"),
])
def test_batch_normalization_options_keras_would_train_differently_are_refused(shape, make, message, tmp_path):
    kmodel = build("float32", shape, make, tmp_path / "m.keras")
    with pytest.raises(ValueError, match=message):
        tl.from_keras(kmodel)


def test_a_frozen_batch_normalization_is_refused_with_the_reason():
    kmodel = keras.Sequential([keras.Input((4,)), L.BatchNormalization()])
    kmodel.layers[0].trainable = False
    with pytest.raises(ValueError, match="trainable=False.*moving statistics even in training"):
        tl.from_keras(kmodel)
