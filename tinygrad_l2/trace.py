"""Per-term gradient tracing: which loss term's gradient reaches which tensor, and how much.

Reverse mode sends a term's gradient only to the term's ancestors.  An L2 penalty's only
inputs are the weights, so its gradient reaches W and nothing else: dA, dZ and db are the
same with and without it.  These functions measure that instead of asserting it; each
returns a result object (a dataclass) that prints as a table, shows as HTML in a notebook
and gives `to_rows()`.
"""
from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import numpy.typing as npt

from .engine import grad, node_of, topological_order
from .table import Result, Rounding
from .tensor import Tensor


def kappa_fit(delta: npt.ArrayLike, tensor: npt.ArrayLike) -> float | None:
    """The κ with delta ≈ κ·tensor in least squares, κ = Σ(Δ·t)/Σt² (None if t is all zero):
    an L2 term (κ/2)·Σt² changes the gradient of t by exactly κ·t."""
    data = np.asarray(tensor, dtype=np.float64)
    if not np.any(data):
        return None
    return float((np.asarray(delta, dtype=np.float64) * data).sum() / (data * data).sum())


def kind_of(t: Tensor) -> str:
    if t._ctx is not None:
        return "intermediate"
    return "parameter" if t.requires_grad else "input"


@dataclass
class GradientTrace(Result):
    """For each tensor and each loss term: can the term reach the tensor in the graph (is the
    tensor an ancestor of the term?) and the term's gradient contribution to it."""
    terms: list  # term names
    tensors: dict  # name -> (kind, shape)
    reach: dict  # term -> {tensor name: bool}
    contributions: dict  # term -> {tensor name: array or None (no gradient: an input)}

    title = "Gradient contribution of each loss term"

    @property
    def columns(self) -> list[str]:  # type: ignore[override]
        return ["tensor", "kind", "shape"] + [c for term in self.terms
                                              for c in (f"{term} reaches", f"{term} ‖grad‖")]

    def rows(self) -> list[list[Any]]:
        rows = []
        for name, (kind, shape) in self.tensors.items():
            row = [name, kind, shape]
            for term in self.terms:
                g = self.contributions[term][name]
                row += [self.reach[term][name], None if g is None else float(np.linalg.norm(g))]
            rows.append(row)
        return rows

    def reaches(self, term: str, tensor: str) -> bool:
        return self.reach[term][tensor]

    def contribution(self, term: str, tensor: str) -> np.ndarray | None:
        """d(term)/d(tensor) as an array (zeros where the term cannot reach it)."""
        return self.contributions[term][tensor]


def trace_terms(terms: Mapping[str, Tensor], tensors: Mapping[str, Tensor]) -> GradientTrace:
    """`trace_terms({"data": cost, "l2": penalty}, {"W1": W1, "b1": b1, "A1": A1, ...})`."""
    terms, tensors = _named("trace_terms", terms), _named("trace_terms", tensors)
    reach, contributions = {}, {}
    for name, term in terms.items():
        if term.numel() != 1:
            raise ValueError(f"trace_terms: term {name!r} has shape {term.shape}; each term must "
                             f"be a scalar")
        _check_not_released("trace_terms", name, term)
        ancestors = set(topological_order(term, include_constants=True))
        reach[name] = {n: node_of(t) in ancestors for n, t in tensors.items()}
        contributions[name] = _gradients(term, tensors)
    return GradientTrace(list(terms), _described(tensors), reach, contributions)


@dataclass
class WithWithout(Result):
    """Gradients of the loss with and without one term, tensor by tensor: changed or
    bit-identical, the largest change, and the change as a multiple of the tensor itself
    (an L2 term (κ/2)·ΣW² changes dW by exactly κ·W)."""
    without: str
    tensors: dict  # name -> (kind, shape)
    values: dict  # name -> the tensor's data
    with_term: dict  # name -> gradient with every term (None for an input)
    without_term: dict  # name -> gradient without the term

    columns = ["tensor", "kind", "changed", "max |Δgrad|", "Δgrad = κ·tensor, κ =", "max |Δ − κ·tensor|"]

    @property
    def title(self) -> str:
        return f"Gradients with vs without the {self.without!r} term"

    def rows(self) -> list[list[Any]]:
        rows = []
        for name, (kind, _) in self.tensors.items():
            a, b = self.with_term[name], self.without_term[name]
            if a is None:
                rows.append([name, kind, False, None, None, None])
                continue
            delta = a.astype(np.float64) - b
            changed = not np.array_equal(a, b)
            kappa = kappa_fit(delta, self.values[name]) if changed else None
            residual = None if kappa is None else Rounding(np.abs(delta - kappa * self.values[name]).max(),
                                                           max(np.abs(a).max(), np.abs(b).max()))
            rows.append([name, kind, changed, float(np.abs(delta).max(initial=0)), kappa, residual])
        return rows

    def changed(self) -> list[str]:
        """The names of the tensors whose gradient the term changed."""
        return [row[0] for row in self.rows() if row[2]]


def with_without(terms: Mapping[str, Tensor], without: str, tensors: Mapping[str, Tensor]) -> WithWithout:
    """`with_without({"data": cost, "l2": penalty}, "l2", {"W1": W1, "b1": b1, ...})`."""
    terms, tensors = _named("with_without", terms), _named("with_without", tensors)
    if without not in terms:
        raise ValueError(f"with_without: {without!r} is not one of the terms {list(terms)}")
    rest = [t for name, t in terms.items() if name != without]
    if not rest:
        raise ValueError(f"with_without: there must be a term left without {without!r}")
    for name, term in terms.items():
        _check_not_released("with_without", name, term)
    loss_with = functools.reduce(operator.add, terms.values())
    loss_without = functools.reduce(operator.add, rest)
    return WithWithout(without, _described(tensors), {n: t.data for n, t in tensors.items()},
                       _gradients(loss_with, tensors), _gradients(loss_without, tensors))


def _named(what, mapping):
    mapping = dict(mapping)
    for name, t in mapping.items():
        if not isinstance(t, Tensor):
            raise TypeError(f"{what}: {name!r} is a {type(t).__name__}, expected a Tensor")
    if not mapping:
        raise ValueError(f"{what}: nothing given")
    return mapping


def _described(tensors):
    return {name: (kind_of(t), tuple(t.shape)) for name, t in tensors.items()}


def _check_not_released(what, name, term):
    """A term whose graph a backward() already freed cannot be traced: say what to do."""
    if any(not n.is_leaf and n.released for n in topological_order(term)):
        raise RuntimeError(
            f"{what}: the graph of term {name!r} was freed by an earlier backward(); call {what} "
            f"before loss.backward(), or call loss.backward(retain_graph=True)")


def _gradients(root, tensors):
    """d(root)/d(t) for each named tensor that requires grad; zeros where root does not depend
    on it, None for tensors without gradients (inputs).  Leaves' .grad are left alone."""
    wanted = [t for t in tensors.values() if t.requires_grad]
    found = dict(zip(wanted, grad(root, wanted, retain_graph=True, allow_unused=True))) if root.requires_grad else {}
    out = {}
    for name, t in tensors.items():
        if not t.requires_grad:
            out[name] = None
        else:
            g = found.get(t)
            out[name] = np.zeros(t.shape, dtype=t.dtype) if g is None else g
    return out
