"""draw_dot and render: DOT structure, term colouring, and real rendering (SVG, PNG, PDF)."""
import re
import shutil
import sys
import xml.etree.ElementTree as ET

import graphviz
import numpy as np
import pytest

import tinygrad_l2 as tl
from helpers import three_layer_network
from tinygrad_l2 import Tensor
from tinygrad_l2.drawing import RendererNotFound

NODE = re.compile(r'^\s*(\w+) \[(.*)\]$')
EDGE = re.compile(r'^\s*(\w+) -> (\w+)(?: \[(.*)\])?$')


def parse(source):
    """DOT source -> ({node: label}, {(tail, head): attrs})."""
    nodes, edges = {}, {}
    for line in source.splitlines():
        if m := EDGE.match(line):
            edges[(m[1], m[2])] = m[3] or ""
        elif (m := NODE.match(line)) and m[1] not in ("graph", "node", "edge"):
            label = re.search(r'label=(?:"((?:[^"\\]|\\.)*)"|<(.*)>|([^\s"<]+))', m[2])
            nodes[m[1]] = next((g for g in label.groups() if g is not None), "") if label else ""
    return nodes, edges


@pytest.fixture
def net():
    return three_layer_network()


def node_named(nodes, name):
    found = [n for n, label in nodes.items() if label.split("\\n")[0] == name]
    assert len(found) == 1, (name, found)
    return found[0]


def test_draw_dot_returns_a_digraph_with_every_named_tensor_in_its_label(net):
    graph = tl.draw_dot(net["loss"])
    assert isinstance(graph, graphviz.Digraph)
    nodes, _ = parse(graph.source)
    for name in list(net["named"]) + ["cost", "L2 penalty", "loss"]:
        node_named(nodes, name)


def test_tensor_label_shows_shape_and_dtype_and_op_nodes_are_ellipses(net):
    source = tl.draw_dot(net["loss"]).source
    nodes, _ = parse(source)
    attrs = {m[1]: m[2] for m in map(NODE.match, source.splitlines()) if m}
    assert nodes[node_named(nodes, "W1")] == "W1\\n5×2 float64"
    matmuls = [n for n, label in nodes.items() if label == "MatMul"]
    assert len(matmuls) == 3 and all("shape=ellipse" in attrs[n] for n in matmuls)
    assert "fillcolor=lightblue" in attrs[node_named(nodes, "W1")]  # a parameter
    assert "fillcolor=lightgrey" in attrs[node_named(nodes, "X")]  # an input
    assert "fillcolor=white" in attrs[node_named(nodes, "Z1")]  # an intermediate
    assert "shape=box" in attrs[node_named(nodes, "Z1")]


def test_penalty_nodes_and_edges_connect_only_to_weight_tensors(net):
    nodes, edges = parse(tl.draw_dot(net["loss"]).source)
    penalty = node_named(nodes, "L2 penalty")
    # every tensor/op upstream of the penalty node
    upstream, frontier = set(), {penalty}
    while frontier:
        frontier = {t for (t, h) in edges if h in frontier} - upstream
        upstream |= frontier
    labels = {nodes[n].split("\\n")[0] for n in upstream}
    named = set(net["named"])
    assert labels & named == {"W1", "W2", "W3"}
    for forbidden in ("X", "b1", "b2", "b3", "Z1", "A1", "Z2", "A2", "Z3", "A3", "cost"):
        assert forbidden not in labels


def test_regularization_subgraph_is_a_recognizable_cluster(net):
    source = tl.draw_dot(net["loss"]).source
    cluster = re.search(r"subgraph cluster_penalty_\d+ \{(.*?)\n\s*\}", source, re.S)
    assert cluster and "regularization: depends on weights only" in cluster[1]
    ops = re.findall(r"label=\"?([A-Za-z]+)", cluster[1])
    assert {"Square", "Sum", "Mul"} <= set(ops)
    assert "MatMul" not in ops and "Transpose" not in ops


def test_l2_regularizer_subgraph_reads_square_sum_scale():
    model = tl.nn.MLP([2, 3, 1], kernel_regularizer=tl.nn.L2(0.01), dtype=np.float64, rng=0)
    source = tl.draw_dot(model.regularization_loss()).source
    assert "Square" in source and "Sum" in source and "Mul(×0.01)" in source


def test_term_colouring_marks_exactly_the_edges_on_each_terms_backward_path(net):
    graph = tl.draw_dot(net["loss"], terms={"data": net["cost"], "l2": net["penalty"]})
    nodes, edges = parse(graph.source)
    label_of = {n: l.split("\\n")[0] for n, l in nodes.items()}
    l2_edges = {e for e, attrs in edges.items() if "term-l2" in attrs}
    data_edges = {e for e, attrs in edges.items() if "term-data" in attrs}
    # the l2 colour leaves the parameters only from W1, W2, W3, and never enters b, A or Z
    l2_tensors = {label_of[n] for e in l2_edges for n in e if n in label_of and not n.startswith("op_")}
    assert {"W1", "W2", "W3", "L2 penalty", "loss"} <= l2_tensors
    assert not l2_tensors & {"b1", "b2", "b3", "Z1", "A1", "Z2", "A2", "Z3", "A3", "X", "cost"}
    # exactly: an edge carries a term's colour iff that term's gradient flows along it, i.e.
    # both ends lie between the loss and the term's leaves and the tail requires grad
    order = tl.topological_order(net["loss"], include_constants=True)  # op nodes and leaves
    for name, term in (("data", net["cost"]), ("l2", net["penalty"])):
        path = set(tl.topological_order(term)) | {net["loss"].grad_fn}
        expected = set()
        for i, node in enumerate(order):
            if node.is_leaf or node not in path:
                continue
            expected.add((f"op_t{i}", f"t{i}"))
            for parent in node.parents:
                if parent is not None and parent in path:  # the path lists only nodes that require grad
                    expected.add((f"t{order.index(parent)}", f"op_t{i}"))
        marked = {e for e, attrs in edges.items() if f"term-{name}" in attrs}
        assert marked == expected, name
    assert "legend" in nodes and "l2 term" in nodes["legend"] and "data term" in nodes["legend"]
    assert data_edges and l2_edges and data_edges != l2_edges


def test_term_not_in_graph_is_an_error(net):
    with pytest.raises(ValueError, match="term 'other' is not part of the graph"):
        tl.draw_dot(net["cost"], terms={"other": net["penalty"]})


def test_modules_are_grouped_into_labelled_clusters():
    class Net(tl.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = tl.nn.MLP([2, 4, 1], dtype=np.float64, rng=0)

        def forward(self, x):
            return self.layers(x)

    model = Net()
    out = model(np.ones((3, 2))).sum()
    source = tl.draw_dot(out, params=dict(model.named_parameters())).source
    for label in ("layers: MLP", "layers.0: Linear", "layers.1: ReLU", "layers.2: Linear"):
        assert f"label=\"{label}\"" in source
    # the parameter sits inside its layer's cluster
    cluster = re.search(r'label="layers.0: Linear".*?\n(.*?)\n\s*\}', source, re.S)
    assert "layers.0.weight" in cluster[1]


def test_collapse_modules_draws_each_layer_as_one_node():
    model = tl.nn.MLP([4] * 40 + [1], dtype=np.float64, rng=0)
    out = (model(np.ones((2, 4))).sum() + model.regularization_loss())
    full, _ = parse(tl.draw_dot(out, collapse_modules=False, show_intermediates=True).source)
    collapsed, _ = parse(tl.draw_dot(out, collapse_modules=True, show_intermediates=False).source)
    assert len(collapsed) < len(full) / 2
    assert sum("Linear" in label for label in collapsed.values()) == 40


def test_value_and_grad_summaries(net):
    net["loss"].backward()
    W1 = net["named"]["W1"]
    source = tl.draw_dot(net["loss"], show_values=True, show_grads=True).source
    assert f"value ‖·‖={np.linalg.norm(W1.data):.4g}" in source
    assert f"grad ‖·‖={np.linalg.norm(W1.grad):.4g}" in source
    minmax = tl.draw_dot(net["loss"], show_values=True, summary="minmax").source
    assert f"value [{W1.data.min():.3g}, {W1.data.max():.3g}]" in minmax


def test_layouts(net):
    assert "rankdir=TB" in tl.draw_dot(net["loss"], rankdir="TB").source
    assert "rankdir=LR" in tl.draw_dot(net["loss"]).source
    with pytest.raises(ValueError, match="rankdir"):
        tl.draw_dot(net["loss"], rankdir="diagonal")


def test_unnamed_tensors_get_stable_short_ids():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = (x * 2).sum()
    assert tl.draw_dot(y).source == tl.draw_dot(y).source
    nodes, _ = parse(tl.draw_dot(y).source)
    # the scalar 2 is an argument of Mul, not a node: it shows in the op's label only
    assert {n for n in nodes if n.startswith("t")} == {"t0", "t1", "t2"}
    assert nodes["t0"] == "t0\\n2 float32" and nodes["op_t1"] == "Mul(×2)"


# ---- real rendering --------------------------------------------------------------------------

def test_render_svg_parses_and_holds_every_named_node(net, tmp_path):
    path = tl.render(net["loss"], tmp_path / "net.svg", terms={"data": net["cost"], "l2": net["penalty"]})
    assert path == tmp_path / "net.svg"
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")
    texts = {t.text for t in root.iter() if t.tag.endswith("text")}
    for name in list(net["named"]) + ["loss", "cost", "L2 penalty"]:
        assert name in texts


def test_render_png_and_dot(net, tmp_path):
    png = tl.render(net["loss"], tmp_path / "net.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    dot = tl.render(net["loss"], tmp_path / "net.dot")
    assert dot.read_text().startswith("digraph")


@pytest.mark.skipif(shutil.which("dot") is None, reason="PDF needs the system Graphviz")
def test_render_pdf_with_system_graphviz(net, tmp_path):
    assert tl.render(net["loss"], tmp_path / "net.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.fixture
def only_graphviz_pure(tmp_path, monkeypatch):
    """A PATH on which the only renderer is the pip-installed graphviz-pure."""
    pure = shutil.which("graphviz-pure") or str(__import__("pathlib").Path(sys.executable).parent / "graphviz-pure")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "graphviz-pure").symlink_to(pure)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(sys, "executable", str(bin_dir / "python"))


def test_pip_only_route_renders_svg_and_png(net, tmp_path, only_graphviz_pure):
    svg = tl.render(net["loss"], tmp_path / "a.svg")
    ET.parse(svg)
    assert tl.render(net["loss"], tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"


def test_pip_only_route_says_what_to_install_for_pdf(net, tmp_path, only_graphviz_pure):
    with pytest.raises(RendererNotFound, match="PDF needs the system Graphviz .*apt-get install graphviz"):
        tl.render(net["loss"], tmp_path / "a.pdf")
    assert (tmp_path / "a.dot").read_text().startswith("digraph")


def test_no_renderer_is_a_clear_error_and_the_dot_source_is_saved(net, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(sys, "executable", str(tmp_path / "python"))
    with pytest.raises(RendererNotFound, match="no Graphviz renderer found: install graphviz-pure"):
        tl.render(net["loss"], tmp_path / "b.svg")
    assert (tmp_path / "b.dot").read_text().startswith("digraph")


def test_jupyter_display_renders_svg_with_the_package_renderer(net, only_graphviz_pure):
    bundle = tl.draw_dot(net["loss"])._repr_mimebundle_()
    ET.fromstring(bundle["image/svg+xml"].encode())


def test_unknown_suffix_is_an_error(net, tmp_path):
    with pytest.raises(ValueError, match="unknown format '.bmp'"):
        tl.render(net["loss"], tmp_path / "x.bmp")


def test_a_graph_of_hundreds_of_nodes_is_collapsed_per_module_by_default(tmp_path):
    model = tl.nn.MLP([8] * 60 + [1], kernel_regularizer=tl.nn.L2(1e-3), dtype=np.float64, rng=0)
    loss = model(np.ones((4, 8))).sum() + model.regularization_loss()
    full, _ = parse(tl.draw_dot(loss, collapse_modules=False, show_intermediates=True).source)
    default, _ = parse(tl.draw_dot(loss).source)
    assert len(full) > 500 and len(default) < len(full) / 2
    path = tl.render(loss, tmp_path / "big.svg")
    texts = {t.text for t in ET.parse(path).getroot().iter() if t.tag.endswith("text")}
    assert {"0: Linear", "118: Linear"} <= texts


def test_a_small_graph_is_not_collapsed_by_default():
    model = tl.nn.MLP([2, 3, 1], dtype=np.float64, rng=0)
    loss = model(np.ones((4, 2))).sum()
    assert "box3d" not in tl.draw_dot(loss).source
