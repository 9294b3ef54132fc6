"""Per-term gradient tracing: which loss term's gradient reaches which tensor, and how much.

Reverse mode sends a term's gradient only to the term's ancestors.  An L2 penalty's only
inputs are the weights, so its gradient reaches W and nothing else: dA, dZ and db are the
same with and without it.  These functions measure that instead of asserting it.
"""
import functools
import operator

import numpy as np

from .engine import grad, node_of, topological_order
from .table import Table
from .tensor import Tensor


def _named(what, mapping):
    mapping = dict(mapping)
    for name, t in mapping.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"{what}: {name!r} is a {type(t).__name__}, expected a Tensor")
    if not mapping:
        raise ValueError(f"{what}: nothing given")
    return mapping


def _kind(t):
    if t._ctx is not None:
        return "intermediate"
    return "parameter" if t.requires_grad else "input"


def _gradients(root, tensors):
    """d(root)/d(t) for each named tensor that requires grad; zeros where root does not depend
    on it, None for tensors without gradients (inputs).  Leaves' .grad are left alone."""
    wanted = [t for t in tensors.values() if t.requires_grad]
    found = dict(zip(wanted, grad(root, wanted, retain_graph=True))) if root.requires_grad else {}
    out = {}
    for name, t in tensors.items():
        if not t.requires_grad:
            out[name] = None
        else:
            g = found.get(t)
            out[name] = np.zeros(t.shape, dtype=t.dtype) if g is None else g
    return out


class GradientTrace(Table):
    """For each tensor and each loss term: can the term reach the tensor in the graph
    (is the tensor an ancestor of the term?) and the term's gradient contribution to it."""

    def __init__(self, terms, tensors):
        self.terms, self.tensors = _named("trace_terms", terms), _named("trace_terms", tensors)
        self.reach = {}
        self.contributions = {}
        for term_name, term in self.terms.items():
            if term.size != 1:
                raise ValueError(f"trace_terms: term {term_name!r} has shape {term.shape}; each "
                                 f"term must be a scalar")
            ancestors = set(topological_order(term, include_constants=True))
            self.reach[term_name] = {n: node_of(t) in ancestors for n, t in self.tensors.items()}
            self.contributions[term_name] = _gradients(term, self.tensors)
        columns = ["tensor", "kind", "shape"]
        for term_name in self.terms:
            columns += [f"{term_name} reaches", f"{term_name} ‖grad‖"]
        rows = []
        for name, t in self.tensors.items():
            row = [name, _kind(t), tuple(t.shape)]
            for term_name in self.terms:
                g = self.contributions[term_name][name]
                row += [self.reach[term_name][name],
                        None if g is None else float(np.linalg.norm(g))]
            rows.append(row)
        super().__init__(columns, rows, title="Gradient contribution of each loss term")

    def reaches(self, term, tensor):
        return self.reach[term][tensor]

    def contribution(self, term, tensor):
        """d(term)/d(tensor) as an array (zeros where the term cannot reach it)."""
        return self.contributions[term][tensor]


def trace_terms(terms, tensors):
    """`trace_terms({"data": cost, "l2": penalty}, {"W1": W1, "b1": b1, "A1": A1, ...})`."""
    return GradientTrace(terms, tensors)


class WithWithout(Table):
    """Gradients of the loss with and without one term, tensor by tensor: changed or
    bit-identical, the largest change, and the change as a multiple of the tensor itself
    (an L2 term (κ/2)·ΣW² changes dW by exactly κ·W)."""

    def __init__(self, terms, without, tensors):
        terms, self.tensors = _named("with_without", terms), _named("with_without", tensors)
        if without not in terms:
            raise ValueError(f"with_without: {without!r} is not one of the terms {list(terms)}")
        rest = [t for name, t in terms.items() if name != without]
        if not rest:
            raise ValueError("with_without: there must be a term left without "
                             f"{without!r}")
        loss_with = functools.reduce(operator.add, terms.values())
        loss_without = functools.reduce(operator.add, rest)
        self.with_term = _gradients(loss_with, self.tensors)
        self.without_term = _gradients(loss_without, self.tensors)
        columns = ["tensor", "kind", "changed", "max |Δgrad|", "Δgrad = κ·tensor, κ =", "max |Δ − κ·tensor|"]
        rows = []
        for name, t in self.tensors.items():
            a, b = self.with_term[name], self.without_term[name]
            if a is None:
                rows.append([name, _kind(t), False, None, None, None])
                continue
            delta = a.astype(np.float64) - b
            changed = not np.array_equal(a, b)
            kappa = residual = None
            data = t.data.astype(np.float64)
            if changed and np.any(data):
                kappa = float((delta * data).sum() / (data * data).sum())
                residual = float(np.abs(delta - kappa * data).max())
            rows.append([name, _kind(t), changed, float(np.abs(delta).max(initial=0)), kappa, residual])
        super().__init__(columns, rows, title=f"Gradients with vs without the {without!r} term")



def with_without(terms, without, tensors):
    """`with_without({"data": cost, "l2": penalty}, "l2", {"W1": W1, "b1": b1, ...})`."""
    return WithWithout(terms, without, tensors)
