"""Graph drawing: trace → passes → emit, then render.

    records.trace     the graph as plain records (tensor boxes, op ellipses, edges)
    passes            records → records: hide constants, mark penalty terms, colour edges by
                      loss term, merge unnamed intermediates, collapse modules
    emit.emit         records → graphviz.Digraph (clusters, legend)
    render            renderer discovery (system `dot`, else graphviz-pure) and files

Reading the picture (torchviz-style, extended for regularization):

- boxes are tensors: blue = parameters (leaves that require grad), grey = inputs and other
  constants, white = intermediates, green = the tensor drawn from (the loss);
- ellipses are ops, labelled with the op's name (`Mul(×0.005)` shows a scalar factor);
- arrows point the way values flow forward; gradients flow back along them;
- a dashed pink cluster holds a regularization term: a scalar computed from parameters alone
  (Square -> Sum -> Mul for L2).  Its only inputs are the weights, so its gradient can reach
  nothing else;
- with `terms={"data": cost, "l2": penalty}`, each edge a term's gradient travels along is drawn
  in that term's colour (several terms: parallel lines), with a legend.

Drawing only reads the graph; it never changes a tensor.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import graphviz

from ..function import TensorBase
from . import passes
from .emit import INPUT_FILL, OUTPUT_FILL, PARAMETER_FILL, emit
from .passes import TERM_COLOURS
from .records import trace
from .render import FORMATS, Digraph, RendererNotFound, find_renderer, pipe_source, save

AUTO_COLLAPSE = 300  # records; beyond this, draw_dot collapses modules unless told otherwise

__all__ = ["draw_dot", "render", "Digraph", "RendererNotFound", "find_renderer", "pipe_source",
           "FORMATS", "TERM_COLOURS", "PARAMETER_FILL", "INPUT_FILL", "OUTPUT_FILL", "AUTO_COLLAPSE"]


def draw_dot(root: TensorBase, params: Mapping[str, TensorBase] | None = None,
             terms: Mapping[str, TensorBase] | None = None, show_values: bool = False,
             show_grads: bool = False, summary: str = "norm", rankdir: str = "LR",
             cluster_modules: bool = True, collapse_modules: bool | None = None,
             show_intermediates: bool | None = None, show_constants: bool = False,
             title: str | None = None) -> graphviz.Digraph:
    """A graphviz.Digraph of the graph that produced `root`.

    params: {name: tensor} names for tensors (e.g. `dict(model.named_parameters())`); a
        tensor's own `.name` is used otherwise, else a short id (`t7`) stable for the graph.
    terms: {name: tensor}, the loss's terms: colour the edges each term's gradient travels.
    show_values / show_grads: add a summary of each tensor's data / `.grad` (`summary` is
        "norm" for ‖·‖ or "minmax" for the range).
    rankdir: "LR" (left to right) or "TB" (top to bottom).
    cluster_modules: group tensors made inside a Module's call in a labelled cluster per
        module (`layers.0: Linear`); collapse_modules: draw each innermost module as one node
        (None, the default: only when the picture would have more than AUTO_COLLAPSE nodes,
        so that a large network stays legible and renders in seconds).
    show_intermediates: False drops unnamed intermediate tensors (op feeds op directly);
        None, the default: drop them only when the picture is that large.
    show_constants: also draw scalar constants (by default they show in their op's label).
    title: a line written above the picture.
    """
    _check(rankdir, summary)
    picture = trace(root, params, show_values, show_grads, summary)
    large = len(picture.records) > AUTO_COLLAPSE
    if not show_constants:
        picture = passes.hide_constants(picture)
    picture = passes.mark_penalties(picture)
    if terms:
        picture = passes.colour_terms(picture, terms)
    if not (not large if show_intermediates is None else show_intermediates):
        picture = passes.merge_intermediates(picture)
    if large if collapse_modules is None else collapse_modules:
        picture = passes.collapse_modules(picture)
    return emit(picture, rankdir, clusters=cluster_modules, title=title)


def render(root: TensorBase | graphviz.Digraph, path: str | os.PathLike[str], **draw_options: Any) -> Path:
    """Draw `root`'s graph (draw_dot options; or pass a Digraph) to `path`, in the format its
    suffix names (.svg, .png, .pdf, .dot/.gv); returns the path.  If rendering fails, the
    DOT source is still saved beside it (`path` with suffix .dot) and the error says so."""
    graph = root if isinstance(root, graphviz.Digraph) else draw_dot(root, **draw_options)
    return save(graph, path)


def _check(rankdir, summary):
    if rankdir not in ("LR", "TB", "RL", "BT"):
        raise ValueError(f"draw_dot: rankdir must be 'LR' or 'TB' (or 'RL', 'BT'), got {rankdir!r}")
    if summary not in ("norm", "minmax"):
        raise ValueError(f"draw_dot: summary must be 'norm' or 'minmax', got {summary!r}")
