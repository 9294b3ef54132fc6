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
