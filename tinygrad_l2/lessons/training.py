"""Training runs of the lessons: the same classifier from the same initial weights, without and
with L2, with a chosen optimizer; the data loss and the penalty reported apart, so that runs
with and without L2 compare, and what L2 did said in words."""
import math
import sys
import time
from dataclasses import dataclass

import numpy as np

from ..context import no_grad
from ..nn import L2, MLP, binary_cross_entropy_with_logits, weights_and_biases
from ..optim import PSO, SGD, Adam, AdamW
from ..table import Result
from ..tensor import Tensor
from .datasets import make_dataset

OPTIMIZERS = ("sgd", "adam", "adamw", "pso")


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


@dataclass
class Run:
    """One training run: the model, its curve [(step, data loss, penalty, train, test)]."""
    label: str
    model: object
    curve: list
    data_loss: float
    penalty: float
    train: float
    test: float
    diverged: str = ""  # why the run is not a trained model ("" if it is)

    @property
    def kernel_norms(self):
        return [float(np.linalg.norm(w.data)) for w in weights_and_biases(self.model)[0]]


@dataclass
class TrainingComparison(Result):
    """The run without L2 and the run with it, side by side, and the verdict in words."""
    sizes: tuple
    optimizer: str
    steps: int
    lr: float
    lam: object  # lessons.lam.Lambda
    n_train: int
    n_test: int
    runs: list

    columns = ["run", "data loss", "L2 penalty", "train accuracy", "test accuracy", "gap",
               "‖W_l‖ per layer"]

    @property
    def title(self):
        how = "a swarm of 30 particles, no gradient, no lr" if self.optimizer == "pso" else f"lr {self.lr:g}"
        return (f"{self.lam.describe()}\n{list(self.sizes)} network, {self.steps} {self.optimizer} steps "
                f"({how}) on {self.n_train} noisy two-moons points, tested on {self.n_test}")

    def rows(self):
        return [[r.label, r.data_loss, r.penalty, r.train, r.test, r.train - r.test,
                 " ".join(f"{v:.3g}" for v in r.kernel_norms)] for r in self.runs]

    @property
    def regularizer(self):
        """What the second run adds: L2 in the loss, or (AdamW) decoupled weight decay."""
        return "decoupled weight decay" if self.optimizer == "adamw" else "L2"

    def noise(self):
        """Two standard errors of a test accuracy p over n_test points, 2·√(p(1−p)/n): a change
        smaller than this is a tie (another seed or CPU could reverse it)."""
        p = sum(r.test for r in self.runs) / len(self.runs)
        return 2 * math.sqrt(p * (1 - p) / self.n_test)

    def verdict(self):
        """What L2 did on this run, in words, including when it did not help or was a tie."""
        without, with_l2 = self.runs
        shrink = sum(with_l2.kernel_norms) / max(sum(without.kernel_norms), 1e-300)
        sizes = f"{self.regularizer[0].upper()}{self.regularizer[1:]} made the kernels {shrink:.2f}× as large in total"
        change, noise = with_l2.test - without.test, self.noise()
        if abs(change) <= noise:
            return (f"{sizes}; test accuracy went from {without.test:.3f} to {with_l2.test:.3f}, within "
                    f"the noise of {self.n_test} test points (±{noise:.3f}): on test accuracy, a tie.")
        if change > 0:
            return f"{sizes}, and test accuracy rose from {without.test:.3f} to {with_l2.test:.3f}."
        return (f"{sizes}, but test accuracy fell from {without.test:.3f} to {with_l2.test:.3f}: "
                f"{self.regularizer} did not help on this run (too strong, or the network was not overfitting).")


def train_pair(sizes, lam, steps, lr, seed, optimizer="adam", progress=True):
    """Train the same network (same initial weights) without and with L2 (`lam`, a Lambda;
    its Keras coefficient κ/2 on every kernel); returns a TrainingComparison."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"train_pair: optimizer must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    data = make_dataset(seed=0)
    runs = []
    labels = (("without decay", f"with AdamW wd = {lam.kappa:g}") if optimizer == "adamw" else
              ("without L2", f"with L2 (κ = {lam.kappa:g})"))
    for label, kappa in zip(labels, (0.0, lam.kappa)):
        model = build_classifier(sizes, kappa / 2 if optimizer != "adamw" else 0.0, seed)
        step = _stepper(optimizer, model, lr, kappa, data)
        decoupled = kappa if optimizer == "adamw" else 0.0
        initial, diverged = _losses(model, data, decoupled)[0], ""
        curve, start = [], time.perf_counter()
        for i in range(1, steps + 1):
            step()
            if i % max(1, steps // 50) == 0 or i == steps:
                curve.append((i, *_losses(model, data, decoupled), accuracy(model, data.X_train, data.y_train),
                              accuracy(model, data.X_test, data.y_test)))
                diverged = _divergence(model, curve[-1], initial, final=i == steps)
            if progress:
                _progress(f"{label:>18}", i, steps, start)
            if diverged:
                break
        _, data_loss, penalty, train, test = curve[-1]
        runs.append(Run(label, model, curve, data_loss, penalty, train, test, diverged))
    return TrainingComparison(tuple(sizes), optimizer, steps, lr, lam, len(data.y_train),
                              len(data.y_test), runs)


def _divergence(model, point, initial_loss, final):
    """Why the run at `point` (step, data loss, penalty, ...) diverged, or "": a loss or weight
    that overflowed to inf/nan, or a final data loss above twice the untrained network's (a
    spike on the way, which Adam often recovers from, is not a divergence)."""
    step, data_loss, penalty = point[:3]
    if not all(np.isfinite(x) for x in (data_loss, penalty)) or not all(
            np.all(np.isfinite(p.data)) for p in model.parameters()):
        return f"its loss or weights overflowed to inf/nan by step {step}"
    if final and data_loss > 2 * initial_loss:
        return (f"its data loss grew from {initial_loss:.3g} (untrained) to {data_loss:.3g} at the end "
                f"(step {step})")
    return ""


def _losses(model, data, decoupled_kappa):
    """(data loss, penalty) at the current weights; for AdamW the penalty its decay stands for."""
    with no_grad():
        X, y = Tensor(data.X_train), data.y_train[:, None].astype(np.float64)
        data_loss = binary_cross_entropy_with_logits(model(X), y).item()
        penalty = model.regularization_loss().item() + decoupled_kappa / 2 * sum(
            float(np.vdot(w.data, w.data)) for w in weights_and_biases(model)[0])
    return data_loss, penalty


def _stepper(optimizer, model, lr, kappa, data):
    """One training step of `optimizer` on the full training set (L2 in the loss; AdamW's
    decay decoupled, on the kernels only)."""
    X, y = Tensor(data.X_train), data.y_train[:, None].astype(np.float64)

    def loss():
        return binary_cross_entropy_with_logits(model(X), y) + model.regularization_loss()
    if optimizer == "pso":
        swarm = PSO(model.parameters(), n_particles=30, init_std=0.5, rng=0)
        return lambda: swarm.step(loss)
    weights, biases = weights_and_biases(model)
    opt = {"sgd": lambda: SGD(model.parameters(), lr=lr),
           "adam": lambda: Adam(model.parameters(), lr=lr),
           "adamw": lambda: AdamW([{"params": weights, "weight_decay": kappa},
                                   {"params": biases, "weight_decay": 0.0}], lr=lr)}[optimizer]()

    def step():
        opt.zero_grad()
        loss().backward()
        opt.step()
    return step
