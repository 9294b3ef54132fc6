"""Overfitting on a real dataset: scikit-learn's bundled digits (no download), with and without L2.

    pip install 'tinygrad-l2[datasets]'     # scikit-learn
    python examples/04_digits_overfitting.py [STEPS]
"""
import sys

import numpy as np

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor

try:
    from sklearn.datasets import load_digits
except ImportError:
    sys.exit("04_digits_overfitting: this example needs scikit-learn's bundled digits: "
             "pip install 'tinygrad-l2[datasets]' (or pip install scikit-learn)")

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 800
digits = load_digits()
X = (digits.data / 16.0).astype(np.float32)
y = digits.target.astype(np.int64)
order = np.random.default_rng(0).permutation(len(y))
train_idx, test_idx = order[:100], order[100:]   # 100 training images: easy to overfit

for lam in (0.0, 3e-3):
    tl.manual_seed(0)
    reg = tl.nn.L2(lam) if lam else None
    model = tl.nn.MLP((64, 256, 10), kernel_regularizer=reg)
    opt = tl.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(Tensor(X[train_idx])), y[train_idx])
        (loss + model.regularization_loss()).backward()
        opt.step()
    with tl.no_grad():
        train_acc = (model(Tensor(X[train_idx])).data.argmax(1) == y[train_idx]).mean()
        test_acc = (model(Tensor(X[test_idx])).data.argmax(1) == y[test_idx]).mean()
    norm = np.sqrt(sum((p.data.astype(np.float64) ** 2).sum() for n, p in model.named_parameters() if "weight" in n))
    print(f"L2 lam={lam:<6g} train accuracy {train_acc:.3f}  test accuracy {test_acc:.3f}  "
          f"‖W‖ = {norm:.2f}  data loss {loss.item():.4f}")
