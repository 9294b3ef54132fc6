"""Particle swarm optimization: minimizes a loss closure with no gradient at all."""
from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from ..context import no_grad
from ..random import as_generator
from ..tensor import Tensor


class PSO:
    """Particle swarm (Kennedy & Eberhart 1995, with Shi & Eberhart's inertia weight):

        v ← w·v + c₁·r₁ ⊙ (personal_best − x) + c₂·r₂ ⊙ (global_best − x)
        x ← x + v                            (r₁, r₂ ~ U(0, 1) per coordinate)

    x is the vector of all parameters.  `step(closure)` evaluates `closure()` (which returns
    the loss, a Tensor or a float) under no_grad for every particle, so whatever the loss
    graph holds — an L2 node included — is the error the swarm minimizes.  After each step the
    parameters hold the best position found so far; `step` returns its loss.

    Parameters: `n_particles`; `inertia` w (how much velocity carries over); `cognitive` c₁
    (pull to a particle's own best); `social` c₂ (pull to the swarm's best) — the defaults
    w = 0.7298, c₁ = c₂ = 1.49618 are Clerc & Kennedy's constriction values; `init_std`, the
    spread of the initial swarm around the current parameters; `rng` (int seed or Generator).
    """

    def __init__(self, params: Iterable[Tensor], n_particles: int = 30, inertia: float = 0.7298,
                 cognitive: float = 1.49618, social: float = 1.49618, init_std: float = 0.5,
                 rng: np.random.Generator | int | None = None) -> None:
        self.params = list(params)
        if not self.params or not all(isinstance(p, Tensor) for p in self.params):
            raise ValueError("PSO: params must be a non-empty list of Tensors")
        if not isinstance(n_particles, (int, np.integer)) or isinstance(n_particles, bool):
            raise TypeError(f"PSO: n_particles must be an integer, got {n_particles!r}")
        if n_particles < 2:
            raise ValueError(f"PSO: n_particles must be at least 2, got {n_particles}")
        for name, value in (("inertia", inertia), ("cognitive", cognitive), ("social", social),
                            ("init_std", init_std)):
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"PSO: {name} must be a finite number >= 0, got {value!r}")
        self.n_particles, self.inertia = int(n_particles), float(inertia)
        self.cognitive, self.social, self.init_std = float(cognitive), float(social), float(init_std)
        self.rng = as_generator(rng)
        self.positions = None

    def _flatten(self):
        return np.concatenate([p.data.ravel().astype(np.float64) for p in self.params])

    def _assign(self, vector):
        offset = 0
        for p in self.params:
            p.data = vector[offset:offset + p.numel()].reshape(p.shape).astype(p.dtype)
            offset += p.numel()

    def _evaluate(self, closure, vector):
        self._assign(vector)
        with no_grad():
            loss = closure()
        value = float(loss.item() if isinstance(loss, Tensor) else loss)
        return value if np.isfinite(value) else np.inf

    def _initialize(self, closure):
        start = self._flatten()
        noise = self.rng.standard_normal((self.n_particles, start.size)) * self.init_std
        noise[0] = 0.0  # one particle starts exactly at the current parameters
        positions = start + noise
        losses = np.array([self._evaluate(closure, x) for x in positions])  # may raise: no state yet
        self.velocities = self.rng.standard_normal(positions.shape) * (self.init_std / 10)
        self.positions, self.best_positions, self.best_losses = positions, positions.copy(), losses
        self.global_best = int(np.argmin(self.best_losses))

    def step(self, closure: Callable[[], Tensor | float]) -> float:
        """One swarm iteration; returns the best loss so far (the parameters now hold it).
        If `closure` raises, the parameters are restored to what they were and the error
        propagates (the model is never left at some particle's weights)."""
        before = [p.data for p in self.params]  # _assign replaces arrays: these stay intact
        try:
            return self._step(closure)
        except BaseException:
            for p, data in zip(self.params, before):
                p.data = data
            raise

    def _step(self, closure):
        if self.positions is None:
            self._initialize(closure)
        else:
            r1 = self.rng.random(self.positions.shape)
            r2 = self.rng.random(self.positions.shape)
            best = self.best_positions[self.global_best]
            velocities = (self.inertia * self.velocities
                          + self.cognitive * r1 * (self.best_positions - self.positions)
                          + self.social * r2 * (best - self.positions))
            positions = self.positions + velocities
            losses = [self._evaluate(closure, x) for x in positions]  # may raise: nothing changed yet
            self.velocities, self.positions = velocities, positions
            for i, (x, loss) in enumerate(zip(positions, losses)):
                if loss < self.best_losses[i]:
                    self.best_losses[i], self.best_positions[i] = loss, x.copy()
            self.global_best = int(np.argmin(self.best_losses))
        self._assign(self.best_positions[self.global_best])
        return float(self.best_losses[self.global_best])

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None
