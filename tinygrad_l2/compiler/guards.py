"""What a trace depends on beyond its arguments, checked before each replay (a change makes the
step trace again, never replay stale), and the arrays it reads from its scope (read each call).

The step function's own global and closure variables, by what they hold:
- a number, string or None (`lam`, `scale`, a flag): baked into the code as a literal, so its
  value is guarded;
- an array, or a tensor that is not a parameter (`rows`, `y`, a dataset): `array_inputs` lists
  a reader for each, and the program takes their current values as extra inputs every call
  (an array changed in place or rebound is seen, like an argument);
- anything else but a Python module or a class (an optimizer, a model, a parameter, a helper
  function, a list): its identity is guarded, so `opt = Adam(...)` after the trace retraces.
And, from what the trace observed: the `training` flag of every module called, or read as a
global or closure variable, and of its sub-modules (train()/eval()), each optimizer's parameter
groups (how many, which parameters: its hyper-parameters are the written update's to check,
update.py), the `requires_grad` flag of every traced parameter, and the function's default
arguments by value.

And what each module called, each regularizer and each config namespace or dataclass the step
reads hold, three levels down (a dropout rate, λ, padding: settings.py).  Not seen: a value read inside another function
or from an attribute of another object and changed later (`self.opt` rebound), and a
container's contents (a list of arrays changed in place): `check=N` catches those, and
`step.retrace()` forces a new trace.
"""
from __future__ import annotations

import dis
import functools
import itertools
import operator
import sys
import types
from typing import Any, Callable, Iterable

import numpy as np

from ..function import TensorBase
from ..nn.module import Module
from .keys import frozen
from .settings import holds_settings, is_scalar, settings_numbers, settings_unchanged

Reader = Callable[[], Any]


class Guards:
    """The checks for one trace: each a description and a function saying "unchanged"."""

    def __init__(self, fn: Callable[..., Any], *, modules: Iterable[Any] = (), optimizers: Iterable[Any] = (),
                 parameters: Iterable[TensorBase] = (), entered: dict[int, bool] | None = None,
                 flags: dict[int, tuple[TensorBase, bool]] | None = None) -> None:
        """fn: the step function (its globals and closure cells); modules: every module called
        while tracing; optimizers: every optimizer stepped or zeroed; parameters: the traced
        parameters (or later, `add_parameters`); entered: {id(module): its training flag when
        the step was entered}, for the modules the step switched (train()/eval()); flags:
        {id(tensor): (tensor, its requires_grad when the step was entered)} for the tensors the
        step froze or unfroze (read each call, as buffers are).""" 
        self.checks: list[tuple[str, Callable[[], bool]]] = []
        settings: list[Any] = []  # objects whose numbers the step reads: a regularizer, a config
        self.buffers: list[tuple[str, TensorBase]] = []  # of the modules called, read each call
        self.scalars: list[Any] = []  # the guarded numbers and strings, as traced
        self.flags = flags or {}
        self.settings: list[Any] = []  # the numbers of modules, regularizers, configs it guards
        modules = list(modules)
        helpers = user_helpers([r() for k, _, r in scope_reads(fn) if k != "partial argument"])
        for kind, name, read in scope_reads(fn) + [r for h in helpers for r in scope_reads(h) if r[0] == "global"]:
            value = read()  # (the step's scope, and the globals its helpers of the user's read)
            if is_scalar(value):
                self.scalars.append(value)
                self.checks.append((f"{kind} {name}", _value_unchanged(read, value)))
            elif kind == "partial argument" and not _is_array(value):  # an argument: by value
                self.checks.append((f"{kind} {name}", _frozen_unchanged(read)))
            elif _users_class(value):  # its class attributes: settings (`Anneal.temperature`)
                settings.append(value)
            elif _identity_guarded(value):
                self.checks.append((f"the object {kind} {name} refers to", _identity_unchanged(read, value)))
                if isinstance(value, Module):  # model.forward(x), dropout(x, training=model.training)
                    modules.append(value)
                elif holds_settings(value) or isinstance(value, dict | list | tuple):
                    settings.append(value)  # (a config dict, or a list, changed in place)
        settings += [v for v in getattr(getattr(fn, "__self__", None), "__dict__", {}).values()
                     if not isinstance(v, Module) and holds_settings(v)]  # a trainer's config
        function = getattr(fn, "__func__", fn)
        if getattr(function, "__defaults__", None) or getattr(function, "__kwdefaults__", None):
            self.checks.append(("the function's default arguments (a config dict changed in place)",
                                _defaults_unchanged(function)))
        self._guard_modules([m for called in modules for _, m in called.named_modules()], settings,
                            entered or {})
        for optimizer in dict.fromkeys(optimizers):  # (hyper-parameters: the written update's
            self.checks.append((f"the parameter groups of {type(optimizer).__name__}",  # ready())
                                groups_unchanged(optimizer, hyper=False)))
        self.add_parameters(parameters)

    def _guard_modules(self, modules: list[Any], settings: list[Any], entered: dict[int, bool]) -> None:
        """Each module's mode as entered, its buffers and frozen parameters (read each call:
        `buffers`) by identity, and the numbers it and the settings objects hold."""
        tree = list({id(m): m for m in modules}.values())
        if tree:
            self.checks.append(("a module's training flag (train()/eval())", _modes_unchanged(tree, entered)))
            self.buffers = [(name, b) for m in tree for name, b in _held_tensors(m)  # read each call:
                            if not b.requires_grad or id(b) in self.flags]  # buffers, frozen parameters
            if self.buffers:  # a tensor rebound (or unfrozen) retraces
                self.checks.append(("a module's buffer or parameter rebound, or one frozen or unfrozen",
                                    _held_unchanged(tree, self.flags)))
        held = {id(b) for _, b in self.buffers}
        self.buffers += [("frozen", t) for key, (t, _) in self.flags.items() if key not in held]
        if settings or tree:
            self.checks.append(("a number a module, a regularizer or a config object holds (a dropout "
                                "rate, λ, eps)", settings_unchanged(settings + tree)))
            self.settings = settings_numbers(settings + tree)  # (guarded by value: none from a read)

    def add_parameters(self, parameters: Iterable[TensorBase]) -> None:
        """Guard the requires_grad flag of each of these traced parameters."""
        parameters = list(parameters)
        if parameters:
            self.checks.append(("a traced parameter's requires_grad",
                                _flags_unchanged(parameters, self.flags)))

    def changed(self) -> str | None:
        """The first guarded thing that changed since the trace, or None."""
        for what, unchanged in self.checks:
            try:
                if not unchanged():
                    return what
            except (KeyError, ValueError):  # a global deleted, a closure cell emptied
                return what
        return None


def _modes_unchanged(modules, entered):
    """Each module is in the mode it was in when the traced call was entered (the step's own
    train()/eval() is an event the replay repeats, with the mode it had: a step may compute it
    from the mode it finds, `model.train(not model.training)`)."""
    traced = [entered.get(id(m), m.training) for m in modules]
    return lambda: [m.training for m in modules] == traced


def _held_tensors(module):
    """(name, tensor) of a module's own buffers and parameters (running_mean, weight)."""
    return [(name, t) for table in ("_buffers", "_parameters")
            for name, t in module.__dict__.get(table, {}).items() if t is not None]


def _held_unchanged(modules, flags):
    """Each module's buffers and parameters are the traced tensor objects (by identity: `==` is
    elementwise), with the requires_grad flags they had when the traced call was entered."""
    read = lambda: [(t, t.requires_grad) for m in modules for _, t in _held_tensors(m)]  # noqa: E731
    traced = [(t, flags.get(id(t), (t, f))[1]) for t, f in read()]
    return lambda: len(current := read()) == len(traced) and all(
        a is b and f == g for (a, f), (b, g) in zip(current, traced))


def _flags_unchanged(tensors, flags):
    """Each tensor's requires_grad is what it was when the traced call was entered (a step may
    freeze or unfreeze: its own changes are events the replay repeats)."""
    traced = [flags.get(id(t), (t, t.requires_grad))[1] for t in tensors]
    return lambda: [t.requires_grad for t in tensors] == traced


def _value_unchanged(read, value):
    kind = type(value)
    return lambda: (current := read()) is value or (type(current) is kind and bool(current == value))


def _frozen_unchanged(read):
    """The value by keys.frozen (a config dict or list element by element, objects by
    identity), as an argument is keyed."""
    traced = frozen(read())
    return lambda: frozen(read()) == traced


def _defaults_unchanged(function):
    """The default arguments by value (keys.frozen), read from the function each call."""
    read = lambda: frozen((function.__defaults__, function.__kwdefaults__))  # noqa: E731
    traced = read()
    return lambda: read() == traced


def _identity_unchanged(read, value):
    return lambda: read() is value


def groups_unchanged(optimizer, hyper=True):
    """A check that the optimizer's groups are as now: per group, its parameters (by identity)
    and, with `hyper`, its hyper-parameters (the learning rate aside: a written update reads it
    each call; a replay that calls opt.step() reads them all)."""
    traced = [(list(group["params"]), {k: _snapshot(v) for k, v in group.items() if k not in ("params", "lr")})
              for group in optimizer.param_groups]
    keys = [tuple(hyper) for _, hyper in traced]
    values = [tuple(hyper.values()) for _, hyper in traced]

    def unchanged():
        groups = optimizer.param_groups
        if len(groups) != len(traced):
            return False
        for group, (params, _), names, was in zip(groups, traced, keys, values):
            current = group["params"]
            if len(current) != len(params) or any(map(operator.is_not, current, params)):
                return False
            if not hyper:
                continue
            if len(group) - ("params" in group) - ("lr" in group) != len(was):
                return False
            now = tuple(map(group.get, names, _MISSINGS))
            if not all(map(operator.is_, now, was)) and not all(map(_same, now, was)):  # (the same
                return False                                          # objects: the common case)
        return True
    return unchanged


_MISSING = object()
_MISSINGS = itertools.repeat(_MISSING)


def _snapshot(value):
    """A copy of what may change in place (a list, an array, inside a tuple too)."""
    if isinstance(value, tuple | list):
        return type(value)(map(_snapshot, value)) if type(value) in (tuple, list) else value
    return value.copy() if isinstance(value, np.ndarray) else value


def _same(current, traced):
    """Equal and of the same type, element by element in a tuple or list, an array by shape,
    dtype and values (np.float64(0.01) equals 0.01 but makes a float32 update compute in
    float64), a number or string by value, anything else by identity."""
    if type(current) is not type(traced):
        return False
    if isinstance(traced, tuple | list):
        return len(current) == len(traced) and all(map(_same, current, traced))
    if isinstance(traced, np.ndarray):
        return (current.shape == traced.shape and current.dtype == traced.dtype
                and bool(np.array_equal(current, traced)))
    if not is_scalar(traced):  # a tensor (its == is elementwise), any object: by identity
        return current is traced
    return bool(current == traced)


def array_inputs(fn: Callable[..., Any]) -> list[tuple[str, Reader]]:
    """(name, reader) for each array or non-parameter tensor the function reads as a global or
    closure variable; the reader returns the variable's current value (the array or the
    Tensor), so that a program can take it as an extra input each call."""
    return [(name, read) for _, name, read in scope_reads(fn) if _is_array(read())]


def scope_reads(fn: Callable[..., Any]) -> list[tuple[str, str, Reader]]:
    """("global", "closure variable" or "partial argument", name, reader) for each global the
    code of the function loads (in nested comprehensions, generator expressions and lambdas
    too), each closure cell, and each argument a functools.partial holds; through a bound
    method, a partial and a functools.wraps decorator (the wrapper's and the wrapped function's
    scopes).  Names it reads but that are unbound are left out."""
    reads: list[tuple[str, str, Reader]] = []
    for function in functions_of(fn):
        if isinstance(function, functools.partial):
            reads += [("partial argument", f"partial_arg{k}" if isinstance(k, int) else k,
                       functools.partial(operator.itemgetter(k), d))
                      for d in (dict(enumerate(function.args)), function.keywords) for k in d]
            continue
        code, namespace = function.__code__, getattr(function, "__globals__", {})
        reads += [("global", name, functools.partial(namespace.__getitem__, name))
                  for name in dict.fromkeys(_global_names(code)) if name in namespace]
        for name, cell in zip(code.co_freevars, getattr(function, "__closure__", None) or ()):
            try:
                cell.cell_contents
            except ValueError:  # an empty cell
                continue
            reads.append(("closure variable", name, functools.partial(_cell_contents, cell)))
    return reads


def functions_of(fn: Callable[..., Any]) -> list[Any]:
    """The Python functions (and partials) a call of `fn` runs through: a bound method's
    function, a partial's `func`, a decorator's `__wrapped__`, in turn."""
    found: list[Any] = []
    current: Any = fn
    while current is not None and len(found) < 16:
        current = getattr(current, "__func__", current)
        if isinstance(current, functools.partial) or hasattr(current, "__code__"):
            found.append(current)
        current = current.func if isinstance(current, functools.partial) else getattr(current, "__wrapped__", None)
    return found


def _cell_contents(cell):
    return cell.cell_contents


def _global_names(code):
    """The global names a code object loads, including its nested code objects'."""
    names = [i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")]
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names += _global_names(constant)
    return names


def _is_array(value):
    return isinstance(value, np.ndarray) or (isinstance(value, TensorBase) and not value.requires_grad)


def _identity_guarded(value):
    return not (is_scalar(value) or _is_array(value) or isinstance(value, (types.ModuleType, type)))


def user_helpers(values: Iterable[Any], depth: int = 4) -> list[Any]:
    """The user's own functions among `values`, and those their globals hold in turn."""
    found = [getattr(v, "__func__", v) for v in values
             if isinstance(v, types.FunctionType | types.MethodType) and of_the_users(v)]
    if not depth:
        return found
    return found + user_helpers([read() for f in found for _, _, read in scope_reads(f)], depth - 1)


def _users_class(value: Any) -> bool:
    """A class of the user's own (its class attributes are settings: `Anneal.temperature`)."""
    return isinstance(value, type) and of_the_users(value) and not issubclass(value, Module)


def of_the_users(value: Any) -> bool:
    """Defined by the user's code (a function, a class): in one of the user's modules."""
    module = sys.modules.get(getattr(value, "__module__", None) or "")
    return module is not None and users_module(module)


def users_module(module: types.ModuleType) -> bool:
    """A Python module of the user's: not this package's, Python's nor one installed (under
    the interpreter's prefixes); one made in code (`types.ModuleType("cfg")`) is."""
    file = getattr(module, "__file__", None)
    if file is None:
        return module.__name__ not in sys.builtin_module_names
    return not file.startswith((sys.prefix, sys.base_prefix)) and not module.__name__.startswith("tinygrad_l2")
