"""Every built-in op: forward and backward side by side, saving only what backward needs.

Each op is a public `Function` like one a user would write.  Notation: `g` is the gradient of
the final scalar with respect to the op's output; backward returns the gradient with respect
to each input (the vector-Jacobian product).  Gradients of broadcast inputs come back in the
output's shape; the engine's `unbroadcast` sums them to each input's own shape, once, for
every op.  A Python scalar operand (`x * 0.5`) is an argument, not a tensor: it gets no
gradient, and float32 stays float32 (numpy 2, NEP 50).
"""
import functools

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

from .engine import unbroadcast
from .function import Function


class Op(Function):
    """A built-in op: a public `Function` whose backward returns new arrays, `g` or views of
    `g` (never a saved array), so the engine may accumulate into them in place."""
    __slots__ = ()
    fresh_gradients = True


def _shape_error(op, *shapes, expected):
    shown = " and ".join(str(tuple(np.shape(s))) for s in shapes)
    return ValueError(f"{op}: shapes {shown}: {expected}")


# ---- elementwise binary ops (numpy broadcasting) ---------------------------------------------

class _Broadcasting(Op):
    """Shared by the binary ops: a clear error instead of numpy's for shapes that do not
    broadcast."""
    __slots__ = ()

    def explain(self, err, arrays):
        a, b = arrays
        return _shape_error(type(self).__name__.lower(), a, b,
                            expected="not broadcastable (numpy rules: trailing dimensions must be "
                                     "equal or 1)")


class Add(_Broadcasting):
    """z = a + b;  dz/da = 1, dz/db = 1."""
    __slots__ = ()

    def forward(self, a, b):
        return a + b

    def backward(self, g):
        return g, g


class Sub(_Broadcasting):
    """z = a - b;  dz/da = 1, dz/db = -1."""
    __slots__ = ()

    def forward(self, a, b):
        return a - b

    def backward(self, g):
        return g, (-g if self.needs_input_grad[1] else None)


class Mul(_Broadcasting):
    """z = a * b;  dz/da = b, dz/db = a."""
    __slots__ = ("factor",)

    def forward(self, a, b):
        if type(b) is np.ndarray:
            need_a, need_b = self.needs_input_grad
            self.save_for_backward(b if need_a else None, a if need_b else None)
        else:
            self.factor = b  # a Python scalar: kept as an attribute (and shown in the label)
        return a * b

    def backward(self, g):
        if not self.saved_arrays:
            return g * self.factor, None
        b, a = self.saved_arrays
        return (None if b is None else g * b), (None if a is None else g * a)

    def label(self):
        factor = getattr(self, "factor", None)
        return "Mul" if factor is None else f"Mul(×{float(factor):.4g})"


class Div(_Broadcasting):
    """z = a / b;  dz/da = 1/b, dz/db = -a/b² = -z/b."""
    __slots__ = ()

    def forward(self, a, b):
        out = a / b
        self.save_for_backward(b, out if self.needs_input_grad[1] else None)
        return out

    def backward(self, g):
        b, out = self.saved_arrays
        need_a, need_b = self.needs_input_grad
        return (g / b if need_a else None), (-g * out / b if need_b else None)


# ---- elementwise unary ops -------------------------------------------------------------------

class Neg(Op):
    """z = -x."""
    __slots__ = ()

    def forward(self, x):
        return -x

    def backward(self, g):
        return -g


class Pow(Op):
    """z = x**p for a constant scalar p;  dz/dx = p·x**(p-1)  (0 when p = 0, even at x = 0,
    as in PyTorch: x**0 is the constant 1)."""
    __slots__ = ("exponent",)

    def forward(self, x):
        self.save_for_backward(x)
        if self.exponent == 2.0:
            return np.square(x)  # x*x: several times faster than x**2.0
        return x ** self.exponent  # a Python float: keeps float32 float32 (NEP 50)

    def backward(self, g):
        (x,) = self.saved_arrays
        p = self.exponent
        if p == 0.0:
            return np.zeros_like(g)
        if p == 2.0:  # the L2 penalty's square: one W-sized pass (g is usually 0-d here)
            return x * (2 * g) if g.ndim == 0 else (g * x).__imul__(2)
        grad = x ** (p - 1)
        grad *= p
        grad *= g
        return grad

    def label(self):
        return "Square" if self.exponent == 2.0 else f"Pow({self.exponent:g})"


class Exp(Op):
    """z = eˣ;  dz/dx = z."""
    __slots__ = ()

    def forward(self, x):
        out = np.exp(x)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return g * self.saved_arrays[0]


class Log(Op):
    """z = ln x;  dz/dx = 1/x."""
    __slots__ = ()

    def forward(self, x):
        self.save_for_backward(x)
        return np.log(x)

    def backward(self, g):
        return g / self.saved_arrays[0]


class Sqrt(Op):
    """z = √x;  dz/dx = 1/(2z)."""
    __slots__ = ()

    def forward(self, x):
        out = np.sqrt(x)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return g / (2 * self.saved_arrays[0])


class ReLU(Op):
    """z = max(x, 0);  dz/dx = 1 where x > 0, else 0 (0 at x = 0, as in PyTorch)."""
    __slots__ = ()

    def forward(self, x):
        out = np.maximum(x, 0)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return g * (self.saved_arrays[0] > 0)


class Sigmoid(Op):
    """z = σ(x) = 1/(1+e⁻ˣ);  dz/dx = z·(1-z).  Computed without overflow for any x."""
    __slots__ = ()

    def forward(self, x):
        out = sigmoid(x)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        out = self.saved_arrays[0]
        return g * out * (1 - out)


def sigmoid(x):
    """σ(x) on an array, stable for any x (e^(−|x|) never overflows)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Tanh(Op):
    """z = tanh x;  dz/dx = 1 - z²."""
    __slots__ = ()

    def forward(self, x):
        out = np.tanh(x)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        out = self.saved_arrays[0]
        return g * (1 - out * out)


class Abs(Op):
    """z = |x|;  dz/dx = sign(x) (0 at 0, as in PyTorch)."""
    __slots__ = ()

    def forward(self, x):
        self.save_for_backward(x)
        return np.abs(x)

    def backward(self, g):
        return g * np.sign(self.saved_arrays[0])


# ---- matrix product --------------------------------------------------------------------------

class MatMul(Op):
    """z = a @ b (numpy/PyTorch semantics: 1-D operands are promoted, batch dims broadcast).

    For 2-D operands: dz/da = g @ bᵀ, dz/db = aᵀ @ g.  A 1-D operand is treated as a row (a)
    or column (b) matrix and its gradient reshaped back.
    """
    __slots__ = ("transposed",)

    def forward(self, a, b):
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: operands must have at least one dimension, got shapes "
                             f"{a.shape} and {b.shape} (use * for scaling)")
        k_a, k_b = a.shape[-1], b.shape[0] if b.ndim == 1 else b.shape[-2]
        if k_a != k_b:
            raise _shape_error("matmul", a, b, expected=f"the inner dimensions {k_a} and {k_b} "
                                                        f"must be equal ({a.shape} @ {b.shape})")
        try:
            out = a @ b
        except ValueError:
            raise _shape_error("matmul", a, b,
                               expected="batch dimensions are not broadcastable") from None
        need_a, need_b = self.needs_input_grad
        self.save_for_backward(a if need_b or a.ndim != 2 else None, b if need_a or b.ndim != 2 else None)
        self.transposed = _is_transposed(a), _is_transposed(b)
        return out

    def backward(self, g):
        a, b = self.saved_arrays
        need_a, need_b = self.needs_input_grad
        if (a is None or a.ndim == 2) and (b is None or b.ndim == 2):  # the common case
            # Lay each gradient out like its operand: for x @ W.T the gradient of W.T comes
            # out as the transpose of a C-ordered (out, in) array, so Transpose's backward
            # hands W a contiguous gradient it can keep without a copy.
            a_transposed, b_transposed = self.transposed
            grad_a = grad_b = None
            if need_a:
                grad_a = (b @ g.T).T if a_transposed else g @ b.T
            if need_b:
                grad_b = (g.T @ a).T if b_transposed else a.T @ g
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

class _Reduction(Op):
    """Shared by sum/mean/max/min: validates `axis` and expands a gradient back to the input."""
    __slots__ = ("axis", "keepdims", "axes", "in_shape")

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

    def count(self):
        """How many input elements each output element reduces."""
        shape = self.in_shape
        return int(np.prod(shape if self.axes is None else [shape[a] for a in self.axes]))

    def label(self):
        name = type(self).__name__
        return name if self.axis is None else f"{name}(axis={self.axis})"


class Sum(_Reduction):
    """z = Σ x over `axis`;  dz/dx = 1 (the gradient is copied back along the summed axes)."""
    __slots__ = ()

    def reduce(self, x):
        return x.sum(axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        return self.expand(g)


class Mean(_Reduction):
    """z = (1/N) Σ x over `axis`;  dz/dx = 1/N.  N is applied in at least float32: as a
    float16 constant, N > 65,504 would be inf and every gradient 0."""
    __slots__ = ()

    def reduce(self, x):
        with np.errstate(invalid="ignore", divide="ignore"):  # the mean of nothing is NaN
            return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, g):
        count = self.count()
        if g.dtype.itemsize < 4:
            return self.expand((g.astype(np.float32) / count).astype(g.dtype))
        return self.expand(g / count)


class Max(_Reduction):
    """z = max x over `axis` (values only);  the gradient goes to the maximal elements, split
    evenly on ties (PyTorch's amax)."""
    __slots__ = ()

    def reduce(self, x):
        extreme = self.pick(x)
        self.save_for_backward(x, extreme)
        return extreme if self.keepdims else np.squeeze(extreme, self.axes)

    def pick(self, x):
        _check_nonempty(type(self).__name__.lower(), x, self.axes)
        return x.max(axis=self.axes, keepdims=True)

    def backward(self, g):
        x, extreme = self.saved_arrays
        mask = x == extreme
        share = mask / mask.sum(axis=self.axes, keepdims=True)
        return self.expand(g) * share.astype(g.dtype, copy=False)


class Min(Max):
    """z = min x over `axis` (values only);  the gradient goes to the minimal elements, split
    evenly on ties (PyTorch's amin)."""
    __slots__ = ()

    def pick(self, x):
        _check_nonempty("min", x, self.axes)
        return x.min(axis=self.axes, keepdims=True)


def _check_nonempty(op, x, axes):
    """PyTorch's rule: reducing over an axis of length 0 has no identity for max/min."""
    reduced = range(x.ndim) if axes is None else axes
    if x.size == 0 and (x.ndim == 0 or any(x.shape[a] == 0 for a in reduced) or axes is None):
        raise ValueError(f"{op}: cannot reduce over an empty axis of a tensor of shape {x.shape} "
                         f"(max and min have no identity); reduce over a non-empty axis")


# ---- shape ops -------------------------------------------------------------------------------

class Reshape(Op):
    """z = x viewed with another shape;  the gradient is reshaped back."""
    __slots__ = ("shape", "in_shape")

    def forward(self, x):
        shape = tuple(self.shape)
        if (not all(isinstance(n, int | np.integer) and n >= -1 for n in shape)
                or shape.count(-1) > 1):
            raise ValueError(f"reshape: invalid shape {shape}: each size must be an integer >= 0, "
                             f"with at most one -1 (inferred)")
        try:
            out = x.reshape(shape)
        except (ValueError, TypeError):
            raise ValueError(f"reshape: cannot reshape a tensor of shape {x.shape} "
                             f"({x.size} elements) into {shape}") from None
        self.in_shape = x.shape
        return out

    def backward(self, g):
        return g.reshape(self.in_shape)

    def label(self):
        return f"Reshape{tuple(self.shape)}"


class Transpose(Op):
    """z = x with axes permuted;  the gradient is permuted back by the inverse permutation."""
    __slots__ = ("axes", "perm")

    def forward(self, x):
        if self.axes is None:  # the common case (.T): reverse the axes
            self.perm = None
            return x.T
        axes = tuple(self.axes)
        try:
            perm = normalize_axis_tuple(axes, x.ndim, allow_duplicate=True)
        except (ValueError, TypeError, np.exceptions.AxisError):
            perm = None
        if perm is None or sorted(perm) != list(range(x.ndim)):
            raise ValueError(f"transpose: axes {axes} are not a permutation of the {x.ndim} axes "
                             f"of a tensor of shape {x.shape}")
        self.perm = perm
        return x.transpose(perm)

    def backward(self, g):
        return g.T if self.perm is None else g.transpose(np.argsort(self.perm))


class Index(Op):
    """z = x[index] (basic slices and integer arrays);  the gradient is scattered back, with
    repeated indices accumulated (np.add.at)."""
    __slots__ = ("index", "in_shape")

    def forward(self, x):
        try:
            out = x[self.index]
        except IndexError as err:
            raise IndexError(f"index: {err} (tensor of shape {x.shape})") from None
        self.in_shape = x.shape
        return out

    def backward(self, g):
        grad = np.zeros(self.in_shape, dtype=g.dtype)
        if _is_basic_index(self.index):
            grad[self.index] = g  # a basic index selects each element at most once
        else:
            np.add.at(grad, self.index, g)
        return grad


@functools.lru_cache(maxsize=64)
def row_indices(m):
    """np.arange(m), one shared read-only array per m: x[row_indices(m), labels] picks one entry
    per row, and tl.compile can tell this shape-determined index from one computed from data."""
    rows = np.arange(m)
    rows.flags.writeable = False
    return rows


def _is_basic_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (int, np.integer, slice)) for p in parts)


# ---- softmax family --------------------------------------------------------------------------

class Softmax(Op):
    """z = eˣ / Σ eˣ along `axis` (x - max first, so no overflow);
    dz/dx·g = z ⊙ (g - Σ g⊙z)."""
    __slots__ = ("axis",)

    def forward(self, x):
        _check_axis("softmax", self.axis, x.shape)
        if x.size == 0:
            out = x.copy()
        else:
            e = np.exp(x - x.max(axis=self.axis, keepdims=True))
            out = e / e.sum(axis=self.axis, keepdims=True)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        out = self.saved_arrays[0]
        return out * (g - (g * out).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Op):
    """z = x - max - log Σ e^(x - max) along `axis`;  dz/dx·g = g - softmax(x)·Σ g."""
    __slots__ = ("axis",)

    def forward(self, x):
        _check_axis("log_softmax", self.axis, x.shape)
        if x.size == 0:
            out = x.copy()
        else:
            shifted = x - x.max(axis=self.axis, keepdims=True)
            out = shifted - np.log(np.exp(shifted).sum(axis=self.axis, keepdims=True))
        self.save_for_backward(out)
        return out

    def backward(self, g):
        out = self.saved_arrays[0]
        return g - np.exp(out) * g.sum(axis=self.axis, keepdims=True)


def _check_axis(op, axis, shape):
    if not isinstance(axis, (int, np.integer)) or not -len(shape) <= axis < len(shape):
        raise ValueError(f"{op}: axis {axis!r} is out of range for a tensor of shape {shape}")


# ---- elementwise choices -------------------------------------------------------------------

class Cast(Op):
    """z = x as another dtype;  the gradient is cast back to x's dtype."""
    __slots__ = ("dtype", "in_dtype")

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, g):
        return g.astype(self.in_dtype)

    def label(self):
        return f"Cast({np.dtype(self.dtype).name})"


class Clamp(Op):
    """z = min(max(x, lo), hi);  dz/dx = 1 where lo ≤ x ≤ hi (boundaries included, as
    PyTorch), else 0."""
    __slots__ = ("low", "high")

    def forward(self, x):
        self.save_for_backward(x)
        return np.clip(x, self.low, self.high)

    def backward(self, g):
        (x,) = self.saved_arrays
        inside = np.ones(x.shape, dtype=bool)
        if self.low is not None:
            inside &= x >= self.low
        if self.high is not None:
            inside &= x <= self.high
        return g * inside


class Maximum(_Broadcasting):
    """z = max(a, b) elementwise;  the gradient goes to the larger, split ½–½ on ties (as
    torch.maximum)."""
    __slots__ = ()
    pick = staticmethod(np.maximum)

    def forward(self, a, b):
        out = self.pick(a, b)
        self.save_for_backward(a, b, out)
        return out

    def backward(self, g):
        a, b, out = self.saved_arrays
        share_a = (a == out) * 1.0 - (a == b) * 0.5  # 1 where a wins, ½ on a tie, else 0
        share_b = (b == out) * 1.0 - (a == b) * 0.5
        need_a, need_b = self.needs_input_grad
        return (g * share_a.astype(g.dtype) if need_a else None,
                g * share_b.astype(g.dtype) if need_b else None)


class Minimum(Maximum):
    """z = min(a, b) elementwise;  the gradient goes to the smaller, split ½–½ on ties."""
    __slots__ = ()
    pick = staticmethod(np.minimum)


class Where(Op):
    """z = a where cond else b (numpy broadcasting);  dz/da = cond, dz/db = not cond."""
    __slots__ = ("condition",)

    def forward(self, a, b):
        try:
            return np.where(self.condition, a, b)
        except ValueError:
            raise _shape_error("where", self.condition, a, b, expected="not broadcastable") from None

    def backward(self, g):
        need_a, need_b = self.needs_input_grad
        zero = np.zeros((), dtype=g.dtype)
        return (np.where(self.condition, g, zero) if need_a else None,
                np.where(self.condition, zero, g) if need_b else None)


class Concatenate(Op):
    """z = the inputs joined along `axis`;  each input's gradient is its slice of g."""
    __slots__ = ("axis", "sizes")

    def forward(self, *arrays):
        try:
            out = np.concatenate(arrays, axis=self.axis)
        except (ValueError, np.exceptions.AxisError) as err:
            raise ValueError(f"cat: cannot join shapes {[a.shape for a in arrays]} along axis "
                             f"{self.axis}: {err}") from None
        self.sizes = [a.shape[self.axis] for a in arrays]
        return out

    def backward(self, g):
        return tuple(np.split(g, np.cumsum(self.sizes)[:-1], axis=self.axis))


class Stack(Op):
    """z = the inputs stacked along a new `axis`;  each input's gradient is its index of g."""
    __slots__ = ("axis",)

    def forward(self, *arrays):
        try:
            return np.stack(arrays, axis=self.axis)
        except (ValueError, np.exceptions.AxisError) as err:
            raise ValueError(f"stack: cannot stack shapes {[a.shape for a in arrays]} along "
                             f"axis {self.axis}: {err}") from None

    def backward(self, g):
        return tuple(np.moveaxis(g, self.axis, 0))
