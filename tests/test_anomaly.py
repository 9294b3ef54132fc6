"""detect_anomaly: the first NaN/Inf, named, with the user's line; off by default."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from helpers import run_in_other_thread_while
from tinygrad_l2 import Tensor


def test_forward_nan_names_the_op_and_the_users_line():
    x = Tensor(np.array([1.0, -1.0]), requires_grad=True, name="x")
    with tl.detect_anomaly(), np.errstate(invalid="ignore"):
        y = x * 2
        with pytest.raises(tl.AnomalyError) as info:
            z = y.sqrt()  # the line the error must point at
    message = str(info.value)
    assert "Sqrt produced NaN" in message
    assert "test_anomaly.py" in message and "z = y.sqrt()" in message


def test_backward_inf_names_the_op_tensor_and_line():
    x = Tensor(np.array([0.0, 1.0]), requires_grad=True, name="x")
    with tl.detect_anomaly(), np.errstate(divide="ignore"):
        y = x.sqrt()  # fine forward (0), infinite gradient at 0
        with pytest.raises(tl.AnomalyError) as info:
            y.sum().backward()
    message = str(info.value)
    assert "backward of Sqrt produced Inf in the gradient of tensor 'x'" in message
    assert "y = x.sqrt()" in message


def test_off_by_default_nan_flows_silently():
    x = Tensor(np.array([-1.0]), requires_grad=True)
    with np.errstate(invalid="ignore"):
        y = x.sqrt()
    assert np.isnan(y.data[0]) and y.grad_fn.created_at is None


def test_anomaly_mode_is_per_thread():
    def makes_nan_silently():
        with np.errstate(invalid="ignore"):
            return np.isnan(Tensor(np.array([-1.0])).sqrt().data[0])

    assert run_in_other_thread_while(tl.detect_anomaly(), makes_nan_silently)


def test_inf_input_is_reported_at_the_first_op_that_uses_it():
    with tl.detect_anomaly():
        with pytest.raises(tl.AnomalyError, match="Add produced Inf"):
            Tensor(np.array([np.inf])) + 1.0
