"""`from_torch`: a torch.nn.Module (and optimizer) as a tl module (and optimizer).

A tree of torch.nn.Sequential and the layers tl.nn has becomes the same tree of tl.nn layers.
Any other module is traced with torch.fx: its forward becomes a `Traced` graph of tl ops and
tl layers, under the same names; an op or layer with no tl counterpart is refused by name.

An optimizer's `weight_decay` wd (SGD, Adam: coupled, g ← g + wd·θ) becomes what it is
equivalent to, a loss term: `tl.nn.L2(wd/2)` (Keras' convention, (wd/2)·Σθ²) on every tensor
of the group, biases included, as PyTorch decays them; the tl optimizer gets weight_decay=0.
AdamW's decay is decoupled and has no loss equivalent: it stays AdamW(weight_decay=wd), with a
warning, and no penalty appears.
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .. import conventions, nn, optim
from ..nn.module import Module
from ..tensor import Tensor
from .layers import Softmax
from .traced import Container, Ref, Step, Traced

LAYERS = ("Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Flatten",
          "Dropout", "ReLU", "Sigmoid", "Tanh", "Softmax", "Sequential")


class TorchConversionError(ValueError):
    """A torch module, op or option that `from_torch` can't carry exactly."""


def _torch():
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"from_torch needs PyTorch: pip install 'tinygrad-l2[interop]' ({err})") from err
    return torch


def _tensor(value):
    return Tensor(value.detach().cpu().numpy().copy(), requires_grad=True)


def _refuse_options(name, module, **expected):
    for option, allowed in expected.items():
        if getattr(module, option) not in allowed:
            raise TorchConversionError(f"from_torch: {name} ({type(module).__name__}): "
                                       f"{option}={getattr(module, option)!r} is not supported")


def _layer(torch, name, module):
    """The tl.nn layer for one torch layer (weights copied), or None if there is none."""
    T = torch.nn
    if type(module) is T.Linear:
        out = nn.Linear(module.in_features, module.out_features, module.bias is not None, rng=0)
    elif type(module) is T.Conv2d:
        _refuse_options(name, module, padding_mode=["zeros"])
        out = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                        module.padding, dilation=module.dilation, groups=module.groups,
                        bias=module.bias is not None, rng=0)
    elif type(module) in (T.MaxPool2d, T.AvgPool2d):
        _refuse_options(name, module, padding=[0, (0, 0)], ceil_mode=[False])
        if type(module) is T.MaxPool2d:
            _refuse_options(name, module, dilation=[1, (1, 1)], return_indices=[False])
            out = nn.MaxPool2d(module.kernel_size, module.stride)
        else:
            _refuse_options(name, module, divisor_override=[None])
            out = nn.AvgPool2d(module.kernel_size, module.stride)
    elif type(module) is T.Flatten:
        out = nn.Flatten(module.start_dim, module.end_dim)
    elif type(module) is T.Dropout:
        out = nn.Dropout(module.p)
    elif type(module) is T.Softmax:
        out = Softmax(module.dim)
    elif type(module) in (T.ReLU, T.Sigmoid, T.Tanh):
        out = getattr(nn, type(module).__name__)()
    elif type(module) in (T.BatchNorm1d, T.BatchNorm2d) or type(module).__name__ in _OWN_LAYERS:
        out = _batch_norm(module)
    else:
        return None
    for pname, p in module.named_parameters(recurse=False):
        setattr(out, pname, _tensor(p))
    return out


def _batch_norm(module):
    """tl.nn.BatchNorm1d/2d: the same eps, momentum, flags, dtype, running statistics and
    running-variance update (to_torch's BiasedVarBatchNorm: the biased one); a γ or β that
    is None stays None."""
    dtype = next(t.dtype for t in (module.running_var, module.weight, module.bias) if t is not None)
    cls = nn.BatchNorm2d if type(module).__name__.endswith("2d") else nn.BatchNorm1d
    out = cls(module.num_features, module.eps, module.momentum, module.affine,
              module.track_running_stats, dtype=str(dtype).replace("torch.", ""),
              running_var_correction=getattr(module, "running_var_correction", 1))
    for name, buffer in module.named_buffers(recurse=False):
        setattr(out, name, buffer.detach().cpu().numpy().copy())
    for name in ("weight", "bias"):
        if module.affine and getattr(module, name) is None:
            setattr(out, name, None)
    return out


def _tree(torch, module, name=""):
    """Sequential trees of known layers map one to one; None if anything else is inside."""
    if type(module) is torch.nn.Sequential:
        children = [_tree(torch, child, f"{name}.{k}" if name else k) for k, child in module.named_children()]
        return None if any(c is None for c in children) else nn.Sequential(*children)
    return _layer(torch, name or type(module).__name__, module)


def _unsupported_module(name, module):
    return TorchConversionError(f"from_torch: {name} is a torch.nn.{type(module).__name__}, "
                                f"which has no tl.nn counterpart; supported layers: {', '.join(LAYERS)}")


def _place(root, path, value):
    """Register `value` at the dotted `path` under `root`, making Containers on the way."""
    *parents, leaf = path.split(".")
    target = root
    for part in parents:
        if part not in target._modules:
            setattr(target, part, Container())
        target = target._modules[part]
    setattr(target, leaf, value)


def _arguments(value):
    """fx node arguments -> the same structure with Refs for nodes."""
    from torch.fx import Node
    if isinstance(value, Node):
        return Ref(value.name)
    if isinstance(value, (tuple, list)):
        return type(value)(_arguments(v) for v in value)
    if isinstance(value, dict):
        return {k: _arguments(v) for k, v in value.items()}
    return value


def _step(torch, node, root, modules, ops):
    """One fx node as a Step; `ops` is torch_ops (torch functions of an fx trace) or
    torch_aten (the ATen ops of an exported program)."""
    args, kwargs = _arguments(node.args), _arguments(dict(node.kwargs))
    if node.op == "call_module":
        module = modules[node.target]
        converted = _layer(torch, node.target, module)
        if converted is None:
            raise _unsupported_module(node.target, module)
        _place(root, node.target, converted)
        return Step(node.name, "module", node.target, args, kwargs, f"self.{node.target}")
    if node.op == "get_attr":
        value = root_attr = node.target
        return Step(node.name, "parameter", root_attr, (), {}, f"self.{value}")
    if node.op == "call_function":
        call = ops.function_for(node.target)
        source = ops.name_of(node.target)
    else:
        from . import torch_ops
        call = torch_ops.METHODS.get(node.target)
        source = f"Tensor.{node.target}"
    if call is None:
        raise TorchConversionError(f"from_torch: the op {source} (in {node.format_node()}) has "
                                   f"no tl counterpart here")
    return Step(node.name, "function", call, args, kwargs, source)


_OWN_LAYERS = ("BiasedVarBatchNorm1d", "BiasedVarBatchNorm2d")  # to_torch's, read as layers


def _tracer(torch):
    """torch.fx's tracer, with to_torch's BatchNorm subclasses kept whole like torch.nn's."""
    class Tracer(torch.fx.Tracer):
        def is_leaf_module(self, m, qualname):
            return type(m).__name__ in _OWN_LAYERS or super().is_leaf_module(m, qualname)
    return Tracer()


def _traced(torch, module):
    from . import torch_ops
    try:
        graph = _tracer(torch).trace(module)
    except Exception as err:  # fx's own errors name the Python construct it can't trace
        raise TorchConversionError(f"from_torch: torch.fx can't trace {type(module).__name__}'s "
                                   f"forward: {err}") from err
    return _replay(torch, module, graph, torch_ops)


def _replay(torch, module, graph, ops):
    """A Traced model running `graph` (whose tensors live in `module`) with tl ops."""
    modules = dict(module.named_modules())
    steps, inputs, output, root = [], [], None, Traced([], [], None)
    for node in graph.nodes:
        if node.op == "placeholder":
            inputs.append(node.name)
        elif node.op == "output":
            output = _arguments(node.args[0])
        elif node.users or node.op not in ("get_attr", "call_module"):  # unused: the exported
            steps.append(_step(torch, node, root, modules, ops))      # program's input guard
    for path in dict.fromkeys(s.call for s in steps if s.kind == "parameter"):  # read directly
        value = module.get_parameter(path) if path in dict(module.named_parameters()) else None
        if value is None:  # a buffer or a plain tensor attribute: a constant
            value = _attribute(module, path)
            _place(root, path, Tensor(value.detach().cpu().numpy().copy()))
        else:
            _place(root, path, _tensor(value))
    object.__setattr__(root, "steps", steps)
    object.__setattr__(root, "inputs", inputs)
    object.__setattr__(root, "output", output)
    return root


def _attribute(module, path):
    target = module
    for part in path.split("."):
        target = getattr(target, part)
    return target


def _check_same_output(torch, module, model, example_input, tolerance=None, switch=True):
    """Run both on the example (in eval mode, so dropout is off; an exported program's module
    can't switch (`switch=False`): its mode is the one it was exported in) and refuse a
    mismatch."""
    was_training = module.training
    if switch:
        module.eval()
    model.eval()
    try:
        with torch.no_grad():
            expected = module(example_input).detach().cpu().numpy()
        got = model(Tensor(example_input.detach().cpu().numpy().copy())).data
    finally:
        if switch:
            module.train(was_training)
        model.train(was_training)
    tolerance = tolerance or (1e-10 if expected.dtype == np.float64 else 1e-5)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=0, atol=tolerance * scale):
        raise TorchConversionError(
            f"from_torch: the converted model's output on the example differs from torch's "
            f"(shapes {got.shape} vs {expected.shape}, largest difference "
            f"{np.abs(got - expected).max() if got.shape == expected.shape else 'n/a'})")


def from_torch(module: Any, example_input: Any = None, optimizer: Any = None) -> Any:
    """The tl model (and, given a torch optimizer, `(model, tl_optimizer)`) for `module`;
    checked on `example_input`: both must give the same output (float64 1e-10, float32 1e-5,
    relative to the output's scale) or the conversion is refused."""
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch: expected a torch.nn.Module (or a torch.export "
                        f"ExportedProgram, alone), got {type(module).__name__}")
    model = _tree(torch, module)
    if model is None:
        model = _traced(torch, module)
    model.train(module.training)
    _check_same_output(torch, module, model, example_input)
    if optimizer is None:
        return model
    return model, _optimizer(module, model, optimizer)


def _owner(model, name):
    """(module, parameter name) for a dotted parameter name."""
    path, _, leaf = name.rpartition(".")
    owner = model
    for part in path.split(".") if path else ():
        owner = owner._modules[part]
    return owner, leaf


def weight_decay_as_l2(model: Module, names: list[str], weight_decay: float) -> None:
    """Coupled weight_decay wd (g ← g + wd·θ) as the loss term it is the gradient of:
    tl.nn.L2(wd/2), (wd/2)·Σθ², on each named parameter (biases too, as PyTorch decays them)."""
    for name in names:
        owner, leaf = _owner(model, name)
        owner.regularizers[leaf] = nn.L2(conventions.weight_decay_to_keras(weight_decay))


def _optimizer(module, model, optimizer):
    kind = type(optimizer).__name__
    if kind not in ("SGD", "Adam", "AdamW"):
        raise TorchConversionError(f"from_torch: {kind} is not supported (SGD, Adam, AdamW)")
    names = {id(p): name for name, p in module.named_parameters()}
    params = dict(model.named_parameters())
    groups = []
    for group in optimizer.param_groups:
        if group.get("maximize") or group.get("differentiable"):
            raise TorchConversionError(f"from_torch: {kind} with maximize or differentiable")
        hyper = {k: group[k] for k in _HYPER[kind]}
        wd = hyper.get("weight_decay", 0.0)
        if wd and kind != "AdamW":
            hyper["weight_decay"] = 0.0
            weight_decay_as_l2(model, [names[id(p)] for p in group["params"]], wd)
        elif wd:
            warnings.warn(f"from_torch: AdamW(weight_decay={wd}) is decoupled decay "
                          f"(θ ← θ − lr·wd·θ), not an L2 term: it stays AdamW's, so no penalty "
                          f"appears in the loss or its gradients", stacklevel=3)
        groups.append(dict(hyper, params=[params[names[id(p)]] for p in group["params"]]))
    out = getattr(optim, kind)(groups, lr=groups[0]["lr"])
    _copy_state(optimizer, out, params, names)
    return out


_HYPER = {"SGD": ("lr", "momentum", "dampening", "weight_decay", "nesterov"),
          "Adam": ("lr", "betas", "eps", "weight_decay", "amsgrad"),
          "AdamW": ("lr", "betas", "eps", "weight_decay", "amsgrad")}


def _copy_state(optimizer, out, params, names):
    for p, state in optimizer.state.items():
        copied = {key: value.detach().cpu().numpy().copy() for key, value in state.items()
                  if key != "step" and hasattr(value, "detach")}
        if "step" in state:
            copied["step"] = int(float(state["step"]))
        if copied:
            out.state[params[names[id(p)]]] = copied
