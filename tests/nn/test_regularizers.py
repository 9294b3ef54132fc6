"""Regularizers are ordinary graph nodes; their gradients reach the weights only."""
import numpy as np
import pytest

import tinygrad_l2 as tl

from tinygrad_l2 import Tensor


def test_l2_is_keras_lam_times_sum_of_squares_built_from_ops():
    w = Tensor(np.array([[1.0, -2.0], [3.0, 0.5]]), requires_grad=True)
    penalty = tl.nn.L2(0.1)(w)
    assert penalty.item() == pytest.approx(0.1 * 14.25, rel=1e-15)
    ops = []
    node = penalty.grad_fn
    while not node.is_leaf:
        ops.append(type(node).__name__)
        (node,) = [p for p in node.parents if p is not None]  # λ is an argument, not a node
    assert node.tensor() is w
    assert ops == ["Mul", "Sum", "Pow"]  # scale <- sum <- square <- W
    penalty.backward()
    np.testing.assert_array_equal(w.grad, 2 * 0.1 * w.data)


def test_l1_and_l1l2():
    w = Tensor(np.array([1.0, -2.0]), requires_grad=True)
    assert tl.nn.L1(0.5)(w).item() == 1.5
    tl.nn.L1L2(l1=0.5, l2=0.25)(w).backward()
    np.testing.assert_array_equal(w.grad, 0.5 * np.sign(w.data) + 0.5 * w.data)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), "0.1", True])
def test_regularizer_rejects_a_bad_coefficient(bad):
    with pytest.raises(ValueError, match="coefficient must be a finite number >= 0"):
        tl.nn.L2(bad)


def test_kernel_regularizer_changes_only_weight_gradients_bit_for_bit():
    """The penalty's only inputs are the weights: bias and activation gradients are
    bit-identical with and without it; each weight gradient gains exactly 2·lam·W."""
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((8, 3)), rng.integers(0, 2, 8)
    plain = tl.nn.MLP([3, 5, 4, 2], dtype=np.float64, rng=1)
    regularized = tl.nn.MLP([3, 5, 4, 2], kernel_regularizer=tl.nn.L2(0.3), dtype=np.float64, rng=1)

    def run(model, with_penalty):
        activations = []
        h = Tensor(x)
        for layer in model:
            h = layer(h)
            h.retain_grad()
            activations.append(h)
        loss = tl.nn.softmax_cross_entropy(h, labels)
        if with_penalty:
            loss = loss + model.regularization_loss()
        loss.backward()
        return activations

    acts_plain = run(plain, False)
    acts_reg = run(regularized, True)
    for a, b in zip(acts_plain, acts_reg):
        np.testing.assert_array_equal(a.grad, b.grad)
    for (name, p), (_, q) in zip(plain.named_parameters(), regularized.named_parameters()):
        if name.endswith("bias"):
            np.testing.assert_array_equal(p.grad, q.grad)
        else:
            # the engine adds the two terms' gradients in one addition: exact
            np.testing.assert_array_equal(q.grad, p.grad + 2 * 0.3 * q.data)


def test_l2_constructors_from_other_conventions():
    assert tl.nn.L2.from_nielsen(5.0, 1000).lam == 5.0 / 2000
    assert tl.nn.L2.from_deeplearning_ai(0.7, 200).lam == 0.7 / 400
    assert tl.nn.L2.from_weight_decay(1e-4).lam == 5e-5


@pytest.mark.parametrize("name, expected", [("l2", "L2(0.01)"), ("L2", "L2(0.01)"), ("l1", "L1(0.01)"),
                                            ("l1_l2", "L1L2(l1=0.0, l2=0.0)"), ("L1L2", "L1L2(l1=0.0, l2=0.0)")])
def test_keras_names_give_kerass_default_regularizers(name, expected):
    layer = tl.nn.Linear(2, 3, kernel_regularizer=name, bias_regularizer=name)
    assert repr(layer.kernel_regularizer) == repr(layer.bias_regularizer) == expected
    assert layer.kernel_regularizer is not layer.bias_regularizer


def test_the_l2_name_penalises_exactly_like_l2_of_one_hundredth():
    named = tl.nn.Linear(2, 3, kernel_regularizer="l2", rng=0)
    explicit = tl.nn.Linear(2, 3, kernel_regularizer=tl.nn.L2(0.01), rng=0)
    assert named.regularization_loss().item() == explicit.regularization_loss().item() > 0


def test_keras_lower_case_constructors_are_the_classes():
    from tinygrad_l2.nn import regularizers
    assert regularizers.l2 is tl.nn.L2 and regularizers.l1 is tl.nn.L1 and regularizers.l1_l2 is tl.nn.L1L2
    assert regularizers.l2(0.5).lam == 0.5


@pytest.mark.parametrize("bad, hint", [(0.01, r"the number 0.01; write tl.nn.L2\(0.01\)"),
                                       ("l3", "str 'l3'"), (tl.nn.L2, r"the class L2; write L2\(0.01\)")])
@pytest.mark.parametrize("argument", ["kernel_regularizer", "bias_regularizer"])
def test_a_bad_regularizer_is_refused_at_construction_naming_the_argument(bad, hint, argument):
    for make in (tl.nn.Linear, lambda *a, **k: tl.nn.Conv2d(*a, kernel_size=1, **k)):
        with pytest.raises(ValueError, match=f": {argument}: expected None, a regularizer .*; got {hint}"):
            make(2, 3, **{argument: bad})


def test_setting_a_bad_regularizer_on_a_layer_is_refused_at_once():
    layer = tl.nn.Linear(2, 3)
    with pytest.raises(ValueError, match="Linear: kernel_regularizer: .* got the number 0.1"):
        layer.kernel_regularizer = 0.1
    layer.kernel_regularizer = "l2"
    assert repr(layer.kernel_regularizer) == "L2(0.01)"


def test_a_custom_modules_non_callable_regularizer_is_named_when_the_loss_is_built():
    class Scale(tl.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = Tensor(np.ones(2), requires_grad=True)
            self.regularizers = {"w": 0.01}
    with pytest.raises(TypeError, match=r"Scale.regularizers\['w'\] is 0.01, not a callable"):
        Scale().regularization_loss()
