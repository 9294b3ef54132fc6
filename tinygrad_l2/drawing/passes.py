"""Passes: each takes a Picture and returns a new one; none draws, none knows graphviz.

    hide_constants        drop scalar constants (their value shows in the op's label)
    mark_penalties        flag the ops and tensors of regularization terms
    colour_terms          put on each edge the loss terms whose gradient travels it
    merge_intermediates   drop unnamed intermediate tensors: op feeds op directly
    collapse_modules      draw each innermost module call as one node
"""
from dataclasses import replace

from ..engine import node_of, topological_order
from .records import Record

TERM_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]


def hide_constants(picture):
    hidden = {i for i, r in picture.records.items() if r.role == "constant"}
    return _without(picture, hidden)


def mark_penalties(picture):
    """Penalty terms: every op output computed from parameters (and scalar constants) alone
    that feeds a scalar computed the same way — Square -> Sum -> Mul for `nn.L2`, or any
    hand-written penalty.  `W.T` inside a layer is not one: it feeds no such scalar."""
    nodes = list(dict.fromkeys(r.source for r in picture.records.values() if r.source is not None))
    weights_only = {}
    for node in nodes:  # inputs before consumers; a None parent is a Python scalar argument
        weights_only[node] = ((node.requires_grad or node.out_shape == ()) if node.is_leaf else
                              all(p is None or weights_only.get(p, True) for p in node.parents))
    members = set()
    for node in reversed(nodes):  # consumers before inputs
        if not node.is_leaf and weights_only[node] and (node.out_shape == () or node in members):
            members.add(node)
            members.update(p for p in node.parents if p is not None and not p.is_leaf and weights_only[p])
    records = {i: replace(r, penalty=r.source in members and not r.source.is_leaf)
               for i, r in picture.records.items()}
    return replace(picture, records=records)


def colour_terms(picture, terms):
    """terms: {name: tensor}.  A term's gradient travels from the root down to the leaves
    through the term's own ancestors and the nodes between the term and the root; an edge
    into an op carries it only if its tail requires grad."""
    nodes = {r.source for r in picture.records.values() if r.source is not None}
    paths = {}
    for name, term in terms.items():
        if node_of(term) not in nodes:
            raise ValueError(f"draw_dot: term {name!r} is not part of the graph of the tensor "
                             f"being drawn")
        paths[name] = set(topological_order(term, include_constants=True)) | _downstream(
            node_of(term), picture)
    edges = []
    for edge in picture.edges:
        tail, head = picture.records[edge.tail].source, picture.records[edge.head].source
        on = [n for n, path in paths.items() if head in path and tail in path and (
            tail is head or tail.requires_grad)]
        edges.append(replace(edge, terms=on))
    colours = {name: TERM_COLOURS[i % len(TERM_COLOURS)] for i, name in enumerate(terms)}
    return replace(picture, edges=edges, colours=colours)


def _downstream(term, picture):
    """The graph nodes that depend on `term` (itself included)."""
    found = {term}
    for record in picture.records.values():  # inputs before consumers
        node = record.source
        if record.kind == "op" and any(p is not None and p in found for p in node.parents):
            found.add(node)
    return found


def merge_intermediates(picture):
    """Unnamed intermediate tensors vanish: their op connects to their consumers directly."""
    merged = {i: "op_" + i for i, r in picture.records.items()
              if r.role == "intermediate" and not r.named and i != picture.root}
    return _redirect(picture, merged, {})


def collapse_modules(picture):
    """Each innermost module call becomes one node (a box labelled "layers.0: Linear"); its
    ops and intermediates go inside it, its parameters sit beside it."""
    index = {m: i for i, m in enumerate(picture.module_names)}
    into, new = {}, {}
    for i, record in picture.records.items():
        if record.scope and record.kind in ("op", "tensor") and record.role in ("", "intermediate"):
            module = record.scope[-1]
            target = f"module_{index[module]}"
            into[i] = target
            new.setdefault(target, Record(target, "module", [picture.module_names.get(
                module, type(module).__name__)], scope=record.scope[:-1], module=module))
    collapsed = {r.module for r in new.values()}
    records = {}
    for i, record in picture.records.items():
        if i in into:
            records.setdefault(into[i], new[into[i]])
        elif record.scope and record.scope[-1] in collapsed:
            records[i] = replace(record, scope=record.scope[:-1])  # beside its module's node
        else:
            records[i] = record
    return _redirect(replace(picture, records=records), into, records)


def _without(picture, hidden):
    records = {i: r for i, r in picture.records.items() if i not in hidden}
    edges = [e for e in picture.edges if e.tail not in hidden and e.head not in hidden]
    return replace(picture, records=records, edges=edges)


def _redirect(picture, mapping, records):
    """Send every edge end in `mapping` to its new id; drop the records mapped away, the
    self-loops that leaves, and merge duplicate edges (their terms joined)."""
    records = records or {i: r for i, r in picture.records.items() if i not in mapping}
    edges = {}
    for edge in picture.edges:
        tail, head = mapping.get(edge.tail, edge.tail), mapping.get(edge.head, edge.head)
        if tail == head:
            continue
        key = (tail, head)
        if key in edges:
            edges[key].terms.extend(t for t in edge.terms if t not in edges[key].terms)
        else:
            edges[key] = replace(edge, tail=tail, head=head, terms=list(edge.terms))
    return replace(picture, records=records, edges=list(edges.values()))
