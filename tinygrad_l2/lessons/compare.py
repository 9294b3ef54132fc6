"""Manual backprop vs autodiff: the same network, weights and batch, lined up tensor by tensor."""
import functools
import operator

import numpy as np

from . import manual
from .datasets import make_dataset
from ..nn.losses import binary_cross_entropy, quadratic_cost
from ..nn.regularizers import L2
from ..optim import SGD
from ..table import Table
from ..tensor import Tensor


# ---- deeplearning.ai convention --------------------------------------------------------------

def dlai_autodiff(parameters, X, Y, lambd=0.0, cost="cross_entropy"):
    """The course's network built from Tensors (column-major, Z_l = W_l @ A_(l−1) + b_l), with
    the cost as two graph terms: cross-entropy and L2.from_deeplearning_ai(λ, m)(W_l) summed.

    Returns a dict: "tensors" (every W, b, Z, A named as in the course), "cost" (the data
    term), "penalty" (None when λ = 0) and "loss"."""
    L = len(parameters) // 2
    m = X.shape[1]
    tensors = {}
    A = Tensor(X, name="A0")
    for l in range(1, L + 1):
        W = tensors[f"W{l}"] = Tensor(parameters[f"W{l}"].copy(), requires_grad=True, name=f"W{l}")
        b = tensors[f"b{l}"] = Tensor(parameters[f"b{l}"].copy(), requires_grad=True, name=f"b{l}")
        Z = W @ A + b
        A = Z.relu() if l < L else Z.sigmoid()
        Z.name, A.name = f"Z{l}", f"A{l}"
        tensors[f"Z{l}"], tensors[f"A{l}"] = Z, A
    if cost == "quadratic":
        data = quadratic_cost(A, Y, batch_axis=1)
    else:
        data = binary_cross_entropy(A, Tensor(Y, name="Y"))
    data.name = "cost"
    penalty = None
    if lambd:
        l2 = L2.from_deeplearning_ai(lambd, m)
        penalty = functools.reduce(operator.add, (l2(tensors[f"W{l}"]) for l in range(1, L + 1)))
        penalty.name = "L2 penalty"
    loss = data if penalty is None else data + penalty
    loss.name = "J"
    return {"tensors": tensors, "cost": data, "penalty": penalty, "loss": loss}


def _autodiff_grads(parameters, X, Y, lambd, cost):
    built = dlai_autodiff(parameters, X, Y, lambd, cost)
    tensors = built["tensors"]
    for name, t in tensors.items():
        if name[0] in "ZA":
            t.retain_grad()
    built["loss"].backward()
    return {name: t.grad for name, t in tensors.items()}


class DlaiComparison(Table):
    """One row per tensor (dA_l, dZ_l, dW_l, db_l): the largest difference autodiff vs manual,
    and whether (and by how much) the L2 term changed the manual gradient."""

    def __init__(self, layer_dims, X, Y, lambd, seed=3, cost="cross_entropy", parameters=None):
        parameters = parameters or manual.dlai_initialize(layer_dims, seed=seed)
        self.parameters = parameters
        m = X.shape[1]
        AL, caches = manual.dlai_forward(X, parameters)
        self.manual = manual.dlai_backward(AL, Y, caches, lambd=lambd, cost=cost)
        self.manual_without = manual.dlai_backward(AL, Y, caches, lambd=0.0, cost=cost)
        autodiff = _autodiff_grads(parameters, X, Y, lambd, cost)
        L = len(layer_dims) - 1
        rows = []
        self.autodiff = {}
        for l in range(L, 0, -1):
            for kind in ("dA", "dZ", "dW", "db"):
                key = f"{kind}{l}"
                grad = autodiff[key[1:]]
                # the course's dA and dZ omit the 1/m that its dW and db carry
                scaled = grad * m if kind in ("dA", "dZ") else grad
                self.autodiff[key] = scaled
                manual_grad = self.manual[key]
                difference = float(np.abs(scaled - manual_grad).max())
                delta = manual_grad - self.manual_without[key]
                changed = not np.array_equal(manual_grad, self.manual_without[key])
                ratio = None
                if changed and kind == "dW":
                    W = parameters[f"W{l}"]
                    ratio = float((delta * W).sum() / (W * W).sum())
                rows.append([key, tuple(manual_grad.shape), difference, changed,
                             float(np.abs(delta).max()), ratio])
        columns = ["gradient", "shape", "max |autodiff − manual|", "changed by L2",
                   "max |Δ from L2|", "Δ / W (= λ/m)"]
        super().__init__(columns, rows, title=(
            f"deeplearning.ai convention, layers {list(layer_dims)}, {cost} cost, m={m}, λ={lambd}: "
            f"autodiff vs manual backprop (dA, dZ as the course scales them: ×m)"))
        self.lambd, self.m = lambd, m

    def max_difference(self):
        return max(self.column("max |autodiff − manual|"))


def compare_dlai(layer_dims=(2, 20, 3, 1), X=None, Y=None, lambd=0.7, seed=3, cost="cross_entropy"):
    """Manual vs autodiff for the course's network; X (n0, m) and Y (1, m) default to the
    built-in dataset's training set, transposed."""
    if X is None or Y is None:
        X, Y = make_dataset(seed=0).column_major()
    if X.shape[0] != layer_dims[0]:
        raise ValueError(f"compare_dlai: X has {X.shape[0]} features (rows) but the first "
                         f"layer size is {layer_dims[0]}")
    if cost not in ("cross_entropy", "quadratic"):
        raise ValueError(f"compare_dlai: cost must be 'cross_entropy' or 'quadratic', got {cost!r}")
    return DlaiComparison(layer_dims, X, Y, lambd, seed=seed, cost=cost)


# ---- Nielsen's convention --------------------------------------------------------------------

class NielsenComparison(Table):
    """Train the same sigmoid network with Nielsen's per-example backprop and update rule and
    with autodiff + L2 in the loss + plain SGD; one row per weight and bias after training."""

    def __init__(self, sizes, X, Y, cost, lmbda, eta, batch_size, epochs, seed=0):
        n = X.shape[1]
        weights, biases = manual.nielsen_initialize(sizes, seed=seed)
        W = [Tensor(w.copy(), requires_grad=True, name=f"w{l}") for l, w in enumerate(weights, 1)]
        B = [Tensor(b.copy(), requires_grad=True, name=f"b{l}") for l, b in enumerate(biases, 1)]
        optimizer = SGD(W + B, lr=eta)
        l2 = L2.from_nielsen(lmbda, n)
        self.updates = 0
        for _ in range(epochs):
            for start in range(0, n, batch_size):
                xb, yb = X[:, start:start + batch_size], Y[:, start:start + batch_size]
                batch = [(xb[:, [i]], yb[:, [i]]) for i in range(xb.shape[1])]
                weights, biases = manual.nielsen_update_mini_batch(
                    weights, biases, batch, eta, lmbda, n, cost)
                optimizer.zero_grad()
                _nielsen_loss(W, B, xb, yb, cost, l2).backward()
                optimizer.step()
                self.updates += 1
        rows = []
        for l, (w, b) in enumerate(zip(weights, biases), start=1):
            rows.append([f"w{l}", tuple(w.shape), float(np.abs(W[l - 1].data - w).max())])
            rows.append([f"b{l}", tuple(b.shape), float(np.abs(B[l - 1].data - b).max())])
        super().__init__(["parameter", "shape", "max |autodiff − manual|"], rows, title=(
            f"Nielsen convention, sizes {list(sizes)}, {cost} cost, λ={lmbda}, n={n}, η={eta}: "
            f"weights after {self.updates} mini-batch updates"))
        self.manual_weights, self.manual_biases = weights, biases
        self.autodiff_weights = [w.data for w in W]
        self.autodiff_biases = [b.data for b in B]

    def max_difference(self):
        return max(self.column("max |autodiff − manual|"))


def _nielsen_loss(W, B, x, y, cost, l2):
    """C = (1/m)·Σ_x C_x + Σ_l (λ/2n)·‖w_l‖²: its SGD step is exactly the book's update."""
    a = Tensor(x)
    for w, b in zip(W, B):
        z = w @ a + b
        a = z.sigmoid()
    if cost == "quadratic":
        data = quadratic_cost(a, y, batch_axis=1)
    else:  # cross-entropy summed over output units, averaged over the batch
        data = binary_cross_entropy(a, y) * float(a.shape[0])
    return data + functools.reduce(operator.add, (l2(w) for w in W))


def compare_nielsen(sizes=(2, 8, 1), X=None, Y=None, cost="cross_entropy", lmbda=5.0,
                    eta=0.5, batch_size=10, epochs=3, seed=0):
    """Manual vs autodiff training for Nielsen's network; X (n_in, n), Y (n_out, n) default to
    the built-in dataset's training set."""
    if cost not in ("quadratic", "cross_entropy"):
        raise ValueError(f"compare_nielsen: cost must be 'quadratic' or 'cross_entropy', got {cost!r}")
    if X is None or Y is None:
        X, Y = make_dataset(seed=0).column_major()
    return NielsenComparison(sizes, X, Y, cost, lmbda, eta, batch_size, epochs, seed=seed)
