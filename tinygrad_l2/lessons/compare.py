"""Manual backprop vs autodiff: the same network, weights and batch, lined up tensor by tensor."""
import functools
import operator
from dataclasses import dataclass

import numpy as np

from . import manual
from .datasets import make_dataset
from ..nn.losses import binary_cross_entropy, quadratic_cost
from ..nn.regularizers import L2
from ..optim import SGD
from ..table import Result, Rounding, how_close
from ..tensor import Tensor
from ..trace import kappa_fit
from .costs import check_cost


# ---- deeplearning.ai convention --------------------------------------------------------------

def dlai_autodiff(parameters, X, Y, lambd=0.0, cost="cross_entropy"):
    """The course's network built from Tensors (column-major, Z_l = W_l @ A_(l−1) + b_l), with
    the cost as two graph terms: cross-entropy and L2.from_deeplearning_ai(λ, m)(W_l) summed.

    Returns a dict: "parameters" (W_l, b_l), "intermediates" (Z_l, A_l), "tensors" (both,
    named as in the course), "cost" (the data term), "penalty" (None when λ = 0), "loss"."""
    check_cost("dlai_autodiff", cost)
    return dlai_forward(dlai_parameters(parameters), X, Y, lambd, cost)


def dlai_parameters(parameters):
    """The course's parameters dict of arrays as leaf tensors named W1, b1, ... (copies)."""
    return {name: Tensor(array.copy(), requires_grad=True, name=name) for name, array in parameters.items()}


def dlai_forward(params, X, Y, lambd=0.0, cost="cross_entropy"):
    """`dlai_autodiff`'s graph over leaf tensors `params` (dlai_parameters): a step tl.compile
    can replay (the leaves are made outside it)."""
    L = len(params) // 2
    m = X.shape[1]
    intermediates = {}
    A = Tensor(X, name="A0")
    for l in range(1, L + 1):
        W, b = params[f"W{l}"], params[f"b{l}"]
        Z = W @ A + b
        A = Z.relu() if l < L else Z.sigmoid()
        Z.name, A.name = f"Z{l}", f"A{l}"
        intermediates[f"Z{l}"], intermediates[f"A{l}"] = Z, A
    data = (quadratic_cost(A, Y, batch_axis=1) if cost == "quadratic" else
            binary_cross_entropy(A, Tensor(Y, name="Y")))
    data.name = "cost"
    penalty = None
    if lambd:
        l2 = L2.from_deeplearning_ai(lambd, m)
        penalty = functools.reduce(operator.add, (l2(params[f"W{l}"]) for l in range(1, L + 1)))
        penalty.name = "L2 penalty"
    loss = data if penalty is None else data + penalty
    loss.name = "J"
    return {"parameters": params, "intermediates": intermediates,
            "tensors": {**params, **intermediates}, "cost": data, "penalty": penalty, "loss": loss}


def autodiff_gradients(graph):
    """Backward through a dlai_autodiff graph, keeping it (retain_graph) so that it can still
    be traced and drawn: {name: gradient} for every parameter and intermediate."""
    for t in graph["intermediates"].values():
        t.retain_grad()
    graph["loss"].backward(retain_graph=True)
    return {name: t.grad for name, t in graph["tensors"].items()}


@dataclass
class DlaiComparison(Result):
    """One row per gradient (dA_l, dZ_l, dW_l, db_l): the largest difference autodiff vs
    manual, and whether (and by how much) the L2 term changed the manual gradient."""
    layer_dims: tuple
    cost: str
    lambd: float
    m: int
    parameters: dict  # the course's W_l, b_l (numpy)
    manual: dict  # the course's gradients, with L2
    manual_without: dict  # and without
    autodiff: dict  # the engine's, scaled as the course scales them (dA, dZ: ×m)
    graph: dict  # the autodiff graph (see dlai_autodiff), backpropagated and kept

    columns = ["gradient", "shape", "max |autodiff − manual|", "changed by L2",
               "max |Δ from L2|", "Δ / W (= λ/m)"]

    @property
    def title(self):
        return (f"deeplearning.ai convention, layers {list(self.layer_dims)}, {self.cost} cost, "
                f"m={self.m}, λ={self.lambd}: autodiff vs manual backprop (dA, dZ as the course "
                f"scales them: ×m)")

    def rows(self):
        rows = []
        for key, manual_grad in self.manual.items():
            delta = manual_grad - self.manual_without[key]
            changed = not np.array_equal(manual_grad, self.manual_without[key])
            ratio = kappa_fit(delta, self.parameters[key[1:]]) if changed and key[:2] == "dW" else None
            rows.append([key, tuple(manual_grad.shape), self.difference(key), changed,
                         float(np.abs(delta).max()), ratio])
        return rows

    def difference(self, key):
        """max |autodiff − manual| for one gradient, printed as rounding when it is."""
        return Rounding(np.abs(self.autodiff[key] - self.manual[key]).max(),
                        np.abs(self.manual[key]).max(initial=0))

    def agreement(self):
        """In words: 'to rounding (every difference ≤ 1e-N)', or the largest difference."""
        return how_close([self.difference(key) for key in self.manual])

    def max_difference(self):
        """The largest |autodiff − manual|; nan if any value is nan (never a false agreement)."""
        return float(np.max([float(self.difference(key)) for key in self.manual]))

    def changed_by_l2(self):
        return [row[0] for row in self.rows() if row[3]]


def compare_dlai(layer_dims=(2, 20, 3, 1), X=None, Y=None, lambd=0.7, seed=3, cost="cross_entropy",
                 parameters=None):
    """Manual vs autodiff for the course's network; X (n0, m) and Y (1, m) default to the
    built-in dataset's training set, transposed."""
    check_cost("compare_dlai", cost)
    if X is None or Y is None:
        X, Y = make_dataset(seed=0).column_major()
    if X.shape[0] != layer_dims[0]:
        raise ValueError(f"compare_dlai: X has {X.shape[0]} features (rows) but the first "
                         f"layer size is {layer_dims[0]}")
    parameters = parameters or manual.dlai_initialize(layer_dims, seed=seed)
    m = X.shape[1]
    AL, caches = manual.dlai_forward(X, parameters)
    order = [f"{kind}{l}" for l in range(len(layer_dims) - 1, 0, -1) for kind in ("dA", "dZ", "dW", "db")]
    by_hand = manual.dlai_backward(AL, Y, caches, lambd=lambd, cost=cost)
    without = manual.dlai_backward(AL, Y, caches, lambd=0.0, cost=cost)
    graph = dlai_autodiff(parameters, X, Y, lambd, cost)
    grads = autodiff_gradients(graph)
    # the course's dA and dZ omit the 1/m that its dW and db carry
    autodiff = {key: grads[key[1:]] * m if key[:2] in ("dA", "dZ") else grads[key[1:]] for key in order}
    return DlaiComparison(tuple(layer_dims), cost, lambd, m, parameters, {k: by_hand[k] for k in order},
                          {k: without[k] for k in order}, autodiff, graph)


# ---- Nielsen's convention --------------------------------------------------------------------

@dataclass
class NielsenComparison(Result):
    """The same sigmoid network trained with Nielsen's per-example backprop and update rule
    and with autodiff + L2 in the loss + plain SGD: one row per weight and bias after training."""
    sizes: tuple
    cost: str
    lmbda: float
    eta: float
    n: int
    updates: int
    manual_weights: list
    manual_biases: list
    autodiff_weights: list
    autodiff_biases: list

    columns = ["parameter", "shape", "max |autodiff − manual|"]

    @property
    def title(self):
        return (f"Nielsen convention, sizes {list(self.sizes)}, {self.cost} cost, λ={self.lmbda}, "
                f"n={self.n}, η={self.eta}: weights after {self.updates} mini-batch updates")

    def rows(self):
        rows = []
        for l, (w, b) in enumerate(zip(self.manual_weights, self.manual_biases), start=1):
            rows.append([f"w{l}", tuple(w.shape), float(np.abs(self.autodiff_weights[l - 1] - w).max())])
            rows.append([f"b{l}", tuple(b.shape), float(np.abs(self.autodiff_biases[l - 1] - b).max())])
        return rows

    def max_difference(self):
        """The largest |autodiff − manual|; nan if any value is nan (never a false agreement)."""
        return float(np.max([row[2] for row in self.rows()]))


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
    check_cost("compare_nielsen", cost)
    if X is None or Y is None:
        X, Y = make_dataset(seed=0).column_major()
    n = X.shape[1]
    weights, biases = manual.nielsen_initialize(sizes, seed=seed)
    W = [Tensor(w.copy(), requires_grad=True, name=f"w{l}") for l, w in enumerate(weights, 1)]
    B = [Tensor(b.copy(), requires_grad=True, name=f"b{l}") for l, b in enumerate(biases, 1)]
    optimizer = SGD(W + B, lr=eta)
    l2 = L2.from_nielsen(lmbda, n)
    updates = 0
    for _ in range(epochs):
        for start in range(0, n, batch_size):
            xb, yb = X[:, start:start + batch_size], Y[:, start:start + batch_size]
            batch = [(xb[:, [i]], yb[:, [i]]) for i in range(xb.shape[1])]
            weights, biases = manual.nielsen_update_mini_batch(weights, biases, batch, eta, lmbda, n, cost)
            optimizer.zero_grad()
            _nielsen_loss(W, B, xb, yb, cost, l2).backward()
            optimizer.step()
            updates += 1
    return NielsenComparison(tuple(sizes), cost, lmbda, eta, n, updates, weights, biases,
                             [w.data for w in W], [b.data for b in B])
