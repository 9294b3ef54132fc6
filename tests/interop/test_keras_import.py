"""tl.from_keras against Keras itself: each supported layer, a small ConvNet and an MLP, saved to
.keras files and loaded back; loss and every parameter's gradient, data and penalty terms apart,
equal Keras' on the same batch (float64 1e-10, float32 1e-5)."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from interop.frameworks import assert_close, need_keras, tl_terms, torch_grads

keras = need_keras()
import torch  # noqa: E402  (after the skip: keras needs it as its backend here)

L, R = keras.layers, keras.regularizers
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def build(dtype, shape, make_layers, path):
    """Input(shape) -> layers -> model, in `dtype`, saved to `path` and loaded back."""
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)  # the global policy is cached from floatx on first use
    try:
        keras.utils.set_random_seed(0)
        inputs = keras.Input(shape)
        x = inputs
        for layer in make_layers():
            x = layer(x)
        keras.Model(inputs, x).save(path)
        return keras.saving.load_model(path)
    finally:
        keras.config.set_floatx("float32")
        keras.config.set_dtype_policy("float32")


def tl_layout(array):
    """A Keras kernel in tl's layout: Dense (in, out) -> (out, in); Conv2D (kh, kw, in, out) ->
    (out, in, kh, kw)."""
    return array.T if array.ndim == 2 else array.transpose(3, 2, 0, 1) if array.ndim == 4 else array


def keras_terms(model, X, loss):
    """Keras' data loss, sum(model.losses) and both terms' gradients, in tl's names/layouts."""
    data = loss(model(torch.tensor(X), training=False))
    penalty = sum(model.losses)
    variables = model.trainable_variables
    values = [v.value for v in variables]
    per_term = [torch_grads(torch, term, values) for term in (data, penalty)]
    grads = {}
    for v, g_data, g_penalty in zip(variables, *per_term):
        layer, kind = v.path.split("/")[-2:]
        grads[f"{layer}.{'weight' if kind == 'kernel' else 'bias'}"] = (tl_layout(g_data), tl_layout(g_penalty))
    return data.item(), penalty.item(), grads


def assert_same_training_signal(kmodel, model, X, keras_loss, tl_loss):
    k_data, k_penalty, k_grads = keras_terms(kmodel, X, keras_loss)
    t_data, t_penalty, t_grads = tl_terms(model, X, tl_loss)
    dtype = np.dtype(X.dtype)
    assert_close(np.array(t_data, dtype), np.array(k_data, dtype), "data loss")
    assert_close(np.array(t_penalty, dtype), np.array(k_penalty, dtype), "penalty")
    assert sorted(t_grads) == sorted(k_grads)
    for name, (g_data, g_penalty) in k_grads.items():
        assert_close(t_grads[name][0], g_data, f"{name} data gradient")
        assert_close(t_grads[name][1], g_penalty, f"{name} penalty gradient")
    assert any(np.abs(g[1]).max() > 0 for g in k_grads.values())  # a penalty was compared


def keras_loss_of(kind, dtype):
    """Keras' loss in float32; in float64 torch's of the same definition, because Keras'
    reduction divides through ops.divide_no_nan, whose type promotion maps float64 to float32
    on the torch backend (see the matmul test below)."""
    if dtype == "float32":
        return (keras.losses.MeanSquaredError() if kind == "mse" else
                keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    functional = torch.nn.functional
    return functional.mse_loss if kind == "mse" else lambda y, out: functional.cross_entropy(out, y)


def conv(filters=2, kernel=3, **kw):
    return L.Conv2D(filters, kernel, kernel_regularizer=R.L2(0.03), **kw)


LAYER_CASES = {
    "Conv2D valid, L2 kernel, L1 bias": ((7, 6, 2), lambda: [L.Conv2D(3, (3, 2), kernel_regularizer=R.L2(0.01), bias_regularizer=R.L1(0.02))]),
    "Conv2D same stride 2 (uneven padding), L1L2": ((7, 6, 2), lambda: [L.Conv2D(3, 3, strides=2, padding="same", kernel_regularizer=R.L1L2(0.01, 0.02))]),
    "Conv2D same even kernel, tanh": ((5, 6, 2), lambda: [conv(2, 2, padding="same", activation="tanh")]),
    "Conv2D valid strides (2, 1), relu": ((7, 6, 2), lambda: [conv(3, 3, strides=(2, 1), activation="relu")]),
    "Conv2D channels_first": ((2, 7, 6), lambda: [conv(3, 3, data_format="channels_first", activation="sigmoid"),
                                                 L.MaxPooling2D(data_format="channels_first")]),
    "MaxPooling2D": ((8, 6, 2), lambda: [conv(), L.MaxPooling2D()]),
    "AveragePooling2D pool 3 strides 2": ((9, 7, 2), lambda: [conv(2, 1), L.AveragePooling2D(3, strides=2)]),
    "Dropout (inference)": ((6, 6, 2), lambda: [conv(), L.Dropout(0.5)]),
    "Activation sigmoid": ((6, 6, 2), lambda: [conv(), L.Activation("sigmoid")]),
    "ReLU layer": ((6, 6, 2), lambda: [conv(), L.ReLU()]),
    "Softmax layer (over channels)": ((6, 6, 2), lambda: [conv(3), L.Softmax()]),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_each_layer_gives_keras_loss_and_gradients(case, dtype, tmp_path):
    shape, make_layers = LAYER_CASES[case]
    kmodel = build(dtype, shape, lambda: make_layers() + [L.Flatten()], tmp_path / "model.keras")
    model = tl.from_keras(tmp_path / "model.keras")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((3,) + shape).astype(dtype)
    Y = rng.standard_normal(tuple(kmodel.output.shape[1:])).astype(dtype)[None].repeat(3, 0)
    assert_same_training_signal(kmodel, model, X, lambda out: keras_loss_of("mse", dtype)(torch.tensor(Y), out),
                                lambda out: tl.nn.functional.mse_loss(out, Y))


def convnet():
    return [L.Conv2D(3, 3, padding="same", activation="relu", kernel_regularizer=R.L2(1e-2)),
            L.MaxPooling2D(), L.Conv2D(4, 3, strides=2, padding="same", activation="tanh",
                                       kernel_regularizer=R.L1L2(1e-3, 2e-2)),
            L.Flatten(), L.Dropout(0.25),
            L.Dense(5, kernel_regularizer=R.L2(5e-2), bias_regularizer=R.L1(1e-2))]


def mlp():
    return [L.Dense(8, activation="relu", kernel_regularizer=R.L2(1e-2)), L.Dense(6, activation="tanh"),
            L.Dense(5, kernel_regularizer=R.L2(3e-2))]


@pytest.mark.parametrize("name, shape, make", [("convnet", (8, 8, 1), convnet), ("mlp", (4,), mlp)])
def test_small_networks_give_keras_loss_and_gradients_in_float32(name, shape, make, tmp_path):
    kmodel = build("float32", shape, make, tmp_path / f"{name}.keras")
    model = tl.from_keras(str(tmp_path / f"{name}.keras"))
    rng = np.random.default_rng(2)
    X = rng.standard_normal((6,) + shape).astype(np.float32)
    y = rng.integers(0, 5, 6)
    keras_loss = keras_loss_of("cross_entropy", "float32")
    assert_same_training_signal(kmodel, model, X, lambda out: keras_loss(torch.tensor(y), out),
                                lambda out: tl.nn.functional.cross_entropy(out, y))


def test_keras_on_torch_computes_a_float64_dense_in_float32():
    """Why the float64 Dense checks are against torch, not Keras: Keras 3 maps float64 to float32
    in its type promotion on the torch and JAX backends (BIT64_TO_BIT32_DTYPE), so ops.matmul of
    two float64 tensors is a float32 product.  If Keras changes this, compare Dense with Keras
    in float64 too."""
    rng = np.random.default_rng(3)
    a, b = (torch.tensor(rng.standard_normal(shape)) for shape in ((4, 20), (20, 3)))
    assert (keras.ops.matmul(a, b) - a @ b).abs().max() > 1e-9


def keras_forward_with_float64_dense(model, X):
    """Keras' own layers, except Dense's product, done by torch in float64 (then Keras'
    activation): the model's output as Keras would compute it without the float32 matmul."""
    out = torch.tensor(X)
    for layer in model.layers:
        if isinstance(layer, L.Dense):
            out = layer.activation(out @ layer.kernel.value + layer.bias.value)
        elif not isinstance(layer, L.InputLayer):
            out = layer(out, training=False)
    return out


@pytest.mark.parametrize("name, shape, make", [("convnet", (8, 8, 1), convnet), ("mlp", (4,), mlp)])
def test_small_networks_give_keras_loss_and_gradients_in_float64(name, shape, make, tmp_path):
    kmodel = build("float64", shape, make, tmp_path / f"{name}.keras")
    model = tl.from_keras(tmp_path / f"{name}.keras")
    rng = np.random.default_rng(4)
    X, y = rng.standard_normal((5,) + shape), rng.integers(0, 5, 5)
    keras_loss = keras_loss_of("cross_entropy", "float64")
    kmodel_float64 = type("Float64Dense", (), {
        "__call__": lambda self, x, training: keras_forward_with_float64_dense(kmodel, X),
        "losses": property(lambda self: kmodel.losses),
        "trainable_variables": kmodel.trainable_variables})()
    assert_same_training_signal(kmodel_float64, model, X, lambda out: keras_loss(torch.tensor(y), out),
                                lambda out: tl.nn.functional.cross_entropy(out, y))


def test_an_unsupported_layer_is_refused_by_name_with_the_supported_list(tmp_path):
    kmodel = build("float32", (6,), lambda: [L.Dense(3), L.LayerNormalization()], tmp_path / "m.keras")
    with pytest.raises(ValueError, match=r"layer_normalization.*LayerNormalization.*supported layers: Dense, Conv2D"):
        tl.from_keras(kmodel)


@pytest.mark.parametrize("make, message", [
    (lambda: [L.Dense(3, kernel_regularizer=R.OrthogonalRegularizer())], "OrthogonalRegularizer is not supported"),
    (lambda: [L.Dense(3, activity_regularizer=R.L2(0.1))], "activity_regularizer is not supported"),
    (lambda: [L.Dense(3, activation="gelu")], "activation 'gelu' is not supported"),
])
def test_options_that_would_change_the_training_are_refused(make, message, tmp_path):
    kmodel = build("float32", (6,), make, tmp_path / "m.keras")
    with pytest.raises(ValueError, match=message):
        tl.from_keras(kmodel)


def test_pooling_with_same_padding_is_refused():
    kmodel = keras.Sequential([keras.Input((4, 4, 1)), L.MaxPooling2D(padding="same")])
    with pytest.raises(ValueError, match="padding 'same': only 'valid'"):
        tl.from_keras(kmodel)


def test_a_branching_functional_model_is_refused():
    inputs = keras.Input((4,))
    outputs = L.Add()([L.Dense(2)(inputs), L.Dense(2)(inputs)])
    with pytest.raises(ValueError, match="takes 2 inputs"):
        tl.from_keras(keras.Model(inputs, outputs))


def test_a_sequential_model_keeps_keras_names_weights_and_lambdas():
    kmodel = keras.Sequential([keras.Input((3,)), L.Dense(2, name="hidden", kernel_regularizer=R.L2(0.25),
                                                           bias_regularizer=R.L1L2(0.5, 0.125))])
    model = tl.from_keras(kmodel)
    assert [name for name, _ in model.named_parameters()] == ["hidden.weight", "hidden.bias"]
    assert np.array_equal(model.hidden.weight.data, kmodel.layers[0].kernel.numpy().T)
    assert model.hidden.kernel_regularizer.lam == 0.25
    assert (model.hidden.bias_regularizer.l1.lam, model.hidden.bias_regularizer.l2.lam) == (0.5, 0.125)
