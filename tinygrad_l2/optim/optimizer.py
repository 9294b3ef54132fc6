"""Optimizer: parameter groups, per-parameter state, zero_grad and state dicts (PyTorch-shaped)."""
from __future__ import annotations

import functools
import math
import numbers
import warnings
from typing import Any, Callable, Iterable

import numpy as np

from .. import context, memory
from ..nn.module import forgotten_penalties
from ..tensor import Tensor


class Optimizer:
    """Holds `param_groups` (dicts with "params" and hyper-parameters) and `state` (per
    parameter).  Subclasses implement `step()`, which updates `p.data` in place for every
    parameter whose `.grad` is not None (a parameter without a gradient is skipped)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Each subclass's own step() is told to a tracing tl.compile (see `_told_step`)."""
        super().__init_subclass__(**kwargs)
        step = cls.__dict__.get("step")
        if step is not None:
            setattr(cls, "step", _told_step(step, library=cls.__module__.partition(".")[0] == "tinygrad_l2"))

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], defaults: dict[str, Any]) -> None:
        self.defaults = dict(defaults)
        _refuse_a_module_or_a_tensor(type(self).__name__, params)
        given: list[Any] = list(params)
        if not given:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = given if isinstance(given[0], dict) else [{"params": given}]
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: dict[str, Any]) -> None:
        group = dict(group)
        params = group["params"]
        group["params"] = [params] if isinstance(params, Tensor) else list(params)
        for p in group["params"]:
            if not isinstance(p, Tensor):
                raise TypeError(f"{type(self).__name__}: parameters must be Tensors, got "
                                f"{type(p).__name__}")
            if not p.is_leaf:  # a frozen leaf (requires_grad=False) is kept and skipped (PyTorch)
                raise ValueError(f"{type(self).__name__}: can't optimize a non-leaf tensor (shape "
                                 f"{p.shape}): it is computed from others, not a parameter")
        _refuse_duplicates(type(self).__name__, group["params"], self.param_groups)
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._validate(group)
        self.param_groups.append(group)

    def _validate(self, group):
        """PyTorch's checks and messages, plus: every number finite, betas a pair.  Numbers are
        kept as Python floats: a numpy float64 (from np.logspace, say) would make the updates of
        a float32 model compute in float64 (numpy scalars are not weak)."""
        names = {"lr": "learning rate", "eps": "epsilon value"}
        for key in ("lr", "momentum", "weight_decay", "eps", "dampening"):
            if key not in group:
                continue
            value = group[key]
            if not isinstance(value, numbers.Real) or isinstance(value, bool) or not (
                    math.isfinite(value) and value >= 0):
                raise ValueError(f"{type(self).__name__}: Invalid {names.get(key, key + ' value')}: "
                                 f"{value!r} (expected a finite number >= 0)")
            group[key] = float(value)
        if "betas" in group:
            betas = group["betas"]
            if not isinstance(betas, (tuple, list)) or len(betas) != 2:
                raise ValueError(f"{type(self).__name__}: betas must be a pair (beta1, beta2), "
                                 f"got {betas!r}")
            for i, beta in enumerate(betas):
                if not isinstance(beta, numbers.Real) or not 0.0 <= beta < 1.0:
                    raise ValueError(f"{type(self).__name__}: Invalid beta parameter at index "
                                     f"{i}: {beta!r} (expected 0 <= beta < 1)")
            group["betas"] = tuple(float(beta) for beta in betas)

    def _scratch(self, p):
        """A reusable work array shaped like p (not optimizer state: never saved): updates
        that need lr·g write it there instead of allocating a new array each step."""
        buffers = self.__dict__.setdefault("_buffers", {})
        buffer = buffers.get(id(p))
        if buffer is None or buffer.shape != p.shape or buffer.dtype != p.dtype:
            buffer = buffers[id(p)] = np.empty_like(p.data)
        return buffer

    def _record(self, *event):
        """Tell a tracing `tl.compile` about this call (one attribute check otherwise)."""
        context.record(*event)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: None (PyTorch >= 2.0 default) or zeros."""
        self._record("zero_grad", self, set_to_none)
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p._grad = None  # (not the .grad setter: no check is needed to clear it)
                elif p._grad is not None:
                    p._grad = np.zeros_like(p._grad)

    def _params_with_grad(self):
        if not self.__dict__.get("_penalties_checked"):
            self._check_penalties()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    if p.grad.shape != p.shape:
                        raise ValueError(f"{type(self).__name__}: grad of shape {p.grad.shape} "
                                         f"for a parameter of shape {p.shape}")
                    yield group, p, p.grad

    def _check_penalties(self):
        """Warn once if a parameter with an attached regularizer is stepped although its penalty
        was never in a loss: `+ model.regularization_loss()` forgotten, so the model would train
        without L2 in silence.  Checked until a step has gradients, then never again."""
        stepped = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not stepped:
            return
        self._penalties_checked = True
        forgotten = forgotten_penalties(stepped)
        if forgotten:
            warnings.warn(f"{type(self).__name__}.step(): the regularizer on {', '.join(forgotten)} "
                          f"never entered the loss, so the model trains without its penalty. Add "
                          f"it before backward(): loss = data_loss + model.regularization_loss()",
                          UserWarning, stacklevel=context.user_stacklevel())

    @staticmethod
    def _data_to_update(p):
        """p's array, to be updated in place.  While a pending graph holds its memory (through
        this array or any view of it) for a backward, p gets a copy instead, so that graph
        stays right; so does an array the user made read-only."""
        if not p.data.flags.writeable or memory.is_held(p.data):
            p.data = p.data.copy()
        return p.data

    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}."""
        index: dict[Tensor, int] = {}
        groups = []
        for group in self.param_groups:
            saved = {k: v for k, v in group.items() if k != "params"}
            saved["params"] = [index.setdefault(p, len(index)) for p in group["params"]]
            groups.append(saved)
        state = {index[p]: _copy(s) for p, s in self.state.items() if p in index}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups) or any(
                len(g["params"]) != len(mine["params"]) for g, mine in zip(groups, self.param_groups)):
            raise ValueError(f"{type(self).__name__}.load_state_dict: the saved parameter groups "
                             f"do not match this optimizer's")
        by_index: dict[int, Tensor] = {}
        for saved, mine in zip(groups, self.param_groups):
            by_index.update(zip(saved["params"], mine["params"]))
        for saved, mine in zip(groups, self.param_groups):
            mine.update({k: v for k, v in saved.items() if k != "params"})
        self.state = {by_index[i]: _copy(s) for i, s in state_dict["state"].items()}


def _refuse_a_module_or_a_tensor(owner, params):
    """`SGD(model)` or `SGD(w)`: say what to pass instead of failing on iteration."""
    if callable(getattr(params, "parameters", None)):
        raise TypeError(f"{owner}: got the module {type(params).__name__} itself; pass its "
                        f"parameters: {owner}(model.parameters(), ...)")
    if isinstance(params, Tensor):
        raise TypeError(f"{owner}: params must be an iterable of Tensors or of parameter-group "
                        f"dicts, got a single Tensor of shape {params.shape}; pass [tensor]")


def _refuse_duplicates(owner, params, groups):
    """A parameter listed twice would be stepped twice per step(): refused (PyTorch refuses
    across groups and warns within one that this will become an error)."""
    seen = set()
    for p in params:
        if id(p) in seen:
            raise ValueError(f"{owner}: a parameter group lists the same parameter twice (shape "
                             f"{p.shape}); it would be updated twice per step")
        seen.add(id(p))
    if any(id(p) in seen for group in groups for p in group["params"]):
        raise ValueError(f"{owner}: some parameters appear in more than one parameter group")


def _copy(state):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in state.items()}


def _told_step(step: Any, library: bool) -> Callable[..., Any]:
    """A class's step() as a tracing tl.compile sees it: its outermost call is one event,
    ("step", optimizer, args, kwargs), recorded before it writes (an optimizer stepping
    another inside its own step(), Lookahead, is one step), and its end re-watches the
    parameters' arrays (context.stepped).  `library_step`: the step is this package's own, so
    tl.compile may write its update in."""
    bound = not isinstance(step, staticmethod | classmethod)
    function = step.__func__ if not bound else step

    @functools.wraps(function)
    def told(self: Any, *args: Any, **kwargs: Any) -> Any:
        outermost = context.step_begins(self, args, kwargs)
        try:
            if bound:
                return function(self, *args, **kwargs)
            owner = (type(self),) if isinstance(step, classmethod) else ()
            return function(*owner, *args, **kwargs)
        finally:
            context.step_ends(outermost)
    told.library_step = library  # type: ignore[attr-defined]
    return told
