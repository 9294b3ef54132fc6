"""`tinygrad-l2 explain --model ...`: the explain analysis on the learner's own model — where its
L2 enters, measured on a synthetic batch.

    --model mine.keras                Keras 3 file: its own kernel/bias/gamma/beta regularizers
    --model net.pt2                   torch.export program (torch.export.save): its ATen graph,
                                      the batch shaped as the program's example input
    --model my_net.py:model           a torch.nn.Module, or a zero-argument function returning
    --model pkg.mod:make_model        one, in a file or an importable module; one example's
                                      shape from --input-shape, else the module's `input_shape`

Keras' `kernel_regularizer=L2(l2)` adds l2·ΣW² to the loss (`model.losses`); the converted
model's `regularization_loss()` is that same sum, so the per-term gradients answer "is it
added to the loss or to the update?" on the learner's own file: to the loss, and its gradient
2·l2·W reaches the regularized tensors and nothing else.  A PyTorch model has no regularizer:
its L2 is the optimizer's `--weight-decay` wd (SGD/Adam, coupled: g ← g + wd·θ on every
parameter of the group, biases included), carried as the loss term it is the gradient of,
(wd/2)·Σθ² on every parameter, as `tl.from_torch` carries an optimizer's weight_decay.
"""
from pathlib import Path

import numpy as np

from .. import nn, trace
from ..drawing import render
from ..interop.layers import Softmax
from ..interop.traced import Traced
from ..tensor import Tensor
from ..trace import kappa_fit
from . import torch_model
from .lam import Lambda
from .torch_model import ModelError


def kind_of(spec):
    """'keras', 'pt2' or 'torch' (module:attribute): which route a --model spec takes."""
    suffix = Path(spec).suffix
    return "keras" if suffix == ".keras" else "pt2" if suffix == ".pt2" else "torch"


def load(path):
    """(Keras model, converted tl model) for a .keras file, or a ModelError saying why not."""
    if not Path(path).is_file():
        raise ModelError(f"--model {path}: no such file")
    try:
        from ..interop import keras as interop_keras
        keras = interop_keras.import_keras()
        kmodel = keras.saving.load_model(path, compile=False)
        return kmodel, interop_keras.from_keras(kmodel)
    except ImportError as err:
        raise ModelError(str(err).splitlines()[0]) from None
    except (ValueError, TypeError) as err:
        raise ModelError(f"--model {path}: {str(err).splitlines()[0]}") from None


def keras_batch(kmodel, m, rng):
    """Standard normal inputs of the Keras model's input shape and dtype."""
    shape = tuple(kmodel.inputs[0].shape[1:])
    if any(n is None for n in shape):
        raise ModelError(f"the model's input shape {shape} is not fixed: can't make a batch")
    return rng.standard_normal((m,) + shape).astype(np.dtype(kmodel.inputs[0].dtype))


def data_loss(model, out, labels):
    """Cross-entropy: on logits, or on probabilities when the model ends in a softmax."""
    last = list(model.children())[-1] if model.children() else None
    if isinstance(last, Softmax):
        picked = out[np.arange(len(labels)), labels]
        return -(picked.log().mean())
    return nn.functional.cross_entropy(out, labels)


def keras_model(args):
    """(tl model, batch, generator for the labels, what to print about it) for a .keras file."""
    kmodel, model = load(args.model)
    rng = np.random.default_rng(args.seed)
    X = keras_batch(kmodel, args.m, rng)
    penalty = model.regularization_loss()
    keras_sum = float(sum(loss.detach().cpu().numpy() if hasattr(loss, "detach") else np.asarray(loss)
                          for loss in kmodel.losses)) if kmodel.losses else 0.0
    ours = penalty.item()
    difference = abs(ours - keras_sum) / max(abs(keras_sum), np.finfo(np.float64).tiny)
    about = (f"Your model: {args.model} — {len(kmodel.layers)} Keras layers, converted to:\n{model}\n",
             f"Keras adds its regularizers to the LOSS: sum(model.losses) = {keras_sum:.6g}, the "
             f"converted model's regularization_loss() = {ours:.6g} (relative difference "
             f"{difference:.0e}, {penalty.dtype} rounding)\n")
    return model, X, rng, about


def pytorch_model(args):
    """(tl model, batch, generator for the labels, what to print about it) for a .pt2 file or
    a module:attribute."""
    model, X, source, rng = torch_model.load(args.model, args.input_shape, args.m, args.seed)
    torch_model.decay_every_parameter(model, args.weight_decay)
    shown = model.code() if isinstance(model, Traced) else str(model)
    lam = Lambda("torch", args.weight_decay)
    about = (f"Your model: {args.model} — {source}, converted to:\n{shown}\n",
             f"{lam.describe()}.\nA PyTorch model has no regularizer: its L2 is the optimizer's "
             f"weight_decay = {args.weight_decay:g} (SGD or Adam, not AdamW), which decays every "
             f"parameter of its group, biases included; carried here as the loss term it is the "
             f"gradient of, (wd/2)·Σθ² on every parameter (tl.nn.L2({args.weight_decay / 2:g}) each)\n")
    return model, X, rng, about


def explain_model(args):
    route = keras_model if kind_of(args.model) == "keras" else pytorch_model
    model, X, rng, (header, framework) = route(args)
    model.eval()
    out = model(Tensor(X, name="X"))
    y = rng.integers(0, out.shape[-1], len(X))
    data = data_loss(model, out, y)
    penalty = model.regularization_loss()
    params = dict(model.named_parameters())
    print(header)
    print(f"Synthetic batch: {len(X)} inputs of shape {X.shape[1:]} (standard normal, seed "
          f"{args.seed}), random labels; data term: cross-entropy\n")
    print(framework)
    traced = trace.trace_terms({"data": data, "l2": penalty}, params)
    print(traced)
    reached = [name for name in params if traced.reaches("l2", name)]
    print(f"\nL2 reaches only: {', '.join(reached) or 'nothing (no regularizer)'}")
    for name in reached:
        kappa = kappa_fit(traced.contribution("l2", name), params[name].data)
        print(f"  ∂(L2)/∂{name} = " + (f"{kappa:.6g}·{name}" if kappa is not None else
                                      f"κ·{name} = 0 ({name} is all zeros now)"))
    drawn = {"data": data} | ({"l2": penalty} if penalty.requires_grad else {})  # no L2: no term
    written = [render(data + penalty, Path(args.out) / f"model_graph{suffix}", terms=drawn,
                      params=params, rankdir=args.rankdir)
               for suffix in (".svg", ".png")]
    print("\ngraph (edges coloured by the loss term whose gradient travels them): "
          + ", ".join(str(p) for p in written))
    return 0
