"""What each `tinygrad-l2` command does, given its parsed options: compute a result object,
print it with the answer in words.  Parsing and checking the options is cli.py's."""
import sys
from pathlib import Path

import numpy as np

from .. import trace
from ..trace import kappa_fit
from ..compiler import compile as compile_step
from ..drawing import RendererNotFound, render
from . import compare as comparison
from . import questions
from .answers import why_only_dw
from .console import fit
from .datasets import make_dataset
from .lam import Lambda
from .training import train_pair


def say(text=""):
    """print, with prose wrapped to the console's 100 columns (tables as they are)."""
    print(fit(str(text)))


class Diverged(Exception):
    """Training overflowed: the comparison has nothing to compare."""


def require_finite(what, *values):
    """Raise Diverged unless every value (numbers, arrays, lists of them, and every number in a
    result's tables) is finite: a verdict is printed only over finite numbers."""
    for value in values:
        if hasattr(value, "tables"):
            value = [cell for table in value.tables() for row in table.rows for cell in row
                     if isinstance(cell, (float, np.floating))]
        items = value if isinstance(value, (list, tuple)) else [value]
        if not all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in items):
            raise Diverged(f"{what} overflowed to inf/nan, so there is nothing to compare; try a smaller value")


def explain(args):
    lam = Lambda(args.convention, args.lambd, args.m)
    X, Y = make_dataset(seed=0).column_major(args.m)
    result = comparison.compare_dlai(args.layers, X, Y, lambd=lam.to("dlai", args.m).value, seed=args.seed,
                                     cost=args.cost)
    say(lam.describe() + "\n")
    graph = result.graph  # built once: compared, traced and drawn
    terms = {"data": graph["cost"]} | ({"l2": graph["penalty"]} if graph["penalty"] is not None else {})
    traced = trace.trace_terms(terms, graph["tensors"])
    require_finite(f"at λ = {args.lambd:g} (κ = {lam.kappa:g}) the loss or a gradient",
                   list(result.manual.values()), list(result.autodiff.values()), graph["loss"].data,
                   result, traced)
    say(result)
    say(f"\nautodiff and manual backprop agree {result.agreement()}.\n"
        f"L2 changed only: {', '.join(result.changed_by_l2()) or 'nothing (λ = 0)'}\n")
    say(traced)
    if "l2" in terms:
        say()
        say(trace.with_without(terms, "l2", graph["tensors"]))
        say("\n" + _l2_derivatives(traced, graph["tensors"], lam))
    say("\n" + why_only_dw(lam))
    if args.show_code:
        print(_generated_backprop(result.parameters, X, Y, lam.to("dlai", args.m).value, args.cost))
    title = (f"{lam.describe().split(':')[0]}: the L2 nodes Mul(×{lam.kappa / 2:.6g}) carry κ/2; "
             f"each dW gains κ·W, κ = {lam.kappa:.6g}")
    written = [render(graph["loss"], target, terms=terms, show_grads=True, rankdir=args.rankdir,
                      show_intermediates=False, title=title) for target in graph_files(args.out)]
    say("graph (edges coloured by the loss term whose gradient travels them): "
          + ", ".join(str(p) for p in written))
    return 0


GRAPH_SUFFIXES = (".svg", ".png", ".pdf", ".dot", ".gv")


def graph_files(out):
    """explain's --out: a file name with a graph suffix is that one file; anything else is the
    directory for l2_graph.svg and l2_graph.png."""
    out = Path(out)
    if out.suffix.lower() in GRAPH_SUFFIXES:
        return [out]
    return [out / "l2_graph.svg", out / "l2_graph.png"]


def _l2_derivatives(traced, tensors, lam):
    """∂(L2 term)/∂X for each tensor, measured: κ·W for the weights, exactly 0 elsewhere."""
    lines = [f"Derivative of the L2 term with respect to each tensor (measured; κ = {lam.kappa:.6g}):"]
    for name in traced.tensors:
        g = traced.contribution("l2", name)
        if g is not None and np.any(g):
            lines.append(f"  ∂(L2)/∂{name} = {kappa_fit(g, tensors[name].data):.6g}·{name}   "
                         f"(‖·‖ = {np.linalg.norm(g):.4g})")
        elif g is not None:
            lines.append(f"  ∂(L2)/∂{name} = 0   (the L2 term has no path from {name})")
    return "\n".join(lines)


def _generated_backprop(parameters, X, Y, lambd, cost):
    """The numpy code tl.compile writes for this network's forward and backward."""
    leaves = comparison.dlai_parameters(parameters)

    def backprop(X, Y):
        built = comparison.dlai_forward(leaves, X, Y, lambd, cost)
        built["loss"].backward()
        return built["loss"]
    step = compile_step(backprop)
    step(X, Y)
    return ("The backprop tl.compile writes for this network (the lines marked 'penalty term' "
            "are the L2 term's; they reach only the weights):\n\n" + step.source)


def compare(args):
    if args.convention == "dlai":
        X, Y = make_dataset(seed=0).column_major(args.m)
        say(Lambda("dlai", args.lambd, args.m).describe() + "\n")
        result = comparison.compare_dlai(args.layers, X, Y, lambd=args.lambd, seed=args.seed, cost=args.cost)
        weights = list(result.autodiff.values()) + list(result.manual.values())
    else:
        say(Lambda("nielsen", args.lambd, len(make_dataset(seed=0).y_train)).describe() + "\n")
        try:
            with np.errstate(over="raise", invalid="raise"):
                result = comparison.compare_nielsen(args.layers, cost=args.cost, lmbda=args.lambd, eta=args.eta,
                                                    batch_size=args.batch_size, epochs=args.epochs, seed=args.seed)
        except FloatingPointError as err:
            raise Diverged(f"training diverged at η = {args.eta:g}: {err} (the sigmoids saturate and "
                           f"rounding differences grow without bound), so the two trainings cannot be "
                           f"compared; try a smaller --eta") from None
        weights = result.manual_weights + result.autodiff_weights + result.manual_biases + result.autodiff_biases
    if not all(np.all(np.isfinite(w)) for w in weights):
        raise Diverged("the gradients or weights overflowed to inf/nan: nothing to compare")
    say(result)
    say(f"\nlargest difference autodiff vs manual: {result.max_difference():.1e}")
    return 0 if result.max_difference() < 1e-10 else 1


def train(args):
    n = len(make_dataset(seed=0).y_train)
    lam = Lambda(args.convention, args.lambd, n)
    result = train_pair(args.layers, lam, args.steps, args.lr, args.seed, optimizer=args.optimizer,
                        progress=not args.quiet)
    diverged = [f"the run {r.label} diverged: {r.diverged}" for r in result.runs if r.diverged]
    if diverged:
        raise Diverged("; ".join(diverged) + f", so there is nothing to compare (try a smaller --lr "
                       f"than {args.lr:g})")
    say(result)
    say("\n" + result.verdict())
    if args.plot:
        from .plots import plot_runs
        paths = plot_runs(make_dataset(seed=0), result.runs, Path(args.out))
        say("plots: " + ", ".join(str(p) for p in paths))
    return 0


def dcda(args):
    lam = Lambda(args.convention, args.lambd, args.m)
    result = questions.output_gradient(lam, m=args.m, seed=args.seed)
    require_finite(f"at λ = {args.lambd:g} (κ = {lam.kappa:g}) dC/da or δᴸ", result)
    say(result)
    say("\n" + result.answer())
    return 0


def decay(args):
    given = Lambda(args.convention, args.lambd, args.n)
    if args.convention != "nielsen":  # the user's λ first; the rest speaks Nielsen's
        say(given.describe() + "\n")
    lam = given.to("nielsen", args.n)
    result = questions.decay(lam, args.eta, args.batch_size, args.steps, seed=args.seed)
    require_finite(f"at λ = {args.lambd:g}, η = {args.eta:g} (fraction f = {result.fraction:g}) the weights",
                   result, result.fraction)
    say(result)
    say("\n" + result.answer())
    return 0


def loss_or_update(args):
    lam = Lambda(args.convention, args.lambd, 16)
    result = questions.loss_or_update(lam, args.steps, args.lr, args.seed)
    require_finite(f"at λ = {args.lambd:g}, lr = {args.lr:g} the L2 gradient or the weights",
                   result, result.trajectory, result.trajectory.bound, result.worst_loss)
    say(result)
    say("\n" + result.answer())
    return 0


def report(error):
    """A renderer missing is the only run-time failure explain reports rather than raises."""
    print(f"tinygrad-l2: {error}", file=sys.stderr)
    return 1


RUN_TIME_ERRORS = (RendererNotFound, Diverged)
