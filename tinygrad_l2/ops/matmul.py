"""The matrix product."""
import numpy as np

from ..engine import unbroadcast
from .base import Op, _shape_error


# ---- matrix product --------------------------------------------------------------------------

class MatMul(Op):
    """z = a @ b (numpy/PyTorch semantics: 1-D operands are promoted, batch dims broadcast).

    For 2-D operands: dz/da = g @ bᵀ, dz/db = aᵀ @ g.  A 1-D operand is treated as a row (a)
    or column (b) matrix and its gradient reshaped back.
    """
    __slots__ = ("transposed", "shapes")
    saved_from = (0, 1)

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
        need_a, need_b = self.needs_input_grad  # each gradient reads only the other operand
        self.save_for_backward(a if need_b else None, b if need_a else None)
        self.transposed, self.shapes = (_is_transposed(a), _is_transposed(b)), (a.shape, b.shape)
        return out

    def backward(self, g):
        a, b = self.saved_arrays
        need_a, need_b = self.needs_input_grad
        a_shape, b_shape = self.shapes
        if len(a_shape) == 2 and len(b_shape) == 2:  # the common case
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
        a2_shape = (1, *a_shape) if len(a_shape) == 1 else a_shape  # a row, b a column
        b2_shape = (*b_shape, 1) if len(b_shape) == 1 else b_shape
        g2 = g.reshape(np.broadcast_shapes(a2_shape[:-2], b2_shape[:-2]) + (a2_shape[-2], b2_shape[-1]))
        grad_a = grad_b = None
        if need_a:
            grad_a = unbroadcast(g2 @ np.swapaxes(b.reshape(b2_shape), -1, -2), a2_shape).reshape(a_shape)
        if need_b:
            grad_b = unbroadcast(np.swapaxes(a.reshape(a2_shape), -1, -2) @ g2, b2_shape).reshape(b_shape)
        return grad_a, grad_b


def _is_transposed(array):
    return array.flags.f_contiguous and not array.flags.c_contiguous
