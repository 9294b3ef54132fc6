"""Tensor: a numpy array, its gradient, and the link to the op that made it (a graph node)."""
import numbers

import numpy as np

from .context import state as _state

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
    if isinstance(data, Tensor):
        data = data.data
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
        accepted = "float or integer numbers"
        got = {"b": "booleans", "c": "complex numbers", "O": "objects or ragged lists",
               "U": "strings", "S": "bytes"}.get(kind, f"dtype {array.dtype}")
        raise TypeError(f"{what}: expected {accepted}, got {got} ({_describe(data)})")
    if dtype is not None:
        dtype = np.dtype(dtype)
        if dtype.kind not in "fiu":
            raise TypeError(f"{what}: dtype must be a float or integer dtype, got {dtype}")
        return array.astype(dtype, copy=False)
    if kind == "f" and isinstance(data, np.ndarray | np.generic):
        return array
    return array.astype(DEFAULT_DTYPE)


class Tensor:
    """An n-dimensional array that records the ops applied to it, for reverse-mode autodiff.

    `Tensor(data, requires_grad=False, name=None, dtype=None)`.  A tensor made by an op holds
    that op's context (`_ctx`: the op, its inputs and what its backward saved); a leaf has none.
    """

    __slots__ = ("_data", "grad", "_requires_grad", "name", "_ctx", "_retains_grad",
                 "_scope", "__weakref__")
    # numpy defers to our reflected operators: `np_array * t` is a Tensor, not an object array.
    __array_ufunc__ = None

    def __init__(self, data, requires_grad=False, name=None, dtype=None):
        self._data = to_array(data, dtype)
        self.grad = None
        self._requires_grad = False
        self.name = name
        self._ctx = None
        self._retains_grad = False
        self._scope = _state.scope
        self.requires_grad = requires_grad

    @classmethod
    def _make(cls, data, ctx):
        """An op's output: `data` is already a valid ndarray; `ctx` is None or the op node."""
        t = object.__new__(cls)
        t._data = data
        t.grad = t.name = None
        t._requires_grad = ctx is not None
        t._ctx = ctx
        t._retains_grad = False
        t._scope = _state.scope
        return t

    # ---- array-like attributes -------------------------------------------------------------
    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        keep_dtype = not (isinstance(value, np.ndarray) and value.dtype.kind == "f")
        value = to_array(value, dtype=self._data.dtype if keep_dtype else None, what="Tensor.data")
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

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

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

    # ---- autograd attributes ---------------------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        value = bool(value)
        if self._ctx is not None and not value:
            raise RuntimeError("requires_grad: you can only change requires_grad of leaf "
                               "tensors; use detach() to get a tensor without a graph")
        if value and self._data.dtype.kind != "f":
            raise TypeError(f"requires_grad: only float tensors can require gradients, this "
                            f"tensor has dtype {self._data.dtype} (pass dtype=np.float32 or "
                            f"np.float64)")
        self._requires_grad = value

    @property
    def is_leaf(self):
        return self._ctx is None

    @property
    def grad_fn(self):
        """The op node that made this tensor (None for a leaf)."""
        return self._ctx

    def retain_grad(self):
        """Keep this non-leaf tensor's gradient in `.grad` after backward."""
        if not self._requires_grad:
            raise RuntimeError("retain_grad: can't retain the gradient of a tensor that does "
                               "not require grad")
        if self._ctx is not None:
            self._retains_grad = True

    @property
    def retains_grad(self):
        return self._retains_grad

    def backward(self, grad=None, retain_graph=False):
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        `grad` is the gradient of some scalar with respect to `self` (needed unless `self` is
        a scalar, where it defaults to 1).  `retain_graph=True` keeps the saved arrays so that
        backward can run through the same graph again.
        """
        from .engine import backward
        backward(self, grad, retain_graph=retain_graph)

    def detach(self):
        """A new leaf sharing this tensor's data, cut from the graph."""
        out = Tensor._make(self._data, None)
        out.name = self.name
        return out

    # ---- ops (defined in ops.py; these are the PyTorch-like spellings) ------------------------
    def __add__(self, other): return ops.Add.apply(self, _operand(other, self, "add"))
    def __radd__(self, other): return ops.Add.apply(_operand(other, self, "add"), self)
    def __sub__(self, other): return ops.Sub.apply(self, _operand(other, self, "sub"))
    def __rsub__(self, other): return ops.Sub.apply(_operand(other, self, "sub"), self)
    def __mul__(self, other): return ops.Mul.apply(self, _operand(other, self, "mul"))
    def __rmul__(self, other): return ops.Mul.apply(_operand(other, self, "mul"), self)
    def __truediv__(self, other): return ops.Div.apply(self, _operand(other, self, "div"))
    def __rtruediv__(self, other): return ops.Div.apply(_operand(other, self, "div"), self)
    def __matmul__(self, other): return ops.MatMul.apply(self, _operand(other, self, "matmul"))
    def __rmatmul__(self, other): return ops.MatMul.apply(_operand(other, self, "matmul"), self)
    def __neg__(self): return ops.Neg.apply(self)
    def __pos__(self): return self

    def __pow__(self, exponent):
        if isinstance(exponent, Tensor) or (isinstance(exponent, np.ndarray) and exponent.ndim):
            raise TypeError(f"pow: the exponent must be a Python or numpy scalar, got "
                            f"{_describe(exponent)}; for a tensor exponent write "
                            f"(b * a.log()).exp()")
        if not isinstance(exponent, numbers.Real) or isinstance(exponent, bool):
            if not (isinstance(exponent, np.ndarray) and exponent.dtype.kind in "fiu"):
                raise TypeError(f"pow: the exponent must be a real number, got "
                                f"{_describe(exponent)}")
        exponent = float(exponent)
        if not np.isfinite(exponent):
            raise ValueError(f"pow: the exponent must be finite, got {exponent}")
        return ops.Pow.apply(self, exponent=exponent)

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

    def sum(self, axis=None, keepdims=False):
        return ops.Sum.apply(self, axis=axis, keepdims=keepdims)

    def mean(self, axis=None, keepdims=False):
        return ops.Mean.apply(self, axis=axis, keepdims=keepdims)

    def max(self, axis=None, keepdims=False):
        return ops.Max.apply(self, axis=axis, keepdims=keepdims)

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

    def softmax(self, axis=-1):
        return ops.Softmax.apply(self, axis=axis)

    def log_softmax(self, axis=-1):
        return ops.LogSoftmax.apply(self, axis=axis)

    def __getitem__(self, index):
        return ops.Index.apply(self, index=index)

    # Tensors compare by identity (they are graph nodes and dict keys), as in micrograd.
    __hash__ = object.__hash__


def _operand(value, like, op):
    """The other operand of a binary op as a Tensor.

    A Python scalar takes the dtype of `like` when that is a float dtype (so it never upcasts a
    float32 tensor and keeps full precision in a float64 one); numpy values keep their dtype
    and follow numpy's promotion.
    """
    if isinstance(value, Tensor):
        return value
    if type(value) is float or type(value) is int or (
            isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))):
        dtype = like.dtype if like.dtype.kind == "f" else np.result_type(like.dtype, value)
        return Tensor._make(np.asarray(value, dtype=dtype), None)
    if isinstance(value, (np.ndarray, np.generic, list, tuple)):
        return Tensor(value, dtype=None if isinstance(value, (np.ndarray, np.generic)) else like.dtype)
    raise TypeError(f"{op}: unsupported operand {_describe(value)}; expected a Tensor, a numpy "
                    f"array or a real Python scalar")


from . import ops  # noqa: E402  (ops build Tensors; Tensor methods call ops)
