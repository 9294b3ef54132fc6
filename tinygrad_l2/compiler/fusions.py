"""Patterns the generated code computes in one piece, each exact algebra:

- Σw² (a full Sum of a Pow(2) only the sum reads) as np.vdot(w, w): no w² array;
- the mean cross-entropy of a log-softmax picked at the labels,
      loss = −mean_i log softmax(z_i)[y_i],   ∂loss/∂z = (softmax(z) − onehot(y)) · g/m,
  computed from the log-softmax's own array (exp in place, 1 subtracted at the labels, one
  scaling) instead of the scatter, sum and product the separate ops would take; the loss
  itself is −(mean of the picks), equal to the mean of the negated picks bit for bit.
"""
import numpy as np

from ..ops import row_indices


def vdot_pairs(nodes, uses):
    """{id(Sum node): its Pow(2) node} where a full sum is the square's only reader."""
    pairs = {}
    for node in nodes:
        if type(node).__name__ == "Sum" and node.axis is None and not node.keepdims:
            square = node.parents[0]
            if (type(square).__name__ == "Pow" and square.exponent == 2.0
                    and uses.get(id(square)) == 1 and square.parents[0] is not None):
                pairs[id(node)] = square
    return pairs


def cross_entropies(nodes, uses):
    """{id(Mean node): (LogSoftmax node, Index node)} for Mean(Neg(Index(LogSoftmax(z)))) with
    the index (arange(m), labels), each inner result read once (`uses` counts a returned
    tensor as a reader, so none of them is returned)."""
    found = {}
    for node in nodes:
        if type(node).__name__ != "Mean" or node.axis is not None or node.keepdims:
            continue
        neg = node.parents[0]
        index = neg.parents[0] if type(neg).__name__ == "Neg" else None
        log_softmax = index.parents[0] if type(index).__name__ == "Index" else None
        if type(log_softmax).__name__ != "LogSoftmax" or len(log_softmax.out_shape) != 2:
            continue
        if log_softmax.axis % 2 != 1 or not _picks_rows(index.index, log_softmax.out_shape[0]):
            continue
        if all(uses.get(id(n)) == 1 for n in (neg, index, log_softmax)):
            found[id(node)] = (log_softmax, index)
    return found


def _picks_rows(index, m):
    return (isinstance(index, tuple) and len(index) == 2 and isinstance(index[0], np.ndarray)
            and index[0] is row_indices(m))


def cross_entropy_grad(log_p, index, g):
    """(softmax − onehot)·g/m, written over the log-softmax's array (nothing else reads it)."""
    p = np.exp(log_p, out=log_p)
    p[index] -= 1
    p *= g / log_p.shape[0]
    return p
