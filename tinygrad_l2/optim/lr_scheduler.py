"""Learning-rate schedules (PyTorch's torch.optim.lr_scheduler): each `step()` sets every
parameter group's "lr" from its "initial_lr" and the epoch count."""
from __future__ import annotations

import math

from .optimizer import Optimizer


class LRScheduler:
    """Base: remembers each group's initial lr, counts `step()` calls (last_epoch, starting at
    0 as PyTorch's constructor leaves it) and writes `lr_at(base, epoch)`, which each schedule
    defines, into the groups."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected an Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._apply()

    def step(self) -> None:
        """Advance one epoch and update every group's learning rate."""
        self.optimizer._record("schedule", self)  # a tracing tl.compile replays it
        self.last_epoch += 1
        self._apply()

    def _apply(self):
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.last_epoch)

    def get_last_lr(self) -> list[float]:
        """The learning rate of each group, as last set."""
        return [group["lr"] for group in self.optimizer.param_groups]


def _positive(owner, name, value, integer=False):
    kind = int if integer else (int, float)
    if not isinstance(value, kind) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{owner}: {name} must be a positive {'integer' if integer else 'number'}, "
                         f"got {value!r}")
    return value


class StepLR(LRScheduler):
    """lr = initial_lr · gamma^⌊epoch / step_size⌋."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = _positive("StepLR", "step_size", step_size, integer=True)
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_at(self, base: float, epoch: int) -> float:
        return base * self.gamma ** (epoch // self.step_size)


class ExponentialLR(LRScheduler):
    """lr = initial_lr · gamma^epoch."""

    def __init__(self, optimizer: Optimizer, gamma: float) -> None:
        self.gamma = float(gamma)
        super().__init__(optimizer)

    def lr_at(self, base: float, epoch: int) -> float:
        return base * self.gamma ** epoch


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (initial_lr − eta_min)·(1 + cos(π·epoch / T_max))/2 (SGDR without
    restarts; PyTorch's closed form, periodic beyond T_max)."""

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = _positive("CosineAnnealingLR", "T_max", T_max, integer=True)
        self.eta_min = float(eta_min)
        super().__init__(optimizer)

    def lr_at(self, base: float, epoch: int) -> float:
        return self.eta_min + (base - self.eta_min) * (1 + math.cos(math.pi * epoch / self.T_max)) / 2
