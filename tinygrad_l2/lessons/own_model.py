"""`tinygrad-l2 explain --model FILE.keras`: the explain analysis on the learner's own Keras
model — where its L2 enters, measured on a synthetic batch.

Keras' `kernel_regularizer=L2(l2)` adds l2·ΣW² to the loss (`model.losses`); the converted
model's `regularization_loss()` is that same sum, so the per-term gradients answer "is it
added to the loss or to the update?" on the learner's own file: to the loss, and its gradient
2·l2·W reaches the regularized tensors and nothing else.
"""
from pathlib import Path

import numpy as np

from .. import nn, trace
from ..drawing import render
from ..interop.layers import Softmax
from ..tensor import Tensor
from ..trace import kappa_fit


class ModelError(Exception):
    """The --model file can't be read or converted (a one-line error, exit status 2)."""


def load(path):
    """(Keras model, converted tl model) for a .keras file, or a ModelError saying why not."""
    if Path(path).suffix != ".keras":
        raise ModelError(f"--model {path}: expected a Keras 3 .keras file")
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


def synthetic_batch(kmodel, m, seed):
    """Standard normal inputs of the model's input shape and random integer labels."""
    rng = np.random.default_rng(seed)
    shape = tuple(kmodel.inputs[0].shape[1:])
    if any(n is None for n in shape):
        raise ModelError(f"the model's input shape {shape} is not fixed: can't make a batch")
    dtype = np.dtype(kmodel.inputs[0].dtype)
    classes = int(kmodel.outputs[0].shape[-1])
    return rng.standard_normal((m,) + shape).astype(dtype), rng.integers(0, classes, m)


def data_loss(model, out, labels):
    """Cross-entropy: on logits, or on probabilities when the model ends in a softmax."""
    last = list(model.children())[-1]
    if isinstance(last, Softmax):
        picked = out[np.arange(len(labels)), labels]
        return -(picked.log().mean())
    return nn.functional.cross_entropy(out, labels)


def explain_model(args):
    kmodel, model = load(args.model)
    X, y = synthetic_batch(kmodel, args.m, args.seed)
    model.eval()
    data = data_loss(model, model(Tensor(X, name="X")), y)
    penalty = model.regularization_loss()
    params = dict(model.named_parameters())
    print(f"Your model: {args.model} — {len(kmodel.layers)} Keras layers, converted to:\n{model}\n")
    print(f"Synthetic batch: {args.m} inputs of shape {X.shape[1:]} (standard normal, seed "
          f"{args.seed}), random labels; data term: cross-entropy\n")
    keras_sum = float(sum(loss.detach().cpu().numpy() if hasattr(loss, "detach") else np.asarray(loss)
                          for loss in kmodel.losses)) if kmodel.losses else 0.0
    ours = penalty.item()
    difference = abs(ours - keras_sum) / max(abs(keras_sum), np.finfo(np.float64).tiny)
    print(f"Keras adds its regularizers to the LOSS: sum(model.losses) = {keras_sum:.6g}, "
          f"the converted model's regularization_loss() = {ours:.6g} (relative difference "
          f"{difference:.0e}, {penalty.dtype} rounding)\n")
    traced = trace.trace_terms({"data": data, "l2": penalty}, params)
    print(traced)
    reached = [name for name in params if np.any(traced.contribution("l2", name))]
    print(f"\nL2 reaches only: {', '.join(reached) or 'nothing (no regularizer)'}")
    for name in reached:
        print(f"  ∂(L2)/∂{name} = {kappa_fit(traced.contribution('l2', name), params[name].data):.6g}·{name}")
    written = [render(data + penalty, Path(args.out) / f"model_graph{suffix}",
                      terms={"data": data, "l2": penalty}, params=params, rankdir=args.rankdir)
               for suffix in (".svg", ".png")]
    print("\ngraph (edges coloured by the loss term whose gradient travels them): "
          + ", ".join(str(p) for p in written))
    return 0
