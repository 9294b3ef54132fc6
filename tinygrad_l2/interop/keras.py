"""`from_keras`: a Keras 3 model (or `.keras` file) as a tl.nn module with the same weights and
the same regularizers, λ for λ.

Keras' convention is tinygrad_l2's: `regularizers.L2(l2)` adds l2·Σw² to the loss (gradient
2·l2·w), `L1(l1)` adds l1·Σ|w|, `L1L2(l1, l2)` both; each becomes `tl.nn.L2(l2)` / `L1` /
`L1L2` on the same tensor (kernel → `weight`, bias → `bias`), so `model.regularization_loss()`
is Keras' `sum(model.losses)`.  Layouts: a Dense kernel (in, out) is a Linear weight (out, in);
a Conv2D kernel (kh, kw, in, out) a Conv2d weight (out, in, kh, kw).  The converted model takes
its input as Keras does (channels-last): it permutes to NCHW before the first convolution and
back before Flatten, so the features reach the Dense layers in Keras' order.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from .. import nn
from .layers import Chain, SamePaddedConv2d, Softmax, ToChannelsFirst, ToChannelsLast

SUPPORTED = ("Dense", "Conv2D", "MaxPooling2D", "AveragePooling2D", "Flatten", "Dropout",
             "BatchNormalization", "Activation", "ReLU", "Softmax", "InputLayer")
ACTIVATIONS = {"linear": None, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh,
               "softmax": Softmax}
REGULARIZERS = ("L1", "L2", "L1L2")


class KerasConversionError(ValueError):
    """A Keras model, layer or option that `from_keras` can't carry exactly."""


def import_keras() -> Any:
    """keras, on the torch backend unless KERAS_BACKEND says otherwise (Keras' own default,
    TensorFlow, is not a dependency of the `interop` extra)."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError as err:
        raise ImportError(f"from_keras needs Keras 3 and a backend for it: pip install "
                          f"'tinygrad-l2[interop]' (Keras on torch) ({err})") from err
    return keras


def from_keras(model_or_path: Any) -> Chain:
    """A Keras 3 Sequential or functional model (object or `.keras` file) -> a tl `Chain` whose
    modules are named after the Keras layers ("dense.weight" is Dense "dense"'s kernel, ᵀ).

    Supported layers: Dense, Conv2D (padding "valid"/"same", strides), MaxPooling2D and
    AveragePooling2D ("valid"), Flatten, Dropout, BatchNormalization (on the channels axis,
    -1), Activation, ReLU, Softmax and the activations linear, relu, sigmoid, tanh, softmax
    (as layers or `activation=`).  Anything else is refused with its name.  Dropout is tl's:
    the same rate, other masks.  BatchNormalization becomes tl.nn.BatchNorm1d/2d in Keras'
    arithmetic (see `_batch_normalization`)."""
    keras = import_keras()
    model = model_or_path
    if isinstance(model_or_path, (str, os.PathLike)):
        model = keras.saving.load_model(os.fspath(model_or_path), compile=False)
    if not isinstance(model, keras.Model):
        raise TypeError(f"from_keras: expected a keras.Model or a path to a .keras file, got "
                        f"{type(model_or_path).__name__}")
    if not model.built:
        raise KerasConversionError(f"from_keras: {model.name} is not built (no weights yet): start "
                                   f"it with keras.Input(shape) or call it on a batch once")
    builder = _Builder()
    for layer in _layers_in_order(keras, model):
        builder.add(layer)
    return Chain(builder.modules)


def _layers_in_order(keras, model):
    """The layers a Sequential or single-chain functional model applies, in order (nested
    models spliced in)."""
    if isinstance(model, keras.Sequential):
        layers = list(model.layers)
    elif hasattr(model, "_nodes_by_depth") and hasattr(model, "outputs"):
        layers = _functional_chain(model)
    else:
        raise KerasConversionError(
            f"from_keras: {type(model).__name__} is a subclassed keras.Model (its call() is "
            f"Python code): build it as a Sequential or functional model")
    flat = []
    for layer in layers:
        flat.extend(_layers_in_order(keras, layer) if isinstance(layer, keras.Model) else [layer])
    return flat


def _functional_chain(model):
    """Walk back from the output through each layer's input: a chain of one-input layers."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise KerasConversionError(f"from_keras: {model.name} has {len(model.inputs)} inputs and "
                                   f"{len(model.outputs)} outputs; only one of each is supported")
    chain, tensor = [], model.outputs[0]
    while True:
        layer, node_index, _ = tensor._keras_history
        if type(layer).__name__ == "InputLayer":
            return chain[::-1]
        node = layer._inbound_nodes[node_index]
        if len(node.input_tensors) != 1:
            raise KerasConversionError(
                f"from_keras: layer {layer.name!r} ({type(layer).__name__}) takes "
                f"{len(node.input_tensors)} inputs; only chains of one-input layers are supported")
        chain.append(layer)
        tensor = node.input_tensors[0]


def _refuse(layer, why):
    raise KerasConversionError(f"from_keras: layer {layer.name!r} ({type(layer).__name__}): "
                               f"{why}")


def regularizer_of(layer, keras_regularizer, which):
    """Keras' L1/L2/L1L2 -> tl.nn's with the same coefficients (the same convention)."""
    if keras_regularizer is None:
        return None
    kind, config = type(keras_regularizer).__name__, keras_regularizer.get_config()
    if kind == "L2":
        return nn.L2(config["l2"])
    if kind == "L1":
        return nn.L1(config["l1"])
    if kind == "L1L2":
        return nn.L1L2(config["l1"], config["l2"])
    _refuse(layer, f"{which} {kind} is not supported (supported regularizers: "
                   f"{', '.join(REGULARIZERS)})")


def array_of(variable):
    """A Keras variable's value as a numpy array of its dtype (a copy)."""
    return np.array(variable.numpy(), copy=True)


class _Builder:
    """Turns layers into named modules, inserting layout changes where a layer needs them.

    `nchw` is True while the tensor is a channels-last Keras tensor held as (N, C, H, W)."""

    def __init__(self):
        self.modules, self.names, self.nchw = [], set(), False

    def append(self, name, module):
        base, i = name, 1
        while name in self.names:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        self.modules.append((name, module))

    def layout(self, layer, channels_first_compute):
        """Permute when the layer computes in the other layout than the tensor is held in."""
        data_format = getattr(layer, "data_format", "channels_last")
        want_nchw = channels_first_compute and data_format == "channels_last"
        if want_nchw and not self.nchw:
            self.append("to_channels_first", ToChannelsFirst())
        elif self.nchw and not want_nchw:
            self.append("to_channels_last", ToChannelsLast())
        self.nchw = want_nchw

    def add(self, layer):
        kind = type(layer).__name__
        build = BUILDERS.get(kind)
        if build is None:
            raise KerasConversionError(
                f"from_keras: layer {layer.name!r} is a {kind}, which is not supported; "
                f"supported layers: {', '.join(SUPPORTED)}")
        _check_common(layer)
        build(self, layer)

    def activation(self, layer, name):
        if name not in ACTIVATIONS:
            _refuse(layer, f"activation {name!r} is not supported (supported: "
                           f"{', '.join(ACTIVATIONS)})")
        if ACTIVATIONS[name] is None:
            return
        if name == "softmax":
            self.layout(layer, False)
        self.append(f"{layer.name}_{name}" if type(layer).__name__ in ("Dense", "Conv2D")
                    else layer.name, ACTIVATIONS[name]())


def _check_common(layer):
    config = layer.get_config()
    for option in ("activity_regularizer", "kernel_constraint", "bias_constraint"):
        if config.get(option) is not None:
            _refuse(layer, f"{option} is not supported (it changes training beyond the loss)")


def _activation_name(layer, config):
    name = config.get("activation", "linear")
    if not isinstance(name, str):
        _refuse(layer, f"activation {name!r} is not one of {', '.join(ACTIVATIONS)}")
    return name


def _dense(builder, layer):
    config = layer.get_config()
    builder.layout(layer, False)
    kernel = array_of(layer.kernel)
    module = nn.Linear(kernel.shape[0], kernel.shape[1], bias=config["use_bias"], rng=0,
                       dtype=kernel.dtype, **_regularizers(layer))
    _add_with_weights(builder, layer, config, module, np.ascontiguousarray(kernel.T))


def _conv2d(builder, layer):
    config = layer.get_config()
    if tuple(config["dilation_rate"]) != (1, 1) or config["groups"] != 1:
        _refuse(layer, f"dilation_rate {config['dilation_rate']} and groups {config['groups']}: "
                       f"only (1, 1) and 1 are supported")
    builder.layout(layer, True)
    kernel = array_of(layer.kernel)  # (kh, kw, in, out)
    strides, same = tuple(config["strides"]), config["padding"] == "same"
    cls = SamePaddedConv2d if same and strides != (1, 1) else nn.Conv2d
    module = cls(kernel.shape[2], kernel.shape[3], kernel.shape[:2], stride=strides,
                 padding="same" if same and cls is nn.Conv2d else 0, bias=config["use_bias"],
                 dtype=kernel.dtype, rng=0, **_regularizers(layer))
    _add_with_weights(builder, layer, config, module, np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))


def _regularizers(layer):
    """A Dense's or Conv2D's kernel and bias regularizers, with Keras' λ."""
    return dict(kernel_regularizer=regularizer_of(layer, layer.kernel_regularizer, "kernel_regularizer"),
                bias_regularizer=regularizer_of(layer, layer.bias_regularizer, "bias_regularizer"))


def _add_with_weights(builder, layer, config, module, weight):
    """The module with the layer's kernel (in tl's layout) and bias, then its activation."""
    module.weight.data = weight
    if config["use_bias"]:
        module.bias.data = array_of(layer.bias)
    builder.append(layer.name, module)
    builder.activation(layer, _activation_name(layer, config))


def _pooling(builder, layer):
    config = layer.get_config()
    if config["padding"] != "valid":
        _refuse(layer, f"padding {config['padding']!r}: only 'valid' is supported")
    builder.layout(layer, True)
    cls = nn.MaxPool2d if type(layer).__name__ == "MaxPooling2D" else nn.AvgPool2d
    strides = config["strides"] or config["pool_size"]
    builder.append(layer.name, cls(tuple(config["pool_size"]), tuple(strides)))


def _flatten(builder, layer):
    builder.layout(layer, False)
    if getattr(layer, "data_format", "channels_last") == "channels_first":
        builder.append(f"{layer.name}_to_channels_last", ToChannelsLast())  # as Keras does
    builder.append(layer.name, nn.Flatten())


def _dropout(builder, layer):
    if layer.get_config().get("noise_shape") is not None:
        _refuse(layer, "noise_shape is not supported")
    builder.append(layer.name, nn.Dropout(float(layer.rate)))


def _relu(builder, layer):
    config = layer.get_config()
    if config.get("max_value") is not None or config.get("negative_slope", 0) or config.get("threshold", 0):
        _refuse(layer, "only the plain ReLU (no max_value, negative_slope or threshold) is supported")
    builder.activation(layer, "relu")


def _softmax(builder, layer):
    if layer.get_config().get("axis", -1) != -1:
        _refuse(layer, "only axis=-1 is supported")
    builder.activation(layer, "softmax")


def _batch_normalization(builder, layer):
    """Keras BatchNormalization(axis=-1) -> tl.nn.BatchNorm1d (after Dense: (N, C)) or
    BatchNorm2d (after Conv2D: the (N, C, H, W) tl holds), with Keras' numbers, not torch's:
    eps = epsilon (Keras' default 1e-3), momentum m = 1 − Keras' momentum (Keras: moving ←
    μ·moving + (1 − μ)·batch), running_var_correction=0 (Keras stores the biased batch
    variance it normalized with; torch the unbiased), γ/β → weight/bias or None
    (scale/center=False), moving_mean/moving_variance → running_mean/running_var, and
    gamma_regularizer/beta_regularizer → the same L1/L2/L1L2 on weight/bias.  (Keras on torch
    takes the batch variance as E[x²] − E[x]², tl as E[(x − μ)²]: equal but for rounding,
    which in float32 grows where |μ| ≫ σ.)"""
    config, rank = layer.get_config(), layer.input_spec.ndim
    if rank not in (2, 4) or config["axis"] not in (-1, rank - 1):
        _refuse(layer, f"axis={config['axis']} on a {rank}D input: only the channels axis (-1) "
                       f"of a 2D (after Dense) or 4D channels-last (after Conv2D) input is supported")
    for option in ("renorm", "gamma_constraint", "beta_constraint"):
        if config.get(option):
            _refuse(layer, f"{option} is not supported (it changes training beyond the loss)")
    if not layer.trainable:
        _refuse(layer, "trainable=False is not supported (a frozen BatchNormalization normalizes "
                       "with its moving statistics even in training)")
    builder.layout(layer, rank == 4)
    moving_mean = array_of(layer.moving_mean)
    cls = nn.BatchNorm2d if rank == 4 else nn.BatchNorm1d
    module = cls(moving_mean.shape[0], eps=config["epsilon"], momentum=1.0 - config["momentum"],
                 dtype=moving_mean.dtype, running_var_correction=0)
    module.running_mean.data, module.running_var.data = moving_mean, array_of(layer.moving_variance)
    for name, keras_name, present in (("weight", "gamma", config["scale"]), ("bias", "beta", config["center"])):
        if present:
            getattr(module, name).data = array_of(getattr(layer, keras_name))
            module.regularizers[name] = regularizer_of(layer, getattr(layer, f"{keras_name}_regularizer"),
                                                       f"{keras_name}_regularizer")
        else:
            setattr(module, name, None)
    builder.append(layer.name, module)


BUILDERS = {"Dense": _dense, "Conv2D": _conv2d, "MaxPooling2D": _pooling,
            "AveragePooling2D": _pooling, "Flatten": _flatten, "Dropout": _dropout,
            "BatchNormalization": _batch_normalization,
            "ReLU": _relu, "Softmax": _softmax, "InputLayer": lambda builder, layer: None,
            "Activation": lambda builder, layer: builder.activation(
                layer, _activation_name(layer, layer.get_config()))}
