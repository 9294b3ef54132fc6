"""Graph rendering: draw_dot builds a graphviz.Digraph of a tensor's graph; render writes files.

Reading the picture (torchviz-style legend, extended for regularization):

- boxes are nodes: blue = parameters (leaves that require grad), grey = inputs and other
  constants, white = intermediates, green = the tensor drawn from (the loss);
- ellipses are ops, labelled with the op's name (`Mul(×0.005)` shows a scalar factor);
- arrows point the way values flow forward; gradients flow back along them;
- a dashed pink cluster holds a regularization term: a scalar computed from parameters alone
  (Square -> Sum -> Mul for L2).  Its only inputs are the weights, so its gradient can reach
  nothing else;
- with `terms={"data": cost, "l2": penalty}`, each edge a term's gradient travels along is drawn
  in that term's colour (several terms: parallel lines), with a legend.

Rendering only reads the graph; it never changes a tensor.
"""
import shutil
import subprocess
import sys
from pathlib import Path

import graphviz
import numpy as np

from .engine import node_of, topological_order

TERM_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
PARAMETER_FILL, INPUT_FILL, OUTPUT_FILL = "lightblue", "lightgrey", "darkolivegreen1"
AUTO_COLLAPSE = 300  # nodes; beyond this, draw_dot collapses modules unless told otherwise
FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}


class RendererNotFound(RuntimeError):
    """No Graphviz renderer on this machine (or none that writes the requested format)."""


class Digraph(graphviz.Digraph):
    """A graphviz.Digraph whose `pipe` (and so Jupyter display) uses `find_renderer()`: the
    system `dot` when it is on PATH, else the pip-installed `graphviz-pure`."""

    def pipe(self, format=None, renderer=None, formatter=None, neato_no_op=None, quiet=False,
             *, engine=None, encoding=None):
        data = pipe_source(self.source, format or self.format or "svg")
        return data.decode(encoding) if encoding else data


# ---- renderers -------------------------------------------------------------------------------

def find_renderer(fmt="svg"):
    """The command that renders `fmt`: `dot` on PATH, else `graphviz-pure` (no PDF)."""
    dot = shutil.which("dot")
    if dot:
        return dot
    pure = shutil.which("graphviz-pure") or _beside_python("graphviz-pure")
    if pure and fmt != "pdf":
        return pure
    if pure:
        raise RendererNotFound(
            "render: PDF needs the system Graphviz `dot` (apt-get install graphviz, brew "
            "install graphviz, or conda install graphviz); the pip-installed graphviz-pure "
            "writes SVG and PNG but not PDF")
    raise RendererNotFound(
        "render: no Graphviz renderer found: install graphviz-pure (pip install graphviz-pure, "
        "a dependency of tinygrad-l2) or the system Graphviz (apt-get install graphviz)")


def _beside_python(name):
    """A console script installed next to this interpreter (a venv that is not activated)."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else None


def pipe_source(source, fmt):
    """Render DOT `source` to bytes in format `fmt` with the renderer find_renderer picks."""
    if fmt == "dot":
        return source.encode()
    command = [find_renderer(fmt), f"-T{fmt}"]
    result = subprocess.run(command, input=source.encode(), capture_output=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"render: {Path(command[0]).name} failed to write {fmt}: "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return result.stdout


def render(root, path, **draw_options):
    """Draw `root`'s graph (draw_dot options) to `path`, in the format its suffix names
    (.svg, .png, .pdf, .dot/.gv); returns the path.  If rendering fails, the DOT source is
    still saved beside it (`path` with suffix .dot) and the error says so."""
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"render: unknown format {path.suffix!r} in {path}; use one of "
                         f"{', '.join(sorted(FORMATS))}")
    graph = root if isinstance(root, graphviz.Digraph) else draw_dot(root, **draw_options)
    if path.parent and not path.parent.exists():
        path.parent.mkdir(parents=True)
    try:
        data = pipe_source(graph.source, fmt)
    except (RendererNotFound, RuntimeError) as err:
        saved = path.with_suffix(".dot")
        saved.write_text(graph.source)
        raise type(err)(f"{err} (the DOT source was saved to {saved})") from None
    path.write_bytes(data)
    return path


# ---- the picture -----------------------------------------------------------------------------

def draw_dot(root, params=None, terms=None, show_values=False, show_grads=False,
             summary="norm", rankdir="LR", cluster_modules=True, collapse_modules=None,
             show_intermediates=None, show_constants=False):
    """A graphviz.Digraph of the graph that produced `root`.

    params: {name: tensor} names for tensors (e.g. `dict(model.named_parameters())`); a
        tensor's own `.name` is used otherwise, else a short id (`t7`) stable for the graph.
    terms: {name: tensor}, the loss's terms: colour the edges each term's gradient travels.
    show_values / show_grads: add a summary of each tensor's data / `.grad` (`summary` is
        "norm" for ‖·‖ or "minmax" for the range).
    rankdir: "LR" (left to right) or "TB" (top to bottom).
    cluster_modules: group tensors made inside a Module's forward in a labelled cluster per
        module (`layers.0: Linear`); collapse_modules: draw each innermost module as one node
        (None, the default: only when the picture would have more than AUTO_COLLAPSE nodes,
        so that a large network stays legible and renders in seconds).
    show_intermediates: False drops unnamed intermediate tensors (op feeds op directly);
        None, the default: drop them only when the picture is that large.
    show_constants: also draw scalar constants (by default they show in their op's label).
    """
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"draw_dot: rankdir must be 'LR' or 'TB' (or 'RL', 'BT'), got {rankdir!r}")
    if summary not in ("norm", "minmax"):
        raise ValueError(f"draw_dot: summary must be 'norm' or 'minmax', got {summary!r}")
    # The graph's nodes: op nodes (each drawn as its op and its output tensor) and leaves.
    nodes = topological_order(root, include_constants=True)
    root = node_of(root)
    names = {node_of(t): n for n, t in (params or {}).items()}
    short_id = {t: f"t{i}" for i, t in enumerate(nodes)}
    hidden = {t for t in nodes if not show_constants and _is_scalar_constant(t)}
    penalty_nodes = _penalty_subgraphs(nodes)
    large = len(nodes) + sum(map(_is_op, nodes)) > AUTO_COLLAPSE
    collapse_modules = large if collapse_modules is None else collapse_modules
    show_intermediates = not large if show_intermediates is None else show_intermediates
    scopes = _scopes(nodes) if (cluster_modules or collapse_modules) else {}
    module_names = _module_names(scopes)
    module_index = {module: i for i, module in enumerate(module_names)}

    # The drawn id of each node's tensor box and of its op (collapsing maps many to one).
    box_id, op_id = {}, {}
    for t in nodes:
        box_id[t] = short_id[t]
        if _is_op(t):
            op_id[t] = "op_" + short_id[t]
            if not show_intermediates and t is not root and t not in names and _name(t) is None:
                box_id[t] = op_id[t]
    collapsed = {}
    if collapse_modules:
        for t in nodes:
            scope = scopes.get(t, ())
            if scope and _is_op(t):
                module = scope[-1]
                collapsed[t] = module
                box_id[t] = op_id[t] = f"module_{module_index[module]}"

    collapsed_modules = set(collapsed.values())

    graph = Digraph(name="tinygrad_l2", format="svg")
    graph.attr(rankdir=rankdir, fontname="Helvetica", fontsize="12")
    graph.attr("node", fontname="Helvetica", fontsize="11")
    graph.attr("edge", color="#555555", arrowsize="0.7")

    # Node statements, grouped by module cluster.
    statements = {}  # scope tuple -> list of (node id, attrs)
    drawn = set()
    for t in nodes:
        if t in hidden:
            continue
        scope = scopes.get(t, ()) if cluster_modules else ()
        if scope and not _is_op(t) and scope[-1] in collapsed_modules:
            scope = scope[:-1]  # a collapsed layer's parameters sit beside its node
        if t in collapsed:
            module = collapsed[t]
            node = box_id[t]
            if node not in drawn:
                drawn.add(node)
                label = module_names.get(module, type(module).__name__)
                statements.setdefault(scope[:-1], []).append(
                    (node, dict(label=label, shape="box3d", style="filled", fillcolor="lavender")))
            continue
        if box_id[t] == short_id[t]:
            statements.setdefault(scope, []).append(
                (short_id[t], _tensor_attrs(t, t is root, names.get(t) or _name(t) or short_id[t],
                                            show_values, show_grads, summary)))
        if _is_op(t):
            statements.setdefault(scope, []).append(
                (op_id[t], dict(label=t.label(), shape="ellipse", style="filled",
                                     fillcolor="#fff7d6" if t in penalty_nodes else "white")))
    _emit_clusters(graph, statements, module_names, penalty_nodes, op_id, box_id)

    # Edges, coloured by the terms whose gradient travels them.
    on_path = _term_paths(terms, nodes, root) if terms else {}
    edges = {}
    for t in nodes:
        if not _is_op(t):
            continue
        edge_terms = [name for name, members in on_path.items() if t in members]
        _add_edge(edges, op_id[t], box_id[t], edge_terms)
        for parent in t.parents:
            if parent is None or parent in hidden:
                continue
            flowing = [n for n in edge_terms if parent.requires_grad and parent in on_path[n]]
            _add_edge(edges, box_id[parent], op_id[t], flowing)
    colours = {name: TERM_COLOURS[i % len(TERM_COLOURS)] for i, name in enumerate(terms or {})}
    for (tail, head), edge_terms in edges.items():
        if edge_terms:
            colour = ":".join(colours[n] for n in edge_terms)
            graph.edge(tail, head, color=colour, penwidth="2.2",
                       **{"class": " ".join(f"term-{n}" for n in edge_terms)})
        else:
            graph.edge(tail, head)
    if terms:
        _legend(graph, colours)
    return graph


def _add_edge(edges, tail, head, edge_terms):
    if tail == head:
        return
    current = edges.setdefault((tail, head), [])
    current.extend(n for n in edge_terms if n not in current)


def _is_op(node):
    return not node.is_leaf


def _live(node):
    """The tensor a node stands for, if it still exists (an op's output may be gone)."""
    return node.tensor()


def _name(node):
    t = _live(node)
    return t.name if t is not None else None


def _is_scalar_constant(t):
    return not _is_op(t) and not t.requires_grad and t.out_shape == ()


def _summary(array, summary):
    array = np.asarray(array, dtype=np.float64)
    if summary == "norm":
        return f"‖·‖={np.linalg.norm(array):.4g}"
    return f"[{array.min():.3g}, {array.max():.3g}]" if array.size else "[]"


def _tensor_attrs(node, is_root, name, show_values, show_grads, summary):
    """A tensor box: name, shape and dtype, and value/grad summaries when the tensor is alive
    (an intermediate the user let go of is drawn from its op node's record)."""
    t = _live(node)
    shape, dtype = node.out_shape, node.out_dtype
    lines = [name, f"{'×'.join(str(n) for n in shape) or 'scalar'} {dtype}"]
    if show_values and t is not None:
        lines.append("value " + _summary(t.data, summary))
    parameter = not _is_op(node) and node.requires_grad
    if show_grads and t is not None and (t.grad is not None or parameter):
        lines.append("grad " + (_summary(t.grad, summary) if t.grad is not None else "None"))
    if is_root:
        fill = OUTPUT_FILL
    elif parameter:
        fill = PARAMETER_FILL
    elif not _is_op(node):
        fill = INPUT_FILL
    else:
        fill = "white"
    attrs = dict(label="\\n".join(lines), shape="box", style="rounded,filled", fillcolor=fill)
    if parameter:
        attrs.update(penwidth="2", style="filled")
    return attrs


def _penalty_subgraphs(nodes):
    """Tensors of regularization terms: every op output that depends on parameters (and scalar
    constants) alone, and feeds a scalar that does too.  That is Square -> Sum -> Mul for
    `nn.L2`, and any hand-written penalty; `W.T` inside a layer is not one (it feeds no scalar
    made of weights alone)."""
    weights_only = {}
    for t in nodes:  # inputs before consumers
        if not _is_op(t):
            weights_only[t] = t.requires_grad or t.out_shape == ()
        else:  # a None parent is a Python scalar argument
            weights_only[t] = all(p is None or weights_only[p] for p in t.parents)
    members = set()
    for t in reversed(nodes):  # consumers before inputs
        if not _is_op(t) or not weights_only[t]:
            continue
        if t.out_shape == () or t in members:
            members.add(t)
            members.update(p for p in t.parents if p is not None and _is_op(p) and weights_only[p])
    return members


def _scopes(nodes):
    """node -> the tuple of modules whose forward made it; parameters get their owner's."""
    scopes = {}
    for t in nodes:
        scope = t.scope if _is_op(t) else t.tensor()._scope
        if scope:
            scopes[t] = scope
    leaf_of = {id(t.tensor()): t for t in nodes if not _is_op(t)}  # by identity
    roots = {scope[0] for scope in scopes.values()}
    for top in roots:
        chains = {}
        for _, module in top.named_modules():
            chain = chains.get(module, (top,))
            for child in module.children():
                chains[child] = chain + (child,)
            for p in module.__dict__.get("_parameters", {}).values():
                leaf = leaf_of.get(id(p))
                if leaf is not None and leaf not in scopes:
                    scopes[leaf] = chains.get(module, (top,))
    return scopes


def _module_names(scopes):
    """module -> "layers.0: Linear" (dotted name within the outermost module called)."""
    names = {}
    for scope in scopes.values():
        top = scope[0]
        if top in names:
            continue
        for dotted, module in top.named_modules():
            names.setdefault(module, f"{dotted}: {type(module).__name__}" if dotted
                             else type(module).__name__)
    return names


def _emit_clusters(graph, statements, module_names, penalty_nodes, op_id, box_id):
    """Write nodes into nested clusters, one per module; penalty nodes in their own cluster."""
    penalty_ids = {op_id[t] for t in penalty_nodes} | {box_id[t] for t in penalty_nodes}
    children, cluster_ids = {}, {}
    for scope in statements:
        for depth in range(1, len(scope) + 1):
            children.setdefault(scope[:depth - 1], set()).add(scope[:depth])

    def emit(target, scope):
        penalty = [(n, a) for n, a in statements.get(scope, []) if n in penalty_ids]
        for node, attrs in statements.get(scope, []):
            if node not in penalty_ids:
                target.node(node, **attrs)
        if penalty:
            with target.subgraph(name=f"cluster_penalty_{len(cluster_ids)}") as c:
                cluster_ids[("penalty", scope)] = len(cluster_ids)
                c.attr(label="regularization: depends on weights only", style="dashed,filled",
                       color="#d62728", fillcolor="#fdecec", fontcolor="#d62728")
                for node, attrs in penalty:
                    c.node(node, **attrs)
        for child in sorted(children.get(scope, ()), key=lambda s: module_names.get(s[-1], "")):
            cluster_ids[child] = len(cluster_ids)
            with target.subgraph(name=f"cluster_module_{cluster_ids[child]}") as c:
                c.attr(label=module_names.get(child[-1], type(child[-1]).__name__),
                       style="rounded", color="#888888", fontcolor="#444444")
                emit(c, child)

    emit(graph, ())


def _term_paths(terms, nodes, root):
    """term name -> the nodes its gradient passes through on the way from `root` down to the
    leaves: the term's own ancestors, plus the nodes between the term and `root`."""
    in_graph = set(nodes)
    paths = {}
    for name, term in terms.items():
        if node_of(term) not in in_graph:
            raise ValueError(f"draw_dot: term {name!r} is not part of the graph of the tensor "
                             f"being drawn")
        ancestors = set(topological_order(term, include_constants=True))
        downstream = {node_of(term)}
        for t in nodes:  # inputs before consumers: those that depend on the term
            if _is_op(t) and any(p is not None and p in downstream for p in t.parents):
                downstream.add(t)
        paths[name] = ancestors | downstream
    return paths


def _legend(graph, colours):
    rows = "".join(f'<tr><td bgcolor="{c}" width="24"> </td><td align="left">{_escape(n)} term'
                   f"</td></tr>" for n, c in colours.items())
    with graph.subgraph(name="cluster_legend") as legend:
        legend.attr(label="gradient of each loss term", style="rounded", color="#bbbbbb")
        legend.node("legend", label=f'<<table border="0" cellspacing="4">{rows}</table>>',
                    shape="plaintext")


def _escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
