"""The default random generator that initializes parameters; `manual_seed` makes it repeatable."""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the generator that layers use when given no `rng` (like torch.manual_seed)."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator() -> np.random.Generator:
    return _generator


def as_generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """None -> the default generator; an int -> a fresh seeded one; a Generator as is."""
    if rng is None:
        return _generator
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
