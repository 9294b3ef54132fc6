"""The Keras learner's model, rebuilt: a ConvNet whose conv kernels carry an L2 regularizer.

    model.add(Conv2D(16, (3, 3), padding="same", kernel_regularizer=l2(reg)))   # Keras
    tl.nn.Conv2d(1, 16, 3, padding="same", kernel_regularizer=tl.nn.L2(reg))    # here

Both add reg·ΣW² to the loss; its gradient 2·reg·W reaches the update of W, and nothing else.
Trains on scikit-learn's bundled 8×8 digits (no download) without L2, with L2, with Dropout
(the regularizer people compare L2 with), and with BatchNorm and PyTorch-style weight decay kept
off γ, β and the biases (`tl.optim.param_groups`); prints test accuracy and kernel norms, and
renders two graphs: the L2 term's edges reach only the conv and dense kernels, and so do those
of the penalty the decay stands for in the BatchNorm model (none reaches γ or β).

    pip install 'tinygrad-l2[datasets]'     # scikit-learn
    python examples/06_convnet_l2.py [EPOCHS] [OUT_DIR]
"""
import sys
from pathlib import Path

import numpy as np

import tinygrad_l2 as tl

try:
    from sklearn.datasets import load_digits
except ImportError:
    print("06_convnet_l2: this example needs scikit-learn's bundled digits: "
          "pip install 'tinygrad-l2[datasets]' (or pip install scikit-learn)", file=sys.stderr)
    sys.exit(2)

EPOCHS = int(sys.argv[1]) if len(sys.argv) > 1 else 30
OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(".")
REG = 1e-3


def convnet(reg, p_drop=0.0):
    l2 = tl.nn.L2(reg) if reg else None
    return tl.nn.Sequential(
        tl.nn.Conv2d(1, 8, 3, padding="same", kernel_regularizer=l2), tl.nn.ReLU(),
        tl.nn.MaxPool2d(2),
        tl.nn.Conv2d(8, 16, 3, padding="same", kernel_regularizer=l2), tl.nn.ReLU(),
        tl.nn.Flatten(), tl.nn.Dropout(p_drop),
        tl.nn.Linear(16 * 4 * 4, 10, kernel_regularizer=l2))


def convnet_bn():
    """The same ConvNet with BatchNorm after each convolution (and no bias there: BatchNorm's β
    takes its place, as in PyTorch models)."""
    return tl.nn.Sequential(
        tl.nn.Conv2d(1, 8, 3, padding="same", bias=False), tl.nn.BatchNorm2d(8), tl.nn.ReLU(),
        tl.nn.MaxPool2d(2),
        tl.nn.Conv2d(8, 16, 3, padding="same", bias=False), tl.nn.BatchNorm2d(16), tl.nn.ReLU(),
        tl.nn.Flatten(), tl.nn.Linear(16 * 4 * 4, 10))


def accuracy(model, x, y):
    model.eval()
    with tl.no_grad():
        hits = (model(x).data.argmax(axis=1) == y).mean()
    model.train()
    return hits


def train(model, x, y, weight_decay=0.0):
    """Adam; weight_decay (coupled, PyTorch's) on the kernels only, via parameter groups."""
    opt = tl.optim.Adam(tl.optim.param_groups(model, weight_decay=weight_decay), lr=3e-3)
    loader = tl.data.DataLoader(tl.data.TensorDataset(x, y), batch_size=50, shuffle=True)
    for _ in range(EPOCHS):
        for xb, yb in loader:
            opt.zero_grad()
            loss = tl.nn.softmax_cross_entropy(model(xb), yb) + model.regularization_loss()
            loss.backward()
            opt.step()


digits = load_digits()
images = (digits.images / 16.0).astype(np.float32)[:, None]  # (n, 1, 8, 8)
order = np.random.default_rng(0).permutation(len(images))
train_rows, test_rows = order[:200], order[200:]  # few training images: easy to overfit
x_train, y_train = images[train_rows], digits.target[train_rows]
x_test, y_test = images[test_rows], digits.target[test_rows]

for label, reg, p_drop in (("no regularization", 0.0, 0.0), (f"L2 reg={REG:g}", REG, 0.0),
                           ("Dropout p=0.3", 0.0, 0.3), (f"BatchNorm, wd={2 * REG:g}", None, 0.0)):
    tl.manual_seed(0)
    model = convnet(reg, p_drop) if reg is not None else convnet_bn()
    train(model, x_train, y_train, weight_decay=2 * REG if reg is None else 0.0)  # wd = 2·reg: same κ
    norm = np.sqrt(sum(float((p.data.astype(np.float64) ** 2).sum())
                       for p in tl.nn.weights_and_biases(model)[0]))
    print(f"{label:<20} train accuracy {accuracy(model, x_train, y_train):.3f}  "
          f"test accuracy {accuracy(model, x_test, y_test):.3f}  ‖kernels‖ = {norm:.2f}")

model = convnet(REG)
cost = tl.nn.softmax_cross_entropy(model(x_train[:4]), y_train[:4])
penalty = model.regularization_loss()
path = tl.render(cost + penalty, OUT / "convnet_l2.svg", params=dict(model.named_parameters()),
                 terms={"data": cost, "l2": penalty}, collapse_modules=False)
print(f"graph: {path} (the l2 term's edges reach 0.weight, 3.weight and 7.weight only)")

model = convnet_bn()
cost = tl.nn.softmax_cross_entropy(model(x_train[:4]), y_train[:4])
decay = tl.optim.decay_penalty(tl.optim.param_groups(model, weight_decay=2 * REG))
path = tl.render(cost + decay, OUT / "convnet_bn_decay.svg", params=dict(model.named_parameters()),
                 terms={"data": cost, "decay": decay}, collapse_modules=False)
print(f"graph: {path} (the decay's edges reach 0.weight, 4.weight and 8.weight only: not γ, β)")
