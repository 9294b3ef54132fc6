"""What a step changes in Python objects its scope holds (a counter in `self`, `g["lr"] *= 0.5`,
`history.append(loss)`): an effect a replay would skip, so such a step runs eagerly."""
from __future__ import annotations

import functools
import numbers
import sys
import types

import numpy as np

from ..function import TensorBase
from ..nn.module import Module
from .effects import closure_values
from .guards import functions_of, of_the_users, scope_reads, users_module
from .keys import frozen
from .settings import MODULE_GUARDED, attributes_of

DEPTH = 3  # the step's globals, closure, self and defaults; what they hold; and what that holds


class ScopeState:
    """A shallow snapshot, before the call, of what the step's scope holds, `DEPTH` levels down
    (through dicts, lists, tuples, sets, objects' attributes and the closures of functions):
    the contents of each dict, list and set and the attributes of each object (numbers by
    value, anything else by identity); each module's own attributes and buffers (by value);
    each optimizer's hyper-parameters; each Python generator's local variables; each numpy
    random generator's state.  `changes` lists what the call changed that no recorded event
    explains."""

    def __init__(self, fn):
        function = getattr(fn, "__func__", fn)
        level = [read() for _, _, read in scope_reads(fn)] + [getattr(fn, "__self__", None)]
        level += list(getattr(function, "__defaults__", None) or ())
        level += list((getattr(function, "__kwdefaults__", None) or {}).values())
        level += [v for f in functions_of(fn) for v in closure_values(f)]
        level += [getattr(np.random.mtrand, "_rand", None)]  # numpy's global generator (np.random.seed)
        seen: dict[int, object] = {}
        for _ in range(DEPTH):
            level = [v for v in level if id(v) not in seen and not _opaque(v)]
            seen.update((id(v), v) for v in level)
            level = [h for v in level for h in _held(v)]
        modules = [m for v in seen.values() if isinstance(v, Module) for _, m in v.named_modules()]
        seen.update((id(m), m) for m in modules)
        self.before = [(o, _shallow(o)) for o in seen.values() if _tracked(o)]

    def changes(self, events, custom_ops=False):
        """(what, where) for each object the call changed that no event explains: not the
        state of an optimizer it stepped or a scheduler it stepped (nor the groups a scheduler
        changes), nor a random generator a custom op may draw from (`custom_ops`)."""
        owners = {id(e[1]) for e in events if e[0] in ("step", "zero_grad", "schedule")}
        scheduled = {id(getattr(e[1], "optimizer", None)) for e in events if e[0] == "schedule"}
        return [(f"the step changes {_describe(o)}", "the step's own code") for o, was in self.before
                if not (id(o) in owners and not _is_optimizer(o)) and id(o) not in scheduled
                and not (custom_ops and _is_random(o)) and _shallow(o) != was]


def _opaque(value):
    """Nothing the step could change inside: a number, a string, an array, a tensor, a class
    not of the user's, a Python module, or an object of this package's that is not a module or
    an optimizer."""
    if isinstance(value, type):
        return not of_the_users(value)  # (a class of the user's: its class attributes, a count)
    if isinstance(value, types.ModuleType):
        return not users_module(value)  # (a module of the user's: its globals, rebound)
    return (value is None or isinstance(value, numbers.Number | str | bytes | np.ndarray | np.generic
                                         | TensorBase | types.ModuleType)
            or (type(value).__module__.partition(".")[0] == "tinygrad_l2"
                and not isinstance(value, Module) and not _is_optimizer(value)))


def _tracked(value):
    """Snapshotted: a dict, list, set, module, optimizer, generator, numpy random generator,
    or an object of the user's with attributes, slotted or not (not a function: its closure is
    explored)."""
    if isinstance(value, dict | list | set | Module | types.GeneratorType) or _is_optimizer(value):
        return True
    if _is_random(value):
        return True
    if isinstance(value, types.ModuleType):
        return users_module(value)
    return ((hasattr(value, "__dict__") or hasattr(type(value), "__slots__")) and not isinstance(value, _CALLABLES)
            and (not isinstance(value, type) or of_the_users(value)))


_CALLABLES = (types.FunctionType, types.MethodType, types.BuiltinFunctionType, functools.partial)


def _globals_of(function, depth=4):
    """The values of the globals a helper of the user's own reads (a module-level history
    list it appends to), through the helpers it calls in turn (`depth` of them: a function
    holds no state, so it is gone through, not counted as a level); a classmethod's class;
    none of this package's functions (its generator is drawn from)."""
    if not of_the_users(function) or not depth:
        return []
    found = [function.__self__] if isinstance(getattr(function, "__self__", None), type) else []
    found += [m for m in [sys.modules.get(getattr(function, "__module__", None) or "")]  # (globals()[...])
              if m is not None and users_module(m)]
    for kind, _, read in scope_reads(function):
        try:
            value = read() if kind == "global" else None
        except (KeyError, ValueError):
            continue
        found += (_globals_of(value, depth - 1) if isinstance(value, types.FunctionType | types.MethodType)
                  else [value] if value is not None else [])
    return found


def _is_optimizer(value):
    return not isinstance(value, type | types.ModuleType) and isinstance(getattr(value, "param_groups", None), list)


def _is_random(value):
    return isinstance(value, np.random.Generator | np.random.RandomState)


def _held(value):
    """What `value` holds, explored one level further down."""
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    if isinstance(value, types.ModuleType):
        return []  # (a user's module: its namespace is compared, not gone through)
    if isinstance(value, functools.partial):  # what it holds, and its function's scope
        return [*value.args, *value.keywords.values(), *_held(value.func)]
    if isinstance(value, types.FunctionType | types.MethodType):  # a helper: its closure, globals
        return [v for f in functions_of(value) for v in closure_values(f)] + _globals_of(value)
    if isinstance(value, types.GeneratorType):
        return [] if value.gi_frame is None else list(value.gi_frame.f_locals.values())
    if isinstance(value, Module) or _is_optimizer(value) or _is_random(value):
        return []
    if hasattr(value, "__dict__") or hasattr(type(value), "__slots__"):
        return [v for _, v in attributes_of(value).items()]
    return []


def _shallow(value):
    """The snapshot compared: numbers by value, everything else by identity; a module's own
    attributes and its buffers' values (its training flag is guarded, its parameters are the
    optimizer's); an optimizer's hyper-parameters by value (its state is its step's)."""
    if _is_optimizer(value) and not isinstance(value, Module):
        return [frozen({k: v for k, v in g.items() if k != "params"}) for g in value.param_groups]
    if isinstance(value, Module):
        own = {k: v for k, v in vars(value).items() if k not in MODULE_GUARDED}
        buffers = {k: (id(b), frozen(getattr(b, "_data", b))) for k, b in value.__dict__.get("_buffers", {}).items()}
        return _shallow(own), buffers
    if isinstance(value, types.GeneratorType):
        frame = value.gi_frame
        return None if frame is None else (frame.f_lasti, _shallow(dict(frame.f_locals)))
    if isinstance(value, types.ModuleType):  # (a user's module: its names, as bound now)
        return tuple((k, _ref(v)) for k, v in vars(value).items() if not k.startswith("__"))
    if _is_random(value):
        return frozen(value.bit_generator.state if isinstance(value, np.random.Generator) else value.get_state(legacy=False))
    if isinstance(value, dict):
        return tuple((k, _ref(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(map(_ref, value))
    if isinstance(value, set):
        return frozenset(map(_ref, value))
    return _shallow(dict(attributes_of(value).items()))


def _ref(value):
    return frozen(value) if isinstance(value, numbers.Number | np.generic | str | bytes | type(None)) else id(value)


def _describe(value):
    kind = type(value).__name__
    if isinstance(value, Module):
        return f"an attribute or a buffer of its {kind} module"
    if _is_optimizer(value):
        return f"a hyper-parameter of its {kind} optimizer (such as lr)"
    if _is_random(value) or isinstance(value, types.GeneratorType):
        return f"the state of a {kind} it draws from"
    return f"a {kind} of its scope (an element or an attribute)"
