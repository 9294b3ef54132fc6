"""OneCycleLR (Smith & Topin, "Super-Convergence", 2018), as torch.optim.lr_scheduler computes it."""
from __future__ import annotations

import math
from typing import Sequence

from .optimizer import Optimizer
from .scheduler_base import LRScheduler, _positive


def _per_group(name, value, optimizer):
    values = list(value) if isinstance(value, (list, tuple)) else [value] * len(optimizer.param_groups)
    if len(values) != len(optimizer.param_groups):
        raise ValueError(f"OneCycleLR: expected {len(optimizer.param_groups)} values for {name}, got {len(values)}")
    return [float(v) for v in values]


class OneCycleLR(LRScheduler):
    """The lr rises from max_lr/div_factor to max_lr over the first pct_start of total_steps,
    then falls to initial_lr/final_div_factor (three_phase: back to initial_lr first, then
    down); momentum (or Adam's β₁) moves the opposite way between max_momentum and
    base_momentum.  Within a phase running from step a to b, with pct = (t − a)/(b − a):

        cos:    value = end + (start − end)·(1 + cos(π·pct))/2
        linear: value = start + (end − start)·pct

    Stepped once per batch; stepping past total_steps is an error, as in PyTorch.
    """

    def __init__(self, optimizer: Optimizer, max_lr: float | Sequence[float], total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None, pct_start: float = 0.3,
                 anneal_strategy: str = "cos", cycle_momentum: bool = True, base_momentum: float = 0.85,
                 max_momentum: float = 0.95, div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"OneCycleLR: expected an Optimizer, got {type(optimizer).__name__}")
        if total_steps is None:
            if epochs is None or steps_per_epoch is None:
                raise ValueError("OneCycleLR: give total_steps, or epochs and steps_per_epoch")
            total_steps = _positive("OneCycleLR", "epochs", epochs, True) * _positive("OneCycleLR", "steps_per_epoch", steps_per_epoch, True)
        self.total_steps = _positive("OneCycleLR", "total_steps", total_steps, integer=True)
        if not 0 <= pct_start <= 1 or anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"OneCycleLR: pct_start must be in [0, 1] and anneal_strategy 'cos' or "
                             f"'linear', got {pct_start!r} and {anneal_strategy!r}")
        self._anneal_func_type, self.cycle_momentum = anneal_strategy, bool(cycle_momentum)
        self._schedule_phases = _phases(float(pct_start), self.total_steps, three_phase)
        for group, top in zip(optimizer.param_groups, _per_group("max_lr", max_lr, optimizer)):
            group["initial_lr"] = top / div_factor
            group["max_lr"], group["min_lr"] = top, group["initial_lr"] / final_div_factor
        if self.cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("OneCycleLR: optimizer must support momentum or beta1 with `cycle_momentum` option enabled")
            self.use_beta1 = "betas" in optimizer.defaults
            for group, high, low in zip(optimizer.param_groups, _per_group("max_momentum", max_momentum, optimizer),
                                        _per_group("base_momentum", base_momentum, optimizer)):
                group["max_momentum"], group["base_momentum"] = high, low
                self._set_momentum(group, high)
        super().__init__(optimizer)

    def _set_momentum(self, group, value):
        if self.use_beta1:
            group["betas"] = (value, *group["betas"][1:])
        else:
            group["momentum"] = value

    def _advance(self):
        if self.last_epoch + 1 > self.total_steps:  # refused before anything changes
            raise ValueError(f"OneCycleLR: tried to step {self.last_epoch + 1} times; the specified "
                             f"number of total steps is {self.total_steps}")
        super()._advance()

    def _apply(self):
        step = self.last_epoch
        anneal = _cos if self._anneal_func_type == "cos" else _linear
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, phase in enumerate(self._schedule_phases):
                if step <= phase["end_step"] or i == len(self._schedule_phases) - 1:
                    pct = (step - start) / (phase["end_step"] - start)
                    group["lr"] = anneal(group[phase["start_lr"]], group[phase["end_lr"]], pct)
                    if self.cycle_momentum:
                        momentum = anneal(group[phase["start_momentum"]], group[phase["end_momentum"]], pct)
                        self._set_momentum(group, momentum)
                    break
                start = phase["end_step"]


def _phases(pct_start, total_steps, three_phase):
    """PyTorch's phase table: where each phase ends and which group values it runs between."""
    def phase(end, lr, momentum):
        return {"end_step": end, "start_lr": lr[0], "end_lr": lr[1],
                "start_momentum": momentum[0], "end_momentum": momentum[1]}
    up, high = float(pct_start * total_steps) - 1, ("initial_lr", "max_lr")
    if not three_phase:
        return [phase(up, high, ("max_momentum", "base_momentum")),
                phase(total_steps - 1, ("max_lr", "min_lr"), ("base_momentum", "max_momentum"))]
    return [phase(up, high, ("max_momentum", "base_momentum")),
            phase(float(2 * pct_start * total_steps) - 2, ("max_lr", "initial_lr"), ("base_momentum", "max_momentum")),
            phase(total_steps - 1, ("initial_lr", "min_lr"), ("max_momentum", "max_momentum"))]


def _cos(start, end, pct):
    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)


def _linear(start, end, pct):
    return (end - start) * pct + start
