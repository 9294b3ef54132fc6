"""Rewrites of the IR, each exact (rounding aside where said) and each a small function.

- `fold_transposes`: x.T.T is x (a transpose's backward of a transposed product);
- `scalars_unbroadcast`: a 0-d gradient broadcast to W's shape and multiplied elementwise
  is multiplied as the 0-d value (numpy broadcasts it the same way);
- `softmax_cross_entropy`: log-softmax's backward of a one-label-per-row pick becomes
  softmax − one-hot, as a textbook writes it (exact);
- `powers_of_two_to_scalars`: (s·X)·2 becomes X·(2s) for a 0-d s (exact unless s·X is
  subnormal, so not in float16: one X-sized pass);
- `sum_of_squares`: a plain (x²).sum() read once becomes np.vdot(x, x) in float64 and a dot
  product per row of a float32 matrix, summed pairwise, no x² array (rounding; a float32 BLAS
  dot over a whole array accumulates in float32 and loses digits numpy's pairwise sum keeps;
  not in float16, whose small squares eager rounds to subnormals);
  (these three: algebra.py)
- `hoist_constants`: numbers that depend on no input are computed once (invariants.py);
- `dead_code`: drop pure instructions nobody reads;
- `in_place`: an elementwise ufunc writes into its first operand's array when that array is
  the program's own and nothing reads it afterwards (liveness over forward AND backward);
- `buffers`: matrix products write into arrays allocated once, shared by products of the same
  shape whose lifetimes do not overlap.

Aliasing and liveness: analysis.py.
"""
from __future__ import annotations

import numpy as np

from .analysis import _swap, last_reads, readers, replace_uses, roots
from .algebra import powers_of_two_to_scalars, softmax_cross_entropy, sum_of_squares
from .invariants import hoist_constants
from .symbolic import Instr, Value


# ---- passes ----------------------------------------------------------------------------------

def fold_transposes(ir):
    for instr in ir.instrs:
        inner = _transposed(instr)
        if inner is not None and _transposed(inner.instr) is not None:
            replace_uses(ir, instr.out, inner.instr.args[0])


def _transposed(instr):
    """The Value `instr` transposes (x.T, or x.transpose() of a 2-D x), else None."""
    if instr is None or instr.kind != "method" or not isinstance(instr.args[0], Value):
        return None
    if instr.fn == "T" or (instr.fn == "transpose" and len(instr.args) == 1 and instr.args[0].ndim == 2):
        return instr.args[0]
    return None


def scalars_unbroadcast(ir):
    _hoist_broadcasts(ir)
    use = readers(ir)
    for instr in ir.instrs:
        if not (instr.kind == "call" and instr.fn is np.broadcast_to):
            continue
        scalar = instr.args[0]
        consumers = use.get(id(instr.out), [])
        if (isinstance(scalar, Value) and scalar.ndim == 0 and consumers and all(
                _carries_shape(c, instr.out) or _assigns(c, instr.out) for c in consumers)):
            replace_uses(ir, instr.out, scalar)


def _hoist_broadcasts(ir):
    """f(broadcast_to(s), c) → broadcast_to(f(s, c)) for an elementwise f of 0-d operands:
    the same value in every element, computed once (2·broadcast(g) → broadcast(2·g))."""
    k = 0
    while k < len(ir.instrs):
        instr = ir.instrs[k]
        k += 1
        if not _elementwise(instr) or not instr.fresh:
            continue
        spread = [a for a in instr.args if isinstance(a, Value) and _broadcast_scalar(a)]
        others = [a for a in instr.args if not (isinstance(a, Value) and _broadcast_scalar(a))]
        if len(spread) != 1 or any(np.ndim(a.example if isinstance(a, Value) else a) for a in others):
            continue
        full = instr.out
        scalar = Value(instr.fn(*[a.instr.args[0].example if a is spread[0] else
                                  (a.example if isinstance(a, Value) else a) for a in instr.args]))
        instr.args = tuple(spread[0].instr.args[0] if a is spread[0] else a for a in instr.args)
        instr.out, scalar.instr = scalar, instr
        widen = Instr("call", np.broadcast_to, (scalar, full.shape), out=full)
        widen.phase, widen.node = instr.phase, instr.node
        full.instr = widen
        ir.instrs.insert(k, widen)


def _broadcast_scalar(value):
    instr = value.instr
    return (instr is not None and instr.kind == "call" and instr.fn is np.broadcast_to
            and isinstance(instr.args[0], Value) and instr.args[0].ndim == 0)


def _assigns(consumer, broadcast):
    """x[index] = broadcast, np.add.at(x, index, broadcast): numpy gives a 0-d value to every
    selected element alike; np.zeros_like(broadcast, shape=s) reads only its dtype."""
    if consumer is None:
        return False
    if consumer.kind in ("setitem", "ufunc_at"):
        return len(consumer.args) == 3 and consumer.args[2] is broadcast and consumer.args[0] is not broadcast
    return (consumer.kind == "call" and consumer.fn in (np.zeros_like, np.empty_like, np.ones_like)
            and consumer.args == (broadcast,) and set(consumer.kwargs) == {"shape"})


def _carries_shape(consumer, broadcast):
    """Is `consumer` a binary elementwise op whose other operand has the broadcast's shape
    (so that the 0-d value in its place gives the same result, element for element)?"""
    if consumer is None or not _elementwise(consumer) or len(consumer.args) != 2:
        return False
    a, b = consumer.args
    other = b if a is broadcast else a if b is broadcast else None
    return (other is not None and other is not broadcast
            and np.shape(other.example if isinstance(other, Value) else other) == broadcast.shape)


def _elementwise(instr):
    """A plain ufunc call (not a generalized one such as np.matmul, which is no elementwise
    map: neither a broadcast scalar nor its output's memory may stand in for an operand)."""
    return (instr.kind == "call" and isinstance(instr.fn, np.ufunc) and instr.fn.signature is None
            and not instr.kwargs)


def dead_code(ir):
    """Drop instructions whose result nobody reads, and writes into an array the program made
    that nothing but its own writers reads."""
    while True:
        use = readers(ir)
        kept = [i for i in ir.instrs if not _dead_write(i, use) and (
                i.kind in ("event", "opaque", "input", "grads", "check") or i.writes is not None
                or i.out is None or id(i.out) in use)]
        if len(kept) == len(ir.instrs):
            return
        ir.instrs = kept


def _dead_write(instr, use):
    target = instr.writes
    return (target is not None and target.role == "temporary" and _whole(target) is target
            and all(r is not None and r.writes is target for r in use.get(id(target), [])))


def in_place(ir):
    """out=operand for elementwise ufuncs (and ops.primitive helpers declared out_like_first)
    whose operand dies here (and is the program's own)."""
    for i in range(len(ir.instrs)):
        instr = ir.instrs[i]
        like_first = instr.kind == "call" and getattr(instr.fn, "out_like_first", False) and not instr.kwargs
        if not (like_first or _elementwise(instr) and instr.fn.nout == 1) or not instr.fresh:
            continue
        alias = roots(ir)
        last = last_reads(ir, alias)
        for operand in instr.args[:1 if like_first else 2]:
            if _reusable(operand, instr, alias, last, i, ir):
                instr.kwargs["out"], instr.writes, instr.fresh = operand, operand, False
                instr.note = ("in place: nothing reads {0} afterwards", operand)
                break


def _reusable(operand, instr, alias, last, i, ir):
    """May `instr` write into `operand`?  It must be a whole array the program made (not a
    view, an input or a parameter), of the result's shape and dtype, read by nothing later."""
    if not isinstance(operand, Value) or operand.ndim == 0:
        return False
    owner = _whole(operand)
    if owner is None or alias.get(id(operand)) != frozenset([owner]):
        return False
    if operand.shape != instr.out.shape or operand.dtype != instr.out.dtype:
        return False
    return last.get(id(owner), -1) <= i


def _whole(value):
    """The fresh Value whose whole array `value` is (itself, or after in-place writes)."""
    while value.instr is not None and value.instr.writes is not None and value.instr.out is value:
        value = value.instr.writes if value.instr.writes is not value else None
        if value is None:
            return None
    instr = value.instr
    if instr is not None and instr.writes is not None:  # the result of an in-place rewrite
        return _whole(instr.writes)
    return value if instr is not None and instr.fresh else None


BUFFERED_BYTES = 64 * 1024  # a new array this large costs page faults each call; smaller ones
# come from malloc's reused memory


def buffers(ir):
    """{name: array}: each 2-D matrix product, and each large elementwise result, writes into
    an array allocated once; results of one shape and dtype share one when the first's
    memory is dead before the second is made."""
    alias = roots(ir)
    last = last_reads(ir, alias)
    owned, free_at = {}, {}  # buffer name -> array; -> index after which it is free
    for i, instr in enumerate(ir.instrs):
        if not _bufferable(instr):
            continue
        end = last.get(id(instr.out), i)
        if end >= len(ir.instrs):
            continue  # returned or handed to .grad: it must be a new array each call
        name = next((n for n, a in owned.items() if free_at[n] < i and a.shape == instr.out.shape
                     and a.dtype == instr.out.dtype), None)
        if name is None:
            name = f"BUF{len(owned)}"
            owned[name] = np.empty(instr.out.shape, instr.out.dtype)
        free_at[name] = end
        buffer = Value(owned[name], role="buffer")
        buffer.name = name
        instr.kwargs["out"], instr.fresh = buffer, False
        instr.writes = None  # the product is a new Value living in the buffer's memory
    return owned


def _bufferable(instr):
    if not (instr.kind == "call" and instr.fresh and not instr.kwargs and isinstance(instr.out, Value)):
        return False
    if instr.fn is np.matmul:
        return instr.out.ndim == 2
    return (isinstance(instr.fn, np.ufunc) and instr.fn.nout == 1 and instr.out.ndim > 0
            and np.asarray(instr.out.example).nbytes >= BUFFERED_BYTES)


def protect_parameters(ir):
    """A parameter a line reads after an optimizer's step is read as eager reads it: from
    before the step (eager's optimizer gives a parameter that a pending graph holds a new
    array, so a backward after opt.step() sees the old values).  A copy is taken before."""
    for _, weight in ir.params:
        first = next((k for k, i in enumerate(ir.instrs) if i.phase == "update" or
                      (i.kind == "event" and i.fn[0] == "step")), None)
        if first is None:
            return
        later = [i for i in ir.instrs[first:] if i.phase != "update" and i.kind != "event"
                 and any(v is weight for v in i.reads())]
        if later:
            before = Value(weight.example.copy())
            copy = Instr("method", "copy", (weight,), out=before, fresh=True)
            copy.phase, copy.note = "forward", ("{0} before the step: read after it", weight)
            ir.instrs.insert(first, copy)
            for instr in later:
                instr.args = _swap(instr.args, weight, before)
                instr.kwargs = {k: _swap(v, weight, before) for k, v in instr.kwargs.items()}


def simplify(ir):
    """The rewrites that change what is computed (exactly, or rounding aside)."""
    fold_transposes(ir)
    scalars_unbroadcast(ir)
    powers_of_two_to_scalars(ir)
    softmax_cross_entropy(ir)
    sum_of_squares(ir)
    dead_code(ir)


def allocate(ir):
    """The rewrites that change where results live; returns the buffers {name: array}."""
    hoist_constants(ir)
    protect_parameters(ir)
    dead_code(ir)
    in_place(ir)
    return buffers(ir)
