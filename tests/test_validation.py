"""Malformed input gets an error that says what was given and what is accepted."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor

x = Tensor(np.array([1.0, 2.0]), requires_grad=True)


@pytest.mark.parametrize("operand,match", [
    (True, "unsupported operand bool"),
    (1j, "unsupported operand complex"),
    ("2", "unsupported operand str"),
    (np.array([True, False]), "expected float or integer numbers, got booleans"),
    (np.array([1 + 1j, 2]), "got complex numbers"),
    (np.array(["a", "b"]), "got strings"),
    ([[1.0], [2.0, 3.0]], "rectangular"),
    (None, "unsupported operand NoneType"),
])
@pytest.mark.parametrize("op", ["__add__", "__mul__", "__rsub__", "__truediv__", "__matmul__"])
def test_every_binary_op_rejects_what_is_not_a_real_number_array(op, operand, match):
    with pytest.raises((TypeError, ValueError), match=match):
        getattr(x, op)(operand)


@pytest.mark.parametrize("exponent", [float("nan"), float("inf"), True, "2"])
def test_pow_rejects_non_finite_or_non_numeric_exponents(exponent):
    with pytest.raises((TypeError, ValueError), match="pow"):
        x ** exponent


@pytest.mark.parametrize("make,match", [
    (lambda: tl.optim.SGD([x], lr=float("nan")), "SGD: Invalid learning rate: nan"),
    (lambda: tl.optim.SGD([x], lr=-1), "SGD: Invalid learning rate: -1"),
    (lambda: tl.optim.SGD([x], lr="0.1"), "SGD: Invalid learning rate: '0.1'"),
    (lambda: tl.optim.SGD([x], lr=0.1, momentum=-1), "Invalid momentum value: -1"),
    (lambda: tl.optim.SGD([x], lr=0.1, nesterov=True), "nesterov momentum requires a momentum"),
    (lambda: tl.optim.Adam([x], betas=(0.9, 1.5)), "Invalid beta parameter at index 1: 1.5"),
    (lambda: tl.optim.Adam([x], betas=(0.9,)), "betas must be a pair"),
    (lambda: tl.optim.Adam([x], eps=float("nan")), "Invalid epsilon value: nan"),
    (lambda: tl.optim.AdamW([x], weight_decay=-0.1), "Invalid weight_decay value: -0.1"),
    (lambda: tl.optim.SGD([x, x], lr=0.1), "lists the same parameter twice"),
    (lambda: tl.optim.SGD([{"params": [x]}, {"params": [x]}], lr=0.1),
     "some parameters appear in more than one parameter group"),
    (lambda: tl.optim.SGD([], lr=0.1), "empty parameter list"),
    (lambda: tl.optim.SGD([np.ones(2)], lr=0.1), "parameters must be Tensors"),
    (lambda: tl.optim.SGD([x * 2], lr=0.1), "can't optimize a non-leaf tensor"),
    (lambda: tl.optim.PSO([x], inertia=float("inf")), "inertia must be a finite number"),
    (lambda: tl.optim.PSO([x], n_particles=1), "n_particles must be at least 2"),
    (lambda: tl.nn.Linear(0, 3), "in_features must be a positive integer"),
    (lambda: tl.nn.Linear(2, 3, bias=False, bias_regularizer=tl.nn.L2(0.1)), "bias=False"),
])
def test_constructors_reject_bad_hyper_parameters(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


def test_requires_grad_cannot_be_switched_off_on_a_non_leaf():
    with pytest.raises(RuntimeError, match="only change requires_grad of leaf"):
        (x * 2).requires_grad = False


def test_assigning_ints_or_lists_to_data_keeps_the_tensors_dtype():
    w = Tensor(np.array([1.0]), requires_grad=True)
    w.data = np.array([3], dtype=np.int64)
    assert w.dtype == np.float64 and w.data[0] == 3.0
    w.data = [4]
    assert w.dtype == np.float64
    with pytest.raises(TypeError, match="Tensor.data: expected"):
        w.data = "5"
