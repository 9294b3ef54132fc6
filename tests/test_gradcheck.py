"""gradcheck itself must catch a wrong gradient and say where."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor
from tinygrad_l2.function import Function


class WrongSquare(Function):
    """x² with a deliberately wrong backward (3x instead of 2x)."""

    def forward(self, x):
        self.saved = (x,)
        return x * x

    def backward(self, g):
        return (g * 3 * self.saved[0],)


def test_gradcheck_passes_on_a_correct_op():
    x = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    assert tl.gradcheck(lambda x: x * x, [x]) is True


def test_gradcheck_reports_worst_element_values_and_input():
    x = Tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True, name="x")
    with pytest.raises(tl.GradcheckError, match=r"input 'x' \(shape \(3,\)\).*index \(1,\).*analytical.*numerical"):
        tl.gradcheck(lambda x: WrongSquare.apply(x).sum(), [x])  # worst where |x| is largest


def test_gradcheck_runs_in_float64_even_for_float32_inputs():
    x = Tensor(np.array([0.3, 0.7], dtype=np.float32), requires_grad=True)
    seen = []
    tl.gradcheck(lambda x: (seen.append(x.dtype), x.exp())[1], [x])
    assert seen[0] == np.float64


def test_gradcheck_needs_an_input_requiring_grad():
    with pytest.raises(ValueError, match="no input has requires_grad"):
        tl.gradcheck(lambda x: x * 2, [Tensor([1.0])])
