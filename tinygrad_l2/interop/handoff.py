"""`to_torch`: a tl model (and optimizer) as a torch.nn.Module (and torch.optim optimizer)
whose training is the same, step for step.

Where the L2 goes (`l2_as`):
  "penalty"       every regularizer becomes a term of `torch_model.regularization_loss()`,
                  written with the same formula: loss = data_loss + torch_model.regularization_loss().
  "weight_decay"  each parameter with a plain `tl.nn.L2(lam)` moves to a parameter group with
                  weight_decay = group's + 2·lam (PyTorch's coupled decay g ← g + wd·θ is the
                  gradient of (wd/2)·Σθ², so wd = 2·lam); needs SGD or Adam, never AdamW
                  (decoupled: no loss term equals it).  L1 and L1L2 stay in the penalty.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from .. import conventions, nn, optim
from ..nn.module import Module
from .layers import Chain, SamePaddedConv2d, Softmax, ToChannelsFirst, ToChannelsLast


def _torch():
    try:
        import torch
    except ImportError as err:
        raise ImportError(f"to_torch needs PyTorch: pip install 'tinygrad-l2[interop]' ({err})") from err
    return torch


def _parameter(torch, tensor):
    return torch.nn.Parameter(torch.from_numpy(np.array(tensor.data, copy=True)))


def _convolution(torch, module):
    from . import torch_modules
    same = isinstance(module, SamePaddedConv2d)
    (top, bottom), (left, right) = module.padding
    padding = module.padding_arg if isinstance(module.padding_arg, str) else (top, left)
    if not same and (top, left) != (bottom, right) and padding != "same":
        raise ValueError(f"to_torch: Conv2d with uneven padding {module.padding} has no torch.nn.Conv2d")
    cls = torch_modules.SamePaddedConv2d if same else torch.nn.Conv2d
    out = cls(module.in_channels, module.out_channels, module.kernel_size, module.stride,
              0 if same else padding, bias=module.bias is not None,
              dtype=getattr(torch, str(module.weight.dtype)))
    return out


def _batch_norm(torch, module):
    """torch.nn.BatchNorm1d/2d with the same options, buffers and γ/β (None where tl has none:
    Keras' center/scale=False); with running_var_correction=0 the torch_modules subclass that
    updates running_var with the biased variance, as tl (and Keras) do."""
    from . import torch_modules
    two_d = isinstance(module, nn.BatchNorm2d)
    if module.running_var_correction == 0:
        cls = torch_modules.BiasedVarBatchNorm2d if two_d else torch_modules.BiasedVarBatchNorm1d
    else:
        cls = torch.nn.BatchNorm2d if two_d else torch.nn.BatchNorm1d
    dtype = next((t.dtype for t in (module.running_var, module.weight, module.bias) if t is not None),
                 np.dtype(np.float32))
    out = cls(module.num_features, module.eps, module.momentum, module.affine,
              module.track_running_stats, dtype=getattr(torch, str(dtype)))
    with torch.no_grad():
        for name, buffer in module.named_buffers(recurse=False):
            getattr(out, name).copy_(torch.from_numpy(np.array(buffer.data, copy=True)))
    for name in ("weight", "bias"):
        if module.affine and getattr(module, name) is None:
            setattr(out, name, None)
    return out


def _leaf(torch, module):
    """The torch.nn counterpart of one tl layer (parameters copied by the caller)."""
    from . import torch_modules
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return _batch_norm(torch, module)
    if isinstance(module, nn.Linear):
        return torch.nn.Linear(module.in_features, module.out_features, bias=module.bias is not None,
                               dtype=getattr(torch, str(module.weight.dtype)))
    if isinstance(module, nn.Conv2d):
        return _convolution(torch, module)
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        cls = torch.nn.MaxPool2d if isinstance(module, nn.MaxPool2d) else torch.nn.AvgPool2d
        return cls(module.kernel_size, module.stride)
    simple = {nn.ReLU: torch.nn.ReLU, nn.Sigmoid: torch.nn.Sigmoid, nn.Tanh: torch.nn.Tanh}
    if type(module) in simple:
        return simple[type(module)]()
    if isinstance(module, nn.Flatten):
        return torch.nn.Flatten(module.start_dim, module.end_dim)
    if isinstance(module, nn.Dropout):
        return torch.nn.Dropout(module.p)
    if isinstance(module, Softmax):
        return torch.nn.Softmax(module.dim)
    if isinstance(module, (ToChannelsFirst, ToChannelsLast)):
        return torch_modules.Permute((0, 3, 1, 2) if isinstance(module, ToChannelsFirst) else (0, 2, 3, 1))
    return None


SUPPORTED = ("Sequential (and MLP)", "interop.Chain", "Linear", "Conv2d", "MaxPool2d",
             "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "ReLU", "Sigmoid", "Tanh", "Flatten",
             "Dropout", "Softmax", "ToChannelsFirst", "ToChannelsLast")


def _module(torch, module, path):
    """A tl module tree -> torch modules, the same names at every level."""
    from . import torch_modules
    if isinstance(module, (nn.Sequential, Chain)):
        children = OrderedDict((name, _module(torch, child, f"{path}.{name}" if path else name))
                               for name, child in module._modules.items())
        return torch_modules.Sequential(children)
    out = _leaf(torch, module)
    if out is None:
        raise TypeError(f"to_torch: {path or 'the model'} is a {type(module).__name__}, which has "
                        f"no torch counterpart here; supported: {', '.join(SUPPORTED)}")
    with torch.no_grad():
        for name, p in module._parameters.items():
            setattr(out, name, _parameter(torch, p))
    return out


def _regularizer_entry(name, regularizer):
    """A tl.nn regularizer as (kind, coefficients), or a clear refusal."""
    if type(regularizer) is nn.L2:
        return "L2", (regularizer.lam,)
    if type(regularizer) is nn.L1:
        return "L1", (regularizer.lam,)
    if type(regularizer) is nn.L1L2:
        return "L1L2", (regularizer.l1.lam, regularizer.l2.lam)
    raise TypeError(f"to_torch: the regularizer on {name} is a {type(regularizer).__name__}; "
                    f"only tl.nn.L1, L2 and L1L2 are carried (their formula is known)")


def penalties_of(model: Module) -> dict[str, tuple[str, tuple[float, ...]]]:
    """{parameter name: (kind, coefficients)} for every regularizer attached in the model."""
    found = {}
    for module_name, module in model.named_modules():
        for param_name, regularizer in module.__dict__.get("regularizers", {}).items():
            if regularizer is not None and getattr(module, param_name, None) is not None:
                full = f"{module_name}.{param_name}" if module_name else param_name
                found[full] = _regularizer_entry(full, regularizer)
    return found


def to_torch(model: Module, optimizer: optim.Optimizer | None = None,
             l2_as: str = "penalty") -> Any:
    """`torch_model` (or `(torch_model, torch_optimizer)` when an optimizer is given): the same
    layers, names, dtypes and weights; the regularizers as `l2_as` says (see the module's doc).
    Train it with `loss = data_loss + torch_model.regularization_loss()`."""
    torch = _torch()
    from . import torch_modules
    if l2_as not in ("penalty", "weight_decay"):
        raise ValueError(f"to_torch: l2_as must be 'penalty' or 'weight_decay', got {l2_as!r}")
    if l2_as == "weight_decay" and optimizer is None:
        raise ValueError("to_torch: l2_as='weight_decay' needs the optimizer whose groups get it")
    converted = _module(torch, model, "")
    if not isinstance(converted, torch_modules.Sequential):
        converted = torch_modules.Sequential(OrderedDict(layer=converted))
        prefix = "layer."
    else:
        prefix = ""
    penalties = {prefix + name: entry for name, entry in penalties_of(model).items()}
    converted.train(model.training)
    if optimizer is None:
        converted.penalties = penalties
        return converted
    torch_params = dict(converted.named_parameters())
    names = {id(p): prefix + name for name, p in model.named_parameters()}
    decayed = _decayed(optimizer, penalties, names) if l2_as == "weight_decay" else {}
    converted.penalties = {k: v for k, v in penalties.items() if k not in decayed}
    return converted, _optimizer(torch, optimizer, torch_params, names, decayed)


def _decayed(optimizer, penalties, names):
    """{name: lam} of the parameters whose plain L2 becomes weight_decay."""
    if isinstance(optimizer, optim.AdamW) or not isinstance(optimizer, (optim.SGD, optim.Adam)):
        raise ValueError(f"to_torch: l2_as='weight_decay' needs SGD or Adam (coupled decay, "
                         f"g ← g + wd·θ), not {type(optimizer).__name__}: AdamW's decoupled decay "
                         f"is no L2 term; keep l2_as='penalty'")
    in_optimizer = {names[id(p)] for group in optimizer.param_groups for p in group["params"]}
    return {name: coefficients[0] for name, (kind, coefficients) in penalties.items()
            if kind == "L2" and name in in_optimizer}


HYPER = {"SGD": ("lr", "momentum", "dampening", "weight_decay", "nesterov"),
         "Adam": ("lr", "betas", "eps", "weight_decay", "amsgrad"),
         "AdamW": ("lr", "betas", "eps", "weight_decay", "amsgrad")}


def _optimizer(torch, optimizer, torch_params, names, decayed):
    """The same optimizer class, hyper-parameters and state; a group split where its tensors'
    L2 coefficients differ (each part's weight_decay = the group's + 2·lam)."""
    kind = type(optimizer).__name__
    if kind not in HYPER:
        raise TypeError(f"to_torch: {kind} has no torch.optim counterpart here (SGD, Adam, AdamW)")
    groups = []
    for group in optimizer.param_groups:
        hyper = {key: group[key] for key in HYPER[kind]}
        parts = {}  # weight_decay -> the group's tensors that get it
        for p in group["params"]:
            lam = decayed.get(names[id(p)], 0.0)
            parts.setdefault(hyper["weight_decay"] + conventions.keras_to_weight_decay(lam), []).append(p)
        for wd, params in parts.items():
            groups.append(dict(hyper, weight_decay=wd, params=[torch_params[names[id(p)]] for p in params]))
    out = getattr(torch.optim, kind)(groups)
    _copy_state(torch, optimizer, out, torch_params, names)
    return out


def _copy_state(torch, optimizer, out, torch_params, names):
    """Momentum buffers and Adam's moments and step counts, so a run can continue in torch."""
    for p, state in optimizer.state.items():
        if not state:
            continue
        copied = {key: torch.from_numpy(np.array(value, copy=True))
                  for key, value in state.items() if isinstance(value, np.ndarray)}
        if "step" in state:
            copied["step"] = torch.tensor(float(state["step"]), dtype=torch.float32)
        out.state[torch_params[names[id(p)]]] = copied
