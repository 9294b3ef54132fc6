"""Compiled steps against the same steps run eagerly, as users write them: each scenario
builds its model and optimizer twice from the same seeds, runs several calls with new data
each call, and compares the returned values, parameters, `.grad` and optimizer state after
every call (and the returned values again after the last call: no buffer overwrote them).
Exact in float64 up to a rewrite's rounding; a step that cannot be replayed must fall back.

The second half holds the cases an adversarial review found replayed wrong (or crashing) and
that were then fixed: each failed before its fix."""
import warnings

import numpy as np
import pytest

import tinygrad_l2 as tl

O = tl.optim
F64 = np.float64


# ---- harness ---------------------------------------------------------------------------------

def _leaves(obj):
    if isinstance(obj, tl.Tensor):
        return [obj.data.copy()]
    if isinstance(obj, dict):
        return [x for k in sorted(obj) for x in _leaves(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [x for o in obj for x in _leaves(o)]
    return [obj]


def _state(opt):
    return [np.array(v).copy() for g in opt.param_groups for p in g["params"]
            for _, v in sorted(opt.state.get(p, {}).items())]


def _run(make, compiled, calls):
    env = make()
    step = tl.compile(env["step"]) if compiled else env["step"]
    rng, seen, kept = np.random.default_rng(7), [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for call in range(calls):
            args, kwargs = env["data"](rng, call)
            kept.append(step(*args, **kwargs))
            seen.append([_leaves(kept[-1]), [p.data.copy() for p in env["params"]],
                         [None if p.grad is None else p.grad.copy() for p in env["params"]],
                         _state(env["opt"]) if "opt" in env else []])
            env.get("after", lambda *a: None)(args, kwargs, call)
    return seen, [_leaves(k) for k in kept], step


def _same(want, got, rtol, where="result"):
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), (where, want, got)
        for i, (a, b) in enumerate(zip(want, got)):
            _same(a, b, rtol, f"{where}[{i}]")
    elif isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray) and got.dtype == want.dtype, (where, want, got)
        np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=where)
    else:
        assert type(got) is type(want) and (got == want or abs(got - want) <= rtol * abs(want)), (where, want, got)


def compare(make, rtol=1e-12, calls=4):
    """Eager and compiled from identical states; returns the compiled step."""
    want, want_late, _ = _run(make, False, calls)
    got, got_late, step = _run(make, True, calls)
    _same(want, got, rtol, "per call")
    _same(want_late, got_late, rtol, "after the last call")
    return step


def batch(rng, call, n=6, d=4, k=3, dtype=F64):
    return (tl.Tensor(rng.standard_normal((n, d)).astype(dtype)), rng.integers(0, k, n)), {}


def lin(n_in, n_out, seed, dtype=F64):
    return tl.nn.Linear(n_in, n_out, dtype=dtype, rng=seed)


# ---- scenarios that replay exactly -----------------------------------------------------------

OPTIMIZERS = {
    "sgd": lambda p: O.SGD(p, lr=0.1), "momentum": lambda p: O.SGD(p, lr=0.1, momentum=0.9),
    "nesterov_wd": lambda p: O.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    "dampened": lambda p: O.SGD(p, lr=0.1, momentum=0.5, dampening=0.3, weight_decay=0.1),
    "adam_l2": lambda p: O.Adam(p, lr=0.01, weight_decay=0.1), "adamw": lambda p: O.AdamW(p, lr=0.01),
    "amsgrad": lambda p: O.Adam(p, lr=0.01, amsgrad=True),
    "sgd_groups": lambda p: O.SGD([{"params": p[:2], "lr": 0.3, "momentum": 0.9}, {"params": p[2:]}], lr=0.1),
    "adam_groups": lambda p: O.Adam([{"params": p[:2], "weight_decay": 0.1}, {"params": p[2:], "lr": 0.1}], lr=0.01),
}


def mlp(make_opt, order, dtype=F64):
    """zero_grad first (PyTorch's order), last, or never (gradients accumulate over calls)."""
    def make():
        l1, l2 = lin(4, 5, 0, dtype), lin(5, 3, 1, dtype)
        params = [*l1.parameters(), *l2.parameters()]
        opt = make_opt(params)

        def step(X, y):
            if order == "first":
                opt.zero_grad()
            logits = l2(l1(X).relu())
            loss = tl.nn.softmax_cross_entropy(logits, y) + 0.01 * (l1.weight ** 2).sum()
            loss.backward(); opt.step()
            if order == "last":
                opt.zero_grad()
            return loss, logits
        return dict(step=step, data=lambda r, c: batch(r, c, dtype=dtype), params=params, opt=opt)
    return make


@pytest.mark.parametrize("order", ["first", "last", "never"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_mlp_with_each_optimizer_and_zero_grad_order(name, order):
    assert compare(mlp(OPTIMIZERS[name], order)).fallback_reason is None


@pytest.mark.parametrize("name", ["sgd", "adam_l2"])
def test_float32_mlp_agrees_to_float32_rounding(name):
    compare(mlp(OPTIMIZERS[name], "last", np.float32), rtol=1e-5)


class Identity(tl.Function):  # returns its input array itself
    def forward(self, x):
        return x

    def backward(self, g):
        return g


class Transposed(tl.Function):  # returns a view of its input
    def forward(self, x):
        return x.T

    def backward(self, g):
        return g.T


class MaxScaled(tl.Function):  # reads a value into Python: no symbolic form, replayed opaque
    def forward(self, x):
        self.x, self.m = x, float(np.abs(x).max())
        return np.tanh(x) / self.m

    def backward(self, g):
        return g * (1 - np.tanh(self.x) ** 2) / self.m


def custom_ops():
    l1, l2 = lin(4, 5, 0), lin(5, 3, 1)
    params = [*l1.parameters(), *l2.parameters()]
    opt = O.SGD(params, lr=0.1, momentum=0.9)

    def step(X, y):
        h = l1(X)
        a = Identity.apply(h)
        t = Transposed.apply((a * 3.0).tanh() + h)
        k = MaxScaled.apply(h * 2.0)
        loss = tl.nn.softmax_cross_entropy(l2(k + t.T), y) + (t.exp() * 0.5).mean()
        loss.backward(); opt.step(); opt.zero_grad()
        return loss, a, t, k
    return dict(step=step, data=batch, params=params, opt=opt)


def tied_weights():
    """A weight used twice (and transposed), broadcast biases, two param groups, a dict of
    views returned."""
    W = tl.Tensor(np.random.default_rng(0).standard_normal((4, 4)) * 0.3, requires_grad=True)
    b, c = tl.Tensor(np.zeros((1, 4)), requires_grad=True), tl.Tensor(np.zeros(4), requires_grad=True)
    opt = O.SGD([{"params": [W], "weight_decay": 0.01}, {"params": [b, c], "lr": 0.05}], lr=0.1, momentum=0.9, nesterov=True)

    def step(X, Y):
        h = (X @ W + b).tanh()
        o = h @ W.T + c
        loss = tl.nn.mse_loss(o, Y) + 0.5 * ((h - X) ** 2).mean() + 1e-3 * (W * W).sum()
        parts = [h[:, 1:3], o.T, o.reshape(-1)]
        loss.backward(); opt.step(); opt.zero_grad()
        return {"loss": loss, "parts": parts}
    data = lambda r, c: ((tl.Tensor(r.standard_normal((5, 4))), tl.Tensor(r.standard_normal((5, 4)))), {})  # noqa: E731
    return dict(step=step, data=data, params=[W, b, c], opt=opt)


def convnet():
    m = tl.nn.Sequential(tl.nn.Conv2d(2, 4, 3, padding=1, dtype=F64, rng=0), tl.nn.ReLU(), tl.nn.MaxPool2d(2),
                         tl.nn.Conv2d(4, 4, 3, stride=2, dtype=F64, rng=1), tl.nn.Flatten(), lin(4, 3, 2))
    params = list(m.parameters())
    opt = O.Adam(params, lr=0.01, amsgrad=True, weight_decay=0.01)

    def step(X, y):
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(m(X), y) + 0.01 * (m[0].weight ** 2).sum()
        loss.backward(); opt.step()
        return loss
    data = lambda r, c: ((tl.Tensor(r.standard_normal((3, 2, 8, 8))), r.integers(0, 3, 3)), {})  # noqa: E731
    return dict(step=step, data=data, params=params, opt=opt)


def grouped_convnet():
    """Grouped, dilated convolutions; average pooling with padding; float32 weights."""
    f32 = np.float32
    m = tl.nn.Sequential(tl.nn.Conv2d(4, 4, 3, groups=2, dilation=2, padding=2, dtype=f32, rng=0), tl.nn.ReLU(),
                         tl.nn.AvgPool2d(3, stride=2, padding=1), tl.nn.Conv2d(4, 3, 3, stride=2, padding=1, dtype=f32, rng=1),
                         tl.nn.AdaptiveAvgPool2d(1), tl.nn.Flatten())
    params = list(m.parameters())
    opt = O.SGD(params, lr=0.1, momentum=0.9)

    def step(X, y):
        opt.zero_grad()
        out = m(X)
        loss = tl.nn.softmax_cross_entropy(out, y) + 1e-2 * sum((p ** 2).sum() for p in params[::2])
        loss.backward(); opt.step()
        return loss, out
    data = lambda r, c: ((tl.Tensor(r.standard_normal((3, 4, 9, 9)).astype(f32)), r.integers(0, 3, 3)), {})  # noqa: E731
    return dict(step=step, data=data, params=params, opt=opt)


def large_activations_kept():
    """Matmul and large elementwise results go to buffers: the returned ones must survive
    the next calls, and an opaque op's saved input must not be overwritten."""
    layers = [lin(64, 128, 0), lin(128, 128, 1), lin(128, 10, 2)]
    params = [p for layer in layers for p in layer.parameters()]
    opt = O.Adam(params, lr=0.01)

    def step(X, y):
        h1 = layers[0](X).relu()
        h2 = MaxScaled.apply(layers[1](h1) * 2.0 + h1)
        h3 = (h2 + h1).sigmoid() * h1
        loss = tl.nn.softmax_cross_entropy(layers[2](h3), y) + ((h3 - h1) ** 2).mean()
        loss.backward(); opt.step(); opt.zero_grad()
        return loss, h1, h3
    return dict(step=step, data=lambda r, c: batch(r, c, 256, 64, 10), params=params, opt=opt)


def closure_labels_rebound_and_mutated():
    l1 = lin(4, 3, 0)
    params, rows, y = list(l1.parameters()), np.arange(6), np.zeros(6, dtype=np.int64)
    opt = O.SGD(params, lr=0.5)

    def step(X):
        logp = l1(X).log_softmax(-1)
        loss = -logp[rows, y].mean()
        loss.backward(); opt.step(); opt.zero_grad()
        return loss

    def data(rng, call):
        nonlocal y
        if call % 2:
            y = rng.integers(0, 3, 6)
        else:
            y[...] = rng.integers(0, 3, 6)
        return (tl.Tensor(rng.standard_normal((6, 4))),), {}
    return dict(step=step, data=data, params=params, opt=opt)


def same_tensor_twice_mutated_in_place():
    W = tl.Tensor(np.random.default_rng(0).standard_normal((4, 4)) * 0.3, requires_grad=True)
    X, opt = tl.Tensor(np.zeros((3, 4))), O.SGD([W], lr=0.1)

    def step(A, B):
        loss = ((A @ W) * B).mean()
        loss.backward(); opt.step(); opt.zero_grad()
        return loss

    def data(rng, call):
        X.data[...] = rng.standard_normal((3, 4))
        return (X, X), {}
    return dict(step=step, data=data, params=[W], opt=opt)


def repeated_rows_gathered():
    W = tl.Tensor(np.random.default_rng(0).standard_normal((5, 3)), requires_grad=True)
    opt = O.SGD([W], lr=0.1)

    def step(idx, t):
        loss = ((W[idx] - t) ** 2).sum()
        loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return dict(step=step, data=lambda r, c: ((r.integers(0, 5, 7), tl.Tensor(r.standard_normal((7, 3)))), {}),
                params=[W], opt=opt)


def interleaved_with_outside_changes():
    """Eager calls and pending graphs in between, a checkpoint reloaded, the lr scheduled,
    a keyword call, a smaller last batch."""
    m = tl.nn.Sequential(lin(4, 5, 0), tl.nn.Tanh(), lin(5, 3, 1))
    params, saved, kept = list(m.parameters()), {}, []
    opt = O.SGD(params, lr=0.1, momentum=0.9)
    scheduler = O.lr_scheduler.StepLR(opt, 1, 0.5)

    def step(X, y):
        loss = tl.nn.softmax_cross_entropy(m(X), y); loss.backward(); opt.step(); opt.zero_grad()
        return loss

    def after(args, kwargs, call):
        kept.append(step(**kwargs) if call == 1 else m(kwargs["X"]))  # an eager step; a pending graph
        if call == 0:
            saved.update(m=m.state_dict(), opt=opt.state_dict())
        if call == 3:
            m.load_state_dict(saved["m"]); opt.load_state_dict(saved["opt"])
        scheduler.step()
    data = lambda r, c: ((), dict(zip("Xy", batch(r, c, n=[6, 6, 6, 6, 2][c])[0])))  # noqa: E731
    return dict(step=step, data=data, params=params, opt=opt, after=after)


@pytest.mark.parametrize("make", [custom_ops, tied_weights, convnet, large_activations_kept,
                                  closure_labels_rebound_and_mutated, same_tensor_twice_mutated_in_place,
                                  repeated_rows_gathered, interleaved_with_outside_changes],
                         ids=lambda f: f.__name__)
def test_compiled_step_equals_eager(make):
    assert compare(make, calls=5).fallback_reason is None


def test_a_float32_convnet_agrees_to_float32_rounding():
    assert compare(grouped_convnet, rtol=3e-5).fallback_reason is None


# ---- steps replay cannot reproduce: they must fall back, not be wrong -------------------------

def falls_back(body):
    def make():
        m = tl.nn.Sequential(lin(4, 5, 0), tl.nn.BatchNorm1d(5), tl.nn.Dropout(0.5), lin(5, 3, 1))
        params, opt = list(m.parameters()), O.SGD(list(m.parameters()), lr=0.1)
        tl.manual_seed(3)
        return dict(step=lambda X, y: body(m, opt, X, y), data=batch, params=params, opt=opt)
    return make


def _bn_dropout(m, opt, X, y):
    loss = tl.nn.softmax_cross_entropy(m(X), y); loss.backward(); opt.step(); opt.zero_grad()
    return loss


def _arange_inside(m, opt, X, y):
    logp = m[3](m[0](X)).log_softmax(-1)
    loss = -logp[np.arange(len(y)), y].mean(); loss.backward(); opt.step(); opt.zero_grad()
    return loss


def _mask_from_data(m, opt, X, y):
    h = m[0](X)
    loss = (tl.where(X.data[:, :1] > 0, h, -h) ** 2).mean(); loss.backward(); opt.step(); opt.zero_grad()
    return loss, float(np.abs(h.data).max())


@pytest.mark.parametrize("body", [_bn_dropout, _arange_inside, _mask_from_data], ids=lambda f: f.__name__)
def test_an_unreplayable_step_falls_back_and_equals_eager(body):
    assert compare(falls_back(body)).fallback_reason is not None


# ---- found replayed wrong, then fixed ------------------------------------------------------------

def _manual_sgd(X, y, l1, params):
    loss = tl.nn.softmax_cross_entropy(l1(X), y)
    loss.backward()
    for p in params:
        p.data -= 0.1 * p.grad  # the update micrograd teaches
        p.grad = None
    return loss


def _functional_sgd(X, y, l1, params):
    loss = tl.nn.softmax_cross_entropy(l1(X), y)
    for p, g in zip(params, tl.grad(loss, params)):  # torch.autograd.grad's way
        p.data = p.data - 0.1 * g
    return loss


@pytest.mark.parametrize("update", [_manual_sgd, _functional_sgd], ids=lambda f: f.__name__)
def test_a_hand_written_sgd_update_is_replayed_or_falls_back(update):
    def make():
        l1 = lin(4, 3, 0)
        params = list(l1.parameters())
        return dict(step=lambda X, y: update(X, y, l1, params), data=batch, params=params)
    compare(make)


def test_gradient_clipping_by_hand_is_replayed_or_falls_back():
    def make():
        l1 = lin(4, 3, 0)
        params = list(l1.parameters())
        opt = O.SGD(params, lr=0.5)

        def step(X, y):
            loss = tl.nn.softmax_cross_entropy(l1(X), y)
            loss.backward()
            for p in params:
                np.clip(p.grad, -0.01, 0.01, out=p.grad)
            opt.step(); opt.zero_grad()
            return loss
        return dict(step=step, data=batch, params=params, opt=opt)
    compare(make)


def test_a_float64_numpy_batch_into_a_float32_model_computes_in_float32():
    def make():
        l1 = lin(4, 3, 0, np.float32)
        params = list(l1.parameters())
        opt = O.SGD(params, lr=0.1)

        def step(X, y):
            loss = tl.nn.softmax_cross_entropy(l1(X), y); loss.backward(); opt.step(); opt.zero_grad()
            return loss
        return dict(step=step, data=lambda r, c: ((r.standard_normal((6, 4)), r.integers(0, 3, 6)), {}),
                    params=params, opt=opt)
    compare(make, rtol=1e-5)


@pytest.mark.parametrize("extra", [pytest.param(((2.0,), {}), id="number"),
                                   pytest.param(((), {"scale": 2.0}), id="number_keyword"),
                                   pytest.param(((2.0,), {"mask": None}), id="none_keyword")])
def test_a_non_array_argument_replays(extra):
    W = tl.Tensor(np.ones((4, 3)), requires_grad=True)

    def step(X, scale, mask=None):
        loss = ((X @ W) * scale).mean(); loss.backward()
        return loss
    compiled = tl.compile(step)
    for _ in range(2):
        W.grad = None
        assert compiled(tl.Tensor(np.ones((2, 4))), *extra[0], **extra[1]).item() == 8.0


def test_model_zero_grad_in_a_compiled_step():
    def make():
        m = tl.nn.Sequential(lin(4, 5, 0), tl.nn.ReLU(), lin(5, 3, 1))
        params = list(m.parameters())
        opt = O.SGD(params, lr=0.1)

        def step(X, y):
            m.zero_grad()
            loss = tl.nn.softmax_cross_entropy(m(X), y); loss.backward(); opt.step()
            return loss
        return dict(step=step, data=batch, params=params, opt=opt)
    compare(make)


def test_a_large_float32_l2_penalty_keeps_float32_accuracy():
    W = tl.Tensor(np.full(200_000, 0.49997, np.float32), requires_grad=True)

    def step():
        loss = 0.01 * (W ** 2).sum() + W.mean()
        loss.backward()
        return loss
    compiled = tl.compile(step)
    exact = 0.01 * float(np.dot(W.data.astype(F64), W.data.astype(F64))) + float(W.data.astype(F64).mean())
    for _ in range(3):
        W.grad = None
        assert compiled().item() == pytest.approx(exact, rel=1e-5)


CALLS = 0  # a global the step below increments


def test_a_global_counter_the_step_increments_and_returns():
    global CALLS
    W = tl.Tensor(np.ones(3), requires_grad=True)

    def step(x):
        global CALLS
        CALLS += 1
        loss = (W * x).sum(); loss.backward()
        return loss, CALLS
    CALLS, compiled = 0, tl.compile(step)
    assert [compiled(tl.Tensor(np.ones(3)))[1] for _ in range(3)] == [1, 2, 3] and CALLS == 3


def test_a_numpy_number_equal_to_a_literal_is_not_frozen():
    W = tl.Tensor(np.ones((2, 2)), requires_grad=True)

    def step(X, y):
        loss = 0.5 * ((X @ W) ** 2).mean(); loss.backward()
        return loss, float((y == 1).mean())
    compiled = tl.compile(step)
    X = tl.Tensor(np.ones((2, 2)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        shares = [compiled(X, y)[1] for y in (np.array([0, 1]), np.array([1, 1]), np.array([0, 0]))]
    assert shares == [0.5, 1.0, 0.0]


class GaussianNoise(tl.Function):
    """y = x + 0.1·ε, with ε drawn afresh at each forward (noise injection)."""
    def forward(self, x):
        return x + 0.1 * np.random.standard_normal(x.shape)

    def backward(self, g):
        return g


def test_a_custom_op_that_draws_random_numbers_draws_each_call():
    def make():
        np.random.seed(0)
        W = tl.Tensor(np.ones((4, 2)), requires_grad=True)
        opt = O.SGD([W], lr=0.1)

        def step(X, y):
            loss = (GaussianNoise.apply(X @ W) ** 2).mean(); loss.backward(); opt.step(); opt.zero_grad()
            return loss
        return dict(step=step, data=batch, params=[W], opt=opt)
    compare(make)


@pytest.mark.parametrize("make_opt", [
    pytest.param(lambda p: O.SGD(p, lr=0.1, momentum=0.9), id="sgd_momentum"),
    pytest.param(lambda p: O.Adam(p, lr=0.1), id="adam")])
def test_zero_grad_between_backward_and_step_leaves_nothing_to_step(make_opt):
    def make():
        l1 = lin(4, 3, 0)
        params = list(l1.parameters())
        opt = make_opt(params)

        def step(X, y):
            loss = tl.nn.softmax_cross_entropy(l1(X), y)
            loss.backward(); opt.zero_grad(); opt.step()
            return loss
        return dict(step=step, data=batch, params=params, opt=opt)
    compare(make)


def ordered(order, make_opt):
    """The step's calls in the given order: b backward, s opt.step(), z zero_grad(),
    f zero_grad(set_to_none=False)."""
    def make():
        l1 = lin(4, 3, 0)
        params = list(l1.parameters())
        opt = make_opt(params)
        calls = {"b": lambda loss: loss.backward(), "s": lambda loss: opt.step(),
                 "z": lambda loss: opt.zero_grad(), "f": lambda loss: opt.zero_grad(set_to_none=False)}

        def step(X, y):
            loss = tl.nn.softmax_cross_entropy(l1(X), y)
            for event in order:
                calls[event](loss)
            return loss
        return dict(step=step, data=batch, params=params, opt=opt)
    return make


@pytest.mark.parametrize("order", ["bfs", "szb", "sbz", "bszs", "zbss", "bsfs", "fbs"])
@pytest.mark.parametrize("name", ["nesterov_wd", "adamw"])
def test_events_in_any_order_replay_as_eager(order, name):
    compare(ordered(order, OPTIMIZERS[name]))


def scheduled(where, make_opt, make_scheduler):
    """scheduler.step() at the start of the step, or right before opt.step(), or at the end."""
    def make():
        l1 = lin(4, 3, 0)
        params = list(l1.parameters())
        opt = make_opt(params)
        scheduler = make_scheduler(opt)

        def step(X, y):
            if where == "start":
                scheduler.step()
            loss = tl.nn.softmax_cross_entropy(l1(X), y)
            loss.backward()
            if where == "before_step":
                scheduler.step()
            opt.step(); opt.zero_grad()
            if where == "end":
                scheduler.step()
            return loss
        return dict(step=step, data=batch, params=params, opt=opt)
    return make


STEP_LR = lambda opt: O.lr_scheduler.StepLR(opt, 1, 0.5)  # noqa: E731
ONE_CYCLE = lambda opt: O.one_cycle.OneCycleLR(opt, max_lr=0.5, total_steps=20)  # noqa: E731


@pytest.mark.parametrize("where", ["before_step", "end"])
@pytest.mark.parametrize("name", ["sgd", "momentum", "adam_l2"])
def test_an_lr_schedule_inside_the_step_replays_as_eager(name, where):
    compare(scheduled(where, OPTIMIZERS[name], STEP_LR), calls=5)


def test_a_one_cycle_schedule_after_the_step_replays_as_eager():
    compare(scheduled("end", OPTIMIZERS["adam_l2"], ONE_CYCLE), calls=5)


def test_an_lr_schedule_at_the_start_of_a_plain_sgd_step():
    compare(scheduled("start", OPTIMIZERS["sgd"], STEP_LR), calls=5)


@pytest.mark.parametrize("name", ["momentum", "adam_l2"])
def test_a_one_cycle_schedule_before_opt_step(name):
    compare(scheduled("before_step", OPTIMIZERS[name], ONE_CYCLE), calls=5)


PENALTIES = {  # Σw² in its many spellings, and terms that are not a decay at all
    "learned_coefficient": lambda W, b, lam, s: lam * (W ** 2).sum() + (lam - 0.1) ** 2,
    "coefficient_squared": lambda W, b, lam, s: (lam ** 2) * (W ** 2).sum(),
    "scaled_rows": lambda W, b, lam, s: 0.1 * (s ** 2).sum() + 0.1 * ((W * s.reshape(3, 1)) ** 2).sum(),
    "two_terms_one_weight": lambda W, b, lam, s: 0.1 * (W ** 2).sum() + 0.3 * (W ** 2).mean() + 0.2 * (b ** 2).sum(),
    "rows_of_a_weight": lambda W, b, lam, s: 0.1 * (W[:2] ** 2).sum(),
    "weight_plus_bias": lambda W, b, lam, s: 0.1 * ((W.T + b) ** 2).sum(),
    "square_of_sum": lambda W, b, lam, s: 0.1 * W.sum() ** 2,
    "keras_l1_l2": lambda W, b, lam, s: tl.nn.L1L2(0.01, 0.02)(W) + tl.nn.L2(0.05)(W),
}


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("name", sorted(PENALTIES))
def test_penalty_terms_with_the_lr_in_the_seed(name, weight_decay):
    """Plain SGD, zero_grad last: the L2 written as a decay where it is one, else as is."""
    def make():
        l1, lam = lin(4, 3, 0), tl.Tensor(np.array(0.1), requires_grad=True)
        s = tl.Tensor(np.full(3, 0.5), requires_grad=True)
        params = [*l1.parameters(), lam, s]
        opt = O.SGD(params, lr=0.3, weight_decay=weight_decay)

        def step(X, y):
            loss = tl.nn.softmax_cross_entropy(l1(X) * s, y) + PENALTIES[name](l1.weight, l1.bias, lam, s)
            loss.backward(); opt.step(); opt.zero_grad()
            return loss
        return dict(step=step, data=batch, params=params, opt=opt)
    assert compare(make).fallback_reason is None


def hand_written_cross_entropy(index):
    def make():
        l1 = lin(4, 3, 0)
        params = list(l1.parameters())
        opt = O.SGD(params, lr=0.1)

        def step(X, y):
            logp = l1(X).log_softmax(-1)
            loss = -logp[index(y)].mean(); loss.backward(); opt.step(); opt.zero_grad()
            return loss
        return dict(step=step, data=batch, params=params, opt=opt)
    return make


def test_labels_as_an_array_index_replay_each_call():
    compare(hand_written_cross_entropy(lambda y: (np.arange(len(y)), y)))


@pytest.mark.parametrize("index", [
    pytest.param(lambda y: (list(range(len(y))), y.tolist()), id="tolist"),
    pytest.param(lambda y: (tuple(range(len(y))), tuple(y)), id="tuple")])
def test_labels_as_a_python_list_index_are_not_frozen(index):
    compare(hand_written_cross_entropy(index))


class MaskedRelu(tl.Function):  # backward through np.copyto(..., where=)
    def forward(self, x):
        self.mask = x > 0
        return np.maximum(x, 0)

    def backward(self, g):
        out = np.zeros_like(g)
        np.copyto(out, g, where=self.mask)
        return out


class OffDiagonal(tl.Function):  # backward through np.fill_diagonal
    def forward(self, x):
        return x * 1.0

    def backward(self, g):
        out = g.copy()
        np.fill_diagonal(out, 0.0)
        return out


class PickedCrossEntropy(tl.Function):  # a custom loss: backward through np.put_along_axis
    def forward(self, z, y):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        self.y, self.p = y[:, None], e / e.sum(axis=1, keepdims=True)
        return -np.log(np.take_along_axis(self.p, self.y, axis=1)).mean()

    def backward(self, g):
        d = self.p.copy()
        np.put_along_axis(d, self.y, np.take_along_axis(d, self.y, axis=1) - 1, axis=1)
        return g * d / len(self.y), None


CUSTOM_LOSSES = {"copyto": lambda z, y: (MaskedRelu.apply(z) ** 2).mean(),
                 "fill_diagonal": lambda z, y: (OffDiagonal.apply(z[:3]) ** 2).sum(),
                 "put_along_axis": lambda z, y: PickedCrossEntropy.apply(z, y)}


@pytest.mark.parametrize("name", sorted(CUSTOM_LOSSES))
def test_a_custom_backward_writing_with_numpy_in_place_functions(name):
    def make():
        W = tl.Tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
        opt = O.SGD([W], lr=0.1)

        def step(X, y):
            loss = CUSTOM_LOSSES[name](X @ W, y); loss.backward(); opt.step(); opt.zero_grad()
            return loss
        return dict(step=step, data=lambda r, c: batch(r, c, n=5), params=[W], opt=opt)
    compare(make)


@pytest.mark.parametrize("name", ["lambda", "None", "class"])
def test_a_parameter_named_after_a_python_keyword(name):
    W = tl.Tensor(np.ones(3), requires_grad=True, name=name)

    def step(x):
        loss = (W * x).sum(); loss.backward()
        return loss
    compiled = tl.compile(step)
    for _ in range(2):
        W.grad = None
        assert compiled(tl.Tensor(np.ones(3))).item() == 3.0 and W.grad.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("name", ["slice", "Ellipsis"])
def test_a_parameter_named_after_a_builtin_the_source_uses(name):
    A = tl.Tensor(np.eye(3) * 0.5 + 0.1, requires_grad=True, name=name)

    def step(X):
        h = (X @ A).tanh()
        loss = (h[:, :2] ** 2).mean() + (h[..., 1:] ** 2).mean(); loss.backward()
        return loss
    compiled, X = tl.compile(step), tl.Tensor(np.arange(6.0).reshape(2, 3) / 6)
    assert [compiled(X).item() for _ in range(3)] == [step(X).item()] * 3


def test_detect_anomaly_is_honoured_by_the_replay():
    W = tl.Tensor(np.ones(3), requires_grad=True)
    opt = O.SGD([W], lr=0.1)

    def step(x):
        loss = (W * x).log().sum(); loss.backward(); opt.step(); opt.zero_grad()
        return loss
    compiled = tl.compile(step)
    for _ in range(2):
        compiled(tl.Tensor(np.ones(3)))
    before = W.data.copy()
    raised = False
    with warnings.catch_warnings(), np.errstate(invalid="ignore"):
        warnings.simplefilter("ignore")
        try:
            with tl.detect_anomaly():
                compiled(tl.Tensor(np.full(3, -1.0)))
        except tl.AnomalyError:
            raised = True
    assert raised and np.array_equal(W.data, before)
