"""The `tinygrad-l2` command: explain, compare and train, answering where L2 enters backprop."""
import argparse
import sys
from pathlib import Path

import numpy as np

from . import compare as comparison
from .. import trace
from ..compiler import compile as compile_step
from ..context import no_grad
from .datasets import make_dataset
from ..drawing import RendererNotFound, render
from ..nn import weights_and_biases
from ..tensor import Tensor
from .answers import ANSWER
from .training import train_pair



class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and exit status 2) instead of usage + error."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _sizes(text):
    try:
        sizes = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer sizes such as 2,20,3,1, got {text!r}")
    if len(sizes) < 2 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"need at least two positive layer sizes, got {text!r}")
    return sizes


def _non_negative(text):
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _two_d_input(sizes, parser):
    if sizes[0] != 2:
        parser.error(f"the built-in dataset has 2 features: the first layer size must be 2, got {sizes[0]}")
    if sizes[-1] != 1:
        parser.error(f"binary classification: the last layer size must be 1, got {sizes[-1]}")


# ---- explain ---------------------------------------------------------------------------------

def explain(args, parser):
    _two_d_input(args.layers, parser)
    X, Y = make_dataset(seed=0).column_major(args.m)
    result = comparison.compare_dlai(args.layers, X, Y, lambd=args.lambd, seed=args.seed, cost=args.cost)
    print(result)
    print(f"\nautodiff and manual backprop agree to {result.max_difference():.1e}; "
          f"L2 changed only: {', '.join(result.changed_by_l2()) or 'nothing (λ = 0)'}\n")
    graph = result.graph  # built once: compared, traced and drawn
    terms = {"data": graph["cost"]}
    if graph["penalty"] is not None:
        terms["l2"] = graph["penalty"]
    print(trace.trace_terms(terms, graph["tensors"]))
    if "l2" in terms:
        print()
        print(trace.with_without(terms, "l2", graph["tensors"]))
    print()
    print(ANSWER)
    if args.show_code:
        print(_generated_backprop(result.parameters, X, Y, args))
    out = Path(args.out)
    written = []
    for suffix in (".svg", ".png"):
        try:
            written.append(render(graph["loss"], out / f"l2_graph{suffix}", terms=terms,
                                  show_grads=True, rankdir=args.rankdir))
        except RendererNotFound as err:
            print(f"tinygrad-l2 explain: {err}", file=sys.stderr)
            return 1
    print("graph (edges coloured by the loss term whose gradient travels them): "
          + ", ".join(str(p) for p in written))
    return 0


def _generated_backprop(parameters, X, Y, args):
    """The numpy code tl.compile writes for this network's forward and backward."""
    def backprop(X, Y):
        built = comparison.dlai_autodiff(parameters, X, Y, args.lambd, args.cost)
        built["loss"].backward()
        return built["loss"]
    step = compile_step(backprop)
    step(X, Y)
    return ("The backprop tl.compile writes for this network (the lines marked 'penalty term' "
            "are the L2 term's; they reach only the weights):\n\n" + step.source)


# ---- compare ---------------------------------------------------------------------------------

def compare(args, parser):
    _two_d_input(args.layers, parser)
    if args.convention == "dlai":
        X, Y = make_dataset(seed=0).column_major(args.m)
        table = comparison.compare_dlai(args.layers, X, Y, lambd=args.lambd, seed=args.seed, cost=args.cost)
    else:
        table = comparison.compare_nielsen(args.layers, cost=args.cost, lmbda=args.lambd, eta=args.eta,
                                           batch_size=args.batch_size, epochs=args.epochs, seed=args.seed)
    print(table)
    print(f"\nlargest difference autodiff vs manual: {table.max_difference():.1e}")
    return 0 if table.max_difference() < 1e-10 else 1


# ---- train -----------------------------------------------------------------------------------

def train(args, parser):
    _two_d_input(args.layers, parser)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.exit(1, "tinygrad-l2 train: --plot needs matplotlib: pip install "
                           "'tinygrad-l2[plot]' (or pip install matplotlib)\n")
    data, runs = train_pair(args.layers, args.lambd, args.steps, args.lr, args.seed,
                            progress=not args.quiet)
    from ..table import Table
    rows = []
    for label, run in runs.items():
        norms = [float(np.linalg.norm(p.data)) for p in weights_and_biases(run["model"])[0]]
        rows.append([label, run["train"], run["test"], run["train"] - run["test"],
                     " ".join(f"{v:.3g}" for v in norms)])
    print(Table(["run", "train accuracy", "test accuracy", "gap", "‖W_l‖ per layer"], rows,
                title=f"{list(args.layers)} network, {args.steps} Adam steps (lr {args.lr}) on "
                      f"{len(data.y_train)} noisy two-moons points, tested on {len(data.y_test)}"))
    if args.plot:
        paths = _plot(data, runs, Path(args.out))
        print("plots: " + ", ".join(str(p) for p in paths))
    return 0


def _plot(data, runs, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for label, run in runs.items():
        steps, _, train_acc, test_acc = zip(*run["curve"])
        axes[0].plot(steps, train_acc, label=f"{label} train")
        axes[0].plot(steps, test_acc, "--", label=f"{label} test")
        axes[1].plot(steps, [c[1] for c in run["curve"]], label=label)
    axes[0].set(xlabel="step", ylabel="accuracy", title="accuracy")
    axes[1].set(xlabel="step", ylabel="data loss", yscale="log", title="training data loss")
    for ax in axes:
        ax.legend(fontsize=8)
    curves = out / "train_curves.png"
    fig.tight_layout()
    fig.savefig(curves, dpi=100)
    plt.close(fig)

    xs = np.linspace(-2, 3, 200)
    ys = np.linspace(-2.2, 2.2, 200)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4))
    for ax, (label, run) in zip(np.atleast_1d(axes), runs.items()):
        with no_grad():
            logits = run["model"](Tensor(grid)).data.reshape(len(ys), len(xs))
        ax.contourf(xs, ys, logits > 0, alpha=0.3, cmap="coolwarm")
        ax.scatter(*data.X_train.T, c=data.y_train, cmap="coolwarm", s=10, edgecolors="k", linewidths=0.3)
        ax.set_title(f"{label}: train {run['train']:.2f}, test {run['test']:.2f}")
    boundaries = out / "decision_boundaries.png"
    fig.tight_layout()
    fig.savefig(boundaries, dpi=100)
    plt.close(fig)
    return [curves, boundaries]


# ---- entry point -----------------------------------------------------------------------------

def make_parser():
    parser = _Parser(prog="tinygrad-l2", description="Where does L2 enter backprop? "
                     "Manual backprop vs autodiff, the gradient of each loss term, and the graph.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("explain", help="the canonical 3-layer network: manual vs autodiff, "
                       "per-term gradients, and the graph coloured by loss term")
    p.add_argument("--lambd", type=_non_negative, default=0.7, help="deeplearning.ai's λ (default 0.7)")
    p.add_argument("--layers", type=_sizes, default=(2, 20, 3, 1), help="layer sizes (default 2,20,3,1)")
    p.add_argument("--cost", choices=["cross_entropy", "quadratic"], default="cross_entropy")
    p.add_argument("--m", type=_positive_int, default=200, help="examples in the batch (default 200)")
    p.add_argument("--seed", type=int, default=3, help="weight initialization seed")
    p.add_argument("--out", default="out", help="directory for l2_graph.svg/.png (default ./out)")
    p.add_argument("--rankdir", choices=["LR", "TB"], default="LR", help="graph layout")
    p.add_argument("--show-code", action="store_true",
                   help="also print the numpy backprop tl.compile writes for this network (default: off)")
    p.set_defaults(run=explain)

    p = sub.add_parser("compare", help="manual vs autodiff for a chosen convention, sizes and λ")
    p.add_argument("--convention", choices=["dlai", "nielsen"], default="dlai")
    p.add_argument("--layers", type=_sizes, default=(2, 20, 3, 1))
    p.add_argument("--lambd", type=_non_negative, default=0.7, help="λ in the convention's own scaling")
    p.add_argument("--cost", choices=["cross_entropy", "quadratic"], default="cross_entropy")
    p.add_argument("--m", type=_positive_int, default=200, help="dlai: examples in the batch")
    p.add_argument("--eta", type=_non_negative, default=0.5, help="nielsen: learning rate")
    p.add_argument("--batch-size", type=_positive_int, default=10, help="nielsen: mini-batch size")
    p.add_argument("--epochs", type=_positive_int, default=3, help="nielsen: epochs")
    p.add_argument("--seed", type=int, default=3)
    p.set_defaults(run=compare)

    p = sub.add_parser("train", help="train with and without L2 on the built-in dataset")
    p.add_argument("--lambd", type=_non_negative, default=1e-3, help="Keras-style L2 coefficient (default 1e-3)")
    p.add_argument("--layers", type=_sizes, default=(2, 128, 64, 1))
    p.add_argument("--steps", type=_positive_int, default=3000)
    p.add_argument("--lr", type=_non_negative, default=0.01)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--plot", action="store_true", help="write curves and decision boundaries (needs matplotlib)")
    p.add_argument("--out", default="out", help="directory for the plots (default ./out)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=train)
    return parser, sub


def main(argv=None):
    parser, sub = make_parser()
    args = parser.parse_args(argv)
    return args.run(args, sub.choices[args.command])


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
