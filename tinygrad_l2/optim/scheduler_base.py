"""The base of every learning-rate schedule: initial lr per group, the epoch count, and the
state dict that makes a schedule resume (PyTorch's rule: every attribute but the optimizer)."""
from __future__ import annotations

import copy
from typing import Any

from .optimizer import Optimizer


class LRScheduler:
    """Base: remembers each group's initial lr, counts `step()` calls (last_epoch, starting at
    0 as PyTorch's constructor leaves it) and writes `lr_at(base, epoch)`, which each schedule
    defines, into the groups."""

    _not_saved: tuple[str, ...] = ("optimizer",)

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

    def lr_at(self, base: float, epoch: int) -> float:
        """The learning rate at `epoch` of a group whose initial one is `base` (a closed-form
        schedule defines it; one that keeps state, such as ReduceLROnPlateau, overrides _apply)."""
        raise TypeError(f"{type(self).__name__} defines neither lr_at(base, epoch) nor _apply()")

    def step(self) -> None:
        """Advance one epoch and update every group's learning rate."""
        self.optimizer._record("schedule", self)  # a tracing tl.compile replays it
        self._advance()

    def _advance(self):
        self.last_epoch += 1
        self._apply()

    def _apply(self):
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.lr_at(base, self.last_epoch)

    def get_last_lr(self) -> list[float]:
        """The learning rate of each group, as last set."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """{attribute: value} for every attribute but the optimizer (PyTorch's rule)."""
        return {key: _copy(value) for key, value in vars(self).items() if key not in self._not_saved}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore what `state_dict()` returned; the keys must be this schedule's, or nothing
        changes.  The optimizer's own state dict holds the current lr (as in PyTorch)."""
        expected = set(self.state_dict())
        if not hasattr(state_dict, "keys") or set(state_dict.keys()) != expected:
            given = set(state_dict.keys()) if hasattr(state_dict, "keys") else set()
            raise ValueError(f"{type(self).__name__}.load_state_dict: expected the keys "
                             f"{sorted(expected)}; missing {sorted(expected - given)}, unexpected "
                             f"{sorted(given - expected, key=str)}")
        vars(self).update({key: _copy(value) for key, value in state_dict.items()})


def _copy(value):
    """Saved and loaded values are copies: a later step never edits a checkpoint."""
    return copy.deepcopy(value)


def _positive(owner, name, value, integer=False):
    kind = int if integer else (int, float)
    if not isinstance(value, kind) or isinstance(value, bool) or not value > 0:
        raise ValueError(f"{owner}: {name} must be a positive {'integer' if integer else 'number'}, "
                         f"got {value!r}")
    return value
