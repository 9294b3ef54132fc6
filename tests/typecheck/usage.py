# mypy: disallow-untyped-calls, warn-return-any, disallow-untyped-defs
"""What a user writes, type-checked by tests/test_typing.py with mypy under the strict flags
of its first line: the public API's annotations are usable, not just present.  Not a test
module: mypy reads it, pytest does not collect it."""
import numpy as np

import tinygrad_l2 as tl


def train_steps(steps: int) -> float:
    tl.manual_seed(0)
    model = tl.nn.MLP((2, 8, 1), kernel_regularizer=tl.nn.L2(1e-3), dtype=np.float64)
    opt = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = tl.optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)
    x = tl.tensor(np.random.default_rng(0).standard_normal((16, 2)))
    y = np.zeros((16, 1))
    loss: tl.Tensor = tl.zeros(())
    for _ in range(steps):
        opt.zero_grad()
        loss = tl.nn.binary_cross_entropy_with_logits(model(x), y) + model.regularization_loss()
        loss.backward()
        opt.step()
        scheduler.step()
    weights, biases = tl.nn.weights_and_biases(model)
    norm: float = sum(float(np.linalg.norm(w.data)) for w in weights)
    return loss.item() + norm * 0.0


def tensor_math() -> tuple[int, ...]:
    a = tl.randn(3, 4, requires_grad=True)
    b = (a * 2.0 + 1).relu().sum(axis=1).mean()
    b.backward()
    grads = tl.grad((a ** 2).sum(), [a])
    assert grads[0] is not None and a.grad is not None
    return (a.T @ a).reshape(-1, 2).shape


def compiled() -> str | None:
    model = tl.nn.Linear(2, 1, dtype=np.float64, rng=0)
    opt = tl.optim.Adam(model.parameters(), lr=1e-2)

    def step(x: tl.Tensor) -> tl.Tensor:
        opt.zero_grad()
        loss: tl.Tensor = (model(x) ** 2).mean()
        loss.backward()
        opt.step()
        return loss
    fast = tl.compile(step)
    fast(tl.ones(4, 2, dtype=np.float64))
    return fast.source


def traced() -> list[str]:
    w = tl.tensor([[1.0, 2.0]], requires_grad=True, name="W")
    cost = (w * 3.0).sum()
    penalty = (w * w).sum() * 0.1
    table = tl.with_without({"data": cost, "l2": penalty}, "l2", {"W": w})
    return table.changed() + [str(tl.trace_terms({"l2": penalty}, {"W": w}))]
