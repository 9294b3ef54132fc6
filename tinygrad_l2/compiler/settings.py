"""The settings a trace reads from objects: the numbers, tuples, lists and dicts modules hold (a
dropout rate, a convolution's padding, a dict of regularizers), and those of regularizers and
config objects (a dataclass, a namespace), compared by value at each call (guards.py)."""
from __future__ import annotations

import argparse
import dataclasses
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
    """A check that what each module (its own attributes), regularizer or config object holds
    is as traced, `DEPTH` levels down through dicts, lists, tuples and plain objects: its
    forward read it into the trace.  Flattened once into (container, key, value) leaves, so
    that each call only compares identities (and values, for a number rebound to an equal one)
    and each container's size."""
    sizes, leaves = [], []
    for owner in owners:
        _leaves(vars(owner), DEPTH, sizes, leaves, MODULE_GUARDED if isinstance(owner, Module) else ())
    return lambda: (all([len(c) == n for c, n in sizes])
                    and all([(now := c[k]) is v or (type(now) is type(v) and is_scalar(v) and now == v)
                             for c, k, v in leaves]))


DEPTH = 3  # a module's dict of regularizers, each one's λ; a config's nested settings
MODULE_GUARDED = ("training", "_parameters", "_buffers", "_modules")  # (a module's: guarded otherwise)


def _leaves(container, depth, sizes, leaves, skip=()):
    """Record a dict's or a list's size and each (key, value), and go down into the values that
    are containers or plain objects (a tuple's items, an object's attributes)."""
    sizes.append((container, len(container)))
    for key, value in (container.items() if isinstance(container, dict) else enumerate(container)):
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
    return [vars(value)] if _plain(value) else []


def _plain(value):
    return (hasattr(value, "__dict__") and not isinstance(value, Module | TensorBase | np.ndarray | type
                                                         | types.ModuleType | types.FunctionType | types.MethodType)
            and not hasattr(value, "param_groups") and not hasattr(value, "optimizer"))


def is_scalar(value):
    """A number, a string or None: compared by value."""
    return value is None or isinstance(value, (numbers.Number, np.generic, str, bytes))
