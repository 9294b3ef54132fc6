"""The `tinygrad-l2` command: every learner's question answered by a measurement.

One vocabulary for λ in every command: `--convention {dlai,nielsen,keras,torch}` says what
`--lambd` means, and every output header prints that meaning and κ, the coefficient the
penalty adds to dW.  Bad input is a one-line error with exit status 2; an option the chosen
convention ignores is refused, not silently ignored.
"""
import argparse
import math
import os
import sys
import warnings
from pathlib import Path

import numpy as np

from . import commands
from .console import readable_streams
from .costs import COSTS
from .datasets import make_dataset
from .lam import CONVENTIONS
from .training import OPTIMIZERS

DEFAULTS = {  # per command: the options a convention does not use are refused when given
    "compare": {"dlai": {"m": 200}, "nielsen": {"eta": 0.5, "batch_size": 10, "epochs": 3}},
}


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
    if max(sizes) > MAX_LAYER or len(sizes) > 20:
        raise argparse.ArgumentTypeError(f"at most 20 layers of at most {MAX_LAYER} units each "
                                         f"(a lesson, not a benchmark), got {text!r}")
    return sizes


def _shape(text):
    try:
        shape = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected one example's shape such as 1,28,28, got {text!r}") from None
    if min(shape) < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive, got {text!r}")
    return shape


MAX_LAYER = 4096  # sizes beyond these run for hours or exhaust memory: refused, not attempted
MAX_STEPS = 100_000


def _number(minimum, strict=False, kind=float, maximum=None):
    def parse(text):
        try:
            value = kind(text) if kind is float or not _integral(text) else int(float(text))
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be a finite number {'>' if strict else '>='} {minimum}, "
                                             f"got {text}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"at most {maximum:,} here (a lesson, not a benchmark), got {text}")
        return value
    return parse


def _integral(text):
    """'1e5' and '3000.0' are integers to a user."""
    try:
        return float(text).is_integer()
    except (ValueError, OverflowError):
        return False


def _add(p, *flags, **options):
    """An option whose help always states its default."""
    default = options.get("default")
    options["help"] = f"{options['help']} (default: {default if default is not None else 'none'})"
    p.add_argument(*flags, **options)


def _common(p, convention, lambd, layers=None, seed=0, cost=True):
    _add(p, "--convention", choices=convention[1], default=convention[0],
         help="what --lambd means: dlai (1/m)(λ/2)Σ‖W‖², nielsen (λ/2n)Σw², keras λΣw², torch weight_decay")
    _add(p, "--lambd", type=_number(0), default=lambd, help="λ, in the chosen convention")
    if layers:
        _add(p, "--layers", type=_sizes, default=layers, help="layer sizes, comma-separated")
    if cost:
        _add(p, "--cost", choices=COSTS, default="cross_entropy", help="the data cost")
    _add(p, "--seed", type=_number(0, kind=int), default=seed, help="random seed (>= 0)")


def make_parser():
    parser = _Parser(prog="tinygrad-l2", description="Where does L2 enter backprop? Each command "
                     "answers one question with a measurement.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add in (_explain, _compare, _train, _dcda, _decay, _loss_or_update):
        add(sub)
    return parser, sub


def _explain(sub):
    p = sub.add_parser("explain", help="the 3-layer network: manual vs autodiff, each term's gradient, the graph")
    _common(p, ("dlai", CONVENTIONS), 0.7, (2, 20, 3, 1), seed=3)
    _add(p, "--m", type=_number(1, kind=int), default=200, help="examples in the batch")
    _add(p, "--out", default="out", help="directory for l2_graph.svg and .png, or one file: "
         "graph.svg, .png, .pdf or .dot")
    _add(p, "--rankdir", choices=["LR", "TB"], default="TB", help="graph layout: top-bottom or left-right")
    p.add_argument("--show-code", action="store_true",
                   help="also print the backprop tl.compile writes (default: off)")
    _add(p, "--model", help="your own model (needs the interop extra): a Keras .keras file, a "
         "torch.export .pt2 file, or module:attribute (my_net.py:model, pkg.nets:make_model) "
         "naming a torch.nn.Module or a zero-argument function returning one; the same analysis "
         "on a synthetic batch of --m examples")
    _add(p, "--input-shape", type=_shape, help="with --model module:attribute: one example's "
         "shape, e.g. 1,28,28 (when not given: the module's input_shape attribute)")
    _add(p, "--weight-decay", type=_number(0), help="with a PyTorch --model, needed: the "
         "optimizer's weight_decay wd (SGD/Adam, PyTorch's convention g <- g + wd·θ, every "
         "parameter), carried as the loss term (wd/2)·Σθ²; 0 for none")


def _compare(sub):
    p = sub.add_parser("compare", help="manual vs autodiff backprop in the course's or Nielsen's convention")
    _common(p, ("dlai", ("dlai", "nielsen")), 0.7, (2, 20, 3, 1), seed=3)
    _add(p, "--m", type=_number(1, kind=int, maximum=MAX_STEPS), help="dlai only: examples in the batch (200 when not given)")
    _add(p, "--eta", type=_number(0, strict=True), help="nielsen only: learning rate (0.5 when not given)")
    _add(p, "--batch-size", type=_number(1, kind=int), help="nielsen only: mini-batch size (10 when not given)")
    _add(p, "--epochs", type=_number(1, kind=int, maximum=1000), help="nielsen only: epochs (3 when not given)")


def _train(sub):
    p = sub.add_parser("train", help="train with and without L2 on the built-in dataset")
    _common(p, ("keras", CONVENTIONS), 1e-3, (2, 128, 64, 1), seed=1, cost=False)
    _add(p, "--optimizer", choices=OPTIMIZERS, default="adam",
         help="the optimizer (pso: particle swarm, no gradient)")
    _add(p, "--steps", type=_number(1, kind=int, maximum=MAX_STEPS), default=3000, help="training steps")
    _add(p, "--lr", type=_number(0, strict=True), default=0.01, help="learning rate (not used by pso)")
    p.add_argument("--plot", action="store_true",
                   help="write curves and decision boundaries, needs matplotlib (default: off)")
    _add(p, "--out", default="out", help="directory for the plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar (default: off)")


def _dcda(sub):
    p = sub.add_parser("dcda", help="with L2, is dC/da still a − y? (Nielsen-style sigmoid network)")
    _common(p, ("nielsen", CONVENTIONS), 5.0, cost=False)
    _add(p, "--m", type=_number(1, kind=int, maximum=MAX_STEPS), default=64, help="examples (also Nielsen's n)")


def _decay(sub):
    p = sub.add_parser("decay", help="update, then subtract a fraction of the weight: what λ is that?")
    _common(p, ("nielsen", CONVENTIONS), 5.0, cost=False)
    _add(p, "--eta", type=_number(0, strict=True), default=0.5, help="learning rate η")
    _add(p, "--n", type=_number(2, kind=int, maximum=MAX_STEPS), default=200, help="training-set size n")
    _add(p, "--batch-size", type=_number(1, kind=int), default=10, help="mini-batch size")
    _add(p, "--steps", type=_number(1, kind=int, maximum=MAX_STEPS), default=20,
         help="SGD steps of the agreement run")


def _loss_or_update(sub):
    p = sub.add_parser("loss-or-update", help="is L2 added to the loss or to the update? (a Conv2D model)")
    _common(p, ("keras", CONVENTIONS), 0.01, cost=False)
    _add(p, "--steps", type=_number(1, kind=int, maximum=1000), default=10, help="SGD steps")
    _add(p, "--lr", type=_number(0, strict=True), default=0.1, help="learning rate")


def check(args, parser):
    """What argparse cannot check: options the convention ignores, sizes, a writable --out."""
    layers = getattr(args, "layers", None)
    if layers and args.command in ("explain", "compare", "train"):
        if layers[0] != 2:
            parser.error(f"the built-in dataset has 2 features: the first layer size must be 2, got {layers[0]}")
        if layers[-1] != 1:
            parser.error(f"binary classification: the last layer size must be 1, got {layers[-1]}")
    for convention, defaults in DEFAULTS.get(args.command, {}).items():
        for name, value in defaults.items():
            given = getattr(args, name)
            if convention != args.convention and given is not None:
                parser.error(f"--{name.replace('_', '-')} is used by --convention {convention} only, "
                             f"not {args.convention}")
            if convention == args.convention and given is None:
                setattr(args, name, value)
    examples = len(make_dataset(seed=0).y_train)
    if args.command in ("explain", "compare") and (getattr(args, "m", None) or 0) > examples:
        parser.error(f"--m {args.m}: the built-in dataset has {examples} training examples, so m can be "
                     f"at most {examples}")
    if args.command == "explain":
        _check_model_options(args, parser)
    if args.command == "decay" and args.batch_size > args.n:
        parser.error(f"--batch-size {args.batch_size} is larger than --n {args.n}")
    if getattr(args, "plot", False) and Path(args.out).suffix:
        parser.error(f"--out {args.out}: --out names the directory for the plots, not a file")
    if getattr(args, "plot", False):
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.exit(1, "tinygrad-l2 train: --plot needs matplotlib: pip install "
                           "'tinygrad-l2[plot]' (or pip install matplotlib)\n")
    if args.command == "explain":
        _check_writable(commands.graph_files(args.out)[0].parent, parser)
    if getattr(args, "plot", False):
        _check_writable(Path(args.out), parser)


def _check_model_options(args, parser):
    """--model's own options, and the built-in network's that don't apply to it."""
    given = [name for name in ("input_shape", "weight_decay") if getattr(args, name) is not None]
    if args.model is None:
        if given:
            parser.error(f"--{given[0].replace('_', '-')} applies with --model only")
        return
    for name in ("convention", "lambd", "layers", "cost", "show_code"):
        if getattr(args, name) != parser.get_default(name):
            parser.error(f"--{name.replace('_', '-')} does not apply with --model (its own "
                         f"layers are used; a PyTorch model's L2 is --weight-decay)")
    suffix = Path(args.model).suffix
    fixed = {".keras": ("input_shape", "weight_decay"), ".pt2": ("input_shape", "m")}.get(suffix, ())
    for name in fixed:
        if getattr(args, name) != parser.get_default(name):
            why = ("the file's own regularizers are its L2" if name == "weight_decay" else
                   "the file fixes the input" + (" (the program's example input)" if suffix == ".pt2" else ""))
            parser.error(f"--{name.replace('_', '-')} does not apply with a {suffix} model: {why}")
    if suffix != ".keras" and args.weight_decay is None:
        parser.error("a PyTorch --model has no regularizer: give its optimizer's --weight-decay "
                     "(e.g. --weight-decay 5e-4; 0 for none)")


def _check_writable(out, parser):
    """Refuse an --out that cannot be written, before any computing: make it, write in it."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".tinygrad-l2-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        parser.error(f"--out {out}: cannot write there ({err.strerror or err})")


def _model_error():
    """own_model's error class once --model loaded it, else one that never matches."""
    module = sys.modules.get(f"{__package__}.own_model")
    return module.ModelError if module is not None else _NoError


class _NoError(Exception):
    pass


def main(argv=None):
    with readable_streams():
        return _main(sys.argv[1:] if argv is None else list(argv))


def _main(argv):
    parser, sub = make_parser()
    if not argv:  # no command: say how to call it, and what each command answers
        commands_help = "\n".join(f"  {name:15} {action.help}" for action in sub._choices_actions
                                  for name in [action.dest])
        print(f"{parser.format_usage()}\ncommands:\n{commands_help}\n\n"
              f"tinygrad-l2 COMMAND --help gives the options of a command", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    check(args, sub.choices[args.command])
    run = {"explain": commands.explain, "compare": commands.compare, "train": commands.train,
           "dcda": commands.dcda, "decay": commands.decay, "loss-or-update": commands.loss_or_update}
    if getattr(args, "model", None) is not None:
        from . import own_model  # imports Keras (and torch) only when asked
        run["explain"] = own_model.explain_model
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            # overflow is checked by each command, which says so in words (exit 1): no numpy warning
            warnings.simplefilter("ignore", RuntimeWarning)
            return run[args.command](args)
    except _model_error() as err:
        print(f"tinygrad-l2 explain: error: {err}", file=sys.stderr)
        return 2
    except commands.RUN_TIME_ERRORS as err:
        return commands.report(err)
    except BrokenPipeError:  # output piped into `head`: stop quietly
        sys.stderr.close()
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
