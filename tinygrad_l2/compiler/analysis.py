"""What the passes need to know about the IR: which arrays a Value may share memory with,
when each array is last read, who reads a Value; and the one edit, `replace_uses`.

Aliasing: a Value made by an instruction that always returns a new array (`fresh`) owns its
memory; any other may be a view of what it reads (`roots`: the owners it may share memory
with).  Over-approximating roots only makes a lifetime longer: safe.
"""
from __future__ import annotations

def roots(ir):
    """{id(Value): frozenset of Values whose memory it may share}."""
    found = {}
    for instr in ir.instrs:
        out = instr.out
        if out is None or id(out) in found:
            continue
        if instr.writes is not None:
            found[id(out)] = found.get(id(instr.writes), frozenset([instr.writes]))
        elif instr.fresh or instr.kind in ("input", "seed", "constant"):
            found[id(out)] = frozenset([out])
        else:
            found[id(out)] = frozenset([out]).union(*(found.get(id(v), frozenset([v])) for v in instr.reads()))
    return found


def last_reads(ir, alias):
    """{id(root Value): index of the last instruction that reads or writes its memory};
    returned Values, parameter gradients and opaque ops' inputs live to the end."""
    last, end = {}, len(ir.instrs)
    for i, instr in enumerate(ir.instrs):
        for v in instr.reads() + ([instr.writes] if instr.writes is not None else []):
            for root in alias.get(id(v), (v,)):
                last[id(root)] = i
    for instr in ir.instrs:
        if instr.kind == "opaque":  # it may keep what it reads, and return what it keeps
            for v in [*instr.reads(), instr.out]:
                for root in alias.get(id(v), (v,)):
                    last[id(root)] = end
    for v in [*ir.outputs, *ir.grads.values()]:
        for root in alias.get(id(v), (v,)):
            last[id(root)] = end
    return last


def readers(ir):
    """{id(Value): [instructions reading it]}."""
    found = {}
    for instr in ir.instrs:
        for v in instr.reads():
            found.setdefault(id(v), []).append(instr)
    for v in [*ir.outputs, *ir.grads.values()]:
        found.setdefault(id(v), []).append(None)  # read after the program
    return found


def insert_before(ir, anchor, *instrs):
    """Put new instructions just before `anchor`, in its phase and for its node."""
    for instr in instrs:
        instr.phase, instr.node = anchor.phase, anchor.node
    at = ir.instrs.index(anchor)
    ir.instrs[at:at] = instrs


def replace_uses(ir, old, new):
    """Every read of `old` reads `new` instead."""
    for instr in ir.instrs:
        instr.args = _swap(instr.args, old, new)
        instr.kwargs = {k: _swap(v, old, new) for k, v in instr.kwargs.items()}
    ir.outputs = [new if v is old else v for v in ir.outputs]
    ir.grads = {k: (new if v is old else v) for k, v in ir.grads.items()}


def _swap(tree, old, new):
    if tree is old:
        return new
    if isinstance(tree, tuple):
        return tuple(_swap(t, old, new) for t in tree)
    if isinstance(tree, list):
        return [_swap(t, old, new) for t in tree]
    return tree


