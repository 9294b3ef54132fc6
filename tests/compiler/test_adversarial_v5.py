"""Compiled steps against the same steps run eagerly, for what the earlier adversarial files do
not cover: two optimizers in one step, optimizer state reloaded, cleared or rebound between
calls, hyper-parameters changed between calls, gradients accumulated over calls and stepped
outside, schedules over several groups, Keras regularizers, grouped and dilated convolutions,
LayerNorm, custom ops recorded symbolically, returned dicts of numbers.  Each scenario is built
twice from the same seeds; after every call the returned values, every parameter, every .grad
and the optimizer state must agree (float64: 1e-12 norm-wise, rewrites change rounding only).

The later sections hold the defects this file found, each fixed since: random numbers drawn in a
custom backward or in an optimizer's update() were frozen into the compiled step; building the
step moved a user's own random generator; in-place numpy writes inside the step (a batch divided
by 255, a weight clipped) were skipped by the replay; an optimizer update() that reads a number
crashed the build; a compiled step first called inside another compiled function left the outer
one without backward and step (or crashed it); check=N restored neither a SequentialLR's inner
schedules nor numpy's random state; and, eagerly, MatMul's backward crashed for a constant
batched or vector input to a Linear layer."""
import warnings

import numpy as np
import pytest

import tinygrad_l2 as tl

O, LR, F64 = tl.optim, tl.optim.lr_scheduler, np.float64


# ---- harness -----------------------------------------------------------------------------------

def _arrays(obj):
    if isinstance(obj, tl.Tensor):
        return [obj.data.copy()]
    if isinstance(obj, dict):
        return [x for k in sorted(obj) for x in _arrays(obj[k])]
    if isinstance(obj, (list, tuple)):
        return [x for o in obj for x in _arrays(o)]
    return [obj]


def _observed(env, out):
    opts = env["opts"]
    state = [np.array(v).copy() for o in opts for g in o.param_groups for p in g["params"]
             for _, v in sorted(o.state.get(p, {}).items())]
    return [_arrays(out), [p.data.copy() for p in env["params"]], state,
            [np.zeros(0) if p.grad is None else p.grad.copy() for p in env["params"]],
            [g["lr"] for o in opts for g in o.param_groups]]


def _run(make, compiled, calls):
    env = make()
    step = tl.compile(env["step"]) if compiled else env["step"]
    rng, seen = np.random.default_rng(11), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for call in range(calls):
            out = step(*env["data"](rng))
            seen.append(_observed(env, out))
            env.get("after", lambda c: None)(call)
    return seen, step


def _agree(want, got, rtol, where):
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (a, b) in enumerate(zip(want, got)):
            _agree(a, b, rtol, f"{where}[{i}]")
    elif isinstance(want, np.ndarray):
        assert got.dtype == want.dtype and got.shape == want.shape, where
        assert np.linalg.norm(got - want) <= rtol * max(np.linalg.norm(want), 1e-300), where
    else:
        assert type(got) is type(want) and abs(got - want) <= rtol * abs(want), (where, want, got)


def compare(make, calls=4, rtol=1e-12):
    """Eager and compiled from identical states agree after every call; the compiled step."""
    want, _ = _run(make, False, calls)
    got, step = _run(make, True, calls)
    _agree(want, got, rtol, "call")
    return step


def lin(n_in, n_out, seed, **kw):
    return tl.nn.Linear(n_in, n_out, dtype=F64, rng=seed, **kw)


def batch(n=6):
    return lambda r: (tl.Tensor(r.standard_normal((n, 4))), r.integers(0, 3, n))


def two_layers():
    l1, l2 = lin(4, 5, 0), lin(5, 3, 1)
    return l1, l2, [*l1.parameters(), *l2.parameters()]


def ce(l1, l2, X, y):
    return tl.nn.softmax_cross_entropy(l2(l1(X).tanh()), y) + 0.01 * (l1.weight ** 2).sum()


# ---- optimizers: several, state changed between calls, gradients accumulated ------------------

def two_optimizers():
    """SGD with momentum on the first layer, Adam on the second, zero_grad first."""
    l1, l2, params = two_layers()
    sgd, adam = O.SGD(l1.parameters(), lr=0.1, momentum=0.9), O.Adam(l2.parameters(), lr=0.01)

    def step(X, y):
        sgd.zero_grad(); adam.zero_grad()
        loss = ce(l1, l2, X, y); loss.backward(); sgd.step(); adam.step()
        return loss
    return dict(step=step, data=batch(), params=params, opts=[sgd, adam])


def adam_state_reloaded():
    """amsgrad, two groups; the state saved after call 0 is loaded after call 2 (moments and
    step count go back), then the state saved before any step (empty) after call 3."""
    l1, l2, params = two_layers()
    opt = O.Adam([{"params": params[:2], "lr": 0.05}, {"params": params[2:], "weight_decay": 0.1}],
                 lr=0.01, amsgrad=True)
    empty, saved = opt.state_dict(), {}

    def step(X, y):
        opt.zero_grad(); loss = ce(l1, l2, X, y); loss.backward(); opt.step()
        return loss

    def after(call):
        if call == 0:
            saved.update(opt.state_dict())
        opt.load_state_dict({2: saved, 3: empty}.get(call, opt.state_dict()))
    return dict(step=step, data=batch(), params=params, opts=[opt], after=after)


def momentum_state_cleared_and_rebound():
    """The momentum buffers: cleared (state = {}), then rebound to new arrays, then edited."""
    l1, l2, params = two_layers()
    opt = O.SGD(params, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)

    def step(X, y):
        loss = ce(l1, l2, X, y); loss.backward(); opt.step(); opt.zero_grad()
        return loss

    def after(call):
        if call == 1:
            opt.state.clear()
        elif call == 2:
            opt.state[l1.weight]["momentum_buffer"] = np.ones((5, 4))
        else:
            opt.state[l2.bias]["momentum_buffer"][...] = -1.0
    return dict(step=step, data=batch(), params=params, opts=[opt], after=after, calls=5)


def hyper_parameters_changed():
    """lr scaled every call, betas and eps changed (retrace), weight_decay switched on."""
    l1, l2, params = two_layers()
    opt = O.AdamW(params, lr=0.1, weight_decay=0.0)

    def step(X, y):
        loss = ce(l1, l2, X, y); loss.backward(); opt.step(); opt.zero_grad()
        return loss

    def after(call):
        group = opt.param_groups[0]
        group["lr"] *= 0.5
        group.update({0: {"betas": (0.5, 0.9)}, 1: {"eps": 1e-3}, 2: {"weight_decay": 0.3}}.get(call, {}))
    return dict(step=step, data=batch(), params=params, opts=[opt], after=after)


def unused_and_untracked_parameters():
    """An optimizer's parameter the loss never reaches; a layer outside any optimizer, whose
    .grad keeps accumulating over calls."""
    l1, l2, params = two_layers()
    spare = lin(5, 3, 2)
    opt = O.Adam([*l1.parameters(), *spare.parameters()], lr=0.05, weight_decay=0.1)

    def step(X, y):
        opt.zero_grad(); loss = ce(l1, l2, X, y); loss.backward(); opt.step()
        return loss
    return dict(step=step, data=batch(), params=params + list(spare.parameters()), opts=[opt])


def accumulated_over_calls(make_opt):
    """The step only runs backward; the optimizer steps every second call, outside."""
    def make():
        l1, l2, params = two_layers()
        opt = make_opt(params)

        def step(X, y):
            loss = ce(l1, l2, X, y); loss.backward()
            return loss

        def after(call):
            if call % 2:
                opt.step(); opt.zero_grad()
        return dict(step=step, data=batch(), params=params, opts=[opt], after=after, calls=6)
    return make


def scheduled_groups(make_scheduler):
    """A schedule over two groups stepped inside the step, after opt.step()."""
    def make():
        l1, l2, params = two_layers()
        opt = O.SGD([{"params": params[:2], "lr": 0.2}, {"params": params[2:]}], lr=0.1, momentum=0.5)
        scheduler = make_scheduler(opt)

        def step(X, y):
            loss = ce(l1, l2, X, y); loss.backward(); opt.step(); opt.zero_grad(); scheduler.step()
            return loss
        return dict(step=step, data=batch(), params=params, opts=[opt], calls=6)
    return make


SEQUENTIAL = lambda o: LR.SequentialLR(o, [LR.LinearLR(o, 0.1, 1.0, total_iters=2),  # noqa: E731
                                           LR.CosineAnnealingLR(o, T_max=3)], milestones=[2])
PER_GROUP = lambda o: LR.LambdaLR(o, [lambda e: 0.5 ** e, lambda e: 1.0 / (e + 1)])  # noqa: E731


# ---- models and returned values ---------------------------------------------------------------

def keras_regularizers():
    """kernel and bias regularizers (L2, L1, L1L2) through model.regularization_loss(), plain
    SGD with the gradients dying with the call: the L2 written as a decay."""
    m = tl.nn.Sequential(lin(4, 5, 0, kernel_regularizer=tl.nn.L2(0.01), bias_regularizer=tl.nn.L1(0.02)),
                         tl.nn.Tanh(), lin(5, 3, 1, kernel_regularizer=tl.nn.L1L2(0.01, 0.03)))
    params = list(m.parameters())
    opt = O.SGD(params, lr=0.1)

    def step(X, y):
        loss = tl.nn.softmax_cross_entropy(m(X), y) + m.regularization_loss()
        loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return dict(step=step, data=batch(), params=params, opts=[opt])


def conv_layernorm(make_opt):
    """Grouped, dilated, strided convolution with padding; max pooling with padding; a
    rectangular kernel; LayerNorm; an L2 on the first kernel."""
    def make():
        conv = lambda i, o, k, s, **kw: tl.nn.Conv2d(i, o, k, dtype=F64, rng=s, **kw)  # noqa: E731
        m = tl.nn.Sequential(conv(4, 6, 3, 0, groups=2, dilation=2, padding=2, stride=2), tl.nn.ReLU(),
                             tl.nn.MaxPool2d(2, stride=1, padding=1), conv(6, 3, (1, 3), 1, stride=(1, 2)),
                             tl.nn.Flatten(), tl.nn.LayerNorm(36, dtype=F64), lin(36, 3, 2))
        params = list(m.parameters())
        opt = make_opt(params)

        def step(X, y):
            loss = tl.nn.softmax_cross_entropy(m(X), y) + 1e-2 * (m[0].weight ** 2).sum()
            loss.backward(); opt.step(); opt.zero_grad()
            return loss
        data = lambda r: (tl.Tensor(r.standard_normal((2, 4, 9, 8))), r.integers(0, 3, 2))  # noqa: E731
        return dict(step=step, data=data, params=params, opts=[opt], calls=3)
    return make


def returned_dict_of_numbers():
    """A dict holding .item() and float() numbers, a pair and the logits; a batch of 1."""
    l1, l2, params = two_layers()
    opt = O.SGD(params, lr=0.1, momentum=0.9, nesterov=True)

    def step(X, y):
        logits = l2(l1(X).tanh())
        loss = tl.nn.softmax_cross_entropy(logits, y)
        numbers = {"loss": loss.item(), "top": (float(logits.max()), loss), "logits": logits}
        loss.backward(); opt.step(); opt.zero_grad()
        return numbers
    return dict(step=step, data=batch(1), params=params, opts=[opt])


SCENARIOS = [two_optimizers, adam_state_reloaded, momentum_state_cleared_and_rebound,
             hyper_parameters_changed, unused_and_untracked_parameters,
             accumulated_over_calls(lambda p: O.Adam(p, lr=0.05, amsgrad=True)),
             accumulated_over_calls(lambda p: O.SGD(p, lr=0.1, momentum=0.9, dampening=0.2)),
             scheduled_groups(SEQUENTIAL), scheduled_groups(PER_GROUP), keras_regularizers,
             conv_layernorm(lambda p: O.SGD(p, lr=0.05)), conv_layernorm(lambda p: O.Adam(p, lr=0.01)),
             returned_dict_of_numbers]
IDS = ["two_optimizers", "adam_state_reloaded", "momentum_state_cleared_and_rebound",
       "hyper_parameters_changed", "unused_and_untracked_parameters", "accumulated_adam",
       "accumulated_sgd", "sequential_schedule", "per_group_lambda_schedule", "keras_regularizers",
       "conv_layernorm_sgd", "conv_layernorm_adam", "returned_dict_of_numbers"]


@pytest.mark.parametrize("make", SCENARIOS, ids=IDS)
def test_compiled_step_equals_eager_after_every_call(make):
    calls = make().get("calls", 4)
    step = compare(make, calls)
    assert step.fallback_reason is None and step.program is not None


# ---- custom ops: recorded from their own numpy code ---------------------------------------------

class ReverseCumsum(tl.Function):  # np.cumsum and np.flip
    def forward(self, x):
        return np.cumsum(x, axis=1)

    def backward(self, g):
        return np.flip(np.cumsum(np.flip(g, 1), axis=1), 1)


class PadColumns(tl.Function):  # np.pad, a sliced gradient
    def forward(self, x):
        return np.pad(x, ((0, 0), (1, 2)))

    def backward(self, g):
        return g[:, 1:-2]


class AppendRow(tl.Function):  # np.concatenate of a tensor and a repeated parameter
    def forward(self, x, w):
        return np.concatenate([x, np.repeat(w[None, :], len(x), axis=0)], axis=1)

    def backward(self, g):
        return g[:, :3], g[:, 3:].sum(axis=0)


class PickMax(tl.Function):  # argmax, take/put_along_axis, an index saved on the node
    def forward(self, x):
        self.i, self.shape = np.argmax(x, axis=1)[:, None], x.shape
        return np.take_along_axis(x, self.i, axis=1)[:, 0]

    def backward(self, g):
        out = np.zeros(self.shape)
        np.put_along_axis(out, self.i, g[:, None], axis=1)
        return out


class LeakyByMask(tl.Function):  # boolean-mask assignment, a float32 gradient cast back
    def forward(self, x):
        self.negative = x < 0
        out = x.copy()
        out[self.negative] *= 0.1
        return out

    def backward(self, g):
        out = g.astype(np.float32)
        out[self.negative] *= 0.1
        return out


def custom_op(op):
    def make():
        rng = np.random.default_rng(0)
        W = tl.Tensor(rng.standard_normal((4, 3)), requires_grad=True)
        v = tl.Tensor(rng.standard_normal(2), requires_grad=True)
        opt = O.SGD([W, v], lr=0.1, momentum=0.5)

        def step(X, y):
            h = X @ W
            out = op.apply(h, v) if op is AppendRow else op.apply(h) + (v ** 2).sum()
            loss = (out.tanh() ** 2).mean() + (h ** 2).mean(); loss.backward(); opt.step(); opt.zero_grad()
            return loss, out
        return dict(step=step, data=batch(5), params=[W, v], opts=[opt])
    return make


@pytest.mark.parametrize("op", [ReverseCumsum, PadColumns, AppendRow, PickMax, LeakyByMask],
                         ids=lambda op: op.__name__)
def test_a_custom_op_written_with_numpy_replays_as_eager(op):
    assert compare(custom_op(op)).fallback_reason is None


# ---- defects found (fixed since) ----------------------------------------------------------------

class GradientNoise(tl.Function):
    """Identity forward; backward adds N(0, 1) noise drawn each call (gradient noise injection)."""
    def forward(self, x):
        return x * 1.0

    def backward(self, g):
        return g + np.random.standard_normal(g.shape)


def _noisy_gradients(compiled):
    np.random.seed(0)
    W = tl.Tensor(np.zeros(3), requires_grad=True)

    def step():
        loss = GradientNoise.apply(W).sum(); loss.backward()
        return loss
    run = tl.compile(step) if compiled else step
    grads = []
    for _ in range(3):
        W.grad = None
        run()
        grads.append(W.grad.copy())
    return grads


def test_random_numbers_drawn_in_a_custom_backward_are_drawn_each_call():
    eager, compiled = _noisy_gradients(False), _noisy_gradients(True)
    assert not np.array_equal(compiled[1], compiled[2])  # fresh noise each call ...
    np.testing.assert_array_equal(np.array(compiled), np.array(eager))  # ... the eager stream


class LangevinSGD(O.SGD):
    """SGD plus N(0, 1) noise in each update (Langevin dynamics, SGLD)."""
    @staticmethod
    def update(data, grad, state, group, out=None):
        O.SGD.update(data, grad + np.random.standard_normal(data.shape), state, group, out)


def langevin_sgd():
    np.random.seed(0)
    l1, l2, params = two_layers()
    opt = LangevinSGD(params, lr=0.01, momentum=0.5)

    def step(X, y):
        opt.zero_grad(); loss = ce(l1, l2, X, y); loss.backward(); opt.step()
        return loss
    return dict(step=step, data=batch(), params=params, opts=[opt])


def test_noise_drawn_in_an_optimizer_update_is_drawn_each_call():
    compare(langevin_sgd)


GENERATOR = np.random.default_rng(0)  # the user's own generator, not numpy's global one


class GeneratorNoise(tl.Function):
    """x + ε with ε drawn from the user's generator at each forward."""
    def forward(self, x):
        return x + GENERATOR.standard_normal(x.shape)

    def backward(self, g):
        return g


def _generator_losses(compiled):
    GENERATOR.bit_generator.state = np.random.default_rng(0).bit_generator.state
    W = tl.Tensor(np.zeros(3), requires_grad=True)
    opt = O.SGD([W], lr=0.1)

    def step():
        loss = (GeneratorNoise.apply(W) ** 2).sum(); loss.backward(); opt.step(); opt.zero_grad()
        return loss
    run = tl.compile(step) if compiled else step
    return [run().item() for _ in range(3)], W.data.copy()


def test_building_the_step_does_not_move_a_user_generator():
    (want, w_eager), (got, w_compiled) = _generator_losses(False), _generator_losses(True)
    assert got == pytest.approx(want, rel=1e-12)  # the same noise (Σx² as a BLAS dot: rounding)
    np.testing.assert_allclose(w_compiled, w_eager, rtol=1e-12)


class NormClippedSGD(O.SGD):
    """SGD whose per-parameter update rescales a gradient whose norm exceeds 0.1 (reads the
    norm into Python: no symbolic form)."""
    @staticmethod
    def update(data, grad, state, group, out=None):
        norm = float(np.sqrt((grad * grad).sum()))
        O.SGD.update(data, grad * (0.1 / norm) if norm > 0.1 else grad, state, group, out)


def norm_clipped_sgd():
    l1, l2, params = two_layers()
    opt = NormClippedSGD(params, lr=0.5, momentum=0.9)

    def step(X, y):
        opt.zero_grad(); loss = ce(l1, l2, X, y); loss.backward(); opt.step()
        return loss
    return dict(step=step, data=batch(), params=params, opts=[opt])


def test_an_optimizer_whose_update_reads_a_number_is_stepped_by_its_own_step():
    compare(norm_clipped_sgd)


def max_norm_clip_in_place():
    """A weight constraint after the update, written into the weight's array in place (as
    `W.data[...] = ...`, `np.clip(W.data, ..., out=W.data)`): not an assignment to .data."""
    l1, l2, params = two_layers()
    opt = O.SGD(params, lr=0.5)

    def step(X, y):
        loss = ce(l1, l2, X, y); loss.backward(); opt.step(); opt.zero_grad()
        np.clip(l1.weight.data, -0.3, 0.3, out=l1.weight.data)
        return loss
    return dict(step=step, data=lambda r: (tl.Tensor(3 * r.standard_normal((6, 4))), r.integers(0, 3, 6)),
                params=params, opts=[opt])


def batch_scaled_in_place(center):
    """The step preprocesses its numpy batch in place (`X /= 255`, `X -= X.mean(0)`) before
    wrapping it: the tensor's array is the argument itself, so the trace takes it for one."""
    l1, l2, params = two_layers()
    opt = O.SGD(params, lr=0.1, momentum=0.9)

    def step(X, y):
        if center:
            X -= X.mean(axis=0)
        else:
            X /= 255.0
        loss = ce(l1, l2, tl.Tensor(X), y); loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return dict(step=step, data=lambda r: (100 * r.standard_normal((6, 4)) + 50, r.integers(0, 3, 6)),
                params=params, opts=[opt])


@pytest.mark.parametrize("center", [False, True], ids=["divided", "centered"])
def test_a_batch_preprocessed_in_place_inside_the_step_is_preprocessed_by_the_replay(center):
    compare(lambda: batch_scaled_in_place(center))


def test_a_parameter_clipped_in_place_inside_the_step_is_clipped_by_the_replay():
    compare(max_norm_clip_in_place)


@pytest.mark.parametrize("shape", [(2, 5, 4), (4,)], ids=["batched_input", "vector_input"])
def test_a_linear_layer_on_a_constant_batched_or_vector_input_backpropagates(shape):
    layer = lin(4, 3, 0)
    x = np.random.default_rng(0).standard_normal(shape)
    layer(tl.Tensor(x)).sum().backward()
    want = np.broadcast_to(x.reshape(-1, 4).sum(axis=0), (3, 4))  # d Σ(x Wᵀ + b) / dW
    np.testing.assert_allclose(layer.weight.grad, want, rtol=1e-12)


def _epochs(compile_inner, compile_outer):
    """A compiled train step and eval step, called by a function that is compiled too."""
    W = tl.Tensor(np.full((4, 3), 0.5), requires_grad=True)
    opt = O.SGD([W], lr=0.1)

    def train(X):
        loss = ((X @ W) ** 2).mean(); loss.backward(); opt.step(); opt.zero_grad()
        return loss

    def evaluate(X):
        return ((X @ W) ** 2).mean()
    train, evaluate = (tl.compile(train), tl.compile(evaluate)) if compile_inner else (train, evaluate)
    epoch = tl.compile(lambda X: (train(X), evaluate(X))) if compile_outer else (lambda X: (train(X), evaluate(X)))
    X = tl.Tensor(np.arange(8.0).reshape(2, 4) / 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        return [[t.item() for t in epoch(X)] for _ in range(3)], W.data.copy()


def test_a_compiled_step_called_inside_a_compiled_function_keeps_training():
    want, w_eager = _epochs(False, False)
    assert _epochs(True, False)[0] == want  # each compiled alone: as eager
    got, w_nested = _epochs(True, True)
    assert got == want
    np.testing.assert_array_equal(w_nested, w_eager)


def _train_then_evaluate(compile_steps):
    W = tl.Tensor(np.full((4, 3), 0.5), requires_grad=True)
    opt = O.SGD([W], lr=0.1)

    def train(X):
        opt.zero_grad(); loss = ((X @ W) ** 2).mean(); loss.backward(); opt.step()
        return loss

    def evaluate(X):
        z = X @ W
        return (z ** 2).mean(), z
    if compile_steps:
        train, evaluate = tl.compile(train), tl.compile(evaluate)
    epoch = (lambda X: (train(X), evaluate(X)))
    loss, (eval_loss, _) = (tl.compile(epoch) if compile_steps else epoch)(tl.Tensor(np.ones((2, 4))))
    return loss.item(), eval_loss.item(), W.data.copy()


def test_a_compiled_function_calling_two_compiled_steps_does_not_crash():
    *want, w_eager = _train_then_evaluate(False)
    *got, w_compiled = _train_then_evaluate(True)
    assert got == want
    np.testing.assert_array_equal(w_compiled, w_eager)


# ---- check=N: the eager run beside the replay must leave the same state as eager alone -----------

class InputNoise(tl.Function):
    """x + 0.1·ε, ε drawn from numpy's global generator at each forward (replayed opaque)."""
    def forward(self, x):
        return x + 0.1 * np.random.standard_normal(x.shape)

    def backward(self, g):
        return g


def _checked_training(check, schedule, noise):
    np.random.seed(0)
    layer = lin(4, 3, 0)
    opt = O.SGD(layer.parameters(), lr=0.1, momentum=0.5)
    scheduler = LR.SequentialLR(opt, [LR.LinearLR(opt, 0.1, 1.0, total_iters=3), LR.StepLR(opt, 1, 0.5)],
                                milestones=[3]) if schedule else None

    def step(X, y):
        z = InputNoise.apply(layer(X)) if noise else layer(X)
        loss = tl.nn.softmax_cross_entropy(z, y); loss.backward(); opt.step(); opt.zero_grad()
        if scheduler is not None:
            scheduler.step()
        return loss
    run, rng = (step if check is None else tl.compile(step, check=check)), np.random.default_rng(1)
    losses = [run(*batch()(rng)).item() for _ in range(6)]
    return losses, opt.param_groups[0]["lr"], layer.weight.data.copy()


@pytest.mark.parametrize("schedule, noise", [
    pytest.param(True, False, id="sequential_schedule"),
    pytest.param(False, True, id="numpy_random_op"),
    pytest.param(False, False, id="plain")])
def test_check_mode_trains_exactly_as_eager(schedule, noise):
    *want, w_eager = _checked_training(None, schedule, noise)
    *got, w_checked = _checked_training(3, schedule, noise)
    assert got == want
    np.testing.assert_array_equal(w_checked, w_eager)
