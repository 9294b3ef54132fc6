"""Training helpers of the lessons: the classifier, its accuracy, and a run without and with L2
from the same initial weights."""
import sys
import time

import numpy as np

from ..context import no_grad
from ..nn import L2, MLP, binary_cross_entropy_with_logits
from ..optim import Adam
from ..tensor import Tensor
from .datasets import make_dataset


def _progress(label, step, total, start, stream=sys.stderr):
    """A one-line progress bar, redrawn in place on a terminal, every 10% otherwise."""
    width = 30
    done = int(width * step / total)
    elapsed = time.perf_counter() - start
    line = f"{label} [{'#' * done}{'.' * (width - done)}] {step}/{total} {elapsed:.1f}s"
    if stream.isatty():
        stream.write("\r" + line + ("\n" if step == total else ""))
    elif step == total or step % max(1, total // 10) == 0:
        stream.write(line + "\n")
    stream.flush()


def build_classifier(sizes, lam, seed):
    """Linear -> ReLU ... -> Linear (one logit), float64, L2(lam) on every kernel."""
    return MLP(sizes, kernel_regularizer=L2(lam) if lam else None, dtype=np.float64, rng=seed)


def accuracy(model, X, y):
    with no_grad():
        return float(((model(Tensor(X)).data[:, 0] > 0) == y).mean())


def train_pair(sizes, lam, steps, lr, seed, progress=True):
    """Train the same network (same initial weights) without and with L2; returns a dict per
    run with the model, the loss/accuracy curves and the final accuracies."""
    data = make_dataset(seed=0)
    X, y = Tensor(data.X_train), data.y_train[:, None].astype(np.float64)
    runs = {}
    for label, lam_run in (("without L2", 0.0), (f"with L2({lam:g})", lam)):
        model = build_classifier(sizes, lam_run, seed)
        opt = Adam(model.parameters(), lr=lr)
        curve = []
        start = time.perf_counter()
        for step in range(1, steps + 1):
            opt.zero_grad()
            data_loss = binary_cross_entropy_with_logits(model(X), y)
            (data_loss + model.regularization_loss()).backward()
            opt.step()
            if step % max(1, steps // 50) == 0 or step == steps:
                curve.append((step, data_loss.item(), accuracy(model, data.X_train, data.y_train),
                              accuracy(model, data.X_test, data.y_test)))
            if progress:
                _progress(f"{label:>18}", step, steps, start)
        runs[label] = dict(model=model, curve=curve,
                           train=accuracy(model, data.X_train, data.y_train),
                           test=accuracy(model, data.X_test, data.y_test))
    return data, runs
