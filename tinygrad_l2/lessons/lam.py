"""One vocabulary for λ: a value in a named convention, turned into κ, the coefficient the
penalty adds to a weight's gradient (dW += κ·W, the loss term (κ/2)·ΣW²), and back.

    convention  you write            loss term                 κ        needs
    dlai        lambd                (1/m)(λ/2)·Σ‖W‖²          λ/m      m: examples the cost averages
    nielsen     lmbda                (λ/2n)·Σw²                λ/n      n: training-set size
    keras       L2(l2)               l2·Σw²                    2·l2
    torch       SGD weight_decay     g ← g + wd·w              wd
"""
import math
from dataclasses import dataclass

from .. import conventions

CONVENTIONS = ("dlai", "nielsen", "keras", "torch")
NAMES = {"dlai": "the deeplearning.ai", "nielsen": "Nielsen's", "keras": "the Keras", "torch": "the PyTorch"}
TERMS = {"dlai": "(1/m)(λ/2)·Σ‖W‖²", "nielsen": "(λ/2n)·Σw²", "keras": "λ·Σw² (L2(λ))",
         "torch": "weight_decay λ: g ← g + λ·w"}


@dataclass(frozen=True)
class Lambda:
    """λ = `value` in `convention`; `size` is m (dlai) or n (nielsen), unused otherwise."""
    convention: str
    value: float
    size: int = 0

    def __post_init__(self):
        if self.convention not in CONVENTIONS:
            raise ValueError(f"λ: convention must be one of {', '.join(CONVENTIONS)}, got {self.convention!r}")
        if not (math.isfinite(self.value) and self.value >= 0):
            raise ValueError(f"λ must be a finite number >= 0, got {self.value!r}")
        if self.convention in ("dlai", "nielsen") and self.size < 1:
            raise ValueError(f"λ in {NAMES[self.convention]} convention needs "
                             f"{'m' if self.convention == 'dlai' else 'n'} >= 1")

    @property
    def kappa(self):
        """The gradient coefficient: dW gains κ·W."""
        if self.convention == "dlai":
            return conventions.deeplearning_ai_to_weight_decay(self.value, self.size)
        if self.convention == "nielsen":
            return conventions.nielsen_to_weight_decay(self.value, self.size)
        if self.convention == "keras":
            return conventions.keras_to_weight_decay(self.value)
        return self.value

    def to(self, convention, size=0):
        """The same penalty as λ in another convention (with that convention's m or n)."""
        kappa = self.kappa
        value = {"dlai": kappa * size, "nielsen": kappa * size, "keras": kappa / 2, "torch": kappa}[convention]
        return Lambda(convention, value, size)

    def describe(self):
        """One header line: what λ means here and its κ."""
        size = {"dlai": f", m = {self.size}", "nielsen": f", n = {self.size}"}.get(self.convention, "")
        return (f"λ = {self.value:g} in {NAMES[self.convention]} convention (loss term "
                f"{TERMS[self.convention]}{size}): κ = {self.kappa:.6g}, so dW gains κ·W and the "
                f"penalty node's coefficient is κ/2 = {self.kappa / 2:.6g}")
