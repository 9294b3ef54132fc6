"""Every differentiable op: forward and backward side by side, saving only what backward needs.

Notation: `g` is the gradient of the final scalar with respect to the op's output; each
backward returns the gradient with respect to each input (the vector-Jacobian product).
Gradients of broadcast inputs come back in the broadcast shape; the engine's `unbroadcast`
sums them to each input's own shape, once, for every op.
"""
import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

from .engine import unbroadcast
from .function import Function
from .tensor import Tensor


def _shape_error(op, *shapes, expected):
    shown = " and ".join(str(tuple(s)) for s in shapes)
    return ValueError(f"{op}: shapes {shown}: {expected}")


# ---- elementwise binary ops (numpy broadcasting) ---------------------------------------------

class _Broadcasting(Function):
    """Shared forward guard: a clear error instead of numpy's for non-broadcastable shapes."""

    def forward(self, a, b):
        try:
            return self.compute(a, b)
        except ValueError:
            raise _shape_error(type(self).__name__.lower(), a.shape, b.shape,
                               expected="not broadcastable (numpy rules: trailing dimensions "
                                        "must be equal or 1)") from None


class Add(_Broadcasting):
    """z = a + b;  dz/da = 1, dz/db = 1."""

    def compute(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(_Broadcasting):
    """z = a - b;  dz/da = 1, dz/db = -1."""

    def compute(self, a, b):
        return a - b

    def backward(self, g):
        return g, (-g if self.needs_input_grad[1] else None)


class Mul(_Broadcasting):
    """z = a * b;  dz/da = b, dz/db = a."""

    def compute(self, a, b):
        self.saved = (a, b)
        return a * b

    def backward(self, g):
        a, b = self.saved
        need_a, need_b = self.needs_input_grad
        return (g * b if need_a else None), (g * a if need_b else None)

    def label(self):
        constant = _scalar_constant(self.parents)
        return f"Mul(×{constant:.4g})" if constant is not None else "Mul"


class Div(_Broadcasting):
    """z = a / b;  dz/da = 1/b, dz/db = -a/b² = -z/b."""

    def compute(self, a, b):
        out = a / b
        self.saved = (b, out)
        return out

    def backward(self, g):
        b, out = self.saved
        need_a, need_b = self.needs_input_grad
        return (g / b if need_a else None), (-g * out / b if need_b else None)


def _scalar_constant(parents):
    """The value of a constant 0-d operand (how `lam * x` shows its λ in the graph)."""
    for p in parents:
        if isinstance(p, Tensor) and not p.requires_grad and p.ndim == 0:
            return float(p.data)
    return None


# ---- elementwise unary ops -------------------------------------------------------------------

class Neg(Function):
    """z = -x."""

    def forward(self, x):
        return -x

    def backward(self, g):
        return (-g,)


class Pow(Function):
    """z = x**p for a constant scalar p;  dz/dx = p·x**(p-1)."""

    def forward(self, x):
        self.saved = (x,)
        if self.exponent == 2.0:
            return np.square(x)  # x*x: several times faster than x**2.0
        return x ** self.exponent  # a Python float: keeps float32 float32 (NEP 50)

    def backward(self, g):
        (x,) = self.saved
        p = self.exponent
        if p == 2.0:  # the L2 penalty's square: one allocation, W-sized
            grad = g * x
            grad *= 2
            return (grad,)
        grad = x ** (p - 1)
        grad *= p
        grad *= g
        return (grad,)

    def label(self):
        return "Square" if self.exponent == 2.0 else f"Pow({self.exponent:g})"


class Exp(Function):
    """z = eˣ;  dz/dx = z."""

    def forward(self, x):
        out = np.exp(x)
        self.saved = (out,)
        return out

    def backward(self, g):
        return (g * self.saved[0],)


class Log(Function):
    """z = ln x;  dz/dx = 1/x."""

    def forward(self, x):
        self.saved = (x,)
        return np.log(x)

    def backward(self, g):
        return (g / self.saved[0],)


class Sqrt(Function):
    """z = √x;  dz/dx = 1/(2z)."""

    def forward(self, x):
        out = np.sqrt(x)
        self.saved = (out,)
        return out

    def backward(self, g):
        return (g / (2 * self.saved[0]),)


class ReLU(Function):
    """z = max(x, 0);  dz/dx = 1 where x > 0, else 0."""

    def forward(self, x):
        out = np.maximum(x, 0)
        self.saved = (out,)
        return out

    def backward(self, g):
        return (g * (self.saved[0] > 0),)


class Sigmoid(Function):
    """z = σ(x) = 1/(1+e⁻ˣ);  dz/dx = z·(1-z).  Computed without overflow for any x."""

    def forward(self, x):
        e = np.exp(-np.abs(x))
        out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
        self.saved = (out,)
        return out

    def backward(self, g):
        out = self.saved[0]
        return (g * out * (1 - out),)


class Tanh(Function):
    """z = tanh x;  dz/dx = 1 - z²."""

    def forward(self, x):
        out = np.tanh(x)
        self.saved = (out,)
        return out

    def backward(self, g):
        out = self.saved[0]
        return (g * (1 - out * out),)


class Abs(Function):
    """z = |x|;  dz/dx = sign(x) (0 at 0, as in PyTorch)."""

    def forward(self, x):
        self.saved = (x,)
        return np.abs(x)

    def backward(self, g):
        return (g * np.sign(self.saved[0]),)


# ---- matrix product --------------------------------------------------------------------------

class MatMul(Function):
    """z = a @ b (numpy/PyTorch semantics: 1-D operands are promoted, batch dims broadcast).

    For 2-D operands: dz/da = g @ bᵀ, dz/db = aᵀ @ g.  A 1-D operand is treated as a row (a)
    or column (b) matrix and its gradient reshaped back.
    """

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: operands must have at least one dimension, got shapes "
                             f"{a.shape} and {b.shape} (use * for scaling)")
        k_a, k_b = a.shape[-1], b.shape[0] if b.ndim == 1 else b.shape[-2]
        if k_a != k_b:
            raise _shape_error("matmul", a.shape, b.shape,
                               expected=f"the inner dimensions {k_a} and {k_b} must be equal "
                                        f"({a.shape} @ {b.shape})")
        try:
            out = a @ b
        except ValueError:
            raise _shape_error("matmul", a.shape, b.shape,
                               expected="batch dimensions are not broadcastable") from None
        self.saved = (a, b)
        return out

    def backward(self, g):
        a, b = self.saved
        need_a, need_b = self.needs_input_grad
        if a.ndim == 2 and b.ndim == 2:  # the common case, without reshapes
            # Lay each gradient out like its operand: for x @ W.T the gradient of W.T comes
            # out as the transpose of a C-ordered (out, in) array, so Transpose's backward
            # hands W a contiguous gradient it can keep without a copy.
            grad_a = grad_b = None
            if need_a:
                grad_a = (b @ g.T).T if _is_transposed(a) else g @ b.T
            if need_b:
                grad_b = (g.T @ a).T if _is_transposed(b) else a.T @ g
            return grad_a, grad_b
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g.reshape(np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1]))
        grad_a = grad_b = None
        if need_a:
            grad_a = unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape)
        if need_b:
            grad_b = unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape)
        return grad_a, grad_b


def _is_transposed(array):
    return array.flags.f_contiguous and not array.flags.c_contiguous


# ---- reductions ------------------------------------------------------------------------------

class _Reduction(Function):
    """Shared by sum/mean/max: validates `axis` and expands a gradient back to the input."""

    def forward(self, x):
        try:
            self.axes = (None if self.axis is None else normalize_axis_tuple(self.axis, x.ndim))
        except (ValueError, TypeError, np.exceptions.AxisError):
            raise ValueError(f"{type(self).__name__.lower()}: axis {self.axis!r} is out of range "
                             f"for a tensor of shape {x.shape} (valid axes: -{x.ndim} .. "
                             f"{x.ndim - 1})") from None
        self.in_shape = x.shape
        return self.reduce(x)

    def expand(self, g):
        """g in the reduced shape -> a broadcast view in the input shape."""
        if not self.keepdims and self.axes is not None:
            g = np.expand_dims(g, self.axes)
        return np.broadcast_to(g, self.in_shape)

    def label(self):
        name = type(self).__name__
        return name if self.axis is None else f"{name}(axis={self.axis})"


class Sum(_Reduction):
    """z = Σ x over `axis`;  dz/dx = 1 (the gradient is copied back along the summed axes)."""

    def reduce(self, x):
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        return (self.expand(g),)


class Mean(_Reduction):
    """z = (1/N) Σ x over `axis`;  dz/dx = 1/N."""

    def reduce(self, x):
        self.count = x.size if self.axes is None else int(np.prod([x.shape[a] for a in self.axes]))
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        return (self.expand(g / np.asarray(self.count, dtype=g.dtype)),)


class Max(_Reduction):
    """z = max x over `axis`;  the gradient goes to the maximal elements, split evenly on ties."""

    def reduce(self, x):
        if x.size == 0:
            raise ValueError(f"max: cannot reduce an empty tensor of shape {x.shape}")
        out = x.max(axis=self.axes, keepdims=True)
        self.saved = (x, out)
        return out if self.keepdims else np.squeeze(out, self.axes)

    def backward(self, g):
        x, out = self.saved
        mask = x == out
        share = mask / mask.sum(axis=self.axes, keepdims=True)
        return (self.expand(g) * share.astype(g.dtype, copy=False),)


# ---- shape ops -------------------------------------------------------------------------------

class Reshape(Function):
    """z = x viewed with another shape;  the gradient is reshaped back."""

    def forward(self, x):
        try:
            out = x.reshape(self.shape)
        except (ValueError, TypeError):
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) into {tuple(self.shape)}") from None
        self.in_shape = x.shape
        return out

    def backward(self, g):
        return (g.reshape(self.in_shape),)

    def label(self):
        return f"Reshape{tuple(self.shape)}"


class Transpose(Function):
    """z = x with axes permuted;  the gradient is permuted back by the inverse permutation."""

    def forward(self, x):
        if self.axes is None:  # the common case (.T): reverse the axes
            self.perm = tuple(range(x.ndim - 1, -1, -1))
            return x.T
        axes = tuple(self.axes)
        if sorted(normalize_axis_tuple(axes, x.ndim, allow_duplicate=True)) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the "
                             f"{x.ndim} axes of a tensor of shape {x.shape}")
        self.perm = normalize_axis_tuple(axes, x.ndim)
        return x.transpose(self.perm)

    def backward(self, g):
        return (g.T if self.axes is None else g.transpose(np.argsort(self.perm)),)

    def label(self):
        return "Transpose"


class Index(Function):
    """z = x[index] (basic slices and integer arrays);  the gradient is scattered back, with
    repeated indices accumulated (np.add.at)."""

    def forward(self, x):
        index = self.index
        if isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        elif isinstance(index, Tensor):  # a Tensor of indices
            index = index.data
        self.index = index
        try:
            out = x[index]
        except IndexError as err:
            raise IndexError(f"index: {err} (tensor of shape {x.shape})") from None
        self.in_shape, self.in_dtype = x.shape, x.dtype
        return out

    def backward(self, g):
        grad = np.zeros(self.in_shape, dtype=g.dtype)
        if _is_basic_index(self.index):
            grad[self.index] = g  # a basic index selects each element at most once
        else:
            np.add.at(grad, self.index, g)
        return (grad,)


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)) for p in parts)


# ---- softmax family --------------------------------------------------------------------------

class Softmax(Function):
    """z = eˣ / Σ eˣ along `axis` (x - max first, so no overflow);
    dz/dx·g = z ⊙ (g - Σ g⊙z)."""

    def forward(self, x):
        _check_axis("softmax", self.axis, x.shape)
        e = np.exp(x - x.max(axis=self.axis, keepdims=True))
        out = e / e.sum(axis=self.axis, keepdims=True)
        self.saved = (out,)
        return out

    def backward(self, g):
        out = self.saved[0]
        return (out * (g - (g * out).sum(axis=self.axis, keepdims=True)),)


class LogSoftmax(Function):
    """z = x - max - log Σ e^(x - max) along `axis`;  dz/dx·g = g - softmax(x)·Σ g."""

    def forward(self, x):
        _check_axis("log_softmax", self.axis, x.shape)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        out = shifted - np.log(np.exp(shifted).sum(axis=self.axis, keepdims=True))
        self.saved = (out,)
        return out

    def backward(self, g):
        out = self.saved[0]
        return (g - np.exp(out) * g.sum(axis=self.axis, keepdims=True),)


def _check_axis(op, axis, shape):
    if not isinstance(axis, (int, np.integer)) or not -len(shape) <= axis < len(shape):
        raise ValueError(f"{op}: axis {axis!r} is out of range for a tensor of shape {shape}")
