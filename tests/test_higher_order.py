"""grad(create_graph=True): second derivatives from the ops' own backward, checked against
finite differences of the first derivatives (gradgradcheck) in float64."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor
from tinygrad_l2.nn.losses import binary_cross_entropy_with_logits, mse_loss, softmax_cross_entropy


def leaf(rng, *shape, positive=False):
    data = rng.standard_normal(shape)
    return Tensor(np.abs(data) + 0.5 if positive else data, requires_grad=True)


# op name -> (function, input shapes, positive inputs?); linear ops are squared after, so
# that the gradient flowing into their backward depends on x
OPS = {
    "add": (lambda a, b: (a + b) ** 2, [(3, 2), (2,)], False),
    "sub": (lambda a, b: (a - b) ** 2, [(3, 1), (2,)], False),
    "mul": (lambda a, b: a * b, [(3, 2), (1, 2)], False),
    "mul_by_a_scalar": (lambda a: (a * 0.5) ** 2, [(3,)], False),
    "div": (lambda a, b: a / b, [(3, 2), (2,)], True),
    "neg": (lambda a: (-a) ** 2, [(3,)], False),
    "square": (lambda a: a ** 2 * a, [(3,)], False),
    "pow": (lambda a: a ** 2.5, [(3,)], True),
    "exp": (lambda a: a.exp(), [(3,)], False),
    "log": (lambda a: a.log(), [(3,)], True),
    "sqrt": (lambda a: a.sqrt(), [(3,)], True),
    "tanh": (lambda a: a.tanh(), [(3,)], False),
    "sigmoid": (lambda a: a.sigmoid(), [(3,)], False),
    "relu": (lambda a: a.relu() ** 3, [(4,)], False),
    "abs": (lambda a: a.abs() ** 3, [(4,)], False),
    "clamp": (lambda a: a.clamp(-0.5, 0.5) ** 3, [(4,)], False),
    "maximum": (lambda a, b: tl.maximum(a, b) ** 3, [(4,), (4,)], False),
    "minimum": (lambda a, b: tl.minimum(a, b) ** 3, [(4,), (4,)], False),
    "where": (lambda a, b: tl.where(np.array([True, False, True]), a, b) ** 3, [(3,), (3,)], False),
    "matmul": (lambda a, b: a @ b, [(3, 2), (2, 4)], False),
    "matmul_transposed": (lambda a, b: a @ b.T, [(3, 2), (4, 2)], False),
    "matmul_vector_matrix": (lambda a, b: a @ b, [(2,), (2, 4)], False),
    "matmul_matrix_vector": (lambda a, b: a @ b, [(3, 2), (2,)], False),
    "matmul_batched": (lambda a, b: a @ b, [(2, 3, 2), (2, 4)], False),
    "sum": (lambda a: a.sum(axis=0) ** 2, [(3, 2)], False),
    "sum_keepdims": (lambda a: a.sum(axis=1, keepdims=True) ** 2, [(3, 2)], False),
    "mean": (lambda a: a.mean() ** 2, [(3, 2)], False),
    "reshape": (lambda a: a.reshape(6) ** 3, [(3, 2)], False),
    "transpose": (lambda a: a.transpose(2, 0, 1) ** 3, [(3, 2, 2)], False),
    "T": (lambda a: a.T ** 3, [(3, 2)], False),
    "slice": (lambda a: a[1:, 0] ** 3, [(3, 2)], False),
    "repeated_indices": (lambda a: a[np.array([0, 0, 2])] ** 3, [(3, 2)], False),
    "pick_rows_labels": (lambda a: a[np.arange(3), np.array([1, 0, 1])] ** 3, [(3, 2)], False),
    "concatenate": (lambda a, b: tl.cat([a, b]) ** 3, [(2,), (3,)], False),
    "stack": (lambda a, b: tl.stack([a, b], axis=1) ** 3, [(2,), (2,)], False),
    "softmax": (lambda a: a.softmax(axis=1), [(3, 4)], False),
    "log_softmax": (lambda a: a.log_softmax(axis=1), [(3, 4)], False),
    "softmax_cross_entropy": (lambda a: softmax_cross_entropy(a, np.array([0, 2, 1])), [(3, 4)], False),
    "mse_loss": (mse_loss, [(3, 2), (3, 2)], False),
    "bce_with_logits": (lambda a, b: binary_cross_entropy_with_logits(a, b.sigmoid()), [(4,), (4,)], False),
    "std": (lambda a: a.std(axis=0), [(3, 2)], False),
    "l2_regularizer": (lambda w: tl.nn.L2(0.3)(w) * w.sum(), [(3, 2)], False),
    "dropout": (lambda a: _seeded_dropout(a) ** 3, [(4, 3)], False),
}


def _seeded_dropout(a):
    tl.manual_seed(0)  # the same mask at every evaluation of the finite differences
    return tl.nn.functional.dropout(a, 0.4)


@pytest.mark.parametrize("name", sorted(OPS))
def test_second_derivatives_of_each_op_match_finite_differences(name):
    fn, shapes, positive = OPS[name]
    rng = np.random.default_rng(len(name))
    assert tl.gradgradcheck(fn, [leaf(rng, *s, positive=positive) for s in shapes])


def declaring_classes(cls=tl.Function):
    """Every op class that declares what its saved arrays are (saved_from), itself or inherited."""
    found = set()
    for sub in cls.__subclasses__():
        if getattr(sub, "saved_from", None) is not None and sub.__module__.startswith("tinygrad_l2"):
            found.add(sub)
        found |= declaring_classes(sub)
    return found


def test_every_op_that_declares_its_saved_arrays_has_a_second_derivative_check():
    covered = set()
    for fn, shapes, positive in OPS.values():
        rng = np.random.default_rng(0)
        out = fn(*[leaf(rng, *s, positive=positive) for s in shapes])
        covered |= {type(node) for node in tl.topological_order(out) if not node.is_leaf}
    missing = {c.__name__ for c in declaring_classes()} - {c.__name__ for c in covered}
    assert len(declaring_classes()) >= 18 and not missing, missing


BROADCASTING = {"add": lambda a, b: (a + b) ** 2, "sub": lambda a, b: (a - b) ** 2,
                "mul": lambda a, b: a * b * a, "div": lambda a, b: a / (b * b + 1)}


@pytest.mark.parametrize("name", sorted(BROADCASTING))
@settings(max_examples=8, deadline=None)
@given(shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
def test_second_derivatives_of_broadcasting_ops_at_random_shapes(name, shapes):
    rng = np.random.default_rng(0)
    a, b = (leaf(rng, *s) for s in shapes.input_shapes)
    assert tl.gradgradcheck(BROADCASTING[name], [a, b])


@settings(max_examples=10, deadline=None)
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, max_side=3))
def test_second_derivatives_of_unary_ops_at_random_shapes(shape):
    rng = np.random.default_rng(0)
    x = leaf(rng, *shape)
    assert tl.gradgradcheck(lambda t: t.tanh() * t.sigmoid() + (t * t).exp(), [x])


def test_the_gradient_carries_a_graph_only_with_create_graph():
    x = Tensor(np.array([0.5, -2.0]), requires_grad=True)
    (g,) = tl.grad((x ** 3).sum(), [x], create_graph=True)
    assert isinstance(g, Tensor) and g.requires_grad
    np.testing.assert_allclose(g.data, 3 * x.data ** 2, rtol=1e-15)
    (plain,) = tl.grad((x ** 3).sum(), [x])
    assert type(plain) is np.ndarray


def test_a_gradient_that_depends_on_nothing_is_a_constant_tensor():
    x = Tensor(np.array([0.5, -2.0]), requires_grad=True)
    (g,) = tl.grad((x * 3).sum(), [x], create_graph=True)
    assert isinstance(g, Tensor) and not g.requires_grad and g.tolist() == [3.0, 3.0]


def test_double_backward_fills_grad_with_the_hessian_vector_product():
    x = Tensor(np.array([0.5, -2.0, 1.0]), requires_grad=True)
    (g,) = tl.grad((x ** 4).sum(), [x], create_graph=True)
    (g * np.array([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_allclose(x.grad, 12 * x.data ** 2 * [1.0, 2.0, 3.0], rtol=1e-15)


def test_a_tensor_dropped_by_the_user_is_rebuilt_on_its_node():
    x = Tensor(np.array([0.3, 0.7]), requires_grad=True)
    loss = ((x * 2).exp() * x).log().sum()  # the intermediates' tensors are gone
    assert tl.gradgradcheck(lambda t: ((t * 2).exp() * t).log(), [x])
    assert tl.grad(loss, [x], create_graph=True)[0].requires_grad


def test_grad_outputs_that_require_grad_stay_in_the_graph():
    x = Tensor(np.array([0.5, -2.0]), requires_grad=True)
    v = Tensor(np.array([1.0, 3.0]), requires_grad=True)
    (g,) = tl.grad(x ** 2, [x], grad_outputs=v, create_graph=True)  # 2·x·v
    (dv,) = tl.grad(g.sum(), [v])
    np.testing.assert_allclose(dv, 2 * x.data, rtol=1e-15)


def test_retain_graph_false_frees_the_graph_a_second_derivative_needs():
    x = Tensor(np.array([0.5, -2.0]), requires_grad=True)
    (g,) = tl.grad(x.exp().sum(), [x], create_graph=True, retain_graph=False)
    with pytest.raises(RuntimeError, match="Exp a second time"):
        tl.grad(g.sum(), [x])


def test_unused_inputs_follow_torch_with_create_graph():
    x, unused = Tensor([1.0], requires_grad=True), Tensor([5.0, 6.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="index 1 appears to not have been used"):
        tl.grad((x * x).sum(), [x, unused], create_graph=True)
    gx, gu = tl.grad((x * x).sum(), [x, unused], create_graph=True, materialize_grads=True)
    assert gx.tolist() == [2.0] and gu.tolist() == [0.0, 0.0]


def test_tensor_backward_with_create_graph_points_to_grad():
    x = Tensor(np.array([0.5]), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"tl.grad\(loss, inputs, create_graph=True\)"):
        (x * x).sum().backward(create_graph=True)
    assert x.grad is None


def test_a_zero_d_output_saved_as_a_numpy_scalar_stays_in_the_graph():
    # a / b on 0-d arrays gives a numpy scalar, which Div saves: as a Mul operand it would be
    # taken for a Python number and cut from the graph (d²/da db would be 0)
    a, b = Tensor(np.array(0.7), requires_grad=True), Tensor(np.array(-0.4), requires_grad=True)
    _, gb = tl.grad(a / (b * b + 1), [a, b], create_graph=True)
    (gba,) = tl.grad(gb, [a])
    np.testing.assert_allclose(gba, 0.8 / 1.16 ** 2, rtol=1e-14)


# ---- networks: Hessian-vector products and the L2 term's κI ----------------------------------

def mlp_case(activation, lam, seed=0):
    rng = np.random.default_rng(seed)
    model = tl.nn.MLP([3, 5, 4], activation=activation, kernel_regularizer=tl.nn.L2(lam),
                      dtype=np.float64, rng=seed)
    X, y = Tensor(rng.standard_normal((6, 3))), rng.integers(0, 4, 6)
    params = list(model.parameters())
    return model, X, y, params, [rng.standard_normal(p.shape) for p in params]


def hessian_vector_product(loss_of, params, vectors):
    grads = tl.grad(loss_of(), params, create_graph=True)
    return tl.grad(sum((g * v).sum() for g, v in zip(grads, vectors)), params)


def test_hessian_vector_product_of_an_mlp_loss_matches_finite_differences_of_its_gradient():
    model, X, y, params, vs = mlp_case("tanh", lam=0.05)

    def loss():
        return softmax_cross_entropy(model(X), y) + model.regularization_loss()
    hv, eps = hessian_vector_product(loss, params, vs), 1e-5
    originals = [p.data.copy() for p in params]
    shifted = []
    for sign in (1, -1):
        for p, original, v in zip(params, originals, vs):
            p.data = original + sign * eps * v
        shifted.append(tl.grad(loss(), params))
    for p, original in zip(params, originals):
        p.data = original
    for got, plus, minus in zip(hv, *shifted):
        np.testing.assert_allclose(got, (plus - minus) / (2 * eps), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("activation", ["tanh", "relu", "sigmoid"])
def test_the_l2_term_adds_kappa_times_v_to_the_weights_hessian_vector_product_and_nothing_to_the_biases(activation):
    """tl.nn.L2(lam) is lam·ΣW², so κ = 2·lam (REFERENCE.md) and its Hessian is κI on the
    weights.  H_data·v is computed by the same ops on the same numbers with or without the
    penalty; the penalty adds one term κ·v where the weight's sums meet, so the difference
    is κ·v up to the rounding of those few additions (we allow 4 ulps of |H_total·v|), and on
    the biases, which the penalty never reaches, exactly 0."""
    lam = 0.05
    model, X, y, params, vs = mlp_case(activation, lam)
    total = hessian_vector_product(
        lambda: softmax_cross_entropy(model(X), y) + model.regularization_loss(), params, vs)
    data = hessian_vector_product(lambda: softmax_cross_entropy(model(X), y), params, vs)
    for (name, _), t, d, v in zip(model.named_parameters(), total, data, vs):
        if name.endswith("weight"):
            assert np.all(np.abs((t - d) - 2 * lam * v) <= 4 * np.spacing(np.abs(t)))
            assert np.abs(t - d).max() > 0.01  # the term is there
        else:
            np.testing.assert_array_equal(t - d, 0.0)


def test_a_gradient_penalty_is_differentiable():
    """‖∂f/∂x‖² (WGAN-GP's penalty, double backward) has the gradient finite differences give."""
    rng = np.random.default_rng(1)
    x, w = Tensor(rng.standard_normal((4, 2)), requires_grad=True), leaf(rng, 3, 2)

    def penalty(x_, w_):
        with tl.enable_grad():  # gradcheck's finite differences run under no_grad
            (gx,) = tl.grad((x_ @ w_.T).tanh().sum(), [x_], create_graph=True)
            return (gx * gx).sum()
    assert tl.gradcheck(penalty, [x, w])


# ---- refusals: never a silently wrong second derivative ---------------------------------------

class Cube(tl.Function):
    def forward(self, x):
        self.save_for_backward(x)
        return x ** 3

    def backward(self, g):
        (x,) = self.saved_arrays
        return 3 * x ** 2 * g


class CubeFromSquare(tl.Function):
    def forward(self, x):
        square = x * x
        self.save_for_backward(square)  # derived: as a constant, d²/dx² would be 3x² · 0
        return square * x

    def backward(self, g):
        (square,) = self.saved_arrays
        return 3 * square * g


def test_a_custom_function_that_saves_its_input_gets_second_derivatives():
    assert tl.gradgradcheck(lambda t: Cube.apply(t), [Tensor(np.array([0.5, -1.5]), requires_grad=True)])


def test_a_custom_function_that_saves_a_derived_array_is_refused_by_name():
    x = Tensor(np.array([0.5, -1.5]), requires_grad=True)
    with pytest.raises(tl.CreateGraphError, match="CubeFromSquare's backward reads an array its "
                                                  "forward derived"):
        tl.grad(CubeFromSquare.apply(x).sum(), [x], create_graph=True)


def test_an_input_whose_tensor_was_dropped_is_refused_unless_declared():
    x = Tensor(np.array([0.5, -1.5]), requires_grad=True)
    with pytest.raises(tl.CreateGraphError, match="Cube's backward reads an array"):
        tl.grad(Cube.apply(x * 2).sum(), [x], create_graph=True)  # x * 2: gone, unrecognizable

    class DeclaredCube(Cube):
        saved_from = (0,)
    assert tl.gradgradcheck(lambda t: DeclaredCube.apply(t * 2), [x])


def test_a_custom_function_that_keeps_an_array_attribute_is_refused():
    class Scale(tl.Function):
        def forward(self, x):
            self.factor = np.exp(x)  # read by backward, invisible to save_for_backward
            return x * self.factor

        def backward(self, g):
            return g * self.factor * 2
    x = Tensor(np.array([0.5]), requires_grad=True)
    with pytest.raises(tl.CreateGraphError, match="Scale keeps an array in attribute 'factor'"):
        tl.grad(Scale.apply(x).sum(), [x], create_graph=True)


def test_a_numpy_function_with_no_tensor_form_is_refused_naming_the_op_and_the_function():
    class Sinh(tl.Function):
        def forward(self, x):
            self.save_for_backward(x)
            return np.sinh(x)

        def backward(self, g):
            return g * np.cosh(self.saved_arrays[0])
    x = Tensor(np.array([0.5]), requires_grad=True)
    with pytest.raises(tl.CreateGraphError, match="Sinh's backward calls numpy's cosh, which has "
                                                  "no Tensor form"):
        tl.grad(Sinh.apply(x).sum(), [x], create_graph=True)


@pytest.mark.parametrize("make, shape, op", [
    (lambda: tl.nn.BatchNorm1d(3, dtype=np.float64), (4, 3), "BatchNormalize"),
    (lambda: tl.nn.Conv2d(2, 3, 3, dtype=np.float64), (1, 2, 5, 5), "Conv2d"),
    (lambda: tl.nn.MaxPool2d(2), (1, 2, 4, 4), "MaxPool")])
def test_layers_whose_backward_reads_derived_arrays_are_refused_by_name(make, shape, op):
    x = Tensor(np.random.default_rng(0).standard_normal(shape), requires_grad=True)
    with pytest.raises(tl.CreateGraphError, match=f"{op}'s backward reads an array its forward derived"):
        tl.grad((make()(x) ** 2).sum(), [x], create_graph=True)


def test_a_custom_function_may_declare_a_saved_mask_piecewise_constant():
    from tinygrad_l2.ops.base import PIECEWISE_CONSTANT

    class Rectify(tl.Function):
        saved_from = (PIECEWISE_CONSTANT,)

        def forward(self, x):
            self.save_for_backward(x > 0)
            return x * (x > 0)

        def backward(self, g):
            (positive,) = self.saved_arrays
            return g * positive
    x = Tensor(np.array([0.5, -1.5, 2.0]), requires_grad=True)
    assert tl.gradgradcheck(lambda t: Rectify.apply(t * t) * t, [x])


def test_outputs_and_grad_outputs_may_be_sequences_of_one_as_in_torch():
    x = Tensor(np.array([0.5, -2.0]), requires_grad=True)
    (g,) = tl.grad([x ** 2], (x,), grad_outputs=[np.array([1.0, 3.0])], create_graph=True)
    assert g.tolist() == [1.0, -12.0]
    with pytest.raises(ValueError, match="one output is supported, got 2"):
        tl.grad([x.sum(), x.sum()], [x], create_graph=True)
