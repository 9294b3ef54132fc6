"""The λ conventions: each conversion checked against the gradient it claims to produce."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor
from tinygrad_l2 import conventions as cv

W = np.array([[0.5, -1.25], [2.0, 0.75]])


def penalty_gradient(penalty_fn):
    w = Tensor(W.copy(), requires_grad=True)
    penalty_fn(w).backward()
    return w.grad


def test_keras_lam_gives_gradient_two_lam_w_which_is_pytorch_weight_decay():
    lam = 0.01
    np.testing.assert_array_equal(penalty_gradient(tl.nn.L2(lam)), cv.keras_to_weight_decay(lam) * W)
    assert cv.weight_decay_to_keras(cv.keras_to_weight_decay(lam)) == lam


def test_nielsen_lambda_over_2n_gives_gradient_lambda_over_n_w():
    lmbda, n = 5.0, 50_000
    book = lambda w: (lmbda / (2 * n)) * (w ** 2).sum()  # the book's formula, written out
    np.testing.assert_array_equal(penalty_gradient(tl.nn.L2.from_nielsen(lmbda, n)), penalty_gradient(book))
    np.testing.assert_allclose(penalty_gradient(book), cv.nielsen_to_weight_decay(lmbda, n) * W, rtol=1e-15)


def test_deeplearning_ai_lambd_gives_dw_plus_lambd_over_m_w():
    lambd, m = 0.7, 211
    course = lambda w: (1 / m) * (lambd / 2) * (w ** 2).sum()
    np.testing.assert_allclose(penalty_gradient(tl.nn.L2.from_deeplearning_ai(lambd, m)),
                               penalty_gradient(course), rtol=1e-15)
    np.testing.assert_allclose(penalty_gradient(course), cv.deeplearning_ai_to_weight_decay(lambd, m) * W,
                               rtol=1e-15)


def test_weight_decay_factor():
    assert cv.weight_decay_factor(0.5, cv.nielsen_to_weight_decay(5.0, 1000)) == 1 - 0.5 * 5.0 / 1000


def test_sizes_must_be_positive():
    with pytest.raises(ValueError, match="n \\(training-set size\\) must be > 0"):
        cv.nielsen_to_keras(1.0, 0)


def test_the_docs_table_names_every_convention():
    for source in ("Keras", "PyTorch SGD/Adam", "Nielsen", "deeplearning.ai", "AdamW"):
        assert source in cv.TABLE
