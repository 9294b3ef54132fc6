"""The floor: the tightest hand-written numpy train step for the benchmark MLP.

784-256-128-10, ReLU, softmax cross-entropy (mean over the batch) + lam·ΣW² on the weights
(gradient 2·lam·W), plain SGD.  What an engine cannot beat, written as a careful person would:

- Σw² as one dot product (np.vdot), no W² array;
- the learning rate in the backward's seed (dz scaled by lr/m on the small logits matrix), so
  the matrix products give lr·dW_data and lr·db directly;
- in float64 the L2 gradient folded into the update as a decay: W ← (1 − 2·lr·lam)·W −
  lr·dW_data, which is SGD on the L2 loss up to rounding; not in float32, where 1 − 2·lr·lam
  rounds to the nearest 6e-8 (at this benchmark's 2·lr·lam = 2e-6 it would decay 1.3% too
  much; at lam = 1e-4, lr = 1e-3 11% too little; below 3e-8 not at all): there
  W ← W − (2·lr·lam·W + lr·dW_data), one W-sized pass more;
- bias add and ReLU in place; the ReLU mask from the post-activation values;
- the cross-entropy gradient as the softmax with 1 subtracted at the label entries, ÷ m;
  the loss from log-sum-exp at the label entries only (no log-probability matrix);
- gradient buffers allocated once and reused (matmul with out=).
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


class Floor:
    """One model's train step with preallocated gradient buffers."""

    def __init__(self, params):
        self.params = params
        self.dW = [np.empty_like(W) for W, _ in params]
        self.penalty = [np.empty_like(W) for W, _ in params]  # float32: 2·lr·lam·W

    def loss_and_data_grads(self, x, labels, lam, scale=1.0):
        """Forward and hand-written backward: (loss, [(scale·dW_data, scale·db)]); the L2 term
        is in the loss but not in dW_data (the update adds it)."""
        activations = [x]
        a = x
        last = len(self.params) - 1
        for i, (W, b) in enumerate(self.params):
            z = a @ W.T
            z += b
            if i < last:
                np.maximum(z, 0, out=z)
            activations.append(z)
            a = z
        m, rows = a.shape[0], np.arange(a.shape[0])
        a -= a.max(axis=1, keepdims=True)          # logits, shifted: a is ours
        np.exp(a, out=a)
        total = a.sum(axis=1, keepdims=True)
        picked = a[rows, labels]                   # e^(z_y − max)
        loss = float(np.mean(np.log(total[:, 0]) - np.log(picked)))
        loss += lam * sum(float(np.vdot(W, W)) for W, _ in self.params)
        dz = a
        dz /= total                                # softmax
        dz[rows, labels] -= 1
        dz *= scale / m
        grads = [None] * len(self.params)
        for i in range(last, -1, -1):
            W, _ = self.params[i]
            np.matmul(dz.T, activations[i], out=self.dW[i])
            grads[i] = (self.dW[i], dz.sum(axis=0))
            if i:
                da = dz @ W
                da *= activations[i] > 0           # ReLU: mask from the post-activation
                dz = da
        return loss, grads

    def train_step(self, x, labels, lam, lr):
        """One SGD step in place (the gradients come scaled by lr); returns the loss."""
        loss, grads = self.loss_and_data_grads(x, labels, lam, scale=lr)
        for (W, b), (dW, db), penalty in zip(self.params, grads, self.penalty):
            if W.dtype == np.float64:
                W *= 1 - 2 * lr * lam
            else:
                dW += np.multiply(W, 2 * lr * lam, out=penalty)
            W -= dW
            b -= db
        return loss


class AdamFloor(Floor):
    """The same forward and backward, then Adam (torch.optim.Adam's formulas) on the L2 loss:
    g = dW_data + 2·lam·W (the L2 gradient goes through the moments: Adam on L2, not AdamW),
    m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g², W ← W − (lr/(1 − β₁ᵗ))·m/(√v/√(1 − β₂ᵗ) + ε);
    the moments and a scratch array allocated once."""

    def __init__(self, params, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params)
        self.betas, self.eps, self.t = betas, eps, 0
        arrays = [a for pair in params for a in pair]
        self.m = [np.zeros_like(a) for a in arrays]
        self.v = [np.zeros_like(a) for a in arrays]
        self.scratch = [np.empty_like(a) for a in arrays]

    def train_step(self, x, labels, lam, lr):
        loss, grads = self.loss_and_data_grads(x, labels, lam)
        self.t += 1
        (b1, b2), t = self.betas, self.t
        step_size, bias2 = lr / (1 - b1 ** t), np.sqrt(1 - b2 ** t)
        k = 0
        for (W, b), (dW, db) in zip(self.params, grads):
            dW += 2 * lam * W  # the L2 gradient, weights only
            for p, g in ((W, dW), (b, db)):
                m, v, s = self.m[k], self.v[k], self.scratch[k]
                m *= b1
                m += (1 - b1) * g
                v *= b2
                np.multiply(g, g, out=s)
                s *= 1 - b2
                v += s
                np.sqrt(v, out=s)
                s /= bias2
                s += self.eps
                np.divide(m, s, out=s)
                s *= step_size
                p -= s
                k += 1
        return loss
