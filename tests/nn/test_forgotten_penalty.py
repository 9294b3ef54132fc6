"""Forgetting `+ model.regularization_loss()` cannot pass unnoticed: the first optimizer step
that updates a parameter whose attached regularizer never entered a loss warns, once, naming
it.  No warning whenever the penalty was in the loss, however it was computed."""
import warnings

import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor

FORGOTTEN = r"the regularizer on Linear.weight \(L2\(0.01\)\) never entered the loss"


def model(**regularizers):
    tl.manual_seed(0)
    return tl.nn.Sequential(tl.nn.Linear(3, 4, **regularizers), tl.nn.ReLU(), tl.nn.Linear(4, 1))


def train(net, opt, steps=3, penalty=lambda net: 0.0):
    x = Tensor(np.linspace(-1, 1, 15).reshape(5, 3))
    for _ in range(steps):
        opt.zero_grad()
        ((net(x) ** 2).mean() + penalty(net)).backward()
        opt.step()


@pytest.mark.parametrize("optimizer", [lambda p: tl.optim.SGD(p, lr=0.1), lambda p: tl.optim.Adam(p)],
                         ids=["SGD", "Adam"])
def test_forgetting_the_penalty_warns_once_at_the_users_step(optimizer):
    net = model(kernel_regularizer=tl.nn.L2(0.01))
    opt = optimizer(net.parameters())
    with pytest.warns(UserWarning, match=FORGOTTEN + r".*loss = data_loss \+ model.regularization_loss\(\)") as caught:
        train(net, opt, steps=5)
    assert len(caught) == 1 and caught[0].filename == __file__


PENALTIES = {
    "regularization_loss": lambda net: net.regularization_loss(),
    "named_penalties": lambda net: sum(p for _, p in net.named_penalties()),
    "the attached regularizer called by hand": lambda net: net[0].kernel_regularizer(net[0].weight),
}


@pytest.mark.parametrize("penalty", PENALTIES.values(), ids=PENALTIES.keys())
def test_no_warning_when_the_penalty_is_in_the_loss(penalty):
    net = model(kernel_regularizer=tl.nn.L2(0.01))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(net, tl.optim.SGD(net.parameters(), lr=0.1), penalty=penalty)


def test_no_warning_without_regularizers_or_without_a_step():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plain = model()
        train(plain, tl.optim.SGD(plain.parameters(), lr=0.1))
        regularized = model(kernel_regularizer="l2")
        (regularized(Tensor(np.ones((2, 3)))) ** 2).sum().backward()  # a backward alone: no step


def test_no_warning_for_a_frozen_regularized_parameter():
    net = model(kernel_regularizer=tl.nn.L2(0.01))
    net[0].weight.requires_grad = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train(net, tl.optim.SGD(net.parameters(), lr=0.1))


def test_a_penalty_computed_only_under_no_grad_does_not_count():
    net = model(kernel_regularizer=tl.nn.L2(0.01))
    with tl.no_grad():
        net.regularization_loss()  # logged, not trained on
    with pytest.warns(UserWarning, match=FORGOTTEN):
        train(net, tl.optim.SGD(net.parameters(), lr=0.1), steps=1)


def test_a_compiled_step_with_the_penalty_does_not_warn():
    net = model(kernel_regularizer=tl.nn.L2(0.01))
    opt = tl.optim.SGD(net.parameters(), lr=0.1)

    @tl.compile
    def step(x):
        opt.zero_grad()
        loss = (net(x) ** 2).mean() + net.regularization_loss()
        loss.backward()
        opt.step()
        return loss
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(4):
            step(Tensor(np.ones((2, 3), dtype=np.float32)))
