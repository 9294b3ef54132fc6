"""The default random generator that initializes parameters; `manual_seed` makes it repeatable."""
from __future__ import annotations

import contextlib
from typing import Iterator

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


RandomSource = np.random.BitGenerator | np.random.RandomState


def generators_in(*places: object, depth: int = 3) -> list[RandomSource]:
    """The numpy random generators in these places (a module's or a class's namespace, an
    object's attributes, a list's items, and theirs in turn: `depth` levels), numpy's global
    one and ours always included: each bit generator, and each legacy RandomState."""
    found: dict[int, RandomSource] = {id(g): g for g in (np.random.mtrand._rand, _generator.bit_generator)}
    level, seen = list(places), set()
    for _ in range(depth):
        inner = []
        for place in level:
            if id(place) in seen or isinstance(place, type(np)):  # (a module's names: its own only)
                continue
            seen.add(id(place))
            values = (place.values() if isinstance(place, dict) else place if isinstance(place, list | tuple)
                      else getattr(place, "__dict__", {}).values())
            for value in list(values):
                if isinstance(value, np.random.Generator):
                    value = value.bit_generator
                if isinstance(value, np.random.BitGenerator | np.random.RandomState):
                    found.setdefault(id(value), value)
                elif not isinstance(value, np.ndarray | type | str | bytes | int | float):
                    inner.append(value)
        level = inner
    return list(found.values())


def generator_states(generators: list[RandomSource]) -> list[tuple]:
    """(generator, state) for each, and for numpy's global generator and ours as they are now
    (manual_seed makes a new one): a RandomState's state holds a cached normal deviate too."""
    everyone: dict[int, RandomSource] = {id(g): g for g in [*generators, *generators_in()]}
    return [(g, g.get_state() if isinstance(g, np.random.RandomState) else g.state)
            for g in everyone.values()]


def restore_generators(states: list[tuple]) -> None:
    """Every generator in `states` as it was then (bit generators first, then RandomStates)."""
    for generator, state in sorted(states, key=lambda pair: isinstance(pair[0], np.random.RandomState)):
        if isinstance(generator, np.random.RandomState):
            generator.set_state(state)
        else:
            generator.state = state


@contextlib.contextmanager
def generators_kept(generators: list[RandomSource]) -> Iterator[None]:
    """These generators are, after the block, as they were before: code run again inside it
    (tl.compile running an op's forward to record it) draws from none of them."""
    states = generator_states(generators)
    try:
        yield
    finally:
        restore_generators(states)
