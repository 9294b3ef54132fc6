"""What a trace depends on, by value: the kind, shape and dtype of each argument, the value of
any other argument (a config dict changed in place is another trace), which arguments are the
same object, grad mode; and each parameter's shape and dtype."""
from __future__ import annotations

import argparse
import dataclasses
import numbers
import operator
import types

import numpy as np

from ..context import is_grad_enabled
from ..function import TensorBase

SHAPE_DTYPE = operator.attrgetter("_data.shape", "_data.dtype")  # of a parameter


def data_of(value):
    return value._data if isinstance(value, TensorBase) else value


def _signature(value):
    if isinstance(value, TensorBase):
        data = value._data
        return ("tensor", data.shape, data.dtype, value._requires_grad)
    if isinstance(value, np.ndarray):
        return ("array", value.shape, value.dtype)
    if type(value) in (tuple, list) and any(map(_batch_item, value)):  # a batch (X, y): its arrays
        return (type(value), tuple(_signature(v) if _batch_item(v) else frozen(v) for v in value))
    if type(value) is dict and any(map(_batch_item, value.values())):  # {"x": X, "y": y}
        return (dict, tuple((k, _signature(v) if _batch_item(v) else frozen(v)) for k, v in value.items()))
    return ("value", type(value), frozen(value))


def _batch_item(value):
    """An array or a constant tensor in an argument tuple or list: a program input."""
    return isinstance(value, np.ndarray) or (isinstance(value, TensorBase) and not value._requires_grad)


def batched(args):
    """((argument index, item name), item) for each array or constant tensor directly inside
    an argument that is a tuple, a list or a dict (a batch `(X, y)` from a loader, `{"x": X,
    "y": y}`): read each call.  The name is the item's index, or its key where that is a name."""
    found = []
    for i, arg in enumerate(args):
        if type(arg) in (tuple, list, dict):
            for n, (key, item) in enumerate(arg.items() if type(arg) is dict else enumerate(arg)):
                named = type(arg) is not dict or (isinstance(key, str) and key.isidentifier())
                if _batch_item(item):
                    found.append(((i, key if named else n), item))
    return found


def frozen(value):
    """`value` as it is now, for comparing with it at a later call, without calling its own
    `==`: a dict, list, tuple, set, dataclass or namespace (a config changed in place) element
    by element, an array by its bytes, a number by value (NaN as a NaN), a tensor (a parameter:
    its values change every step) or any other object by identity."""
    if isinstance(value, dict):
        return dict, tuple((frozen(k), frozen(v)) for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        return type(value), tuple(frozen(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name, _UNSET) for f in dataclasses.fields(value)}
        return type(value), frozen(fields)
    if isinstance(value, types.SimpleNamespace | argparse.Namespace):  # a config object
        return type(value), frozen(vars(value))
    if isinstance(value, np.ndarray):
        return np.ndarray, value.shape, value.dtype.str, value.tobytes()
    if isinstance(value, numbers.Number | np.generic | str | bytes) or value is None:
        return (type(value), "nan") if value != value else (type(value), value)
    return object, id(value)


_UNSET = ("a dataclass field not set",)


def trace_key(args):
    """What a trace depends on: each argument's kind, shape and dtype, which arguments are the
    same object (step(A, A) is traced differently from step(A, B)), and grad mode."""
    first = {}
    aliases = tuple([first.setdefault(id(a), i) for i, a in enumerate(args)])  # (a list: faster
    return tuple(map(_signature, args)), aliases, is_grad_enabled()          # than a generator)


def arrays_in_values(args):
    """The arrays inside the arguments that the trace key holds by value (in dicts, lists,
    tuples, sets, dataclasses and namespaces): a replay may read them as they were traced."""
    found, level = [], list(args)
    while level:
        inner = []
        for value in level:
            if isinstance(value, np.ndarray):
                found.append(value)
            elif isinstance(value, dict):
                inner += list(value.values())
            elif isinstance(value, list | tuple | set | frozenset):
                inner += list(value)
            elif dataclasses.is_dataclass(value) and not isinstance(value, type):
                inner += [getattr(value, f.name, None) for f in dataclasses.fields(value)]
            elif isinstance(value, types.SimpleNamespace | argparse.Namespace):
                inner += list(vars(value).values())
        level = inner
    return found


def program_inputs(args, kwargs, keywords, arrays):
    """What a program takes: the arguments, the keyword arguments by name, the arrays and
    constant tensors inside argument tuples and lists (a batch `(X, y)`, read each call), then
    the arrays the function reads from its scope (see guards.array_inputs)."""
    given = args + tuple(kwargs[k] for k in keywords)
    return given + tuple(x for _, x in batched(given)) + tuple(arrays)
