"""Rewrites of the arithmetic itself, each exact or rounding-level (said where): a power of
two moved into a 0-d factor, and Σx² as dot products (see passes.py for the list)."""
from __future__ import annotations

import numpy as np

from ..ops import one_per_row
from .analysis import insert_before, readers
from .symbolic import Instr, Value


def sum_of_squares(ir):
    use = readers(ir)
    for instr in ir.instrs:
        if not (instr.kind == "method" and instr.fn == "sum" and len(instr.args) == 1):
            continue
        if instr.kwargs.get("axis") is not None or instr.kwargs.get("keepdims") or (
                set(instr.kwargs) - {"axis", "keepdims"}):
            continue  # (a dtype=, out=, where= or initial= is the sum's own)
        square = instr.args[0].instr
        if not (square is not None and square.kind == "call" and square.fn is np.square
                and not square.kwargs and len(use.get(id(square.out), [])) == 1):
            continue
        x = square.args[0]
        if x.dtype.itemsize < 4:
            continue  # float16: eager's squares round to subnormals (a 3e-4 weight's by 30%)
        if x.ndim == 2 and 16 <= x.shape[1] <= 4096 and x.dtype.itemsize < 8:
            # row dots summed pairwise: float32 keeps its digits (float64: one BLAS dot, faster
            # than row dots once W has left the cache)
            rows = Value(np.vecdot(x.example, x.example))
            insert_before(ir, instr, Instr("call", np.vecdot, (x, x), out=rows, fresh=True))
            instr.args = (rows,)
            instr.note = ("Σ{0}² as a dot product per row, no {0}² array", x)
        elif x.dtype.itemsize >= 8:
            instr.kind, instr.fn, instr.args, instr.kwargs = "call", np.vdot, (x, x), {}
            instr.note = ("Σ{0}² as one dot product, no {0}² array", x)


def powers_of_two_to_scalars(ir):
    """(s·X) *= 2ᵏ  →  X·(s·2ᵏ) for a 0-d s: scaling by a power of two is exact, so the 0-d
    factor takes it and the X-sized array is written once (the square's backward, 2·(g·x)).
    Exact unless s·X or s·2ᵏ is subnormal (it then rounds at a coarser step) or s·2ᵏ overflows:
    so it is skipped in float16, where λ = 1e-3 times a weight of 0.01 already is subnormal (in float32
    that takes a product below 1.2e-38, in float64 below 2.2e-308)."""
    for write in list(ir.instrs):
        made = _scaled_product(write)
        if made is None or write.writes.dtype.itemsize < 4:
            continue
        between = ir.instrs[ir.instrs.index(made) + 1:ir.instrs.index(write)]
        if any(i.writes is not None or any(v is write.writes for v in i.reads()) for i in between):
            continue  # t is read (or may be written through a view) before its scaling
        k, c = (0 if _scalar(made.args[0]) else 1), write.args[1]
        s = made.args[k]
        factor = np.multiply(s.example, c) if isinstance(s, Value) else s * c
        if np.result_type(factor, made.args[1 - k].dtype) != write.writes.dtype:
            continue  # (a strong factor would change the product's dtype)
        scaled = Value(factor) if isinstance(s, Value) else factor
        if isinstance(s, Value):
            scaled.instr = Instr("call", np.multiply, (s, c), out=scaled, fresh=True)
            insert_before(ir, made, scaled.instr)
        made.args = tuple(scaled if j == k else a for j, a in enumerate(made.args))
        ir.instrs.remove(write)  # its result is t itself: later readers read the scaled t


def _scaled_product(write):
    """The instruction making t when `write` is t *= 2ᵏ (a Python number) and t = s·X for a
    0-d s and an array X, else None."""
    t = write.writes
    if not (write.kind == "call" and write.fn is np.multiply and t is not None and len(write.args) == 2
            and write.args[0] is t and write.kwargs == {"out": t} and _power_of_two(write.args[1])):
        return None
    made = t.instr
    if (made is None or made.kind != "call" or made.fn is not np.multiply or not made.fresh
            or made.kwargs or len(made.args) != 2):
        return None
    scalars = [_scalar(a) for a in made.args]
    return made if sorted(scalars) == [False, True] else None


def _power_of_two(c):
    return (isinstance(c, int | float) and not isinstance(c, bool) and c != 0 and np.isfinite(c)
            and abs(np.frexp(c)[0]) == 0.5)


def _scalar(x):
    return np.ndim(x.example if isinstance(x, Value) else x) == 0


def softmax_cross_entropy(ir):
    """The log-softmax backward of a one-label-per-row pick, fused (bit for bit, signed zeros
    too).  The backward of -mean(logp[rows, y]) through logp = z − logΣeᶻ is
        g = zeros;  g[rows, y] = s;  dz = g − eˡᵒᵍᵖ·Σ_row g      (s = −dL/m, Σ_row g = s)
    and with one label per row (rows = arange(m)) this is the textbook softmax − one-hot:
        dz = 0 − eˡᵒᵍᵖ·s;  dz[rows, y] += s
    no zero matrix, no scatter, no row sums.  Rows the step takes as an input (`rows` read
    from its scope, scattered with np.add.at) qualify when they are arange(m) as traced; they
    are then listed in `ir.arange_inputs`, and the replay checks them each call (other rows
    trace again)."""
    use = readers(ir)
    for instr in list(ir.instrs):
        found = _log_softmax_backward(ir, instr, use)
        if found is None:
            continue
        zeros, scatter, rowsum, product, exp = found
        s, index = scatter.args[2], scatter.args[1]
        es = Value(np.multiply(exp.example, s.example))
        product_es = Instr("call", np.multiply, (exp, s), out=es, fresh=True)
        dz = instr.out  # 0 − e·s, as eager's g − e·Σg computes it where g is 0 (−e·s is −0 where
        scale = Instr("call", np.subtract, (0, es), out=dz, fresh=True)  # e is 0 and s > 0)
        place = Instr("ufunc_at", np.add, (dz, index, s), writes=dz)
        place.note = "softmax − one-hot: the cross-entropy's gradient"
        if any(index[0] is v for v in ir.arange_inputs):
            place.note += f" ({index[0].example.shape[0]} rows, arange as checked each call)"
        dz.instr = scale
        insert_before(ir, instr, product_es, scale, place)
        for dead in (instr, zeros, scatter, rowsum, product):
            ir.instrs.remove(dead)


def _log_softmax_backward(ir, instr, use):
    """(zeros, scatter, rowsum, product, exp) when `instr` is dz = g − e·g.sum(-1, keepdims)
    for g = zeros_like(s, shape=(m, C)) with g[arange(m), y] = s or np.add.at(g, (arange(m),
    y), s) (a 0-d s), else None."""
    if not (instr.kind == "call" and instr.fn is np.subtract and not instr.kwargs and len(instr.args) == 2):
        return None
    g, product = instr.args
    zeros, made = g.instr if isinstance(g, Value) else None, getattr(product, "instr", None)
    if not (zeros is not None and zeros.kind == "call" and zeros.fn is np.zeros_like and g.ndim == 2
            and made is not None and made.kind == "call" and made.fn is np.multiply and not made.kwargs):
        return None
    readers_of_g = use.get(id(g), [])
    scatter = next((r for r in readers_of_g if r is not None and (r.kind == "setitem" or (
        r.kind == "ufunc_at" and r.fn is np.add and len(r.args) == 3 and not r.kwargs))), None)
    rowsum = next((a.instr for a in made.args if isinstance(a, Value) and a.instr is not None
                   and a.instr.kind == "method" and a.instr.fn == "sum" and a.instr.args == (g,)), None)
    if scatter is None or rowsum is None or len(readers_of_g) != 3 or set(map(id, readers_of_g)) != {
            id(scatter), id(rowsum), id(instr)} or len(use.get(id(product), [])) != 1:
        return None
    if rowsum.kwargs not in ({"axis": 1, "keepdims": True}, {"axis": -1, "keepdims": True}):
        return None
    exp = next(a for a in made.args if a is not rowsum.out)
    rows, s = scatter.args[1], scatter.args[2]
    if not (isinstance(rows, tuple) and len(rows) == 2 and getattr(rows[1], "ndim", 2) <= 1
            and isinstance(s, Value) and s.ndim == 0 and s.dtype == g.dtype
            and len(use.get(id(rowsum.out), [])) == 1):
        return None
    if one_per_row(rows, g.shape):
        return zeros, scatter, rowsum, made, exp
    if _arange_input(ir, rows[0], g.shape[0]):
        ir.arange_inputs.append(rows[0])
        return zeros, scatter, rowsum, made, exp
    return None


def _arange_input(ir, rows, m):
    """Is `rows` an input of the step that was arange(m) when traced, and that no line of the
    step writes?"""
    return (any(rows is v for v in ir.inputs) and rows.example.dtype.kind in "iu"
            and np.array_equal(rows.example, np.arange(m)) and rows.example.shape == (m,)
            and not any(i.writes is rows for i in ir.instrs))

