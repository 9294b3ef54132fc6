"""A gradient-free optimizer minimizing the same regularized loss graph under no_grad.

    python examples/05_particle_swarm.py

The particle swarm never computes a gradient: it only evaluates the loss.  The L2 node is part
of that loss, so it is part of the error the swarm sees and it regularizes the weights all
the same — with and without it, the swarm settles on weights of different size.
"""
import numpy as np

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor
from tinygrad_l2.lessons.datasets import make_dataset

data = make_dataset(n_train=100, seed=0)
X, y = Tensor(data.X_train), data.y_train[:, None].astype(np.float64)

for lam in (0.0, 0.05):
    rng = np.random.default_rng(0)
    reg = tl.nn.L2(lam) if lam else None
    model = tl.nn.MLP((2, 6, 1), activation="tanh", kernel_regularizer=reg, dtype=np.float64, rng=rng)

    def loss():
        return tl.nn.binary_cross_entropy_with_logits(model(X), y) + model.regularization_loss()

    swarm = tl.optim.PSO(model.parameters(), n_particles=40, init_std=1.0, rng=0)
    for _ in range(100):
        best = swarm.step(loss)
    with tl.no_grad():
        accuracy = ((model(Tensor(data.X_test)).data[:, 0] > 0) == data.y_test).mean()
    norm = np.sqrt(sum((p.data ** 2).sum() for n, p in model.named_parameters() if "weight" in n))
    grads = [p.grad for p in model.parameters()]
    print(f"L2 lam={lam:<5g} best loss {best:.4f}  test accuracy {accuracy:.3f}  ‖W‖ = {norm:.2f}  "
          f"gradients computed: {sum(g is not None for g in grads)}")
