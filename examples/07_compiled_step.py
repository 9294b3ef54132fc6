"""The backprop code the engine writes: compile the 3-layer L2 network's training step.

    python examples/07_compiled_step.py                  # print both sources, then train
    python examples/07_compiled_step.py --source         # the step that keeps its gradients
    python examples/07_compiled_step.py --update-source  # the step with the update written in

`tl.compile` runs the step once eagerly, reads the graph it built, and writes one numpy
function: forward, then backward in reverse order.  In that code the L2 term's lines
(marked "penalty term") add to dW1, dW2, dW3 and to nothing else: not to dA, dZ or db.

A step that calls `opt.zero_grad()` after `opt.step()` leaves no gradient behind, so with
plain SGD the update is written into the code too: the learning rate goes into the backward's
seed, and the L2 gradient 2·lam·W becomes a decay of W, W ← (1 − lr·2·lam)·W − lr·dW_data —
the weight-decay form of the same update, on the weights only.
"""
import sys

import numpy as np

import tinygrad_l2 as tl
from tinygrad_l2.lessons.datasets import make_dataset

LAMBDA = 1e-3  # Keras' l2: lam·ΣW² added to the loss


def build(zero_grad_last=False):
    tl.manual_seed(0)
    l2 = tl.nn.L2(LAMBDA)
    model = tl.nn.Sequential(tl.nn.Linear(2, 16, kernel_regularizer=l2, dtype=np.float64), tl.nn.ReLU(),
                             tl.nn.Linear(16, 8, kernel_regularizer=l2, dtype=np.float64), tl.nn.ReLU(),
                             tl.nn.Linear(8, 2, kernel_regularizer=l2, dtype=np.float64))
    opt = tl.optim.SGD(model.parameters(), lr=0.3)

    @tl.compile
    def train_step(X, y):
        if not zero_grad_last:
            opt.zero_grad()
        cost = tl.nn.softmax_cross_entropy(model(X), y)
        loss = cost + model.regularization_loss()
        loss.backward()
        opt.step()
        if zero_grad_last:  # the gradients die with the call: the update is written in
            opt.zero_grad()
        return loss
    return model, train_step


def main(argv):
    data = make_dataset(n_train=200, seed=0)
    X = tl.Tensor(data.X_train, name="X")
    y = data.y_train.astype(np.int64)
    model, train_step = build(zero_grad_last="--update-source" in argv)
    train_step(X, y)  # traces
    if "--source" in argv or "--update-source" in argv:
        print(train_step.source, end="")
        return 0
    print(train_step.source)
    _, updating_step = build(zero_grad_last=True)
    updating_step(X, y)
    print(updating_step.source)
    for _ in range(300):
        loss = train_step(X, y)
    with tl.no_grad():
        accuracy = (model(tl.Tensor(data.X_test)).data.argmax(1) == data.y_test).mean()
    print(f"after 300 compiled steps: loss {loss.item():.4f}, test accuracy {accuracy:.3f} "
          f"(traced {train_step.traces} time)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
