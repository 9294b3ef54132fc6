"""The backprop code the engine writes: compile the 3-layer L2 network's training step.

    python examples/07_compiled_step.py           # print the generated source, then train
    python examples/07_compiled_step.py --source  # only the generated source (the README's)

`tl.compile` runs the step once eagerly, reads the graph it built, and writes one numpy
function: forward, then backward in reverse order.  In that code the L2 term's lines
(marked "penalty term") add to dW1, dW2, dW3 and to nothing else: not to dA, dZ or db.
"""
import sys

import numpy as np

import tinygrad_l2 as tl
from tinygrad_l2.datasets import make_dataset

LAMBDA = 1e-3  # Keras' l2: lam·ΣW² added to the loss


def build():
    tl.manual_seed(0)
    l2 = tl.nn.L2(LAMBDA)
    model = tl.nn.Sequential(tl.nn.Linear(2, 16, kernel_regularizer=l2, dtype=np.float64), tl.nn.ReLU(),
                             tl.nn.Linear(16, 8, kernel_regularizer=l2, dtype=np.float64), tl.nn.ReLU(),
                             tl.nn.Linear(8, 2, kernel_regularizer=l2, dtype=np.float64))
    opt = tl.optim.SGD(model.parameters(), lr=0.3)

    @tl.compile
    def train_step(X, y):
        opt.zero_grad()
        cost = tl.nn.softmax_cross_entropy(model(X), y)
        loss = cost + model.regularization_loss()
        loss.backward()
        opt.step()
        return loss
    return model, train_step


def main(argv):
    data = make_dataset(n_train=200, seed=0)
    X = tl.Tensor(data.X_train, name="X")
    y = data.y_train.astype(np.int64)
    model, train_step = build()
    train_step(X, y)  # traces
    if "--source" in argv:
        print(train_step.source, end="")
        return 0
    print(train_step.source)
    for _ in range(300):
        loss = train_step(X, y)
    with tl.no_grad():
        accuracy = (model(tl.Tensor(data.X_test)).data.argmax(1) == data.y_test).mean()
    print(f"after 300 compiled steps: loss {loss.item():.4f}, test accuracy {accuracy:.3f} "
          f"(traced {train_step.traces} time)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
