"""Render the canonical 3-layer network with its L2 term, edges coloured by loss term.

    python examples/01_render_l2_graph.py [OUT_DIR]

Writes l2_graph.svg / .png (the network written out tensor by tensor, as in the
deeplearning.ai course) and l2_model.svg / .png (the same idea with tl.nn layers and
kernel_regularizer, each layer a labelled cluster).  The red L2 edges stop at W1, W2, W3.
"""
import sys
from pathlib import Path

import numpy as np

import tinygrad_l2 as tl
from tinygrad_l2.lessons.compare import dlai_autodiff
from tinygrad_l2.lessons.datasets import make_dataset
from tinygrad_l2.lessons.manual import dlai_initialize

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out")
data = make_dataset(seed=0)
X, Y = data.X_train[:32].T, data.y_train[None, :32].astype(np.float64)

# 1. The course's network, column-major, cost = cross-entropy + (λ/2m)·Σ‖W‖²
net = dlai_autodiff(dlai_initialize((2, 5, 3, 1)), X, Y, lambd=0.7)
net["loss"].backward()
terms = {"data": net["cost"], "l2": net["penalty"]}
for suffix in (".svg", ".png"):
    print("wrote", tl.render(net["loss"], out / f"l2_graph{suffix}", terms=terms, show_grads=True))

# 2. The same with modules: Linear layers with a Keras-style kernel_regularizer
tl.manual_seed(0)
model = tl.nn.MLP((2, 5, 3, 1), kernel_regularizer=tl.nn.L2(0.01), output_activation="sigmoid")
inputs = tl.Tensor(X.T.astype(np.float32), name="X")
targets = tl.Tensor(Y.T.astype(np.float32), name="Y")
cost = tl.nn.binary_cross_entropy(model(inputs), targets)
penalty = model.regularization_loss()
loss = cost + penalty
cost.name, penalty.name, loss.name = "cost", "L2 penalty", "loss"
for suffix in (".svg", ".png"):
    print("wrote", tl.render(loss, out / f"l2_model{suffix}", params=dict(model.named_parameters()),
                             terms={"data": cost, "l2": penalty}, rankdir="TB",
                             show_intermediates=False))
