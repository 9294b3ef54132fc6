"""The learners' questions, each answered by a measurement: a result object with a table
(what was computed) and the answer in words (why it comes out that way).

    output_gradient   "With L2, is C'(a) = a − y still?"       (Nielsen-style sigmoid network)
    decay             "Update, then subtract a fraction of the weight: what λ is that?"
    loss_or_update    "Is L2 added to the loss or to the update?"  (a Keras-style Conv2D model)
"""
import functools
import operator
from dataclasses import dataclass

import numpy as np

from ..nn import L2, binary_cross_entropy, quadratic_cost
from ..table import Result, Rounding, how_close
from ..tensor import Tensor
from ..trace import trace_terms
from . import manual
from .costs import COSTS, check_cost
from .datasets import make_dataset
from .lam import Lambda


# ---- 1. dC/da with and without L2 --------------------------------------------------------------

FORMULAS = {"quadratic": ("dC/da = (a − y)/m", "δᴸ = dC/dz = (a − y)·σ'(z)/m"),
            "cross_entropy": ("dC/da = (a − y)/(a(1 − a)·m)", "δᴸ = dC/dz = (a − y)/m")}


@dataclass
class OutputGradient(Result):
    """Per cost and λ: the measured dC/da and δᴸ against the formulas, and L2's share."""
    sizes: tuple
    m: int
    lam: Lambda
    measured: list  # (cost, λ, |dC/da − formula|, |δ − formula|, |dC/da(λ) − dC/da(0)|, L2 reaches a)

    columns = ["cost", "λ", "dC/da formula", "max |dC/da − formula|", "max |Δ dC/da from L2|",
               "L2 reaches a", "δᴸ formula", "max |δᴸ − formula|"]
    keys = 2

    @property
    def title(self):
        return (f"{self.lam.describe()}\ndC/da at the output a = σ(z) of a {list(self.sizes)} sigmoid "
                f"network, m = {self.m} examples, C = cost + L2")

    def rows(self):
        return [[cost, lam, FORMULAS[cost][0], da, delta, reach, FORMULAS[cost][1], dz]
                for cost, lam, da, dz, delta, reach in self.measured]

    def answer(self):
        return (f"With L2, dC/da is the cost's own derivative, unchanged: the formulas hold "
                f"{how_close([d for r in self.measured for d in r[2:4]])} with λ = 0 and with λ = {self.lam.value:g}, and adding L2 changes dC/da "
                f"by exactly 0. The L2 term contributes 0 to dC/da because it has no path from a: "
                f"it is computed from the weights alone, so reverse mode sends its gradient only "
                f"to W (dW gains κ·W), never to a, z or b. With cross-entropy and a sigmoid output, "
                f"δᴸ = a − y (÷ m) with or without L2.")


def output_gradient(lam, sizes=(2, 8, 1), m=64, seed=0):
    """Measure dC/da and δᴸ with λ = 0 and with `lam` (a Lambda), for both costs."""
    X, Y = make_dataset(n_train=m, seed=seed).column_major()
    weights, biases = manual.nielsen_initialize(sizes, seed=seed)
    measured = []
    for cost in COSTS:
        grads = {}
        for kappa in (0.0, lam.kappa):
            a, z, da, dz, reach = _output_grads(weights, biases, X, Y, cost, kappa)
            formula_da, formula_dz = _output_formulas(cost, a, z, Y)
            grads[kappa] = da
            measured.append([cost, lam.value if kappa else 0.0, _difference(da, formula_da),
                             _difference(dz, formula_dz), 0.0, reach])
        measured[-1][4] = float(np.abs(grads[lam.kappa] - grads[0.0]).max())
    return OutputGradient(tuple(sizes), X.shape[1], lam, [tuple(r) for r in measured])


def _difference(measured, reference):
    """max |measured − reference|, shown as rounding when it is."""
    return Rounding(np.abs(measured - reference).max(), np.abs(reference).max(initial=0))


def _output_grads(weights, biases, X, Y, cost, kappa):
    W = [Tensor(w, requires_grad=True) for w in weights]
    B = [Tensor(b, requires_grad=True) for b in biases]
    a = Tensor(X)
    for w, b in zip(W, B):
        z = w @ a + b
        a = z.sigmoid()
    z.retain_grad(), a.retain_grad()
    data = quadratic_cost(a, Y, batch_axis=1) if cost == "quadratic" else binary_cross_entropy(a, Y)
    penalty = functools.reduce(operator.add, (L2(kappa / 2)(w) for w in W))
    reach = trace_terms({"l2": penalty}, {"a": a}).reaches("l2", "a")
    (data + penalty).backward()
    return a.data, z.data, a.grad, z.grad, reach


def _output_formulas(cost, a, z, Y):
    m = Y.shape[1]
    check_cost("output_gradient", cost)
    if cost == "quadratic":
        return (a - Y) / m, (a - Y) * a * (1 - a) / m
    return (a - Y) / (a * (1 - a) * m), (a - Y) / m


# ---- 2. a fixed fraction of the weight per step ---------------------------------------------

@dataclass
class Decay(Result):
    """Nielsen's update w ← (1 − ηλ/n)·w − η·∇C₀ as a fraction f = ηλ/n of w per step: what λ a
    fixed f stands for when η or n change, the same penalty in the other conventions, and a
    run in which the four ways of applying it give the same weights."""
    lam: Lambda  # Nielsen's λ and n
    eta: float
    batch_size: int
    steps: int
    agreement: list  # (implementation, max |W − W_loss|)
    one_step: list  # (parameter, factor on its old value, bit-identical without L2)

    columns = ["implementation", "max |W − W(L2 in the loss)| after the run"]

    @property
    def fraction(self):
        return self.eta * self.lam.kappa

    @property
    def title(self):
        return (f"{self.steps} SGD steps of η = {self.eta:g}, mini-batches of {self.batch_size}, from "
                f"the same weights")

    def rows(self):
        return [list(row) for row in self.agreement]

    def tables(self):
        from ..table import Table
        n, f = self.lam.size, self.fraction
        scaled = [(eta, size, f * size / eta) for eta in (self.eta / 2, self.eta, 2 * self.eta)
                  for size in (n // 2, n, 2 * n)]
        held = Table(["η", "n", "λ (Nielsen) that gives the same fraction"], scaled, title=(
            f"{self.lam.describe()}\nSubtracting the fixed fraction f = ηλ/n = {f:.6g} of w each "
            f"step is λ = f·n/η: change η or n and the same f is another λ"))
        conversions = Table(["convention", "value", "meaning"], [row[:3] for row in self.conversions()],
                            title="The same penalty in the other conventions")
        steps = Table(["parameter", "factor on its old value", "update bit-identical without L2"],
                      self.one_step, title=f"One step of η = {self.eta:g} from the same weights and batch, "
                      f"with L2 against without: w ← factor·w − η·∇C₀")
        return [held, conversions, steps, self.table()]

    def conversions(self):
        """(convention, value, meaning, the command that gives this κ back) per convention."""
        n, kappa = self.lam.size, self.lam.kappa
        back = f"tinygrad-l2 decay --n {n} --convention"
        return [("Nielsen lmbda", self.lam.value, f"(λ/2n)·Σw², n = {n}", f"{back} nielsen --lambd {self.lam.value:g}"),
                ("Keras L2(l2)", self.lam.to("keras").value, "loss l2·Σw²",
                 f"{back} keras --lambd {self.lam.to('keras').value:g}"),
                ("PyTorch SGD weight_decay", self.lam.to("torch").value,
                 "g ← g + wd·w on every parameter in its group", f"{back} torch --lambd {kappa:g}"),
                ("deeplearning.ai lambd", self.lam.to("dlai", n).value, f"(1/m)(λ/2)·Σ‖W‖², m = n = {n}",
                 f"{back} dlai --lambd {self.lam.to('dlai', n).value:g}"),
                ("κ (gradient coefficient)", kappa, "dW gains κ·W", "")]

    def answer(self):
        commands = "\n".join(f"  {row[3]}" for row in self.conversions() if row[3])
        return (f"Each converted value gives κ = {self.lam.kappa:.6g} back:\n{commands}\n"
                f"PyTorch's weight_decay decays every parameter of its group, biases too; to decay the "
                f"weights only, put the biases in a group of their own with weight_decay=0.\n\n"
                f"A bias's update is bit-identical with and without L2 (factor exactly 1): the penalty "
                f"(λ/2n)·Σw² has no bias in it, so its gradient with respect to b is 0 and "
                f"b ← b − η·∂C₀/∂b either way.\n\n"
                f"Each step removes the fraction f = ηλ/n = {self.fraction:.6g} of every weight (biases "
                f"untouched); that is L2 in the loss with κ = λ/n. An implementation that subtracts "
                f"a fixed fraction has no λ of its own: its λ is f·n/η, so it changes whenever η or "
                f"n does. Applied to the weights before the step, the fraction gives the same "
                f"weights as L2 in the loss {how_close([d for _, d in self.agreement])}.")


def decay(lam, eta, batch_size=10, steps=20, sizes=(2, 8, 1), seed=0):
    """Four implementations of Nielsen's L2 step on his network, from the same weights."""
    X, Y = make_dataset(n_train=lam.size, seed=seed).column_major()
    weights, biases = manual.nielsen_initialize(sizes, seed=seed)
    runs = {name: _decay_run(name, weights, biases, X, Y, lam, eta, batch_size, steps)
            for name in ("L2 in the loss", "SGD weight_decay = κ on the weights",
                         "plain step, then w −= f·w (w before the step)", "Nielsen's own update")}
    reference = runs.pop("L2 in the loss")
    scale = max(np.abs(a).max() for a in reference)
    agreement = [(name, Rounding(max(np.abs(a - b).max() for a, b in zip(reference, got)), scale))
                 for name, got in runs.items()]
    return Decay(lam, eta, batch_size, steps, agreement, _one_step(weights, biases, X, Y, lam, eta, batch_size))


def _one_step(weights, biases, X, Y, lam, eta, batch_size):
    """One SGD step with L2 in the loss and one without, from the same weights and batch: the
    factor on each parameter's old value (1 − ηκ for a weight, 1 for a bias), and whether the
    two updates are bit-identical."""
    from ..trace import kappa_fit
    with_l2 = _decay_run("L2 in the loss", weights, biases, X, Y, lam, eta, batch_size, 1)
    without = _decay_run("L2 in the loss", weights, biases, X, Y, Lambda("nielsen", 0.0, lam.size), eta,
                         batch_size, 1)
    names = [f"w{l}" for l in range(1, len(weights) + 1)] + [f"b{l}" for l in range(1, len(biases) + 1)]
    return [(name, 1 + (kappa_fit(a - b, old) or 0.0), bool(np.array_equal(a, b)))
            for name, a, b, old in zip(names, with_l2, without, weights + biases)]


def _decay_run(name, weights, biases, X, Y, lam, eta, batch_size, steps):
    from ..optim import SGD
    if name == "Nielsen's own update":
        w, b = [x.copy() for x in weights], [x.copy() for x in biases]
        for start in _batches(X.shape[1], batch_size, steps):
            batch = [(X[:, [i]], Y[:, [i]]) for i in range(start, start + batch_size)]
            w, b = manual.nielsen_update_mini_batch(w, b, batch, eta, lam.value, lam.size, "quadratic")
        return w + b
    W = [Tensor(x.copy(), requires_grad=True) for x in weights]
    B = [Tensor(x.copy(), requires_grad=True) for x in biases]
    in_loss = name == "L2 in the loss"
    groups = [{"params": W, "weight_decay": lam.kappa if "weight_decay" in name else 0.0},
              {"params": B, "weight_decay": 0.0}]
    opt = SGD(groups, lr=eta)
    for start in _batches(X.shape[1], batch_size, steps):
        before = [w.data.copy() for w in W]
        opt.zero_grad()
        loss = _nielsen_quadratic(W, B, X[:, start:start + batch_size], Y[:, start:start + batch_size])
        if in_loss:
            loss = loss + functools.reduce(operator.add, (L2.from_nielsen(lam.value, lam.size)(w) for w in W))
        loss.backward()
        opt.step()
        if name.startswith("plain"):
            for w, old in zip(W, before):
                w.data -= eta * lam.kappa * old
    return [t.data for t in W + B]


def _batches(n, batch_size, steps):
    return [(k * batch_size) % (n - n % batch_size or n) for k in range(steps)]


def _nielsen_quadratic(W, B, x, y):
    a = Tensor(x)
    for w, b in zip(W, B):
        a = (w @ a + b).sigmoid()
    return quadratic_cost(a, y, batch_axis=1)


# ---- 3. in the loss or in the update: a Keras-style Conv2D model ------------------------------

@dataclass
class LossOrUpdate(Result):
    """L2 as a loss term (kernel_regularizer) against L2 as the update (SGD weight_decay on
    the kernels only): what the term sends to each tensor, and the two SGD trajectories."""
    lam: Lambda  # Keras
    steps: int
    lr: float
    contributions: list  # (tensor, kind, L2's gradient norm, fitted κ or None, residual)
    trajectory: float  # max |θ_loss − θ_update| over every step and parameter
    worst_loss: float = 0.0  # the largest loss of either run (inf/nan: the run overflowed)

    columns = ["tensor", "kind", "‖L2's gradient‖", "L2's gradient = κ·tensor, κ =", "max |Δ − κ·tensor|"]

    @property
    def title(self):
        return (f"{self.lam.describe()}\nKeras' Conv2D(256, (5, 5), padding=\"same\", kernel_regularizer=l2) as "
                f"Conv2d(1, 256, 5, padding=\"same\") → ReLU → MaxPool2d(2) → Flatten → Linear(4096, 10), "
                f"L2 on both kernels, 8×8 inputs, batches of 16")

    def rows(self):
        return [list(row) for row in self.contributions]

    def answer(self):
        return (f"Added to the loss: L2 is a term of the loss, and its gradient, κ·W on each kernel "
                f"(κ = {self.lam.kappa:g}) and 0 on biases and activations, is what reaches the "
                f"update. SGD with weight_decay = κ on the kernels only adds the same κ·W inside "
                f"the update instead: over {self.steps} steps of lr {self.lr:g} the two trajectories "
                f"agree {how_close([self.trajectory])}. The same identity does not hold for "
                f"Adam (use AdamW for a decoupled decay).")


def loss_or_update(lam, steps=10, lr=0.1, seed=0):
    """The two ways on one small ConvNet, from the same weights and batches."""
    from ..nn import Conv2d, Flatten, Linear, MaxPool2d, ReLU, Sequential, softmax_cross_entropy, weights_and_biases
    from ..optim import SGD

    def convnet(regularizer):  # Keras: Conv2D(256, (5, 5), padding="same", kernel_regularizer=l2(reg))
        return Sequential(Conv2d(1, 256, 5, padding="same", kernel_regularizer=regularizer, dtype=np.float64,
                                 rng=seed), ReLU(), MaxPool2d(2), Flatten(),
                          Linear(256 * 4 * 4, 10, kernel_regularizer=regularizer, dtype=np.float64, rng=seed + 1))
    rng = np.random.default_rng(seed)
    batches = [(rng.standard_normal((16, 1, 8, 8)), rng.integers(0, 10, 16)) for _ in range(steps)]
    in_loss, in_update = convnet(L2(lam.to("keras").value)), convnet(None)
    kernels, biases = weights_and_biases(in_update)
    sgd_loss = SGD(in_loss.parameters(), lr=lr)
    sgd_update = SGD([{"params": kernels, "weight_decay": lam.kappa}, {"params": biases}], lr=lr)
    contributions, worst, scale, losses = None, 0.0, 0.0, []
    for x, y in batches:
        for model, opt in ((in_loss, sgd_loss), (in_update, sgd_update)):
            opt.zero_grad()
            cost, penalty = softmax_cross_entropy(model(Tensor(x)), y), model.regularization_loss()
            if contributions is None and model is in_loss:
                contributions = _term_rows(model, penalty, x, lam.kappa)
            loss = cost + penalty
            loss.backward()
            opt.step()
            losses.append(loss.item())
        worst = max(worst, max(float(np.abs(p.data - q.data).max())
                               for p, q in zip(in_loss.parameters(), in_update.parameters())))
        scale = max(scale, max(float(np.abs(p.data).max()) for p in in_loss.parameters()))
    return LossOrUpdate(lam, steps, lr, contributions, Rounding(worst, scale), float(np.max(losses)))


def _term_rows(model, penalty, x, kappa):
    """What the L2 term sends to each parameter, to the first layer's output and to the logits."""
    from ..nn import weights_and_biases
    from ..trace import kappa_fit
    named = dict(model.named_parameters())
    kernels = {id(w) for w in weights_and_biases(model)[0]}
    hidden = model[0](Tensor(x))
    logits = model[4](model[3](model[2](model[1](hidden))))
    traced = trace_terms({"l2": penalty}, {**named, "0 output": hidden, "logits": logits})
    rows = []
    for name, t in {**named, "0 output": hidden, "logits": logits}.items():
        g = traced.contribution("l2", name)
        fit = kappa_fit(g, t.data) if np.any(g) else None
        kind = "kernel" if id(t) in kernels else "bias" if name in named else "activation"
        rows.append((name, kind, float(np.linalg.norm(g)), fit,
                     None if fit is None else Rounding(np.abs(g - fit * t.data).max(), np.abs(g).max())))
    return rows
