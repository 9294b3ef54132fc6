"""Elementwise ops: binary (numpy broadcasting), unary, and choices (cast, clamp, maximum,
minimum, where)."""
import numpy as np

from .base import OUTPUT, Op, _shape_error, primitive


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
    saved_from = (1, 0)

    def forward(self, a, b):
        if not isinstance(b, (int, float, np.generic)):  # an array (or a recorded one)
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
    saved_from = (1, OUTPUT)

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
    saved_from = (0,)

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
        if p == 2.0:  # the L2 penalty's square: 2·(g·x), one W-sized array (g is often a
            grad = g * x  # broadcast 0-d gradient: 2·g first would make a second one)
            grad *= 2
            return grad
        grad = x ** (p - 1)
        grad *= p
        grad *= g
        return grad

    def label(self):
        return "Square" if self.exponent == 2.0 else f"Pow({self.exponent:g})"


class Exp(Op):
    """z = eˣ;  dz/dx = z."""
    __slots__ = ()
    saved_from = (OUTPUT,)

    def forward(self, x):
        out = np.exp(x)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return g * self.saved_arrays[0]


class Log(Op):
    """z = ln x;  dz/dx = 1/x."""
    __slots__ = ()
    saved_from = (0,)

    def forward(self, x):
        self.save_for_backward(x)
        return np.log(x)

    def backward(self, g):
        return g / self.saved_arrays[0]


class Sqrt(Op):
    """z = √x;  dz/dx = 1/(2z)."""
    __slots__ = ()
    saved_from = (OUTPUT,)

    def forward(self, x):
        out = np.sqrt(x)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return g / (2 * self.saved_arrays[0])


class ReLU(Op):
    """z = max(x, 0);  dz/dx = 0 where z ≤ 0, else 1: 0 at x = 0, and 1 at x = NaN (z is
    NaN there, and NaN ≤ 0 is false), as PyTorch's threshold_backward."""
    __slots__ = ()
    saved_from = (OUTPUT,)

    def forward(self, x):
        out = np.maximum(x, 0)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        return zero_where(g, self.saved_arrays[0] <= 0)


@primitive(out_like_first=True, plain=lambda g, drop: np.where(drop, 0, g))
def zero_where(g, drop, out=None):
    """np.where(drop, 0, g) exactly (an infinite or NaN g becomes +0 too), without branches:
    g's bits, as unsigned integers, times the kept mask (1 where kept, 0 where dropped).
    np.where branches on every element, about 10× slower than this on a ReLU's random mask;
    this is about 20% faster than ANDing with a mask of all ones made from drop − 1."""
    bits = np.dtype(f"u{g.dtype.itemsize}")
    if out is None:
        return np.multiply(g.view(bits), np.logical_not(drop)).view(g.dtype)
    np.multiply(g.view(bits), np.logical_not(drop), out=out.view(bits))
    return out


class Sigmoid(Op):
    """z = σ(x) = 1/(1+e⁻ˣ);  dz/dx = z·(1-z).  Computed without overflow for any x."""
    __slots__ = ()
    saved_from = (OUTPUT,)

    def forward(self, x):
        out = sigmoid(x)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        out = self.saved_arrays[0]
        return g * out * (1 - out)


@primitive(op=Sigmoid)
def sigmoid(x):
    """σ(x) on an array, stable for any x (e^(−|x|) never overflows)."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Tanh(Op):
    """z = tanh x;  dz/dx = 1 - z²."""
    __slots__ = ()
    saved_from = (OUTPUT,)

    def forward(self, x):
        out = np.tanh(x)
        self.save_for_backward(out)
        return out

    def backward(self, g):
        out = self.saved_arrays[0]
        return g * (1 - out * out)


class Abs(Op):
    """z = |x|;  dz/dx = sign(x), 0 at 0 and at NaN (PyTorch's sgn)."""
    __slots__ = ()
    saved_from = (0,)

    def forward(self, x):
        self.save_for_backward(x)
        return np.abs(x)

    def backward(self, g):
        x = self.saved_arrays[0]
        return g * np.where(np.isnan(x), 0, np.sign(x))


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
    saved_from = (0,)

    def forward(self, x):
        self.save_for_backward(x)
        return np.clip(x, self.low, self.high)

    def backward(self, g):
        (x,) = self.saved_arrays
        if self.low is not None:
            g = g * (x >= self.low)
        if self.high is not None:
            g = g * (x <= self.high)
        return g


class Maximum(_Broadcasting):
    """z = max(a, b) elementwise;  the gradient goes to the larger, split ½–½ on ties (as
    torch.maximum)."""
    __slots__ = ()
    saved_from = (0, 1, OUTPUT)
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
    saved_from = ()  # condition: a constant argument

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
