"""Layers refuse bad arguments at construction or call, naming the argument, as PyTorch does:
Flatten's dims, non-float parameter dtypes, non-int Conv2d sizes, dropout probabilities."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor
from tinygrad_l2.nn import functional as F


@pytest.mark.parametrize("start, end, shape", [(5, -1, (2, 3, 4, 5)), (1, -1, (3,)), (0, -6, (2, 3, 4, 5))])
def test_flatten_refuses_out_of_range_dims_with_an_index_error(start, end, shape):
    with pytest.raises(IndexError, match="flatten: dim -?[0-9] is out of range"):
        tl.nn.Flatten(start, end)(Tensor(np.ones(shape)))


def test_flatten_out_of_range_is_torchs_error_too():
    torch = pytest.importorskip("torch")
    with pytest.raises(IndexError):
        torch.nn.Flatten(5, -1)(torch.ones(2, 3, 4, 5))
    with pytest.raises(IndexError):
        torch.nn.Flatten()(torch.ones(3))


def test_every_dim_out_of_range_error_is_an_index_error_and_a_value_error():
    x = Tensor(np.ones((2, 3)))
    for call in (lambda: x.sum(axis=2), lambda: x.softmax(axis=2), lambda: x.argmax(axis=2),
                 lambda: x.unsqueeze(4), lambda: x.flatten(3)):
        with pytest.raises(IndexError, match="out of range") as caught:
            call()
        assert isinstance(caught.value, ValueError)  # numpy's AxisError: both


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_])
@pytest.mark.parametrize("make", [lambda dtype: tl.nn.Linear(4, 3, dtype=dtype),
                                  lambda dtype: tl.nn.Conv2d(1, 2, 3, dtype=dtype)],
                         ids=["Linear", "Conv2d"])
def test_layers_refuse_non_float_dtypes(make, dtype):
    with pytest.raises(TypeError, match=r"(Linear|Conv2d): dtype must be a floating-point dtype .* "
                                        + np.dtype(dtype).name):
        make(dtype)


@pytest.mark.parametrize("argument, value", [("kernel_size", 3.0), ("kernel_size", "3"),
                                             ("stride", 1.0), ("stride", (1, 1.0)),
                                             ("padding", 1.0), ("padding", (True, 0))])
def test_conv2d_names_a_non_integer_size_argument(argument, value):
    arguments = {"kernel_size": 3, argument: value}
    with pytest.raises(ValueError, match=f"Conv2d: {argument} must be .*int"):
        tl.nn.Conv2d(1, 1, **arguments)


@pytest.mark.parametrize("p", [1.5, -0.5, float("nan"), "0.5", True])
def test_functional_dropout_validates_p_like_the_module(p):
    x = Tensor(np.ones(4))
    with pytest.raises(ValueError, match="dropout: p must be a probability in \\[0, 1\\]"):
        F.dropout(x, p=p)
    with pytest.raises(ValueError, match="Dropout: p must be a probability in \\[0, 1\\]"):
        tl.nn.Dropout(p)
