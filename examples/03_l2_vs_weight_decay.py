"""L2 vs weight decay: when they are the same, when they are not, and what λ means where.

    python examples/03_l2_vs_weight_decay.py
"""
import numpy as np

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor
from tinygrad_l2 import conventions as cv

rng = np.random.default_rng(0)
X, y = rng.standard_normal((64, 2)), rng.integers(0, 2, 64)


def network(seed=1, regularizer=None):
    return tl.nn.MLP((2, 16, 2), kernel_regularizer=regularizer, dtype=np.float64, rng=seed)


def train(model, optimizer, steps=20):
    for _ in range(steps):
        optimizer.zero_grad()
        (tl.nn.softmax_cross_entropy(model(Tensor(X)), y) + model.regularization_loss()).backward()
        optimizer.step()
    return model


print("1. The conventions (κ: what the penalty adds to a weight's gradient)\n")
print(cv.TABLE)
lmbda, n, lambd, m = 5.0, 50_000, 0.7, 211
print(f"\n  Nielsen λ={lmbda}, n={n}:      Keras lam = λ/(2n) = {cv.nielsen_to_keras(lmbda, n):.3g}, "
      f"PyTorch wd = λ/n = {cv.nielsen_to_weight_decay(lmbda, n):.3g}")
print(f"  deeplearning.ai λ={lambd}, m={m}: Keras lam = λ/(2m) = {cv.deeplearning_ai_to_keras(lambd, m):.3g}, "
      f"PyTorch wd = λ/m = {cv.deeplearning_ai_to_weight_decay(lambd, m):.3g}")
print(f"  Keras lam=1e-4:                PyTorch wd = 2·lam = {cv.keras_to_weight_decay(1e-4):.3g}\n")

print("2. SGD: L2 in the loss ≡ weight decay, w ← (1 − ηλ/n)·w − η·∇C₀, biases untouched\n")
eta, wd = 0.1, cv.nielsen_to_weight_decay(lmbda, 64)
in_loss = network(regularizer=tl.nn.L2.from_nielsen(lmbda, 64))
train(in_loss, tl.optim.SGD(in_loss.parameters(), lr=eta))
decayed = network()
weights, biases = tl.nn.weights_and_biases(decayed)
train(decayed, tl.optim.SGD([{"params": weights, "weight_decay": wd}, {"params": biases}], lr=eta))
diff = max(np.abs(p.data - q.data).max() for p, q in zip(in_loss.parameters(), decayed.parameters()))
print(f"  L2.from_nielsen(λ={lmbda}, n=64) in the loss vs SGD(weight_decay=λ/n={wd:.4g}) on weights only:")
print(f"  largest weight difference after 20 steps: {diff:.1e} (identical up to rounding); "
      f"decay factor per step 1 − ηλ/n = {cv.weight_decay_factor(eta, wd):.6f}")
everything = network()
train(everything, tl.optim.SGD(everything.parameters(), lr=eta, weight_decay=wd))
bias_diff = max(np.abs(p.data - q.data).max() for p, q in zip(tl.nn.weights_and_biases(in_loss)[1], tl.nn.weights_and_biases(everything)[1]))
print(f"  PyTorch-style weight_decay on ALL parameters decays the biases too: biases differ by {bias_diff:.3g}\n")

print("3. Adam: L2 in the loss ≠ AdamW's decoupled decay\n")
lam = 1e-3
adam_l2 = network(regularizer=tl.nn.L2(lam))
train(adam_l2, tl.optim.Adam(adam_l2.parameters(), lr=0.01), steps=50)
adamw = network()
weights, biases = tl.nn.weights_and_biases(adamw)
train(adamw, tl.optim.AdamW([{"params": weights, "weight_decay": cv.keras_to_weight_decay(lam)},
                             {"params": biases, "weight_decay": 0.0}], lr=0.01), steps=50)
diff = max(np.abs(p.data - q.data).max() for p, q in zip(adam_l2.parameters(), adamw.parameters()))
print(f"  same κ = {cv.keras_to_weight_decay(lam):g}, same data, 50 steps: weights differ by up to {diff:.3g}.")
print("  Adam divides the L2 gradient κ·w by √v̂, so weights with large past gradients are decayed")
print("  less; AdamW subtracts lr·wd·w after the Adam step, whatever the gradients' scale.")
