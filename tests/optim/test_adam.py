"""Adam and AdamW: PyTorch's rules; L2 in the loss is not decoupled weight decay."""
import math

import numpy as np

import tinygrad_l2 as tl
from helpers import assert_machine_equal
from tinygrad_l2 import Tensor


def reference_adam(theta, grads, lr, betas, eps, wd, decoupled):
    """torch.optim.Adam/AdamW's documented algorithm, written out scalar by scalar."""
    m = v = 0.0
    for t, g in enumerate(grads, start=1):
        if decoupled:
            theta = theta * (1 - lr * wd)
        else:
            g = g + wd * theta
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        m_hat, v_hat = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        theta = theta - lr * m_hat / (math.sqrt(v_hat) + eps)
    return theta


def run(optimizer_cls, grads, **kw):
    p = Tensor(np.array([1.5]), requires_grad=True)
    opt = optimizer_cls([p], **kw)
    for g in grads:
        p.grad = np.array([g])
        opt.step()
    return p.data[0]


GRADS = [0.3, -0.1, 0.7, 0.2]


def test_adam_matches_the_documented_algorithm():
    got = run(tl.optim.Adam, GRADS, lr=0.01, weight_decay=0.1)
    want = reference_adam(1.5, GRADS, 0.01, (0.9, 0.999), 1e-8, 0.1, decoupled=False)
    assert_machine_equal(got, want)


def test_adamw_matches_the_documented_algorithm():
    got = run(tl.optim.AdamW, GRADS, lr=0.01, weight_decay=0.1)
    want = reference_adam(1.5, GRADS, 0.01, (0.9, 0.999), 1e-8, 0.1, decoupled=True)
    assert_machine_equal(got, want)


def test_adamw_default_weight_decay_is_1e_2():
    p = Tensor([1.0], requires_grad=True)
    assert tl.optim.AdamW([p]).param_groups[0]["weight_decay"] == 1e-2
    assert tl.optim.Adam([p]).param_groups[0]["weight_decay"] == 0.0


def test_adamw_decay_term_is_lr_wd_w_whatever_the_gradient_scale():
    lr, wd = 0.01, 0.1
    for scale in (1e-3, 1.0, 1e3):
        grads = [g * scale for g in GRADS]
        decayed = run(tl.optim.AdamW, grads, lr=lr, weight_decay=wd)
        # Adam with the same raw gradients, started from the same decayed weights, is the rest
        p = Tensor(np.array([1.5]), requires_grad=True)
        opt = tl.optim.Adam([p], lr=lr)
        for g in grads:
            p.data = p.data * (1 - lr * wd)
            p.grad = np.array([g])
            opt.step()
        assert_machine_equal(decayed, p.data[0])
    # one step from zero gradient: exactly the decay
    p = Tensor(np.array([2.0]), requires_grad=True)
    p.grad = np.array([0.0])
    tl.optim.AdamW([p], lr=lr, weight_decay=wd).step()
    assert p.data[0] == 2.0 * (1 - lr * wd)


def test_adam_l2_in_loss_and_adamw_give_different_weights():
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((16, 3)), rng.integers(0, 2, 16)
    lam = 0.05
    coupled = tl.nn.MLP([3, 6, 2], kernel_regularizer=tl.nn.L2(lam), dtype=np.float64, rng=2)
    decoupled = tl.nn.MLP([3, 6, 2], dtype=np.float64, rng=2)
    weights, biases = tl.nn.weights_and_biases(decoupled)
    opt_c = tl.optim.Adam(coupled.parameters(), lr=0.01)
    opt_d = tl.optim.AdamW([{"params": weights, "weight_decay": tl.conventions.keras_to_weight_decay(lam)},
                            {"params": biases, "weight_decay": 0.0}], lr=0.01)
    for _ in range(20):
        for model, opt, reg in ((coupled, opt_c, True), (decoupled, opt_d, False)):
            opt.zero_grad()
            loss = tl.nn.softmax_cross_entropy(model(Tensor(x)), y)
            (loss + model.regularization_loss() if reg else loss).backward()
            opt.step()
    diff = max(np.abs(p.data - q.data).max() for p, q in zip(coupled.parameters(), decoupled.parameters()))
    assert diff > 1e-4


def test_l2_through_adam_is_scaled_by_the_gradient_history():
    """With Adam the L2 gradient κ·w is divided by √v̂: a weight with large past gradients
    is shrunk less than one with small gradients (Loshchilov & Hutter)."""
    lr, wd = 0.01, 0.1
    shrink = {}
    for scale in (1e-3, 1e3):
        with_l2 = run(tl.optim.Adam, [scale * g for g in GRADS], lr=lr, weight_decay=wd)
        without = run(tl.optim.Adam, [scale * g for g in GRADS], lr=lr)
        shrink[scale] = without - with_l2
    assert shrink[1e-3] > 100 * abs(shrink[1e3])
