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
from .keys import frozen


def holds_settings(value):
    """A regularizer (an object of tl.nn that is not a module), a dataclass or a namespace: its
    numbers are settings the trace reads."""
    if isinstance(value, types.SimpleNamespace | argparse.Namespace) or (
            dataclasses.is_dataclass(value) and not isinstance(value, type)):
        return True
    return (type(value).__module__.startswith("tinygrad_l2.nn.") and hasattr(value, "__dict__")
            and not isinstance(value, Module))  # (a regularizer)


def numbers_unchanged(owners):
    """What each module (its own attributes), regularizer or config object holds, as traced:
    its forward reads it into the trace (`_settings`)."""
    read = lambda: [_settings(_own(o), SETTINGS_DEPTH) for o in owners]  # noqa: E731
    traced = read()
    return lambda: read() == traced


SETTINGS_DEPTH = 3  # a module's dict of regularizers, each one's λ; a config's nested settings


def _own(owner):
    """An object's attributes, a module's without what is guarded otherwise (its mode, its
    parameters, buffers and sub-modules)."""
    own = vars(owner)
    if isinstance(owner, Module):
        return {k: v for k, v in own.items() if k not in ("training", "_parameters", "_buffers", "_modules")}
    return own


def _settings(value, depth):
    """`value` for comparing at a later call: numbers and strings by value (keys.frozen), tuples,
    lists and dicts element by element, a plain object (a regularizer, a config) by identity and
    its attributes, `depth` levels down; tensors, arrays, modules and functions by identity."""
    if _is_scalar(value):
        return frozen(value)
    if isinstance(value, tuple | list):
        return type(value), tuple(_settings(v, depth) for v in value)
    if isinstance(value, dict):
        return dict, tuple((k, _settings(v, depth)) for k, v in value.items())
    if depth and _plain(value):
        return id(value), _settings(vars(value), depth - 1)
    return id(value)


def _plain(value):
    return (hasattr(value, "__dict__") and not isinstance(value, Module | TensorBase | np.ndarray | type
                                                         | types.ModuleType | types.FunctionType | types.MethodType)
            and not hasattr(value, "param_groups") and not hasattr(value, "optimizer"))


def _is_scalar(value):
    return value is None or isinstance(value, (numbers.Number, np.generic, str, bytes))
