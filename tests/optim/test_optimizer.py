"""What every optimizer accepts: parameters (not the module), frozen parameters skipped."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor

OPTIMIZERS = {"SGD": lambda params: tl.optim.SGD(params, lr=0.1, momentum=0.9),
              "Adam": lambda params: tl.optim.Adam(params, lr=0.1),
              "AdamW": lambda params: tl.optim.AdamW(params, lr=0.1)}


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_passing_the_module_itself_says_to_pass_its_parameters(make):
    with pytest.raises(TypeError, match=r"got the module Linear itself; pass its parameters: "
                                        r"\w+\(model.parameters\(\), ...\)"):
        make(tl.nn.Linear(2, 2))


def test_passing_one_tensor_says_to_pass_a_list():
    with pytest.raises(TypeError, match=r"got a single Tensor of shape \(2,\); pass \[tensor\]"):
        tl.optim.SGD(Tensor(np.ones(2), requires_grad=True), lr=0.1)


@pytest.mark.parametrize("make", OPTIMIZERS.values(), ids=OPTIMIZERS.keys())
def test_a_frozen_parameter_is_accepted_and_left_unchanged(make):
    model = tl.nn.Linear(3, 2, rng=0)
    model.bias.requires_grad = False
    bias, weight = model.bias.data.copy(), model.weight.data.copy()
    opt = make(model.parameters())
    model(Tensor(np.ones((4, 3)))).sum().backward()
    assert model.bias.grad is None
    opt.step()
    np.testing.assert_array_equal(model.bias.data, bias)
    assert not np.array_equal(model.weight.data, weight)
    assert model.bias not in opt.state


def test_frozen_parameters_are_skipped_as_torch_skips_them():
    torch = pytest.importorskip("torch")
    w0, b0 = np.array([[0.5, -1.0]]), np.array([0.25])
    ours, theirs = tl.nn.Linear(2, 1, dtype=np.float64), torch.nn.Linear(2, 1, dtype=torch.float64)
    ours.weight.data, ours.bias.data = w0.copy(), b0.copy()
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor(w0)), theirs.bias.copy_(torch.tensor(b0))
    ours.bias.requires_grad, theirs.bias.requires_grad = False, False
    x = np.array([[1.0, 2.0], [3.0, -1.0]])
    opt_ours = tl.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    for _ in range(3):
        opt_ours.zero_grad(), opt_theirs.zero_grad()
        (ours(Tensor(x)) ** 2).sum().backward()
        (theirs(torch.tensor(x)) ** 2).sum().backward()
        opt_ours.step(), opt_theirs.step()
    np.testing.assert_allclose(ours.weight.data, theirs.weight.detach().numpy(), rtol=1e-14)
    np.testing.assert_array_equal(ours.bias.data, theirs.bias.detach().numpy())


@pytest.mark.parametrize("make", [
    lambda p, c: tl.optim.SGD(p, lr=c(1e-2), momentum=c(0.9), weight_decay=c(1e-3)),
    lambda p, c: tl.optim.Adam(p, lr=c(1e-2), betas=(c(0.9), c(0.999)), eps=c(1e-8), weight_decay=c(1e-3)),
], ids=["SGD", "Adam"])
def test_numpy_float64_hyper_parameters_update_a_float32_model_exactly_as_python_floats(make):
    """A sweep's np.logspace values must not make a float32 model's updates compute in float64."""
    def train(cast):
        model = tl.nn.Linear(4, 3, rng=0)
        opt = make(model.parameters(), cast)
        x = Tensor(np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4))
        for _ in range(5):
            opt.zero_grad()
            (model(x) ** 2).sum().backward()
            opt.step()
        return model.weight.data
    np.testing.assert_array_equal(train(np.float64), train(float))


def test_a_subclass_step_may_be_a_static_or_a_class_method():
    """Each subclass's step() is wrapped to be told to tl.compile; the wrapper keeps how it is
    called."""
    class Static(tl.optim.SGD):
        @staticmethod
        def step(scale=1):
            return 2 * scale

    class Classy(tl.optim.SGD):
        @classmethod
        def step(cls):
            return cls.__name__
    w = tl.Tensor(np.ones(3), requires_grad=True)
    assert Static([w], lr=0.1).step(3) == 6 and Classy([w], lr=0.1).step() == "Classy"


def test_an_optimizer_stepping_another_inside_its_step_is_one_recorded_step():
    from tinygrad_l2.context import Trace, state
    w = tl.Tensor(np.ones(3), requires_grad=True)
    inner = tl.optim.SGD([w], lr=0.1)

    class Outer(tl.optim.Optimizer):
        def __init__(self):
            super().__init__([w], {})

        def step(self):
            inner.step()
    outer, trace = Outer(), Trace()
    state.recorder = trace
    try:
        outer.step()
    finally:
        state.recorder = None
    assert [(e[0], e[1]) for e in trace.events] == [("step", outer)] and state.steps_running == 0
