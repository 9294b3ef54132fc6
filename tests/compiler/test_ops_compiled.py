"""Every built-in op, compiled: its replayed value and gradients equal eager's at float16,
float32 and float64 (the replay runs the op's own forward and backward, recorded on symbolic
arrays, so there is no second copy of its math to drift).  A new op without a case here
fails `test_every_built_in_op_has_a_compiled_check`."""
import inspect

import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import ops
from tinygrad_l2.creation import RandomDraw
from tinygrad_l2.nn import functional as F
from tinygrad_l2.nn.conv import Conv2d
from tinygrad_l2.nn.layers import InvertedDropout
from tinygrad_l2.nn.losses import BinaryCrossEntropy, BinaryCrossEntropyWithLogits
from tinygrad_l2.nn.normalization import BatchNormalize
from tinygrad_l2.nn.pooling import AvgPool, MaxPool
from tinygrad_l2.compiler.symbolic import NotSymbolic, Recording, Value, recording

# op class -> f(x, w, y) -> a tensor; x, w: (3, 4) tensors (w a parameter), y: a (3, 4) mask
CASES = {
    ops.Add: lambda x, w, y, *scope: x + w, ops.Sub: lambda x, w, y, *scope: x - w, ops.Mul: lambda x, w, y, *scope: x * w * 0.5,
    ops.Div: lambda x, w, y, *scope: x / (w * w + 1), ops.Neg: lambda x, w, y, *scope: -w,
    ops.Pow: lambda x, w, y, *scope: w ** 3 + w ** 2, ops.Exp: lambda x, w, y, *scope: (w * 0.1).exp(),
    ops.Log: lambda x, w, y, *scope: (w * w + 1).log(), ops.Sqrt: lambda x, w, y, *scope: (w * w + 1).sqrt(),
    ops.ReLU: lambda x, w, y, *scope: (x * w).relu(), ops.Sigmoid: lambda x, w, y, *scope: (x * w).sigmoid(),
    ops.Tanh: lambda x, w, y, *scope: (x * w).tanh(), ops.Abs: lambda x, w, y, *scope: (x - w).abs(),
    ops.Cast: lambda x, w, y, *scope: w.astype(np.float64) if hasattr(w, "astype") else w.cast(np.float64),
    ops.Clamp: lambda x, w, y, *scope: w.clamp(-0.3, 0.3),
    ops.Maximum: lambda x, w, y, *scope: tl.maximum(x, w), ops.Minimum: lambda x, w, y, *scope: tl.minimum(x, w),
    ops.Where: lambda x, w, y, *scope: tl.where(y, w, x * w),
    ops.Compare: lambda x, w, y, *scope: w * (x > w) + w * (w == 0.5),  # masks: computed each call
    ops.ArgReduce: lambda x, w, y, *scope: w * (x * w).argmax(axis=1, keepdims=True) + w * x.argmin(),
    ops.MatMul: lambda x, w, y, *scope: x @ w.T, ops.Sum: lambda x, w, y, *scope: w.sum(axis=0) * w.sum(),
    ops.Mean: lambda x, w, y, *scope: w.mean(axis=1, keepdims=True) * x,
    ops.Max: lambda x, w, y, *scope: w.max(axis=1), ops.Min: lambda x, w, y, *scope: w.min(axis=0),
    ops.Reshape: lambda x, w, y, *scope: w.reshape(4, 3) @ x, ops.Transpose: lambda x, w, y, *scope: w.T @ x,
    ops.Index: lambda x, w, y, *scope: w[1:, ::2] * 2 + w[:, 1].sum() + w[..., None][0, 0],
    ops.Concatenate: lambda x, w, y, *scope: tl.cat([w, x * w], axis=0),
    ops.Stack: lambda x, w, y, *scope: tl.stack([w, x], axis=1),
    ops.Softmax: lambda x, w, y, *scope: (x * w).softmax(axis=1),
    ops.LogSoftmax: lambda x, w, y, *scope: (x * w).log_softmax(axis=0),
    ops.PickLabels: lambda x, w, y, *scope: tl.nn.softmax_cross_entropy(x * w, scope[0]),
    Conv2d: lambda x, w, y, *scope: F.conv2d((x * w).reshape(1, 1, 3, 4), w.reshape(3, 1, 2, 2)),
    MaxPool: lambda x, w, y, *scope: F.max_pool2d((x * w).reshape(1, 1, 3, 4), 2, stride=1),
    AvgPool: lambda x, w, y, *scope: F.avg_pool2d((x * w).reshape(1, 1, 3, 4), 2, stride=1, padding=1),
    BatchNormalize: lambda x, w, y, *scope: F.batch_norm(x * w, None, None, w[0], w[1], training=True),
    InvertedDropout: lambda x, w, y, *scope: F.dropout(x * w, 0.4),  # (the same seed each call)
    RandomDraw: lambda x, w, y, *scope: w * tl.randn(3, 4, dtype=w.dtype) + x * tl.rand(3, 1, dtype=w.dtype),
    BinaryCrossEntropy: lambda x, w, y, *scope: F.binary_cross_entropy((x * w).sigmoid(), scope[1]),
    BinaryCrossEntropyWithLogits: lambda x, w, y, *scope: F.binary_cross_entropy_with_logits(x * w, scope[1]),
}
LABELS = np.array([0, 3, 1])  # read by the step from its globals: inputs of every call
TARGETS = np.random.default_rng(2).uniform(0.1, 0.9, (3, 4))


def test_every_built_in_op_has_a_compiled_check():
    """Every public subclass of ops.Op anywhere in the package (ops, nn's convolution,
    pooling and losses), found by walking the class tree, not by a list."""
    def below(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from below(sub)
    built_in = {c for c in below(ops.Op) if c.__module__.startswith("tinygrad_l2.")
                and not c.__name__.startswith("_")}
    assert len(built_in) > 30 and built_in - set(CASES) == set()


def weights(dtype):
    rng = np.random.default_rng(0)
    return tl.Tensor(rng.standard_normal((3, 4)).astype(dtype), requires_grad=True)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("op", list(CASES), ids=lambda c: c.__name__)
def test_each_op_replays_exactly_as_eager(op, dtype):
    w_eager, w_compiled = weights(dtype), weights(dtype)
    targets = TARGETS.astype(dtype)  # a closure variable: read each call
    def make(w):
        def step(x, y):
            out = CASES[op](x, w, y, LABELS, targets)
            loss = (out * out).sum()
            loss.backward()
            return loss
        return step
    eager, compiled = make(w_eager), tl.compile(make(w_compiled))
    rng = np.random.default_rng(1)
    for _ in range(3):
        x = tl.Tensor(rng.standard_normal((3, 4)).astype(dtype))
        y = rng.standard_normal((3, 4)) > 0
        w_eager.grad = w_compiled.grad = None  # (an assignment inside the step is not replayed)
        tl.manual_seed(3)  # (an op that draws random numbers draws the same ones in both)
        want = eager(x, y)
        tl.manual_seed(3)
        got = compiled(x, y)
        np.testing.assert_array_equal(got.data, want.data)
        np.testing.assert_array_equal(w_compiled.grad, w_eager.grad)
    assert compiled.traces == 1 and not compiled.program.eager_only


def test_a_users_op_named_like_a_built_in_keeps_its_own_math():
    class Exp(tl.Function):  # computes 2x, whatever its name says
        def forward(self, x):
            return 2 * x

        def backward(self, g):
            return 2 * g
    w = tl.Tensor(np.array([1.0, 2.5]), requires_grad=True)

    def step(x):
        loss = (Exp.apply(w) * x).sum()
        loss.backward()
        return loss
    compiled = tl.compile(step)
    x = np.array([1.0, 1.0])
    assert step(x).item() == 7.0 and compiled(x).item() == 7.0
    w.grad = None
    assert compiled(x).item() == 7.0  # replayed: the user's math, not np.exp
    np.testing.assert_array_equal(w.grad, [2.0, 2.0])


def test_float16_mean_over_many_elements_keeps_its_gradient():
    w = tl.Tensor(np.full(70_000, 0.5, dtype=np.float16), requires_grad=True)

    def step(x):
        loss = (w * x).mean()
        loss.backward()
        return loss
    x = np.ones(70_000, dtype=np.float16)
    step(x)
    want, w.grad = w.grad.copy(), None
    compiled = tl.compile(step)
    compiled(x)
    w.grad = None
    compiled(x)
    assert want[0] > 0
    np.testing.assert_array_equal(w.grad, want)


def test_a_value_read_into_python_is_not_recordable():
    value = Value(np.ones(3))
    with recording(Recording()), pytest.raises(NotSymbolic):
        bool((value > 0).any())


def test_labels_out_of_range_are_refused_on_every_replayed_call_and_nothing_is_updated():
    model = tl.nn.Linear(4, 3, dtype=np.float64, rng=0)
    opt = tl.optim.SGD(model.parameters(), lr=0.1)

    def step(x, y):
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    compiled = tl.compile(step)
    x = np.ones((2, 4))
    compiled(x, np.array([0, 2])), compiled(x, np.array([1, 2]))
    before = [p.data.copy() for p in model.parameters()]
    for bad in (np.array([-1, 0]), np.array([0, 3])):
        with pytest.raises(ValueError, match=r"labels must be in \[0, 2\]"):
            compiled(x, bad)
        assert all(np.array_equal(p.data, b) for p, b in zip(model.parameters(), before))
    assert compiled.traces == 1 and compiled.fallback_reason is None


def test_an_op_without_a_symbolic_form_holding_an_argument_array_runs_eagerly():
    class ScaleByMax(tl.Function):  # reads a value into Python: no symbolic form
        def forward(self, x):
            return x * float(self.weights.max())

        def backward(self, g):
            return g * float(self.weights.max())
    w = tl.Tensor(np.ones(3), requires_grad=True)

    def step(scale):
        loss = ScaleByMax.apply(w, weights=scale).sum()
        loss.backward()
        return loss
    compiled = tl.compile(step)
    with pytest.warns(tl.CompileWarning, match="holds an argument's array"):
        compiled(np.array([1.0, 2.0]))
    assert compiled(np.array([5.0, 1.0])).item() == 15.0  # eager: the new array is read
