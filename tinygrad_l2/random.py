"""The default random generator that initializes parameters; `manual_seed` makes it repeatable."""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np

from . import context

_generator = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed the generator that layers use when given no `rng` (like torch.manual_seed)."""
    global _generator
    context.record_unreplayable("tl.manual_seed (a replay would not seed the generator again)")
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


def generators_in(*objects: object) -> list[RandomSource]:
    """The numpy random generators among these objects (a Generator as its bit generator, a
    legacy RandomState as it is), numpy's global one and ours always included."""
    found: dict[int, RandomSource] = {id(g): g for g in (np.random.mtrand._rand, _generator.bit_generator)}
    for thing in objects:
        thing = thing.bit_generator if isinstance(thing, np.random.Generator) else thing
        if isinstance(thing, np.random.BitGenerator | np.random.RandomState):
            found.setdefault(id(thing), thing)
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
