"""What a step returns, taken apart and put back: the replay returns the same structure.

    tensors, template = flatten(result, numbers, literals)   # at the trace
    result = rebuild(template, replayed_tensors)              # at each replay

`flatten` walks tuples, lists, dicts and namedtuples.  A tensor becomes a slot of the replayed
tensor list (the same tensor twice: one slot, so the replay returns one object twice).  A Python
number the step got from a tensor (`loss.item()`, `float(loss)`, `int(t)`, `bool(t)`, recorded
while tracing as (tensor, value, convert)) becomes a slot too: the replay converts the replayed
tensor the same way, so the number is recomputed each call.  None, Ellipsis, and a number or
string the function's code writes as a literal (`0.5`, `"loss"`) or reads as a guarded global
stay constants.  Anything else (a number computed from `.data` with numpy, an f-string of the
loss, an object) cannot be recomputed: `Unreplayable` says what it is, and the step runs
eagerly.  Dict keys are part of the structure (kept as traced).
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import textwrap
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..context import TracedInt
from ..function import TensorBase

Template = tuple  # ("tensor", slot) | ("number", slot, convert) | ("constant", value)
#                   | ("sequence", type, [templates]) | ("dict", type, [(key, template)])
Number = tuple[TensorBase, Any, Callable[[Any], Any], str]  # (tensor, the value it gave,
# convert, the user's "file:line" that read it)


class Unreplayable(ValueError):
    """A returned value the replay could not reproduce (the message says which)."""


def flatten(result: Any, numbers: Iterable[Number] = (), literals: Iterable[Any] = (),
            shown: set | None = None) -> tuple[list[TensorBase], Template]:
    """(the tensors replay must compute, the template `rebuild` fills with them).  numbers: the
    (tensor, value, convert, where) reads recorded while tracing; literals: the values that may be
    returned as constants (code_literals(fn) and the guarded globals); shown: what the return
    statements write (returned_literals), to tell a literal 1 from a computed one."""
    walker = _Walker(list(numbers), literals)
    walker.shown = shown
    template = walker.walk(result, "the returned value")
    unused = [k for k in walker.reads if k not in walker.used]
    if unused:  # read from a tensor, used for something else (an if, an append, a print)
        raise Unreplayable(f"the function read {walker.values[unused[0]]!r} from a tensor at "
                           f"{walker.where[unused[0]]} (.item(), float(), int(), bool() or an index) "
                           f"and did not return it: replay cannot redo what it was used for (an if, "
                           f"a list append, a print)")
    return walker.tensors, template


class _Walker:
    def __init__(self, numbers, literals):
        # a literal is recognised by identity: a number computed during the call that merely
        # equals one (0.5) is another object (CPython shares only small ints and bools)
        self.literals = list(literals)
        self.shown: set | None = None  # (see flatten)
        self.literal = {id(v) for v in self.literals if _literal_key(v) is not None}
        self.values: dict[int, Any] = {}  # id -> a value read from a tensor (`numbers` holds
        self.reads: dict[int, list] = {}  # them all: no id is reused); id -> (tensor, convert)s
        self.where: dict[int, str] = {}
        for tensor, value, convert, where in numbers:
            self.values[id(value)] = value
            self.where[id(value)] = where
            self.reads.setdefault(id(value), []).append((tensor, convert))
        self.tensors: list[TensorBase] = []
        self.open: set[int] = set()  # the containers being walked (a list that holds itself)
        self.slots: dict[int, int] = {}
        self.used: set[int] = set()

    def slot(self, tensor):
        if id(tensor) not in self.slots:
            self.slots[id(tensor)] = len(self.tensors)
            self.tensors.append(tensor)
        return self.slots[id(tensor)]

    def walk(self, value, where, path=()):
        if isinstance(value, TensorBase):
            return ("tensor", self.slot(value))
        if id(value) in self.values and self.values[id(value)] is value:
            return self.number(value, where)
        if (id(value) in self.literal and type(value) in (int, bool) and -5 <= value <= 256
                and (self.shown is None or (path, _literal_key(value)) not in self.shown)):
            raise Unreplayable(f"{where} is {value!r}, a small integer that no return statement "
                               f"writes there: Python shares one object for it, so it may be a number "
                               f"computed in Python (a scheduler's epoch), which replay cannot redo")
        if value is None or value is Ellipsis or id(value) in self.literal:
            return ("constant", value)
        if type(value) in (tuple, list, dict) or _is_namedtuple(value):
            if id(value) in self.open:
                raise Unreplayable(f"{where} holds itself")
            self.open.add(id(value))
            try:
                if type(value) is dict:
                    return ("dict", dict, [(k, self.walk(v, f"{where}[{k!r}]", (*path, k))) for k, v in value.items()])
                return ("sequence", type(value), [self.walk(v, f"{where}[{i}]", (*path, i))
                                                  for i, v in enumerate(value)])
            finally:
                self.open.discard(id(value))
        raise Unreplayable(_why_not(value, where))

    def number(self, value, where):
        """A number read from a tensor: its slot, if it is clear which read it is."""
        reads = self.reads[id(value)]
        if id(value) in self.literal or len({id(t) for t, _ in reads}) > 1:
            raise Unreplayable(f"{where} is {value!r}, which more than one tensor or a literal of "
                               f"the function gave: which one is meant is unclear")
        if id(value) in self.used and type(value) in (int, bool) and -5 <= value <= 256:
            raise Unreplayable(f"{where} is {value!r}, as another returned value read from a tensor "
                               f"is: Python shares one object for this small integer, so one of them "
                               f"may be a number computed in Python (a batch size), which replay cannot redo")
        self.used.add(id(value))
        tensor, convert = reads[-1]
        if isinstance(value, list) and value != convert(tensor):  # (tolist(), then appended to)
            raise Unreplayable(f"{where} is a list read from a tensor and changed before it was "
                               f"returned: a replay reads the tensor again")
        return ("number", self.slot(tensor), convert)


def returned_tensors(template: Template) -> list[int]:
    """The slots the function returns as tensors (not the ones it read a number from)."""
    kind = template[0]
    if kind == "tensor":
        return [template[1]]
    if kind in ("number", "constant"):
        return []
    children = [t for _, t in template[2]] if kind == "dict" else template[2]
    return [slot for child in children for slot in returned_tensors(child)]


def plain_numbers(result: Any, depth: int = 4) -> Any:
    """The traced call's result with each `TracedInt` (an int read while tracing) a plain int,
    `depth` levels down through lists, dicts (keys too), sets, tuples and dataclasses, as a
    replay returns it: a mutable container in place (the same object, as eager returns it; an
    equal int for the traced one), a tuple or frozenset anew only if one changed."""
    if isinstance(result, TracedInt):
        return int(result)
    if depth == 0 or isinstance(result, str | bytes | TensorBase | np.ndarray):
        return result
    plain = functools.partial(plain_numbers, depth=depth - 1)
    if isinstance(result, list):
        result[:] = map(plain, result)
    elif isinstance(result, dict):
        items = [(plain(k), plain(v)) for k, v in result.items()]
        if any(k is not k0 or v is not v0 for (k, v), (k0, v0) in zip(items, result.items())):
            result.clear()
            for k, v in items:  # (item by item: a Counter's update() would count them)
                result[k] = v
    elif isinstance(result, set):
        items = list(map(plain, result))
        result.clear()
        result.update(items)
    elif isinstance(result, tuple | frozenset):
        items = list(map(plain, result))
        if any(a is not b for a, b in zip(items, result)):
            return type(result)(*items) if _is_namedtuple(result) else type(result)(items)
    elif dataclasses.is_dataclass(result) and not isinstance(result, type):
        for field in dataclasses.fields(result):
            value = getattr(result, field.name, None)
            if (new := plain(value)) is not value:
                object.__setattr__(result, field.name, new)  # (a frozen one too)
    return result


def rebuild(template: Template, tensors: Sequence[TensorBase]) -> Any:
    """The step's result from the replayed tensors (in `flatten`'s order)."""
    kind = template[0]
    if kind == "tensor":
        return tensors[template[1]]
    if kind == "number":
        return template[2](tensors[template[1]])
    if kind == "constant":
        return template[1]
    if kind == "dict":
        return {k: rebuild(t, tensors) for k, t in template[2]}
    items = [rebuild(t, tensors) for t in template[2]]
    return template[1](*items) if template[1] not in (tuple, list) else template[1](items)


def code_literals(fn: Callable[..., Any]) -> list[Any]:
    """The constants the function's code writes (0.5, "loss", None), in nested code too."""
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    found: list[Any] = []
    stack = [code] if code is not None else []
    while stack:
        for constant in stack.pop().co_consts:
            if hasattr(constant, "co_consts"):
                stack.append(constant)
            elif isinstance(constant, (tuple, frozenset)):
                found.extend(constant)
            else:
                found.append(constant)
    return found


def returned_literals(fn: Callable[..., Any], scope: dict[str, Any]) -> set | None:
    """{(position, literal key)}: where in the returned structure a return statement of `fn`
    (not of a function nested in it), or a lambda's body, writes a constant (-1 too) or names a
    number of the scope: as the value, or inside a tuple, list or dict display or a call's
    arguments (a namedtuple).  None when the source cannot be read."""
    function = getattr(fn, "__func__", fn)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(function)))
    except (OSError, TypeError, SyntaxError):
        return None
    kind = ast.Lambda if function.__name__ == "<lambda>" else ast.FunctionDef | ast.AsyncFunctionDef
    node = next((n for n in ast.walk(tree) if isinstance(n, kind)), None)
    if node is None:
        return None
    values = [node.body] if isinstance(node, ast.Lambda) else [r.value for r in _own_returns(node)]
    literal: dict = {}  # position -> the literal keys written there
    opaque: set = set()  # positions of anything else (a name, an attribute, a call)
    for value in values:
        _positions(value, (), scope, literal, opaque)
    return {(path, key) for path, keys in literal.items() if len(keys) == 1 for key in keys
            if not any(path[:i] in opaque for i in range(len(path) + 1))}  # (one return's 1 does not
    # make another return's computed value at that place a literal)


def _own_returns(function):
    """The return statements of a function's own body (not of a function or class in it)."""
    stack, found = list(function.body), []
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Return) and node.value is not None:
            found.append(node)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            stack += list(ast.iter_child_nodes(node))
    return found


def _positions(node, path, scope, literal, opaque):
    """Record what a returned expression writes at each position (see returned_literals)."""
    called = scope.get(node.func.id) if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None
    if isinstance(node, ast.Tuple | ast.List) or (isinstance(called, type) and issubclass(called, tuple)):
        for i, element in enumerate(node.elts if isinstance(node, ast.Tuple | ast.List) else node.args):
            _positions(element, (*path, i), scope, literal, opaque)  # (a namedtuple: by position)
    elif isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values):
            if isinstance(key, ast.Constant):
                _positions(value, (*path, key.value), scope, literal, opaque)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        literal.setdefault(path, set()).add(_literal_key(-node.operand.value))
    elif isinstance(node, ast.Constant):
        literal.setdefault(path, set()).add(_literal_key(node.value))
    elif isinstance(node, ast.Name) and node.id in scope and _literal_key(scope[node.id]) is not None:
        literal.setdefault(path, set()).add(_literal_key(scope[node.id]))
    else:
        opaque.add(path)


def _literal_key(value):
    """Equal literals of the same type (1 and 1.0 and True are different constants)."""
    if isinstance(value, (bool, int, float, complex, str, bytes)):
        return type(value), value
    return None


def _is_namedtuple(value):
    return isinstance(value, tuple) and hasattr(type(value), "_fields")


def _why_not(value, where):
    if isinstance(value, (np.generic, np.ndarray)):
        return (f"{where} is a numpy number or array ({value!r}) computed during the call, not "
                f"by .item()/float() of a tensor: replay cannot recompute it")
    if isinstance(value, (int, float, complex, str, bytes)):
        return (f"{where} is the number or string {value!r}, computed during the call (not "
                f".item()/float() of a tensor, nor a literal of the function): replay cannot "
                f"recompute it")
    return f"{where} is a {type(value).__name__}, which replay cannot reproduce"
