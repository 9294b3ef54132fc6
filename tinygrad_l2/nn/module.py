"""Module: parameters, sub-modules, regularization_loss and state dicts (PyTorch-shaped)."""
from __future__ import annotations

import functools
import operator
import os
import weakref
from typing import TYPE_CHECKING, Any, Iterator, Mapping
from collections import OrderedDict

import numpy as np
import numpy.typing as npt

from .. import context, serialization
from ..tensor import Tensor
from . import regularizers as _regularizers

if TYPE_CHECKING:
    from typing_extensions import Self


class Module:
    """Base of every layer.  Assigning a Tensor that requires grad registers a parameter;
    assigning a Module registers a sub-module; both in assignment order.

    A subclass sets `self.regularizers = {param_name: callable}` (see `Linear`) to add penalty
    terms: `regularization_loss()` sums `reg(param)` over the whole tree, as a graph node.
    """

    training = True  # until train()/eval() say otherwise
    _parameters: OrderedDict[str, Tensor]
    _modules: OrderedDict[str, Module]
    regularizers: dict[str, Any]

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            object.__setattr__(self, "_parameters", OrderedDict())
            object.__setattr__(self, "_modules", OrderedDict())
            object.__setattr__(self, "regularizers", {})
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, (list, tuple)) and any(isinstance(v, Module) for v in value):
            raise TypeError(f"{type(self).__name__}.{name}: a {type(value).__name__} of Modules "
                            f"would not be registered (their parameters and regularizers would "
                            f"be missed); use tl.nn.ModuleList([...]) or tl.nn.Sequential(...)")
        if isinstance(value, Tensor) and value.requires_grad:
            self._parameters[name] = value
            _owners.setdefault(value, []).append((weakref.ref(self), name))
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __init__(self) -> None:
        self.__setattr__("training", True)

    # ---- structure -------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted_name, module) for this module ("" or `prefix`) and every descendant."""
        yield prefix, self
        for name, child in self.__dict__.get("_modules", {}).items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def children(self) -> list[Module]:
        return list(self.__dict__.get("_modules", {}).values())

    def named_parameters(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted_name, parameter) pairs in registration order, e.g. ("0.weight", W); with
        recurse=False, this module's own parameters only."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, p in module.__dict__.get("_parameters", {}).items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def train(self, mode: bool = True) -> Self:
        """Training mode (Dropout active) for this module and every descendant; returns self."""
        for _, module in self.named_modules():
            module.training = bool(mode)
        return self

    def eval(self) -> Self:
        """Evaluation mode (Dropout is the identity): `train(False)`; returns self."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Set every parameter's gradient to None (PyTorch >= 2.0's default)."""
        if context.state.recorder is not None:  # tl.compile is tracing a step
            context.state.recorder.append(("zero_grad", self, True))
        for p in self.parameters():
            p.grad = None

    # ---- calling ---------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.forward(*args, **kwargs)
        if context.state.grad_enabled:
            _record_call(self, args, out)
        return out

    # ---- regularization --------------------------------------------------------------------
    def named_penalties(self) -> Iterator[tuple[str, Tensor]]:
        """(name, penalty Tensor) for each attached regularizer, e.g. ("0.weight", 0.01·ΣW²)."""
        for module_name, module in self.named_modules():
            for param_name, regularizer in module.__dict__.get("regularizers", {}).items():
                if regularizer is None:
                    continue
                if not callable(regularizer):
                    raise TypeError(f"{type(module).__name__}.regularizers[{param_name!r}] is "
                                    f"{regularizer!r}, not a callable W -> scalar Tensor (such "
                                    f"as tl.nn.L2(0.01))")
                param = getattr(module, param_name)
                if param is None:
                    continue
                full = f"{module_name}.{param_name}" if module_name else param_name
                penalty = _regularizers._in_graph(param, regularizer(param))
                if penalty.name is None:  # named for pictures: "0.weight penalty"
                    penalty.name = f"{full} penalty"
                yield full, penalty

    def regularization_loss(self) -> Tensor:
        """Σ of every attached regularizer's penalty: an ordinary graph node (0 if none)."""
        penalties = [penalty for _, penalty in self.named_penalties()]
        if not penalties:
            dtype = next((p.dtype for p in self.parameters()), np.dtype(np.float32))
            return Tensor(np.zeros((), dtype=dtype))
        return functools.reduce(operator.add, penalties)

    # ---- state -----------------------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """{dotted_name: a copy of the parameter's array}."""
        return OrderedDict((name, p.data.copy()) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict: Mapping[str, npt.ArrayLike]) -> None:
        """Copy arrays into the parameters; validates everything first, so an error leaves the
        model unchanged."""
        params = OrderedDict(self.named_parameters())
        missing = [k for k in params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in params]
        problems = []
        if missing:
            problems.append(f"missing entries {missing}")
        if unexpected:
            problems.append(f"unexpected entries {unexpected}")
        arrays = {}
        for name, p in params.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            value = np.asarray(value.data if isinstance(value, Tensor) else value)
            if value.shape != p.shape:
                problems.append(f"{name!r} has shape {value.shape}, the model's is {p.shape}")
            elif value.dtype.kind not in "fiu":
                problems.append(f"{name!r} has dtype {value.dtype}, expected a float array")
            arrays[name] = value
        if problems:
            raise ValueError(f"load_state_dict: {type(self).__name__}: " + "; ".join(problems))
        for name, value in arrays.items():
            params[name].data = value.astype(params[name].dtype, copy=True)

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the state dict to `path` (.npz, no pickle)."""
        return serialization.save(self.state_dict(), path)

    def load(self, path: str | os.PathLike[str]) -> Self:
        """Load a state dict written by `save` (never unpickles)."""
        self.load_state_dict(serialization.load(path))
        return self

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): {child!r}".replace("\n", "\n  ") for name, child in self.__dict__.get("_modules", {}).items()]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


def weights_and_biases(module: Module) -> tuple[list[Tensor], list[Tensor]]:
    """([weights], [biases]) of a module tree: the parameters a layer calls `weight` (the
    kernels, which L2 and weight decay are meant for) and those it calls `bias`; any other
    parameter is in neither list.  For parameter groups such as
    `[{"params": weights, "weight_decay": 1e-2}, {"params": biases, "weight_decay": 0}]`."""
    weights, biases = [], []
    for name, p in module.named_parameters():
        leaf = name.rpartition(".")[2]
        if leaf == "weight":
            weights.append(p)
        elif leaf == "bias":
            biases.append(p)
    return weights, biases


# ---- the penalty nobody added: which parameters have a regularizer whose penalty was forgotten ----

_owners = _regularizers.TensorMap()  # parameter -> [(module ref, its name there)]


def forgotten_penalties(params: list[Tensor]) -> list[str] | None:
    """For `params` (about to be stepped): "Linear.weight (L2(0.01))" for each one whose attached
    regularizer's penalty was never part of a graph (`+ model.regularization_loss()` left out);
    None if none of them has a regularizer (nothing to check)."""
    attached = [(p, module, name) for p in params for ref, name in _owners.get(p, ())
                if (module := ref()) is not None
                and module.__dict__.get("regularizers", {}).get(name) is not None]
    if not attached:
        return None
    described = [f"{type(module).__name__}.{name} ({module.regularizers[name]!r})"
                 for p, module, name in attached if p not in _regularizers.penalized]
    counts = {d: described.count(d) for d in described}  # "Linear.weight (L2(0.01)) ×2"
    return [d + (f" ×{n}" if n > 1 else "") for d, n in counts.items()]


# ---- what drawing needs: which module call made which part of the graph ----------------------

_calls: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # an output's op node -> [(module, its inputs' nodes)]


def _record_call(module, args, out):
    """Remember, for each tensor a module call returns, the module and the call's inputs, so
    that a picture can group the ops the call made (see `module_calls`).  One dictionary entry
    per call, dropped with the graph; nothing on tensors or nodes."""
    outputs = out if isinstance(out, (tuple, list)) else (out,)
    inputs = None
    for o in outputs:
        if isinstance(o, Tensor) and o._ctx is not None:
            if inputs is None:
                inputs = tuple(a._node() for a in args if isinstance(a, Tensor))
            _calls.setdefault(o._ctx, []).append((module, inputs))  # inner calls first


def module_calls(nodes):
    """[(module, output node, input nodes)] for the recorded module calls whose output is
    one of `nodes` (a graph's nodes), in the order of `nodes`."""
    calls = []
    for node in nodes:
        for module, inputs in (_calls.get(node, ()) if not node.is_leaf else ()):
            calls.append((module, node, inputs))
    return calls
