"""Learning-rate schedules: PyTorch 2.13's values, written out."""
import pytest

import tinygrad_l2 as tl
from tinygrad_l2.optim import lr_scheduler


def run(make, steps=8):
    opt = tl.optim.SGD([tl.Tensor([1.0], requires_grad=True)], lr=0.1)
    scheduler = make(opt)
    lrs = []
    for _ in range(steps):
        opt.step()
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    assert opt.param_groups[0]["lr"] == lrs[-1] and opt.param_groups[0]["initial_lr"] == 0.1
    return lrs


def test_step_lr():
    assert run(lambda o: lr_scheduler.StepLR(o, 3, 0.5)) == pytest.approx(
        [0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025], rel=1e-15)


def test_exponential_lr():
    assert run(lambda o: lr_scheduler.ExponentialLR(o, 0.9)) == pytest.approx(
        [0.09, 0.081, 0.0729, 0.06561, 0.059049, 0.0531441, 0.04782969, 0.043046721], rel=1e-14)


def test_cosine_annealing_lr_is_periodic_beyond_t_max():
    assert run(lambda o: lr_scheduler.CosineAnnealingLR(o, 5, 0.01)) == pytest.approx(
        [0.091406, 0.068906, 0.041094, 0.018594, 0.01, 0.018594, 0.041094, 0.068906], abs=1e-6)


def test_schedulers_validate_their_arguments():
    opt = tl.optim.SGD([tl.Tensor([1.0], requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="StepLR: step_size must be a positive integer"):
        lr_scheduler.StepLR(opt, 0)
    with pytest.raises(TypeError, match="expected an Optimizer"):
        lr_scheduler.ExponentialLR("sgd", 0.9)
