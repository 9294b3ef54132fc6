"""Your own Keras model, explained and handed to PyTorch.

A Keras ConvNet with `kernel_regularizer=L2(1e-3)` is saved to a .keras file; `tl.from_keras`
reads it back with the same weights and the same λ; per-term gradients show where the L2 enters
(the kernels, nothing else); a few SGD steps train it here; `tl.to_torch` hands it, momentum
buffers and all, to PyTorch with the L2 as weight_decay = 2·λ on the kernels' parameter group,
and both frameworks take the same next steps.

    pip install -e ".[interop]"     # torch (CPU) and keras; Keras runs on its torch backend
    python examples/08_keras_to_torch.py
"""
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

import tinygrad_l2 as tl

os.environ.setdefault("KERAS_BACKEND", "torch")
try:
    import keras
    import torch
except ImportError:
    print("08_keras_to_torch: this example needs the interop extra: pip install -e '.[interop]'",
          file=sys.stderr)
    sys.exit(2)

L, R = keras.layers, keras.regularizers


def keras_convnet(path):
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(4, 3, padding="same", activation="relu", kernel_regularizer=R.L2(1e-3)),
        L.MaxPooling2D(),
        L.Conv2D(8, 3, strides=2, padding="same", activation="relu", kernel_regularizer=R.L2(1e-3)),
        L.Flatten(),
        L.Dense(10, kernel_regularizer=R.L2(1e-3))])
    model.save(path)
    return model


def sgd_steps(model, optimizer, X, y, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        (tl.nn.functional.cross_entropy(model(tl.Tensor(X)), y) + model.regularization_loss()).backward()
        optimizer.step()


def torch_steps(model, optimizer, X, y, steps):
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.tensor(X)), torch.tensor(y)).backward()
        optimizer.step()


def main():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((16, 8, 8, 1)), rng.integers(0, 10, 16)  # channels-last, as Keras
    with tempfile.TemporaryDirectory() as scratch:
        kmodel = keras_convnet(Path(scratch) / "convnet.keras")
        model = tl.from_keras(Path(scratch) / "convnet.keras")
    print(model, "\n")
    data = tl.nn.functional.cross_entropy(model(tl.Tensor(X)), y)
    penalty = model.regularization_loss()
    print(f"penalty: Keras sum(model.losses) = {sum(kmodel.losses).item():.6f}, "
          f"tl regularization_loss() = {penalty.item():.6f}\n")
    print(tl.trace_terms({"data": data, "L2": penalty}, dict(model.named_parameters())), "\n")
    optimizer = tl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sgd_steps(model, optimizer, X, y, 3)
    torch_model, torch_optimizer = tl.to_torch(model, optimizer, l2_as="weight_decay")
    names = {id(p): n for n, p in torch_model.named_parameters()}
    for group in torch_optimizer.param_groups:
        print(f"torch group weight_decay={group['weight_decay']:g}: "
              f"{', '.join(names[id(p)] for p in group['params'])}")
    sgd_steps(model, optimizer, X, y, 3)
    torch_steps(torch_model, torch_optimizer, X, y, 3)
    worst = max(np.abs(p.data - q.detach().numpy()).max() for p, q in
                zip(model.parameters(), torch_model.parameters()))
    print(f"\nafter 3 more steps on each side the parameters agree to "
          f"{'< 1e-10' if worst < 1e-10 else f'{worst:.1e} (NOT equal)'}")


if __name__ == "__main__":
    main()
