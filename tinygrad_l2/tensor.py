"""Tensor: a numpy array with reverse-mode autodiff — the math and the Python protocol.

What the engine needs of a tensor (array, gradient, graph link) is `function.TensorBase`;
this module adds the user-facing spellings (`a * b`, `x.sum()`, `float(t)`), each one op
from `ops.py`, and `backward()`.
"""
import numbers

import numpy as np

from . import engine, ops
from .function import TensorBase

FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
DEFAULT_DTYPE = np.dtype(np.float32)


def _describe(value):
    """A short description of what the user gave, for error messages."""
    if isinstance(value, np.ndarray):
        return f"numpy array of dtype {value.dtype} and shape {value.shape}"
    return f"{type(value).__name__} {value!r}"[:120]


def to_array(data, dtype=None, what="Tensor"):
    """Turn user data into a float or integer ndarray, or raise a clear error.

    A float32/float64 array keeps its dtype; ints, bools-free lists and scalars become float32
    unless `dtype` says otherwise.  Strings, objects, complex numbers, booleans and ragged
    lists are refused: they have no gradient a float engine could give them.
    """
    if isinstance(data, TensorBase):
        data = data._data
    if isinstance(data, (str, bytes)) or isinstance(data, (bool, np.bool_)):
        raise TypeError(f"{what}: expected a number, a nested list of numbers or a numpy array; "
                        f"got {_describe(data)}")
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as err:  # numpy 2 raises for ragged nesting
        raise ValueError(f"{what}: data must be a rectangular nested list or an array "
                         f"(got {_describe(data)}): {err}") from None
    kind = array.dtype.kind
    if kind not in "fiu":
        got = {"b": "booleans", "c": "complex numbers", "O": "objects or ragged lists",
               "U": "strings", "S": "bytes"}.get(kind, f"dtype {array.dtype}")
        raise TypeError(f"{what}: expected float or integer numbers, got {got} "
                        f"({_describe(data)})")
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind not in "fiu":
            raise TypeError(f"{what}: dtype must be a float or integer dtype, got {dtype}")
        return array.astype(dtype, copy=False)
    if kind == "f" and isinstance(data, np.ndarray | np.generic):
        return array
    return array.astype(DEFAULT_DTYPE)


class Tensor(TensorBase):
    """An n-dimensional array that records the ops applied to it, for reverse-mode autodiff.

    `Tensor(data, requires_grad=False, name=None, dtype=None)`; a numpy array is used as it
    is, not copied.  A tensor made by an op holds that op's node (`grad_fn`); a leaf has none.
    """

    __slots__ = ()
    # numpy defers to our reflected operators: `np_array * t` is a Tensor, not an object array.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, name=None, dtype=None):
        self._data = to_array(data, dtype)
        self._grad = None
        self._requires_grad = False
        self.name = name
        self._ctx = self._leaf = None
        self.requires_grad = requires_grad

    # ---- array-like attributes -------------------------------------------------------------
    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        keep_dtype = not (isinstance(value, np.ndarray) and value.dtype.kind == "f")
        value = to_array(value, dtype=self._data.dtype if keep_dtype else None, what="Tensor.data")
        if value.shape != self._data.shape or value.dtype != self._data.dtype:
            self._leaf = None  # graphs built from now on record the new shape and dtype
        self._data = value  # a graph that saved the old array keeps it: its backward stays right

    @property
    def shape(self):
        return self._data.shape

    @property
    def ndim(self):
        return self._data.ndim

    @property
    def size(self):
        return self._data.size

    @property
    def dtype(self):
        return self._data.dtype

    def numpy(self):
        return self._data

    def item(self):
        if self._data.size != 1:
            raise ValueError(f"item: only a tensor with one element can be converted to a "
                             f"Python scalar, this one has shape {self.shape}")
        return self._data.item()

    def tolist(self):
        return self._data.tolist()

    # ---- the Python protocol, as PyTorch ---------------------------------------------------
    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __bool__(self):
        if self._data.size != 1:
            raise RuntimeError(f"bool: the truth value of a tensor with {self._data.size} "
                               f"elements (shape {self.shape}) is ambiguous; use .any() or "
                               f".all() on .data")
        return bool(self._data.item())

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __index__(self):
        if self._data.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError(f"only integer tensors of a single element can be converted to an "
                            f"index (this one: dtype {self.dtype}, shape {self.shape})")
        return int(self._data.item())

    def __array__(self, dtype=None, copy=None):
        """`np.asarray(t)` gives the numbers (not an object array of Tensors)."""
        if copy:
            return np.array(self._data, dtype=dtype, copy=True)
        return self._data if dtype is None else self._data.astype(dtype, copy=False)

    def __repr__(self):
        extras = []
        if self.name is not None:
            extras.append(f"name={self.name!r}")
        if self._ctx is not None:
            extras.append(f"grad_fn={type(self._ctx).__name__}")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        if self.dtype != DEFAULT_DTYPE:
            extras.append(f"dtype={self.dtype}")
        body = np.array2string(self._data, separator=", ", prefix="Tensor(")
        return f"Tensor({body}{''.join(', ' + e for e in extras)})"


    # ---- autograd --------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        `grad` is the gradient of some scalar with respect to `self` (needed unless `self` is
        a scalar, where it defaults to 1).  `retain_graph=True` keeps the saved arrays so that
        backward can run through the same graph again.
        """
        engine.backward(self, grad, retain_graph=retain_graph)

    def detach(self):
        """A new leaf sharing this tensor's data, cut from the graph."""
        out = Tensor._make(self._data, None)
        out.name = self.name
        return out

    # ---- ops (each one op from ops.py: the PyTorch-like spellings) ---------------------------
    def __add__(self, other): return _add(self, other if type(other) in _PLAIN else _operand(other, self, "add"))
    def __radd__(self, other): return _add(self, other if type(other) in _PLAIN else _operand(other, self, "add"))
    def __sub__(self, other): return _sub(self, other if type(other) in _PLAIN else _operand(other, self, "sub"))
    def __rsub__(self, other): return _sub(_operand(other, self, "sub"), self)
    def __mul__(self, other): return _mul(self, other if type(other) in _PLAIN else _operand(other, self, "mul"))
    def __rmul__(self, other): return _mul(self, other if type(other) in _PLAIN else _operand(other, self, "mul"))
    def __truediv__(self, other): return _div(self, other if type(other) in _PLAIN else _operand(other, self, "div"))
    def __rtruediv__(self, other): return _div(_operand(other, self, "div"), self)
    def __matmul__(self, other): return ops.MatMul.apply(self, _operand(other, self, "matmul", scalars=False))
    def __rmatmul__(self, other): return ops.MatMul.apply(_operand(other, self, "matmul", scalars=False), self)
    def __neg__(self): return ops.Neg.apply(self)
    def __pos__(self): return self

    def __pow__(self, exponent):
        return ops.Pow.apply(self, exponent=_exponent(exponent))

    def __rpow__(self, base):
        raise TypeError(f"pow: a tensor exponent is not supported (base {_describe(base)}); "
                        f"write (t * log(base)).exp()")

    def exp(self): return ops.Exp.apply(self)
    def log(self): return ops.Log.apply(self)
    def sqrt(self): return ops.Sqrt.apply(self)
    def relu(self): return ops.ReLU.apply(self)
    def sigmoid(self): return ops.Sigmoid.apply(self)
    def tanh(self): return ops.Tanh.apply(self)
    def abs(self): return ops.Abs.apply(self)

    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axes("sum", axis, keepdims, dim, keepdim)
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        axis, keepdims = _axes("mean", axis, keepdims, dim, keepdim)
        return ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Maximum values (numpy semantics: values only, no indices; see argmax)."""
        axis, keepdims = _axes("max", axis, keepdims, dim, keepdim)
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Minimum values (numpy semantics: values only, no indices; see argmin)."""
        axis, keepdims = _axes("min", axis, keepdims, dim, keepdim)
        return ops.Min.apply(self, axis=axis, keepdims=keepdims)

    def argmax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Indices of the maxima (int64, no gradient); over the flattened tensor by default."""
        return self._arg(np.argmax, "argmax", axis, keepdims, dim, keepdim)

    def argmin(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Indices of the minima (int64, no gradient); over the flattened tensor by default."""
        return self._arg(np.argmin, "argmin", axis, keepdims, dim, keepdim)

    def _arg(self, pick, op, axis, keepdims, dim, keepdim):
        axis, keepdims = _axes(op, axis, keepdims, dim, keepdim)
        if self.size == 0:
            raise ValueError(f"{op}: cannot take the {op} of an empty tensor of shape {self.shape}")
        try:
            found = pick(self._data, axis=axis, keepdims=keepdims)
        except (TypeError, np.exceptions.AxisError):
            raise ValueError(f"{op}: axis {axis!r} is out of range for a tensor of shape "
                             f"{self.shape}") from None
        return Tensor._make(np.asarray(found, dtype=np.int64), None)

    def var(self, axis=None, keepdims=False, correction=1, *, dim=None, keepdim=None):
        """Σ(x − mean)² / (N − correction) over `axis` (PyTorch's default: Bessel's correction;
        N ≤ correction gives nan, as PyTorch)."""
        axis, keepdims = _axes("var", axis, keepdims, dim, keepdim)
        centered = self - self.mean(axis=axis, keepdims=True)
        count = self.size if axis is None else int(np.prod(
            [self.shape[a] for a in np.atleast_1d(np.asarray(axis)) % max(self.ndim, 1)]))
        scale = 1.0 / (count - correction) if count > correction else float("nan")
        return (centered * centered).sum(axis=axis, keepdims=keepdims) * scale

    def std(self, axis=None, keepdims=False, correction=1, *, dim=None, keepdim=None):
        """√var (same arguments)."""
        return self.var(axis, keepdims, correction, dim=dim, keepdim=keepdim).sqrt()

    def clamp(self, min=None, max=None):
        """Values limited to [min, max]; gradient 1 inside, boundaries included (PyTorch)."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of min and max must be given")
        return ops.Clamp.apply(self, low=min, high=max)

    clip = clamp

    def pow(self, exponent):
        return self ** exponent

    def astype(self, dtype):
        """A differentiable cast (the gradient is cast back)."""
        dtype = np.dtype(dtype)
        if dtype.kind not in "fiu":
            raise TypeError(f"astype: dtype must be a float or integer dtype, got {dtype}")
        return self if dtype == self.dtype else ops.Cast.apply(self, dtype=dtype)

    def float(self):
        return self.astype(np.float32)

    def double(self):
        return self.astype(np.float64)

    def requires_grad_(self, requires_grad=True):
        self.requires_grad = requires_grad
        return self

    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return ops.Reshape.apply(self, shape=shape)

    def transpose(self, *axes):
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        return ops.Transpose.apply(self, axes=axes or None)

    @property
    def T(self):
        return self.transpose()

    def permute(self, *axes):
        return self.transpose(*axes)

    def view(self, *shape):
        return self.reshape(*shape)

    def flatten(self, start_dim=0, end_dim=-1):
        """Axes start_dim..end_dim merged into one (a 0-d tensor becomes shape (1,))."""
        if self.ndim == 0:
            return self.reshape(1)
        start, end = (_axis("flatten", d, self.ndim) for d in (start_dim, end_dim))
        if start > end:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                             f"for a tensor of shape {self.shape}")
        shape = self.shape
        return self.reshape(shape[:start] + (int(np.prod(shape[start:end + 1])),) + shape[end + 1:])

    def squeeze(self, axis=None, *, dim=None):
        """Size-1 axes removed (all, or the given one if it has size 1: PyTorch's rule)."""
        axis = _one_of("squeeze", axis, dim)
        if axis is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        axis = _axis("squeeze", axis, self.ndim)
        if self.ndim == 0 or self.shape[axis] != 1:
            return self
        return self.reshape(self.shape[:axis] + self.shape[axis + 1:])

    def unsqueeze(self, axis=None, *, dim=None):
        """A size-1 axis inserted at `axis` (-ndim-1 .. ndim, as PyTorch)."""
        axis = _one_of("unsqueeze", axis, dim)
        axis = _axis("unsqueeze", axis, self.ndim + 1)
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def softmax(self, axis=-1, *, dim=None):
        return ops.Softmax.apply(self, axis=_one_of("softmax", axis, dim, default=-1))

    def log_softmax(self, axis=-1, *, dim=None):
        return ops.LogSoftmax.apply(self, axis=_one_of("log_softmax", axis, dim, default=-1))

    # ---- comparisons: elementwise, a bool Tensor outside the graph (usable as a mask) -------
    def _compare(self, other, test):
        if isinstance(other, TensorBase):
            other = other._data
        elif not isinstance(other, (numbers.Real, np.ndarray, np.generic, list, tuple)):
            return NotImplemented
        try:
            return Tensor._make(np.asarray(test(self._data, other)), None)
        except ValueError:
            raise _shape_error_for("compare", self._data, other) from None

    def __lt__(self, other): return self._compare(other, np.less)
    def __le__(self, other): return self._compare(other, np.less_equal)
    def __gt__(self, other): return self._compare(other, np.greater)
    def __ge__(self, other): return self._compare(other, np.greater_equal)
    def __eq__(self, other): return self._compare(other, np.equal)
    def __ne__(self, other): return self._compare(other, np.not_equal)

    # `==` is elementwise (below); hashing stays by identity, so tensors remain dict keys.
    __hash__ = object.__hash__

    def __getitem__(self, index):
        if isinstance(index, tuple):
            index = tuple(i._data if isinstance(i, TensorBase) else i for i in index)
        elif isinstance(index, TensorBase):  # a Tensor of indices
            index = index._data
        return ops.Index.apply(self, index=index)


_add, _sub, _mul, _div = ops.Add.apply, ops.Sub.apply, ops.Mul.apply, ops.Div.apply  # hot path
_PLAIN = {float, int}  # passed to the op as they are (the common case, checked inline); + Tensor below


def _operand(value, like, op, scalars=True):
    """The other operand of a binary op: a Tensor, or a real Python scalar passed to the op as
    an argument (numpy 2, NEP 50: it takes the tensor's dtype, so it never upcasts a float32
    tensor and keeps full precision in a float64 one).  Arrays and lists become constant
    Tensors; numpy values keep their dtype and follow numpy's promotion.  With `scalars=False`
    (matmul) a scalar becomes a 0-d constant, for the op's own error."""
    if isinstance(value, TensorBase):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_, np.generic)):
        if type(value) is not int:
            value = float(value)  # a Fraction, say: a plain float
        return value if scalars else _constant(value, like)
    if isinstance(value, (np.ndarray, np.generic, list, tuple)):
        return Tensor(value, dtype=None if isinstance(value, (np.ndarray, np.generic)) else like.dtype)
    raise TypeError(f"{op}: unsupported operand {_describe(value)}; expected a Tensor, a numpy "
                    f"array or a real Python scalar")


def _constant(value, like):
    """A Python scalar as a 0-d constant Tensor of `like`'s dtype (for matmul's error)."""
    return Tensor._make(np.asarray(value, dtype=like.dtype), None)


def _axes(op, axis, keepdims, dim, keepdim):
    """numpy's axis/keepdims or PyTorch's dim/keepdim (not both)."""
    return _one_of(op, axis, dim), bool(_one_of(op, keepdims or None, keepdim) or False)


def _one_of(op, axis, dim, default=None):
    if dim is not None and axis is not None and axis != default:
        raise TypeError(f"{op}: give axis or dim, not both (axis={axis!r}, dim={dim!r})")
    return dim if dim is not None else axis


def _axis(op, axis, ndim):
    if not isinstance(axis, (int, np.integer)) or not -max(ndim, 1) <= axis < max(ndim, 1):
        raise ValueError(f"{op}: dim {axis!r} is out of range for {ndim} dimensions")
    return int(axis) % max(ndim, 1)


def _shape_error_for(op, a, b):
    return ValueError(f"{op}: shapes {np.shape(a)} and {np.shape(b)} are not broadcastable")


def _exponent(exponent):
    if isinstance(exponent, TensorBase) or (isinstance(exponent, np.ndarray) and exponent.ndim):
        raise TypeError(f"pow: the exponent must be a Python or numpy scalar, got "
                        f"{_describe(exponent)}; for a tensor exponent write (b * a.log()).exp()")
    if not isinstance(exponent, numbers.Real) or isinstance(exponent, bool):
        if not (isinstance(exponent, np.ndarray) and exponent.dtype.kind in "fiu"):
            raise TypeError(f"pow: the exponent must be a real number, got {_describe(exponent)}")
    exponent = float(exponent)
    if not np.isfinite(exponent):
        raise ValueError(f"pow: the exponent must be finite, got {exponent}")
    return exponent
_PLAIN.add(Tensor)
