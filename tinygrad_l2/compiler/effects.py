"""What a step does beyond its graph, found while tracing it: arrays it takes and writes into
(`X /= 255`), numbers of its scope it rebinds (a counter), and the random generators that
building its program may draw from (they are kept as they were)."""
from __future__ import annotations

import builtins
import dis
import sys
import types

import numpy as np

from .. import random
from ..function import TensorBase
from ..nn.module import Module
from .guards import functions_of, scope_reads, user_helpers
from .keys import trace_key
from .replay import attributes
from .symbolic import _walk


def generators(nodes, events, reachable):
    """The random generators building the step may draw from (running ops and an optimizer's
    update again): ours, numpy's global one, those the step's scope holds (`reachable`), an op
    was given, or a custom op or optimizer holds, has in its module or class, or in the closure
    of one of its methods."""
    owners = [o for o in [n for n in nodes if not n.is_leaf] + [e[1] for e in events if e[0] == "step"]
              if type(o).__module__.partition(".")[0] != "tinygrad_l2"]
    places = [attributes(o) for o in owners] + [dict(enumerate(reachable))]
    places += [dict(enumerate(_walk((getattr(n, "arguments", ()), getattr(n, "given", {})))))
               for n in nodes if not n.is_leaf]
    for cls in {id(type(o)): type(o) for o in owners}.values():
        places += [vars(sys.modules.get(cls.__module__, builtins)), vars(cls)]
        places += [dict(enumerate(closure_values(f))) for f in vars(cls).values()]
    return random.generators_in(*_within(places, 3, np.random.Generator | np.random.BitGenerator
                                         | np.random.RandomState))


def _within(places, depth, wanted):
    """The objects of type `wanted` in these places' dict values, list and tuple items and
    attributes, and theirs in turn, `depth` levels down (not inside a module or a class: numpy's
    namespace is not the step's)."""
    found, level, seen = [], list(places), set()
    for _ in range(depth):
        inner = []
        for place in level:
            if id(place) in seen or isinstance(place, type | types.ModuleType):
                continue
            seen.add(id(place))
            values = (place.values() if isinstance(place, dict) else place if isinstance(place, list | tuple)
                      else getattr(place, "__dict__", {}).values())
            for value in list(values):
                (found if isinstance(value, wanted) else inner).append(value)
        level = [v for v in inner if not isinstance(v, np.ndarray | TensorBase | str | bytes | int | float)]
    return found


def closure_values(fn):
    """The values a function's (or static/class method's) closure cells hold (empty ones left
    out)."""
    values = []
    for cell in getattr(getattr(fn, "__func__", fn), "__closure__", None) or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # an empty cell
            continue
    return values


def given_copies(inputs, names, parameters):
    """(name, array, copy) for each array the step takes that is not a parameter's nor a view of
    one (those are watched: `parameter_views`): a step that writes into one (`X /= 255`) has an
    effect its replay would not have."""
    return [(name, array, array.copy()) for name, array in _arrays(inputs, names)
            if _owner(array, parameters) is None]


def parameter_views(inputs, names, parameters, held=()):
    """{id: (parameter, array, copy, where)} for each array the step takes, or its scope holds
    in a list, a dict or an object's attributes, that is a parameter's or a view of one
    (`Wv = layer.weight.data`): watched like a `.data` read (context.Trace.watched), since the
    optimizer writes it too."""
    found = {}
    candidates = _arrays(inputs, names) + [("in the step's scope", a) for a in _within(held, 2, np.ndarray)]
    for name, array in candidates:
        owner = _owner(array, parameters)
        if owner is not None:
            found[id(array)] = (owner, array, array.copy(), f"the array {name} of the step's scope")
    return found


def _arrays(inputs, names):
    return [(name, getattr(x, "_data", x)) for name, x in zip(names, inputs)
            if isinstance(x, np.ndarray) or (isinstance(x, TensorBase) and not x.requires_grad)]


def _owner(array, parameters):
    return next((p for p in parameters if np.may_share_memory(array, p._data)), None)


def parameters_of(objects):
    """The parameters these objects are, hold (a module) or step (an optimizer)."""
    found = []
    for thing in objects:
        if isinstance(thing, TensorBase):
            found += [thing] if thing.requires_grad else []
        elif isinstance(thing, Module):
            found += list(thing.parameters())
        elif isinstance(getattr(thing, "param_groups", None), list):
            found += [p for group in thing.param_groups for p in group.get("params", ())]
    return [p for p in found if isinstance(p, TensorBase)]


def same_values(array, copy):
    """Equal element for element, NaN where NaN (no bytes copied: a dataset may be large)."""
    if np.array_equal(array, copy):
        return True
    return array.dtype.kind in "fc" and bool(np.array_equal(array, copy, equal_nan=True))


def scope_values(fn):
    """{"global x" / "closure variable x": value} for what the function reads from its scope,
    and for the globals it assigns (`global HISTORY; HISTORY = HISTORY + [1]`): one the call
    itself rebinds (a counter, a list) is a side effect."""
    found = {}
    for kind, name, read in scope_reads(fn):
        try:
            found[f"{kind} {name}"] = read()
        except (KeyError, ValueError):
            continue
    for function in functions_of(fn) + user_helpers(found.values()):  # (the user's: `global N; N += 1`)
        code, namespace = getattr(function, "__code__", None), getattr(function, "__globals__", {})
        for name in _stored_globals(code) if code is not None else ():
            found[f"global {name}"] = namespace.get(name, _UNBOUND)
    return found


_UNBOUND = object()  # a global the step assigns that does not exist yet



def _stored_globals(code):
    names = [i.argval for i in dis.get_instructions(code) if i.opname == "STORE_GLOBAL"]
    return names + [n for c in code.co_consts if isinstance(c, types.CodeType) for n in _stored_globals(c)]


def own_effects(fn, inputs, given, key, before):
    """(what, where) for each effect of the step's own code on what it was given: an input
    array written (`given`: given_copies), an argument (a config dict) changed (its trace
    `key` before the call), a value of its scope rebound (`before`: scope_values)."""
    found = [(f"the step changes its input {name} in place", "the step's own code")
             for name, array, copy in given if not same_values(array, copy)]
    if trace_key(inputs) != key:
        found.append(("the step changes an argument it takes", "the step's own code"))
    changed = next((name for name, value in scope_values(fn).items()
                    if name in before and before[name] is not value), None)
    if changed is not None:  # (a counter, a list rebound)
        found.append((f"the step changes its {changed}", "the step's own code"))
    return found
