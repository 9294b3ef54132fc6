"""The emitter: a Picture written as a graphviz Digraph — nested clusters per module, a
dashed cluster per regularization term, edges in their loss terms' colours, a legend."""
from .render import Digraph

PARAMETER_FILL, INPUT_FILL, OUTPUT_FILL = "lightblue", "lightgrey", "darkolivegreen1"
FILLS = {"parameter": PARAMETER_FILL, "input": INPUT_FILL, "constant": INPUT_FILL,
         "output": OUTPUT_FILL, "intermediate": "white"}


def emit(picture, rankdir="LR", clusters=True, title=None):
    """The Digraph of `picture`; clusters=False draws no module clusters; `title` is written
    above the picture."""
    graph = Digraph(name="tinygrad_l2", format="svg")
    graph.attr(rankdir=rankdir, fontname="Helvetica", fontsize="12")
    if title:
        graph.attr(label=title, labelloc="t", fontsize="14")
    graph.attr("node", fontname="Helvetica", fontsize="11")
    graph.attr("edge", color="#555555", arrowsize="0.7")
    statements = {}  # scope -> [(id, attributes, is a penalty node)]
    for record in picture.records.values():
        scope = record.scope if clusters else ()
        statements.setdefault(scope, []).append((record.id, _attributes(record, picture.root),
                                                 record.penalty))
    _clusters(graph, statements, picture.module_names)
    for edge in picture.edges:
        if edge.terms:
            colour = ":".join(picture.colours[n] for n in edge.terms)
            graph.edge(edge.tail, edge.head, color=colour, penwidth="2.2",
                       **{"class": " ".join(f"term-{n}" for n in edge.terms)})
        else:
            graph.edge(edge.tail, edge.head)
    if picture.colours:
        _legend(graph, picture.colours)
    return graph


def _attributes(record, root):
    label = "\\n".join(record.lines)
    if record.kind == "module":
        return dict(label=label, shape="box3d", style="filled", fillcolor="lavender")
    if record.kind == "op":
        return dict(label=label, shape="ellipse", style="filled",
                    fillcolor="#fff7d6" if record.penalty else "white")
    fill = OUTPUT_FILL if record.id == root else FILLS[record.role]
    attributes = dict(label=label, shape="box", style="rounded,filled", fillcolor=fill)
    if record.role == "parameter":
        attributes.update(penwidth="2", style="filled")
    return attributes


def _clusters(graph, statements, module_names):
    """Nodes into nested clusters, one per module; a scope's penalty nodes in their own."""
    children, count = {}, [0]
    for scope in statements:
        for depth in range(1, len(scope) + 1):
            children.setdefault(scope[:depth - 1], set()).add(scope[:depth])

    def write(target, scope):
        penalty = [(i, a) for i, a, is_penalty in statements.get(scope, []) if is_penalty]
        for i, attributes, is_penalty in statements.get(scope, []):
            if not is_penalty:
                target.node(i, **attributes)
        if penalty:
            count[0] += 1
            with target.subgraph(name=f"cluster_penalty_{count[0]}") as c:
                c.attr(label="regularization: depends on weights only", style="dashed,filled",
                       color="#d62728", fillcolor="#fdecec", fontcolor="#d62728")
                for i, attributes in penalty:
                    c.node(i, **attributes)
        for child in sorted(children.get(scope, ()), key=lambda s: module_names.get(s[-1], "")):
            count[0] += 1
            with target.subgraph(name=f"cluster_module_{count[0]}") as c:
                c.attr(label=module_names.get(child[-1], type(child[-1]).__name__),
                       style="rounded", color="#888888", fontcolor="#444444")
                write(c, child)

    write(graph, ())


def _legend(graph, colours):
    rows = "".join(f'<tr><td bgcolor="{c}" width="24"> </td><td align="left">{_escape(n)} term'
                   f"</td></tr>" for n, c in colours.items())
    with graph.subgraph(name="cluster_legend") as legend:
        legend.attr(label="gradient of each loss term", style="rounded", color="#bbbbbb")
        legend.node("legend", label=f'<<table border="0" cellspacing="4">{rows}</table>>',
                    shape="plaintext")


def _escape(text):
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
