"""The L2 conventions of Keras, PyTorch, Nielsen's book and deeplearning.ai, converted exactly.

Common currency: κ, the coefficient the penalty adds to a weight's gradient (κ·w), i.e. the
loss term (κ/2)·Σw².

| source                          | you write                  | loss term / update               | κ      |
|---------------------------------|----------------------------|----------------------------------|--------|
| Keras `L2(l2)`, `tl.nn.L2(lam)` | kernel_regularizer=L2(lam) | lam·Σw²                          | 2·lam  |
| PyTorch SGD/Adam `weight_decay` | weight_decay=wd            | g ← g + wd·w (≡ (wd/2)·Σw²)      | wd     |
| Nielsen ch. 3 (`lmbda`, n)      | lmbda                      | (λ/2n)·Σw²; w ← (1−ηλ/n)w − η∇C₀ | λ/n    |
| deeplearning.ai (`lambd`, m)    | lambd                      | (1/m)(λ/2)·Σ‖W‖²                 | λ/m    |
| PyTorch AdamW `weight_decay`    | weight_decay=wd            | w ← w − lr·wd·w, decoupled       | none   |
"""
from __future__ import annotations

def _positive(name, value):
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def keras_to_weight_decay(lam: float) -> float:
    """Keras lam·Σw² has gradient 2·lam·w: PyTorch weight_decay = 2·lam."""
    return 2.0 * lam


def weight_decay_to_keras(weight_decay: float) -> float:
    return weight_decay / 2.0


def nielsen_to_keras(lmbda: float, n: int) -> float:
    """(λ/2n)·Σw² = lam·Σw² with lam = λ/(2n)."""
    return lmbda / (2.0 * _positive("n (training-set size)", n))


def nielsen_to_weight_decay(lmbda: float, n: int) -> float:
    """κ = λ/n: the gradient of (λ/2n)·Σw² is (λ/n)·w."""
    return lmbda / _positive("n (training-set size)", n)


def deeplearning_ai_to_keras(lambd: float, m: int) -> float:
    """(1/m)(λ/2)·Σ‖W‖² = lam·Σ‖W‖² with lam = λ/(2m)."""
    return lambd / (2.0 * _positive("m (number of examples)", m))


def deeplearning_ai_to_weight_decay(lambd: float, m: int) -> float:
    """κ = λ/m: the course's dW gains (λ/m)·W."""
    return lambd / _positive("m (number of examples)", m)


def weight_decay_factor(lr: float, kappa: float) -> float:
    """The multiplicative shrink one plain SGD step applies: w ← (1 − lr·κ)·w − lr·∇C₀
    (Nielsen: 1 − ηλ/n)."""
    return 1.0 - lr * kappa


TABLE = __doc__.split("\n\n", 2)[2].strip()
