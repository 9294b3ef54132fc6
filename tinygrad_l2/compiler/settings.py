"""The settings a trace reads from objects: the numbers, tuples, lists and dicts modules hold (a
dropout rate, a convolution's padding, a dict of regularizers), and those of regularizers and
config objects (a dataclass, a namespace), compared by value at each call (guards.py)."""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import numbers
import types

import numpy as np

from ..function import TensorBase
from ..nn.module import Module


def holds_settings(value):
    """A regularizer (an object of tl.nn that is not a module), a dataclass or a namespace: its
    numbers are settings the trace reads."""
    if isinstance(value, types.SimpleNamespace | argparse.Namespace) or (
            dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return True
    return (type(value).__module__.startswith("tinygrad_l2.nn.") and hasattr(value, "__dict__")
            and not isinstance(value, Module))  # (a regularizer)


def settings_unchanged(owners):
    """A check that what each module (its own attributes, and the numbers its class sets),
    regularizer or config object holds is as traced, `DEPTH` levels down through dicts, lists,
    tuples and plain objects: its forward read it into the trace.  Flattened once into
    (container, key, value) leaves, so that each call only compares identities (and values,
    for a number rebound to an equal one), each container's size, and the bytes of the small
    arrays among the values (per-layer λ set in place)."""
    sizes, leaves = _flattened(owners)
    arrays = [(a, a.shape, a.tobytes()) for a in {id(v): v for _, _, v in leaves if _small_array(v)}.values()]
    return lambda: (all([len(c) == n for c, n in sizes])
                    and all([(now := c[k]) is v or (type(now) is type(v) and is_scalar(v) and _equal(now, v))
                             for c, k, v in leaves])
                    and all([a.shape == shape and a.tobytes() == was for a, shape, was in arrays]))


def settings_numbers(owners):
    """The numbers and strings `settings_unchanged` guards by value (a regularizer's λ: no
    number computed from a read, for reads.py)."""
    return [v for _, _, v in _flattened(owners)[1] if is_scalar(v)]


def _flattened(owners):
    """(sizes, leaves) of the owners' settings, `DEPTH` levels down (see settings_unchanged)."""
    sizes, leaves = [], []
    for owner in owners:
        held = owner if isinstance(owner, dict | list | tuple) else attributes_of(owner)
        _leaves(held, DEPTH, sizes, leaves, MODULE_GUARDED if isinstance(owner, Module) else ())
        if isinstance(owner, Module):
            leaves += _class_numbers(type(owner))
    return sizes, leaves


DEPTH = 3  # a module's dict of regularizers, each one's λ; a config's nested settings
MODULE_GUARDED = ("training", "_parameters", "_buffers", "_modules")  # (a module's: guarded otherwise)
LARGE = 256  # items of a container compared (then its size only)
SMALL_ARRAY = 1024  # elements: compared by value each call (a larger one: by identity)


def _small_array(value):
    return isinstance(value, np.ndarray) and value.size <= SMALL_ARRAY


def _class_numbers(cls):
    """(class dict, name, value) for the numbers and strings a user's module class sets for
    all its instances (`temperature = 1.0`): read through self, set on the class."""
    return [(vars(c), k, v) for c in cls.__mro__ if c.__module__.partition(".")[0] not in ("tinygrad_l2", "builtins")
            for k, v in vars(c).items() if not k.startswith("__") and is_scalar(v)]


class _Slots:
    """A slotted object's attributes (it has no __dict__; a @dataclass(slots=True)), read
    through getattr each time, as a dict's items are."""

    def __init__(self, owner):
        self.owner = owner
        self.names = [n for c in type(owner).__mro__ for n in getattr(c, "__slots__", ())
                      if not n.startswith("__") and hasattr(owner, n)]

    def __getitem__(self, name):
        return getattr(self.owner, name)

    def __len__(self):
        return len(self.names)

    def items(self):
        return [(n, getattr(self.owner, n)) for n in self.names]


def attributes_of(value):
    """An object's attributes: its __dict__, or its slots read live."""
    return vars(value) if hasattr(value, "__dict__") else _Slots(value)


def _leaves(container, depth, sizes, leaves, skip=()):
    """Record a dict's or a list's size and each (key, value), and go down into the values that
    are containers or plain objects (a tuple's items, an object's attributes)."""
    sizes.append((container, len(container)))
    items = container.items() if hasattr(container, "items") else enumerate(container)
    for key, value in itertools.islice(items, LARGE):  # (a dataset held as a list: its start)
        if key in skip:
            continue
        leaves.append((container, key, value))
        if depth:
            for inner in _inner(value):
                _leaves(inner, depth - 1, sizes, leaves)


def _inner(value):
    """The containers below a value: itself (a dict, a list), a tuple's, a plain object's
    attributes; none for numbers, arrays, tensors, modules (guarded on their own) or functions."""
    if isinstance(value, dict | list):
        return [value]
    if isinstance(value, tuple):
        return [c for v in value for c in _inner(v)]
    return [attributes_of(value)] if _plain(value) else []


def _plain(value):
    return ((hasattr(value, "__dict__") or hasattr(type(value), "__slots__"))
            and not isinstance(value, Module | TensorBase | np.ndarray | type | types.ModuleType
                               | types.FunctionType | types.MethodType)
            and not hasattr(value, "param_groups") and not hasattr(value, "optimizer"))


def _equal(a, b):
    """Equal scalars, NaN equal to NaN (a NaN setting rebound to another NaN is unchanged)."""
    return a == b or (a != a and b != b)


def is_scalar(value):
    """A number, a string or None: compared by value."""
    return value is None or isinstance(value, (numbers.Number, np.generic, str, bytes))
