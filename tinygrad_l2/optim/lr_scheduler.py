"""Learning-rate schedules (PyTorch's torch.optim.lr_scheduler): each `step()` sets every
parameter group's "lr" from its "initial_lr" and the epoch count.

Every schedule resumes: `state_dict()` is what PyTorch's holds (the scheduler's attributes but
the optimizer; LambdaLR leaves its functions out, as PyTorch), and after
`optimizer.load_state_dict(...)` and `scheduler.load_state_dict(...)` the run continues as if
it had never stopped.  `tl.save({"model": ..., "optimizer": ..., "scheduler": ...}, path)`
writes all three to one file.
"""
from __future__ import annotations

import bisect
import math
import numbers
from typing import Any, Callable, Sequence

from .. import context
from .one_cycle import OneCycleLR
from .optimizer import Optimizer
from .scheduler_base import LRScheduler, _copy, _positive

__all__ = ["LRScheduler", "StepLR", "MultiStepLR", "ExponentialLR", "LinearLR", "CosineAnnealingLR",
           "LambdaLR", "SequentialLR", "ReduceLROnPlateau", "OneCycleLR"]


class StepLR(LRScheduler):
    """lr = initial_lr · gamma^⌊epoch / step_size⌋."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = _positive("StepLR", "step_size", step_size, integer=True)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_at(self, base: float, epoch: int) -> float:
        return base * self.gamma ** (epoch // self.step_size)


class MultiStepLR(LRScheduler):
    """lr = initial_lr · gamma^(number of milestones ≤ epoch); a milestone listed twice counts
    twice, as PyTorch's Counter does."""

    def __init__(self, optimizer: Optimizer, milestones: Sequence[int], gamma: float = 0.1) -> None:
        milestones = list(milestones)
        if not all(isinstance(m, int) and not isinstance(m, bool) and m >= 0 for m in milestones):
            raise ValueError(f"MultiStepLR: milestones must be integers >= 0, got {milestones!r}")
        self.milestones, self.gamma = sorted(milestones), float(gamma)
        super().__init__(optimizer)

    def lr_at(self, base: float, epoch: int) -> float:
        return base * self.gamma ** bisect.bisect_right(self.milestones, epoch)


class ExponentialLR(LRScheduler):
    """lr = initial_lr · gamma^epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_at(self, base: float, epoch: int) -> float:
        return base * self.gamma ** epoch


class LinearLR(LRScheduler):
    """lr = initial_lr · (start_factor + (end_factor − start_factor)·min(epoch, total_iters) /
    total_iters): a linear warm-up (or decay), then constant."""

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5) -> None:
        if not (0 < start_factor <= 1 and 0 <= end_factor <= 1):
            raise ValueError(f"LinearLR: start_factor must be in (0, 1] and end_factor in [0, 1], "
                             f"got {start_factor!r} and {end_factor!r}")
        self.start_factor, self.end_factor = float(start_factor), float(end_factor)
        self.total_iters = _positive("LinearLR", "total_iters", total_iters, integer=True)
        super().__init__(optimizer)

    def lr_at(self, base: float, epoch: int) -> float:
        progress = min(epoch, self.total_iters) / self.total_iters
        return base * (self.start_factor + (self.end_factor - self.start_factor) * progress)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (initial_lr − eta_min)·(1 + cos(π·epoch / T_max))/2 (SGDR without
    restarts; PyTorch's closed form, periodic beyond T_max)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = _positive("CosineAnnealingLR", "T_max", T_max, integer=True)
        self.eta_min = float(eta_min)
        super().__init__(optimizer)

    def lr_at(self, base: float, epoch: int) -> float:
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2


class LambdaLR(LRScheduler):
    """lr = initial_lr · lr_lambda(epoch), one function for all groups or one per group.  The
    functions are not in the state dict (PyTorch leaves them out too): pass the same ones to
    the scheduler you resume into."""

    _not_saved = ("optimizer", "lr_lambdas")

    def __init__(self, optimizer: Optimizer, lr_lambda: Callable[[int], float] | Sequence[Callable[[int], float]]) -> None:
        count = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 1
        lambdas = list(lr_lambda) if isinstance(lr_lambda, (list, tuple)) else [lr_lambda] * count
        if len(lambdas) != count or not all(callable(f) for f in lambdas):
            raise ValueError(f"LambdaLR: expected a function or a list of {count} functions (one "
                             f"per parameter group), got {lr_lambda!r}")
        self.lr_lambdas = lambdas
        super().__init__(optimizer)

    def _apply(self):
        for group, base, factor in zip(self.optimizer.param_groups, self.base_lrs, self.lr_lambdas):
            group["lr"] = base * factor(self.last_epoch)


class SequentialLR(LRScheduler):
    """One schedule after another: `schedulers[i]` runs from `milestones[i-1]` (restarted at its
    epoch 0 there) until `milestones[i]`, PyTorch's semantics; e.g. a LinearLR warm-up then
    CosineAnnealingLR.  Its state dict holds each schedule's."""

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler], milestones: Sequence[int]) -> None:
        schedulers, milestones = list(schedulers), list(milestones)
        if not schedulers or len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR: expected one milestone fewer than schedulers, got "
                             f"{len(schedulers)} schedulers and milestones {milestones!r}")
        if milestones != sorted(milestones) or not all(isinstance(m, int) and m > 0 for m in milestones):
            raise ValueError(f"SequentialLR: milestones must be increasing positive integers, got {milestones!r}")
        for i, scheduler in enumerate(schedulers):
            if not isinstance(scheduler, LRScheduler) or isinstance(scheduler, (SequentialLR, ReduceLROnPlateau)):
                raise TypeError(f"SequentialLR: scheduler {i} is a {type(scheduler).__name__}, expected "
                                f"an epoch schedule (StepLR, LinearLR, CosineAnnealingLR, ...)")
            if scheduler.optimizer is not optimizer:
                raise ValueError(f"SequentialLR: scheduler {i} belongs to another optimizer")
        self.optimizer, self._schedulers, self._milestones = optimizer, schedulers, milestones
        self.last_epoch = 0
        for group in optimizer.param_groups:  # undo the constructors' steps, as PyTorch
            group["lr"] = group["initial_lr"]
        for scheduler in schedulers:
            scheduler.last_epoch -= 1
        schedulers[0]._advance()

    def _advance(self):
        self.last_epoch += 1
        index = bisect.bisect_right(self._milestones, self.last_epoch)
        scheduler = self._schedulers[index]
        if index > 0 and self._milestones[index - 1] == self.last_epoch:
            scheduler.last_epoch = 0  # PyTorch's scheduler.step(0): restart at epoch 0
            scheduler._apply()
        else:
            scheduler._advance()

    def state_dict(self) -> dict[str, Any]:
        return {"last_epoch": self.last_epoch, "_milestones": list(self._milestones),
                "_schedulers": [s.state_dict() for s in self._schedulers]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        states = state_dict.get("_schedulers") if hasattr(state_dict, "get") else None
        if (set(state_dict) != {"last_epoch", "_milestones", "_schedulers"} or not isinstance(states, list)
                or len(states) != len(self._schedulers)):
            raise ValueError(f"SequentialLR.load_state_dict: expected last_epoch, _milestones and "
                             f"the states of {len(self._schedulers)} schedulers")
        before = [scheduler.state_dict() for scheduler in self._schedulers]
        try:
            for scheduler, state in zip(self._schedulers, states):
                scheduler.load_state_dict(state)
        except BaseException:  # a later schedule's state did not fit: none changes
            for scheduler, state in zip(self._schedulers, before):
                scheduler.load_state_dict(state)
            raise
        self.last_epoch, self._milestones = state_dict["last_epoch"], list(state_dict["_milestones"])


class ReduceLROnPlateau(LRScheduler):
    """Multiply each group's lr by `factor` (not below min_lr) once the metric passed to
    `step(metric)` has not improved for more than `patience` calls; then wait `cooldown`
    calls.  Improvement (PyTorch's rule): mode "min" and threshold_mode "rel": metric <
    best·(1 − threshold); "abs": metric < best − threshold; mode "max" mirrors it.  A change
    smaller than eps is skipped."""

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | Sequence[float] = 0.0, eps: float = 1e-8) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"ReduceLROnPlateau: expected an Optimizer, got {type(optimizer).__name__}")
        if not (isinstance(factor, numbers.Real) and 0 <= factor < 1):
            raise ValueError(f"ReduceLROnPlateau: factor should be < 1.0 (and >= 0), got {factor!r}")
        if mode not in ("min", "max") or threshold_mode not in ("rel", "abs"):
            raise ValueError(f"ReduceLROnPlateau: mode must be 'min' or 'max' and threshold_mode "
                             f"'rel' or 'abs', got {mode!r} and {threshold_mode!r}")
        count = len(optimizer.param_groups)
        min_lrs = list(min_lr) if isinstance(min_lr, (list, tuple)) else [min_lr] * count
        if len(min_lrs) != count:
            raise ValueError(f"ReduceLROnPlateau: expected {count} min_lrs, got {len(min_lrs)}")
        self.optimizer = optimizer
        self.min_lrs: list[float] = [float(m) for m in min_lrs]
        self.mode: str = mode
        self.factor: float = float(factor)
        self.patience: int = patience
        self.threshold: float = float(threshold)
        self.threshold_mode: str = threshold_mode
        self.cooldown: int = cooldown
        self.eps: float = float(eps)
        self.last_epoch = 0
        self.cooldown_counter: int = 0
        self.num_bad_epochs: int = 0
        self.best: float = math.inf if mode == "min" else -math.inf

    def step(self, metrics: float) -> None:  # type: ignore[override]
        """One epoch with this metric (a loss for mode "min")."""
        context.record_unreplayable("ReduceLROnPlateau.step(metric)")  # the metric is data
        current = float(metrics)
        self.last_epoch += 1
        if self._is_better(current):
            self.best, self.num_bad_epochs = current, 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                new_lr = max(float(group["lr"]) * self.factor, min_lr)
                if float(group["lr"]) - new_lr > self.eps:
                    group["lr"] = new_lr
            self.cooldown_counter, self.num_bad_epochs = self.cooldown, 0

    def _is_better(self, current):
        sign = 1 if self.mode == "min" else -1
        if self.threshold_mode == "rel":
            return sign * current < sign * self.best * (1 - sign * self.threshold)
        return sign * current < sign * self.best - self.threshold
