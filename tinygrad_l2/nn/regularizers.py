"""Regularizers: callables W -> scalar Tensor, built from ordinary ops so they show in the graph.

Keras' meaning of the coefficient: `L2(lam)(W) = lam · Σ W²`, whose gradient is 2·lam·W.
The constructors `L2.from_nielsen`, `from_deeplearning_ai` and `from_weight_decay` convert
the other conventions (see `tinygrad_l2.conventions`).
"""
from __future__ import annotations

import numbers
import weakref
from typing import TYPE_CHECKING, Any, Callable

from .. import conventions

if TYPE_CHECKING:
    from ..tensor import Tensor


class TensorMap:
    """{tensor: value} by identity, not keeping the tensors alive.  (weakref's WeakSet and
    WeakKeyDictionary compare keys with ==, which is elementwise for tensors.)"""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref, Any]] = {}

    def setdefault(self, tensor: Tensor, value: Any) -> Any:
        entry = self._entries.get(id(tensor))
        if entry is None or entry[0]() is not tensor:
            key, entries = id(tensor), self._entries
            entry = entries[key] = (weakref.ref(tensor, lambda _: entries.pop(key, None)), value)
        return entry[1]

    def get(self, tensor: Tensor, default: Any = None) -> Any:
        entry = self._entries.get(id(tensor))
        return entry[1] if entry is not None and entry[0]() is tensor else default

    def __contains__(self, tensor: Tensor) -> bool:
        return self.get(tensor, self) is not self


# Parameters whose penalty has been part of a graph at least once: an optimizer that steps a
# parameter with an attached regularizer not in here warns that the penalty was forgotten.
penalized = TensorMap()


def _in_graph(w, penalty):
    if penalty.requires_grad:
        penalized.setdefault(w, True)
    return penalty


def _coefficient(name, value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or value < 0 or value != value:
        raise ValueError(f"{name}: the coefficient must be a finite number >= 0, got {value!r}")
    return float(value)


class L2:
    """`L2(lam)(W) = lam · Σ W²` — the graph reads Square -> Sum -> Mul(×lam)."""

    def __init__(self, lam: float = 0.01) -> None:
        self.lam = _coefficient("L2", lam)

    def __call__(self, w: Tensor) -> Tensor:
        return _in_graph(w, self.lam * (w ** 2.0).sum())  # (2.0: a float, told from any number a step read)

    @classmethod
    def from_nielsen(cls, lmbda: float, n: int) -> L2:
        """Nielsen's (λ/2n)·Σw², n = training-set size."""
        return cls(conventions.nielsen_to_keras(lmbda, n))

    @classmethod
    def from_deeplearning_ai(cls, lambd: float, m: int) -> L2:
        """deeplearning.ai's (1/m)(λ/2)·Σ‖W‖², m = number of examples."""
        return cls(conventions.deeplearning_ai_to_keras(lambd, m))

    @classmethod
    def from_weight_decay(cls, weight_decay: float) -> L2:
        """The penalty whose gradient is PyTorch's SGD `weight_decay`·W: (wd/2)·Σw²."""
        return cls(conventions.weight_decay_to_keras(weight_decay))

    def __repr__(self) -> str:
        return f"L2({self.lam!r})"


class L1:
    """`L1(lam)(W) = lam · Σ |W|` — the graph reads Abs -> Sum -> Mul(×lam)."""

    def __init__(self, lam: float = 0.01) -> None:
        self.lam = _coefficient("L1", lam)

    def __call__(self, w: Tensor) -> Tensor:
        return _in_graph(w, self.lam * w.abs().sum())

    def __repr__(self) -> str:
        return f"L1({self.lam!r})"


class L1L2:
    """`L1L2(l1, l2)(W) = l1 · Σ|W| + l2 · Σ W²` (Keras' L1L2)."""

    def __init__(self, l1: float = 0.0, l2: float = 0.0) -> None:
        self.l1, self.l2 = L1(l1), L2(l2)

    def __call__(self, w: Tensor) -> Tensor:
        return self.l1(w) + self.l2(w)

    def __repr__(self) -> str:
        return f"L1L2(l1={self.l1.lam!r}, l2={self.l2.lam!r})"


l1, l2, l1_l2 = L1, L2, L1L2  # Keras' lower-case spellings: regularizers.l2(0.01)
_BY_NAME = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2}


def get(identifier: Any, argument: str = "regularizer") -> Callable[[Tensor], Tensor] | None:
    """Keras' `regularizers.get`: None, any callable W -> scalar Tensor (`L2(0.01)`, your
    own), or a name — "l2", "l1", "l1_l2" in any case — for that class with its default
    coefficient (L2() is 0.01·ΣW², as Keras' "l2").  Anything else is refused here, naming
    `argument`, rather than failing at the first forward."""
    if isinstance(identifier, str) and identifier.lower() in _BY_NAME:
        return _BY_NAME[identifier.lower()]()
    if identifier is None or (callable(identifier) and not isinstance(identifier, type)):
        return identifier
    if isinstance(identifier, type):
        hint = f"the class {identifier.__name__}; write {identifier.__name__}(0.01)"
    elif isinstance(identifier, numbers.Real) and not isinstance(identifier, bool):
        hint = f"the number {identifier!r}; write tl.nn.L2({identifier!r}) for {identifier!r}·ΣW²"
    else:
        hint = f"{type(identifier).__name__} {identifier!r}"
    raise ValueError(f"{argument}: expected None, a regularizer such as tl.nn.L2(0.01) (any "
                     f"callable W -> scalar Tensor) or one of 'l2', 'l1', 'l1_l2'; got {hint}")
