"""Module: parameters, buffers, sub-modules, regularization_loss and state dicts (PyTorch-shaped)."""
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
    normalization = False  # True for BatchNorm/LayerNorm: their γ, β are not kernels (no decay)
    _parameters: OrderedDict[str, Tensor]
    _modules: OrderedDict[str, Module]
    _buffers: OrderedDict[str, Tensor | None]
    regularizers: dict[str, Any]

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            object.__setattr__(self, "_parameters", OrderedDict())
            object.__setattr__(self, "_modules", OrderedDict())
            object.__setattr__(self, "_buffers", OrderedDict())
            object.__setattr__(self, "regularizers", {})
        if name in self._buffers:  # a buffer stays a buffer (a Tensor without grad, or None)
            self._buffers[name] = _as_buffer(type(self).__name__, name, value)
            object.__setattr__(self, name, self._buffers[name])
            return
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

    def register_buffer(self, name: str, tensor: Tensor | np.ndarray | None) -> None:
        """Register state that is not a parameter (no gradient, not optimized) but belongs in
        the state dict, as PyTorch's running_mean/running_var: `self.name` reads it; assigning
        `self.name = ...` replaces it and it stays a buffer.  None: registered but not saved."""
        if not isinstance(name, str) or not name or "." in name:
            raise ValueError(f"register_buffer: name must be a non-empty string without '.', "
                             f"got {name!r}")
        if name in self.__dict__ and name not in self.__dict__.get("_buffers", {}):
            raise KeyError(f"register_buffer: attribute {name!r} already exists on "
                           f"{type(self).__name__}")
        buffer = _as_buffer(type(self).__name__, name, tensor)
        self.__setattr__(name, None)  # creates the registries on a bare Module
        self._buffers[name] = buffer
        object.__setattr__(self, name, buffer)

    def named_buffers(self, prefix: str = "", recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        """(dotted_name, buffer) pairs, e.g. ("1.running_mean", tensor); None buffers skipped."""
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, b in module.__dict__.get("_buffers", {}).items():
                if b is not None:
                    yield (f"{module_name}.{name}" if module_name else name), b

    def buffers(self) -> list[Tensor]:
        return [b for _, b in self.named_buffers()]

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
        modules = [m for _, m in self.named_modules()]  # (a tracing tl.compile replays it, and
        context.record("mode", self, bool(mode), [(m, m.training) for m in modules])  # keys on
        for module in modules:                          # the modes the step was entered in)
            module.training = bool(mode)
        return self

    def eval(self) -> Self:
        """Evaluation mode (Dropout is the identity): `train(False)`; returns self."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Set every parameter's gradient to None (PyTorch >= 2.0's default)."""
        context.record("zero_grad", self, True)  # a tracing tl.compile replays it
        for p in self.parameters():
            p.grad = None

    # ---- calling ---------------------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if context.state.recorder is not None:  # tl.compile guards its `training` flags
            context.observe("module", self)
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
    def _named_state(self):
        """(dotted_name, Tensor) of every parameter and buffer, in PyTorch's state-dict order:
        module by module, its parameters then its buffers."""
        seen = set()
        for module_name, module in self.named_modules():
            for name, p in module.named_parameters(module_name, recurse=False):
                if id(p) not in seen:
                    seen.add(id(p))
                    yield name, p
            yield from module.named_buffers(module_name, recurse=False)

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """{dotted_name: a copy of the array} for every parameter and buffer (running
        statistics), in PyTorch's order and with PyTorch's names.  (Inside a step tl.compile
        traces, a checkpoint taken each call: the step then runs eagerly.)"""
        context.record_unreplayable("state_dict() (a checkpoint of this call's values)")
        return OrderedDict((name, t.data.copy()) for name, t in self._named_state())

    def load_state_dict(self, state_dict: Mapping[str, npt.ArrayLike]) -> None:
        """Copy arrays into the parameters and buffers (each keeps its dtype: an integer count
        stays an integer); validates everything first, so an error leaves the model unchanged."""
        params = OrderedDict(self._named_state())
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


def _as_buffer(owner, name, value):
    """A buffer is a Tensor that needs no gradient (arrays are wrapped), or None."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        return Tensor(value, dtype=value.dtype)  # an integer count stays an integer
    if not isinstance(value, Tensor) or value.requires_grad:
        raise TypeError(f"{owner}.{name}: a buffer must be a Tensor without requires_grad, a "
                        f"numpy array or None, got {type(value).__name__}"
                        + (" requiring grad" if isinstance(value, Tensor) else ""))
    return value


def weights_and_biases(module: Module) -> tuple[list[Tensor], list[Tensor]]:
    """([weights], [biases]) of a module tree: the parameters a layer calls `weight` (the
    kernels, which L2 and weight decay are meant for) and those it calls `bias`; any other
    parameter, and every parameter of a normalization layer (its γ is called `weight` too), is
    in neither list.  For parameter groups such as
    `[{"params": weights, "weight_decay": 1e-2}, {"params": biases, "weight_decay": 0}]`
    (`tl.optim.param_groups(model, 1e-2)` builds these, γ and β with the biases)."""
    weights, biases = [], []
    normalizing = {id(p) for _, m in module.named_modules() if m.normalization for p in m.parameters()}
    for name, p in module.named_parameters():
        leaf = name.rpartition(".")[2]
        if id(p) in normalizing:
            continue
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
    for o in outputs:  # an input returned as it is (eval-mode Dropout) made no op: its node
        # would hold itself through the weak dictionary's value, and its graph would never die
        if isinstance(o, Tensor) and o._ctx is not None and not any(o is a for a in args):
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
