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
And, from what the trace observed: the `training` flag of every module called and of its
sub-modules (train()/eval()), each optimizer's parameter groups (how many, which parameters)
and hyper-parameters other than the learning rate (which the replay reads each call), and the
`requires_grad` flag of every traced parameter.

Not seen: a value read inside another function or from an object's attribute and changed later
(a regularizer's λ set in place; `self.opt` rebound), and a container's contents (a list of
arrays changed in place): `check=N` catches those, and `step.retrace()` forces a new trace.
"""
from __future__ import annotations

import dis
import functools
import numbers
import types
from typing import Any, Callable, Iterable

import numpy as np

from ..function import TensorBase

Reader = Callable[[], Any]


class Guards:
    """The checks for one trace: each a description, a reader and the value traced."""

    def __init__(self, fn: Callable[..., Any], *, modules: Iterable[Any] = (), optimizers: Iterable[Any] = (),
                 parameters: Iterable[TensorBase] = ()) -> None:
        """fn: the step function (its globals and closure cells); modules: every module called
        while tracing; optimizers: every optimizer stepped or zeroed; parameters: the traced
        parameters (or later, `add_parameters`)."""
        self.checks: list[tuple[str, Reader, Any]] = []
        for kind, name, read in scope_reads(fn):
            value = read()
            if _is_scalar(value):
                self._add(f"{kind} {name}", read)
            elif _identity_guarded(value):
                self._add(f"the object {kind} {name} refers to", functools.partial(_identity_of, read))
        self._add_modules(modules)
        for optimizer in dict.fromkeys(optimizers):
            self._add(f"the parameter groups or hyper-parameters of {type(optimizer).__name__}",
                      functools.partial(_groups, optimizer))
        self.add_parameters(parameters)

    def add_parameters(self, parameters: Iterable[TensorBase]) -> None:
        """Guard the requires_grad flag of each of these traced parameters."""
        parameters = list(parameters)
        if parameters:
            self._add("a traced parameter's requires_grad",
                      lambda: tuple(p.requires_grad for p in parameters))

    def _add(self, what: str, read: Reader) -> None:
        self.checks.append((what, read, read()))

    def _add_modules(self, modules):
        tree = {id(m): m for called in modules for _, m in called.named_modules()}
        if tree:
            everyone = list(tree.values())
            self._add("a module's training flag (train()/eval())",
                      lambda: tuple(m.training for m in everyone))

    @property
    def scalars(self) -> list[Any]:
        """The guarded numbers and strings (constants a result may return as they are)."""
        return [value for _, _, value in self.checks if _is_scalar(value)]

    def changed(self) -> str | None:
        """The first guarded thing that changed since the trace, or None."""
        for what, read, value in self.checks:
            try:
                current = read()
            except (NameError, ValueError):  # a global deleted, a closure cell emptied
                return what
            if not _same(current, value):
                return what
        return None


def array_inputs(fn: Callable[..., Any]) -> list[tuple[str, Reader]]:
    """(name, reader) for each array or non-parameter tensor the function reads as a global or
    closure variable; the reader returns the variable's current value (the array or the
    Tensor), so that a program can take it as an extra input each call."""
    return [(name, read) for _, name, read in scope_reads(fn) if _is_array(read())]


def scope_reads(fn: Callable[..., Any]) -> list[tuple[str, str, Reader]]:
    """("global" or "closure variable", name, reader) for each global the function's code loads
    (in nested comprehensions, generator expressions and lambdas too) and each closure cell;
    names it reads but that are unbound are left out."""
    function = getattr(fn, "__func__", fn)
    code = getattr(function, "__code__", None)
    if code is None:
        return []
    namespace = getattr(function, "__globals__", {})
    reads: list[tuple[str, str, Reader]] = [
        ("global", name, functools.partial(namespace.__getitem__, name))
        for name in dict.fromkeys(_global_names(code)) if name in namespace]
    for name, cell in zip(code.co_freevars, getattr(function, "__closure__", None) or ()):
        try:
            cell.cell_contents
        except ValueError:  # an empty cell
            continue
        reads.append(("closure variable", name, functools.partial(_cell_contents, cell)))
    return reads


def _cell_contents(cell):
    return cell.cell_contents


def _identity_of(read):
    return _Identity(read())


def _global_names(code):
    """The global names a code object loads, including its nested code objects'."""
    names = [i.argval for i in dis.get_instructions(code) if i.opname in ("LOAD_GLOBAL", "LOAD_NAME")]
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names += _global_names(constant)
    return names


class _Identity:
    """Compares equal to a wrapper of the same object only."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, _Identity) and other.value is self.value


def _groups(optimizer):
    """What the replay assumes of an optimizer: per group, its parameters (by identity) and its
    hyper-parameters (the learning rate aside: the replay reads it each call)."""
    return tuple((tuple(_Identity(p) for p in group["params"]),
                  tuple(sorted((k, v) for k, v in group.items() if k not in ("params", "lr"))))
                 for group in getattr(optimizer, "param_groups", ()))


def _same(a, b):
    """Equal and of the same type, recursively (1 is not True, NaN is itself)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, (np.ndarray, np.generic)) and not _is_scalar(a):
        return a is b
    return a is b or a == b


def _is_scalar(value):
    return value is None or isinstance(value, (numbers.Number, np.generic, str, bytes))


def _is_array(value):
    return isinstance(value, np.ndarray) or (isinstance(value, TensorBase) and not value.requires_grad)


def _identity_guarded(value):
    return not (_is_scalar(value) or _is_array(value) or isinstance(value, (types.ModuleType, type)))
