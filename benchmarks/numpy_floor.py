"""The floor: the benchmark MLP's train step with its backward written by hand in numpy.

784-256-128-10, ReLU, softmax cross-entropy (mean over the batch) + lam·ΣW² on the weights,
plain SGD.  Same math as the engine, no graph: what is left for an engine to add is bookkeeping.
In-place where the array is provably ours (the SGD update, the softmax gradient).
"""
import numpy as np

SIZES = (784, 256, 128, 10)


def init_params(sizes=SIZES, dtype=np.float32, seed=0):
    """[(W, b), ...] with W (out, in) ~ U(−1/√in, 1/√in), as nn.Linear."""
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        bound = 1 / np.sqrt(n_in)
        params.append((rng.uniform(-bound, bound, (n_out, n_in)).astype(dtype),
                       rng.uniform(-bound, bound, n_out).astype(dtype)))
    return params


def loss_and_grads(params, x, labels, lam):
    """Forward and hand-written backward; returns (loss, [(dW, db), ...])."""
    activations, pre = [x], []
    a = x
    for i, (W, b) in enumerate(params):
        z = a @ W.T
        z += b
        pre.append(z)
        a = np.maximum(z, 0) if i < len(params) - 1 else z
        activations.append(a)
    logits = activations[-1]
    m = logits.shape[0]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    log_probs = shifted - np.log(total)
    loss = -log_probs[np.arange(m), labels].mean() + lam * sum((W * W).sum() for W, _ in params)

    dz = exp
    dz /= total                      # softmax
    dz[np.arange(m), labels] -= 1
    dz /= m                          # d(mean CE)/dlogits
    grads = [None] * len(params)
    for i in range(len(params) - 1, -1, -1):
        W, _ = params[i]
        dW = dz.T @ activations[i]
        dW += (2 * lam) * W          # the L2 term: in dW alone
        grads[i] = (dW, dz.sum(axis=0))
        if i:
            da = dz @ W
            da *= pre[i - 1] > 0     # ReLU
            dz = da
    return loss, grads


def train_step(params, x, labels, lam, lr):
    """One SGD step in place; returns the loss."""
    loss, grads = loss_and_grads(params, x, labels, lam)
    for (W, b), (dW, db) in zip(params, grads):
        dW *= lr
        W -= dW
        db *= lr
        b -= db
    return loss
