"""L2 adds κI to the Hessian: second derivatives with tl.grad(create_graph=True).

    python examples/09_l2_hessian.py

`tl.nn.L2(lam)` adds lam·ΣW² to the loss.  Its gradient is κ·W with κ = 2·lam, and its
Hessian is κ·I on the weights and 0 on the biases: the penalty adds the same curvature κ in
every weight direction, whatever the data loss does.  Hessian-vector products H·v (the
gradient of ⟨∇L, v⟩, one double backward) show it without forming H; for a small network
the whole weight block of H shows it too: every eigenvalue moves up by exactly κ.
"""
import numpy as np

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor
from tinygrad_l2.table import Rounding

lam = 0.05
kappa = 2 * lam
rng = np.random.default_rng(0)
X, y = Tensor(rng.standard_normal((32, 2))), rng.integers(0, 3, 32)
model = tl.nn.MLP((2, 6, 3), activation="tanh", kernel_regularizer=tl.nn.L2(lam), dtype=np.float64, rng=0)
params = dict(model.named_parameters())


def data_loss():
    return tl.nn.softmax_cross_entropy(model(X), y)


def total_loss():
    return data_loss() + model.regularization_loss()


def hessian_vector_product(loss, vectors):
    """H·v = ∇⟨∇L, v⟩: the gradient as Tensors (create_graph=True), then its gradient."""
    grads = tl.grad(loss(), list(params.values()), create_graph=True)
    return tl.grad(sum((g * v).sum() for g, v in zip(grads, vectors)), list(params.values()))


print(f"L2(lam={lam}) on the weights: κ = 2·lam = {kappa:g}\n")
print("1. For a random v, (H_total − H_data)·v, parameter by parameter:\n")
vectors = [rng.standard_normal(p.shape) for p in params.values()]
total, data = hessian_vector_product(total_loss, vectors), hessian_vector_product(data_loss, vectors)
for (name, p), t, d, v in zip(params.items(), total, data, vectors):
    if name.endswith("weight"):
        deviation = Rounding(np.abs((t - d) - kappa * v).max(), np.abs(t).max())
        print(f"  {name:9} {str(p.shape):8}  = κ·v,  max |(H_total − H_data)·v − κ·v| {deviation}")
    else:
        print(f"  {name:9} {str(p.shape):8}  = 0,    max |(H_total − H_data)·v| = {np.abs(t - d).max():g}")


def weight_block(loss):
    """The Hessian restricted to the weights, one column per H·e_i."""
    weights = [name for name in params if name.endswith("weight")]
    sizes = [params[name].data.size for name in weights]
    columns = []
    for i in range(sum(sizes)):
        unit = np.zeros(sum(sizes))
        unit[i] = 1.0
        pieces = iter(np.split(unit, np.cumsum(sizes)[:-1]))
        vectors = [next(pieces).reshape(p.shape) if name in weights else np.zeros(p.shape)
                   for name, p in params.items()]
        hv = dict(zip(params, hessian_vector_product(loss, vectors)))
        columns.append(np.concatenate([hv[name].ravel() for name in weights]))
    return np.array(columns).T


h_data, h_total = weight_block(data_loss), weight_block(total_loss)
e_data, e_total = np.linalg.eigvalsh(h_data), np.linalg.eigvalsh(h_total)
print(f"\n2. The weights' block of the Hessian ({len(e_data)} × {len(e_data)}), from {len(e_data)} "
      f"products H·e_i:\n")
print(f"  H_total − H_data = κ·I:     max |H_total − H_data − κ·I| "
      f"{Rounding(np.abs(h_total - h_data - kappa * np.eye(len(e_data))).max(), np.abs(h_total).max())}")
print(f"  eigenvalues, data loss:     {e_data.min():+.4f} (smallest) … {e_data.max():+.4f} (largest)")
print(f"  eigenvalues, with L2:       {e_total.min():+.4f} (smallest) … {e_total.max():+.4f} (largest)")
print(f"  every eigenvalue moved by κ: max |shift − κ| "
      f"{Rounding(np.abs((e_total - e_data) - kappa).max(), np.abs(e_total).max())}")
flat = 1e-9  # below this an eigenvalue is 0 but for rounding (its sign is the BLAS kernel's)
print(f"  negative curvature (λ < −{flat:g}): {int((e_data < -flat).sum())} directions without L2, "
      f"{int((e_total < -flat).sum())} with it")
print(f"  flat (|λ| ≤ {flat:g}): {int((np.abs(e_data) <= flat).sum())} directions without L2 (softmax "
      f"ignores a shift shared by all classes), {int((np.abs(e_total) <= flat).sum())} with it")
