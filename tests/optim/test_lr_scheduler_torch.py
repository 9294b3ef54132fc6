"""Every schedule against torch 2.13's, step by step (the same lr to 1e-12 relative: PyTorch
computes some recursively, we in closed form), with two parameter groups."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2.optim import lr_scheduler as ours

torch = pytest.importorskip("torch")
theirs = torch.optim.lr_scheduler

SCHEDULES = {  # name: (make(lib, optimizer), metric-driven)
    "StepLR": lambda lib, o: lib.StepLR(o, 3, gamma=0.5),
    "MultiStepLR": lambda lib, o: lib.MultiStepLR(o, [2, 5, 5, 9], gamma=0.3),
    "ExponentialLR": lambda lib, o: lib.ExponentialLR(o, 0.9),
    "LinearLR": lambda lib, o: lib.LinearLR(o, start_factor=0.1, total_iters=4),
    "CosineAnnealingLR": lambda lib, o: lib.CosineAnnealingLR(o, 6, eta_min=0.001),
    "LambdaLR": lambda lib, o: lib.LambdaLR(o, [lambda e: 1 / (1 + e), lambda e: 0.95 ** e]),
    "OneCycleLR": lambda lib, o: lib.OneCycleLR(o, max_lr=[0.5, 0.2], total_steps=14),
    "OneCycleLR three phases": lambda lib, o: lib.OneCycleLR(o, 0.4, epochs=2, steps_per_epoch=8, pct_start=0.25,
                                                             anneal_strategy="linear", three_phase=True),
    "SequentialLR": lambda lib, o: lib.SequentialLR(
        o, [lib.LinearLR(o, start_factor=0.25, total_iters=3), lib.ExponentialLR(o, 0.8),
            lib.CosineAnnealingLR(o, 4)], milestones=[3, 7]),
}


def optimizers():
    mine = tl.optim.SGD([{"params": [tl.Tensor([1.0], requires_grad=True)]},
                         {"params": [tl.Tensor([1.0], requires_grad=True)], "lr": 0.05}], lr=0.1, momentum=0.9)
    reference = torch.optim.SGD([{"params": [torch.zeros(1, requires_grad=True)]},
                                 {"params": [torch.zeros(1, requires_grad=True)], "lr": 0.05}], lr=0.1, momentum=0.9)
    return mine, reference


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_matches_torch(name):
    mine, reference = optimizers()
    a, b = SCHEDULES[name](ours, mine), SCHEDULES[name](theirs, reference)
    for _ in range(14):
        np.testing.assert_allclose(a.get_last_lr(), b.get_last_lr(), rtol=1e-12, atol=0)
        np.testing.assert_allclose([g["momentum"] for g in mine.param_groups],
                                   [g["momentum"] for g in reference.param_groups], rtol=1e-12, atol=0)
        mine.step(), reference.step()
        a.step(), b.step()
    assert a.last_epoch == b.last_epoch == 14


def test_reduce_lr_on_plateau_matches_torch_in_every_mode():
    metrics = [1.0, 0.9, 0.95, 0.9, 0.91, 0.92, 0.8, 0.85, 0.86, 0.87, 0.88, 0.89, 0.5, 0.6, 0.7]
    for mode, threshold_mode, sign in (("min", "rel", 1), ("min", "abs", 1), ("max", "rel", -1), ("max", "abs", -1)):
        mine, reference = optimizers()
        settings = dict(mode=mode, factor=0.5, patience=1, threshold=0.02, threshold_mode=threshold_mode,
                        cooldown=1, min_lr=[0.01, 0.02])
        a, b = ours.ReduceLROnPlateau(mine, **settings), theirs.ReduceLROnPlateau(reference, **settings)
        for metric in metrics:
            a.step(sign * metric), b.step(sign * metric)
            assert [g["lr"] for g in mine.param_groups] == [g["lr"] for g in reference.param_groups]
            assert (a.best, a.num_bad_epochs, a.cooldown_counter) == (b.best, b.num_bad_epochs, b.cooldown_counter)


def test_the_state_dict_has_torchs_keys_for_the_values_we_keep():
    mine, reference = optimizers()
    for name, make in SCHEDULES.items():
        ours_state, torch_state = make(ours, mine).state_dict(), make(theirs, reference).state_dict()
        assert set(ours_state) <= set(torch_state), (name, set(ours_state) - set(torch_state))
        assert ours_state["last_epoch"] == torch_state["last_epoch"]


def test_one_cycle_lr_cycles_adams_beta1_like_torch():
    mine = tl.optim.Adam([tl.Tensor([1.0], requires_grad=True)], lr=0.1)
    reference = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.1)
    a = ours.OneCycleLR(mine, max_lr=0.01, total_steps=10, pct_start=0.4)
    b = theirs.OneCycleLR(reference, max_lr=0.01, total_steps=10, pct_start=0.4)
    for _ in range(10):
        np.testing.assert_allclose(a.get_last_lr(), b.get_last_lr(), rtol=1e-12, atol=0)
        np.testing.assert_allclose(mine.param_groups[0]["betas"], reference.param_groups[0]["betas"], rtol=1e-12)
        mine.step(), reference.step()
        a.step(), b.step()
    with pytest.raises(ValueError, match="OneCycleLR: tried to step 11 times; the specified number of total steps is 10"):
        a.step()
