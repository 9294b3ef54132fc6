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


# ---- resuming ------------------------------------------------------------------------------

SCHEDULES = {
    "StepLR": lambda o: lr_scheduler.StepLR(o, 3, 0.5),
    "MultiStepLR": lambda o: lr_scheduler.MultiStepLR(o, [2, 4, 4], 0.5),
    "ExponentialLR": lambda o: lr_scheduler.ExponentialLR(o, 0.9),
    "LinearLR": lambda o: lr_scheduler.LinearLR(o, 0.2, total_iters=4),
    "CosineAnnealingLR": lambda o: lr_scheduler.CosineAnnealingLR(o, 5, 0.01),
    "LambdaLR": lambda o: lr_scheduler.LambdaLR(o, lambda e: 0.5 + 1 / (e + 1)),
    "SequentialLR": lambda o: lr_scheduler.SequentialLR(
        o, [lr_scheduler.LinearLR(o, 0.5, total_iters=2), lr_scheduler.CosineAnnealingLR(o, 4)], [3]),
    "ReduceLROnPlateau": lambda o: lr_scheduler.ReduceLROnPlateau(o, factor=0.5, patience=0, cooldown=1),
    "OneCycleLR": lambda o: lr_scheduler.OneCycleLR(o, max_lr=1.0, total_steps=10, three_phase=True),
}
METRICS = [1.0, 0.9, 0.95, 0.97, 0.8, 0.85, 0.9, 0.7, 0.75, 0.8]


def advance(scheduler, epoch):
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        scheduler.step(METRICS[epoch])
    else:
        scheduler.step()


@pytest.mark.parametrize("name", SCHEDULES)
def test_a_resumed_schedule_continues_exactly_where_it_stopped(name, tmp_path):
    def fresh():
        opt = tl.optim.SGD([tl.Tensor([1.0], requires_grad=True)], lr=0.1)
        return opt, SCHEDULES[name](opt)

    opt, scheduler = fresh()
    uninterrupted = []
    for epoch in range(10):
        advance(scheduler, epoch)
        uninterrupted.append(scheduler.get_last_lr())
    uninterrupted_momentum = opt.param_groups[0]["momentum"]  # OneCycleLR cycles it
    opt, scheduler = fresh()
    resumed = []
    for epoch in range(4):
        advance(scheduler, epoch)
        resumed.append(scheduler.get_last_lr())
    tl.save({"optimizer": opt.state_dict(), "scheduler": scheduler.state_dict()}, tmp_path / "ckpt.npz")
    opt, scheduler = fresh()
    advance(scheduler, 0)  # a resumed object's own history is overwritten by the checkpoint
    checkpoint = tl.load(tmp_path / "ckpt.npz")
    opt.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    for epoch in range(4, 10):
        advance(scheduler, epoch)
        resumed.append(scheduler.get_last_lr())
    assert resumed == uninterrupted  # bit for bit
    assert opt.param_groups[0]["momentum"] == uninterrupted_momentum
    assert len(set(map(tuple, uninterrupted))) > 2  # the schedule did change the lr


def test_lambda_lr_leaves_its_functions_out_of_the_state_dict():
    opt = tl.optim.SGD([tl.Tensor([1.0], requires_grad=True)], lr=0.1)
    scheduler = lr_scheduler.LambdaLR(opt, lambda e: 0.5 ** e)
    assert set(scheduler.state_dict()) == {"base_lrs", "last_epoch"}


def test_load_state_dict_refuses_another_schedules_state_and_changes_nothing():
    opt = tl.optim.SGD([tl.Tensor([1.0], requires_grad=True)], lr=0.1)
    step_lr = lr_scheduler.StepLR(opt, 3)
    cosine_state = lr_scheduler.CosineAnnealingLR(opt, 5).state_dict()
    before = step_lr.state_dict()
    with pytest.raises(ValueError, match=r"StepLR.load_state_dict: expected the keys .*missing \['gamma', 'step_size'\], unexpected \['T_max', 'eta_min'\]"):
        step_lr.load_state_dict(cosine_state)
    assert step_lr.state_dict() == before


def test_sequential_lr_loads_all_of_its_schedules_or_none():
    opt = tl.optim.SGD([tl.Tensor([1.0], requires_grad=True)], lr=0.1)
    sequence = lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(opt, 2), lr_scheduler.ExponentialLR(opt, 0.5)], [2])
    state = sequence.state_dict()
    state["_schedulers"][0]["last_epoch"] = 7
    del state["_schedulers"][1]["gamma"]
    before = sequence.state_dict()
    with pytest.raises(ValueError, match=r"ExponentialLR.load_state_dict: .*missing \['gamma'\]"):
        sequence.load_state_dict(state)
    assert sequence.state_dict() == before


def test_sequential_lr_validates_its_parts():
    opt = tl.optim.SGD([tl.Tensor([1.0], requires_grad=True)], lr=0.1)
    other = tl.optim.SGD([tl.Tensor([1.0], requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="one milestone fewer than schedulers"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(opt, 2)], [3])
    with pytest.raises(ValueError, match="scheduler 1 belongs to another optimizer"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.StepLR(opt, 2), lr_scheduler.StepLR(other, 2)], [3])
    with pytest.raises(TypeError, match="scheduler 0 is a ReduceLROnPlateau"):
        lr_scheduler.SequentialLR(opt, [lr_scheduler.ReduceLROnPlateau(opt), lr_scheduler.StepLR(opt, 2)], [3])


def test_reduce_lr_on_plateau_validates_factor_and_min_lrs():
    opt = tl.optim.SGD([tl.Tensor([1.0], requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="factor should be < 1.0"):
        lr_scheduler.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="expected 1 min_lrs, got 2"):
        lr_scheduler.ReduceLROnPlateau(opt, min_lr=[0.0, 0.1])


def test_a_compiled_step_calling_reduce_lr_on_plateau_runs_eagerly_and_reduces_the_lr():
    w = tl.Tensor([1.0], requires_grad=True)
    opt = tl.optim.SGD([w], lr=0.1)
    plateau = lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)

    def step(x):
        opt.zero_grad()
        loss = (w * x).sum()
        loss.backward()
        opt.step()
        plateau.step(1.0)  # never improves after the first call
        return loss

    compiled = tl.compile(step)
    for _ in range(4):
        compiled(tl.Tensor([1.0]))
    assert opt.param_groups[0]["lr"] == 0.1 * 0.5 ** 3


def test_one_cycle_lr_refuses_a_step_past_total_steps_and_changes_nothing():
    opt = tl.optim.SGD([tl.Tensor([1.0], requires_grad=True)], lr=0.1, momentum=0.9)
    scheduler = lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=3)
    for _ in range(3):
        scheduler.step()
    before = (scheduler.state_dict(), dict(opt.param_groups[0]))
    with pytest.raises(ValueError, match="tried to step 4 times; the specified number of total steps is 3"):
        scheduler.step()
    assert (scheduler.state_dict(), dict(opt.param_groups[0])) == before
