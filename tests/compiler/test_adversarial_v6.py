"""Compiled steps against the same steps run eagerly: kept traces, the eager re-run of a failed
replay, watched parameter arrays, random generators.  Each scenario is built twice from the same
seeds; after every call the returned value, every parameter and every .grad must agree (1e-12 in
float64, 1e-5 in float32, norm-wise: a rewrite may change rounding, never more).

Defects this file found, each fixed since: a weight's .data taken before opt.step() and clipped
in place after it (the replay skipped the clip); a dict argument changed in place (replayed
stale); a numpy Generator in the step's closure, given to a custom op or an optimizer's update()
(building drew from it); check=N after tl.manual_seed() (a false CompileCheckError); a closure
view of a weight read for logging (a false fallback); an optimizer overriding step() (the replay
bypassed it).  Logging into a list of the step's scope now runs eagerly (the replay skipped the
append: a later round's finding)."""
import warnings

import itertools

import numpy as np
import pytest

import tinygrad_l2 as tl

O, F64, F32 = tl.optim, np.float64, np.float32


def _train(make, compiled, calls=4, sizes=None, **options):
    """Per call: (returned value, parameters, grads); and the step.  Same seeds each time."""
    tl.manual_seed(0)
    np.random.seed(0)
    env = make()
    step = tl.compile(env["step"], **options) if compiled else env["step"]
    rng, seen = np.random.default_rng(5), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for call in range(calls):
            n = sizes[call] if sizes else 6
            X, y = rng.standard_normal((n, 4)).astype(env.get("dtype", F64)), rng.integers(0, 3, n)
            env.get("before", lambda c, s: None)(call, step)
            out = step(tl.Tensor(X), y, *env.get("extra", ()))
            seen.append((np.array(out.data), [p.data.copy() for p in env["params"]],
                         [np.zeros(0) if p.grad is None else p.grad.copy() for p in env["params"]]))
    return seen, step


def _agree(want, got, rtol=1e-12):
    for (out_w, params_w, grads_w), (out_g, params_g, grads_g) in zip(want, got, strict=True):
        for w, g in zip([out_w, *params_w, *grads_w], [out_g, *params_g, *grads_g], strict=True):
            assert w.shape == g.shape and w.dtype == g.dtype
            assert np.linalg.norm(g - w) <= rtol * np.linalg.norm(w), (w, g)


def _linear(dtype=F64):
    return tl.nn.Linear(4, 3, dtype=dtype)


def _loss(layer, X, y):
    return tl.nn.softmax_cross_entropy(layer(X), y)


def _plain(layer, opt, op=lambda z: z, penalty=None, **env):
    """The usual step (zero_grad, loss of op(layer(X)) + penalty(), backward, opt.step())."""
    def step(X, y):
        opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(op(layer(X)), y)
        loss = loss if penalty is None else loss + penalty()
        loss.backward(); opt.step()
        return loss
    return dict(step=step, params=list(layer.parameters()), **env)


# ---- held: reading weights for logging, kept traces, float32 decay, errors ---------------------

def logging_weights():
    """The weight's array read before and after opt.step(), for a norm that is only logged."""
    layer = _linear()
    opt, log = O.SGD(layer.parameters(), lr=0.5, momentum=0.9), []

    def step(X, y):
        before = float(np.linalg.norm(layer.weight.data))
        opt.zero_grad(); loss = _loss(layer, X, y); loss.backward(); opt.step()
        log.append(float(np.abs(np.asarray(layer.weight)).max()) + before)
        return loss
    return dict(step=step, params=list(layer.parameters()))


def test_reading_a_weights_data_for_a_log_list_runs_eagerly():
    """(It used to replay, skipping the append: one entry in the log, not one per call.)"""
    want, _ = _train(logging_weights, False)
    got, step = _train(logging_weights, True)
    assert "a list of its scope" in step.fallback_reason
    _agree(want, got)


LAMBDA = 0.01  # read by kept_traces' step as a global: a guarded number


def kept_traces():
    """A smaller last batch, and the global λ switched off then set back."""
    layer = _linear()
    opt = O.SGD(layer.parameters(), lr=0.2, momentum=0.9, weight_decay=0.01)

    def step(X, y):
        opt.zero_grad(); loss = _loss(layer, X, y) + LAMBDA * (layer.weight ** 2).sum()
        loss.backward(); opt.step()
        return loss

    def before(call, _):
        global LAMBDA
        LAMBDA = 0.0 if call == 3 else 0.01
    return dict(step=step, params=list(layer.parameters()), before=before)


def test_kept_traces_replay_a_smaller_batch_and_a_global_set_back_as_eager():
    sizes = [6, 6, 4, 6, 6, 4, 6]
    want, _ = _train(kept_traces, False, 7, sizes)
    got, step = _train(kept_traces, True, 7, sizes)
    assert step.traces == 3  # (6, λ), (4, λ), (6, 0): calls 4 to 6 replay kept traces
    _agree(want, got)


def float32_decay():
    """float32, lr·κ = 1e-7: the written SGD update adds lr·κ·W as eager does."""
    layer = _linear(F32)
    return _plain(layer, O.SGD(layer.parameters(), lr=1e-3, weight_decay=1e-4, momentum=0.5), dtype=F32)


def test_float32_written_sgd_update_with_weight_decay_trains_as_eager():
    want, _ = _train(float32_decay, False, 6)
    got, step = _train(float32_decay, True, 6)
    assert step.program.update is not None  # the update is written in
    _agree(want, got, rtol=1e-5)


def test_a_label_out_of_range_raises_eagers_error_after_running_the_step_once():
    layer, calls = _linear(), []
    train = _plain(layer, O.SGD(layer.parameters(), lr=0.1), lambda z: calls.append(1) or z)["step"]
    step, X = tl.compile(train), tl.Tensor(np.ones((2, 4)))
    step(X, np.array([0, 1])); step(X, np.array([1, 2]))
    weight, bad = layer.weight.data.copy(), np.array([0, 3])
    with pytest.raises(Exception) as eager:
        train(X, bad)
    calls.clear()
    with pytest.raises(type(eager.value)) as compiled:
        step(X, bad)
    assert str(compiled.value) == str(eager.value) and len(calls) == 1
    np.testing.assert_array_equal(layer.weight.data, weight)


def retraced_regularizer():
    """A smaller batch each second call; λ of the regularizer set in place, then retrace()."""
    reg = tl.nn.regularizers.L2(0.01)
    layer = tl.nn.Linear(4, 3, dtype=F64, kernel_regularizer=reg)

    def before(call, step):
        if call == 2:
            reg.lam = 1.0  # what the trace cannot see: retrace() must drop every kept trace
            getattr(step, "retrace", lambda: None)()
    return _plain(layer, O.SGD(layer.parameters(), lr=0.1), penalty=layer.regularization_loss, before=before)


def test_no_kept_trace_is_replayed_after_retrace():
    sizes = [6, 4, 6, 4]
    _agree(_train(retraced_regularizer, False, 4, sizes)[0], _train(retraced_regularizer, True, 4, sizes)[0])


# ---- defects ---------------------------------------------------------------------------------

def clipped_after_step():
    """Max-norm style constraint: the weight's array taken first, clipped after opt.step()."""
    layer = _linear()
    opt = O.SGD(layer.parameters(), lr=0.5)

    def step(X, y):
        weight = layer.weight.data
        opt.zero_grad(); loss = _loss(layer, X, y); loss.backward(); opt.step()
        np.clip(weight, -0.05, 0.05, out=weight)
        return loss
    return dict(step=step, params=list(layer.parameters()))


def test_a_weight_taken_before_the_step_and_clipped_after_it_is_clipped_by_the_replay():
    _agree(_train(clipped_after_step, False)[0], _train(clipped_after_step, True)[0])


def config_argument():
    """λ comes in a dict argument that the caller changes in place between calls."""
    layer, config = _linear(), {"lambda": 0.0}
    opt = O.SGD(layer.parameters(), lr=0.5)

    def step(X, y, config):
        opt.zero_grad(); loss = _loss(layer, X, y) + config["lambda"] * (layer.weight ** 2).sum()
        loss.backward(); opt.step()
        return loss
    return dict(step=step, params=list(layer.parameters()), extra=(config,),
                before=lambda call, _: config.update({"lambda": 0.5 * call}))


def test_a_dict_argument_changed_in_place_is_not_replayed_stale():
    _agree(_train(config_argument, False)[0], _train(config_argument, True)[0])


class PassedNoise(tl.Function):
    """x + ε, ε drawn from the generator given as the second argument (not a tensor)."""
    def forward(self, x, rng):
        return x + rng.standard_normal(x.shape)

    def backward(self, g):
        return g, None


def closure_generator(in_optimizer):
    """Noise from a Generator the step's closure holds: passed to a custom op's apply, or
    captured by an SGD subclass made in a factory (its update() adds 0.1·ε)."""
    layer, rng = _linear(), np.random.default_rng(3)

    class ClosureNoiseSGD(O.SGD):
        @staticmethod
        def update(data, grad, state, group, out=None):
            O.SGD.update(data, grad + 0.1 * rng.standard_normal(data.shape), state, group, out)
    if in_optimizer:
        return _plain(layer, ClosureNoiseSGD(layer.parameters(), lr=0.1))
    return _plain(layer, O.SGD(layer.parameters(), lr=0.1), lambda z: PassedNoise.apply(z, rng))


@pytest.mark.parametrize("in_optimizer", [False, True], ids=["custom_op", "optimizer_update"])
def test_a_generator_in_the_steps_closure_keeps_the_eager_noise_stream(in_optimizer):
    make = lambda: closure_generator(in_optimizer)  # noqa: E731
    _agree(_train(make, False)[0], _train(make, True)[0])


class GlobalNoise(tl.Function):
    """x + ε, ε from numpy's global generator (restored by the build, drawn by each replay)."""
    def forward(self, x):
        return x + np.random.standard_normal(x.shape)

    def backward(self, g):
        return g


def test_an_error_after_noise_was_drawn_is_raised_without_drawing_again():
    """The noise is an effect: the label error after it is re-raised, not run eagerly again."""
    def run(compiled):
        tl.manual_seed(0); np.random.seed(0)
        layer, calls = _linear(), itertools.count()  # (a probe a snapshot of the scope cannot see)
        opt = O.SGD(layer.parameters(), lr=0.1)

        def train(X, y):
            next(calls)
            opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(GlobalNoise.apply(layer(X)), y)
            loss.backward(); opt.step()
            return loss
        step, X = tl.compile(train) if compiled else train, tl.Tensor(np.ones((2, 4)))
        step(X, np.array([0, 1])); step(X, np.array([1, 2]))
        with pytest.raises(ValueError, match="labels must be in") as error:
            step(X, np.array([0, 7]))
        return str(error.value), np.random.random(), layer.weight.data.copy(), next(calls)
    (message, draw, weight, eager_calls), got = run(False), run(True)
    assert got[:2] == (message, draw) and got[3] == 1 and eager_calls == 3
    np.testing.assert_allclose(got[2], weight, rtol=1e-12)


class DefaultNoise(tl.Function):
    """x + 0.1·ε, ε from tl's default generator (the one tl.manual_seed replaces)."""
    def forward(self, x):
        return x + 0.1 * tl.random.default_generator().standard_normal(x.shape)

    def backward(self, g):
        return g


def reseeded_each_call():
    layer = _linear()
    return _plain(layer, O.SGD(layer.parameters(), lr=0.1), DefaultNoise.apply,
                  before=lambda call, _: tl.manual_seed(10 + call))


def test_noise_from_tls_generator_reseeded_each_call_replays_as_eager():
    want, _ = _train(reseeded_each_call, False)
    got, step = _train(reseeded_each_call, True)
    assert step.fallback_reason is None
    _agree(want, got)


def test_check_mode_after_manual_seed_between_calls_trains_as_eager():
    _agree(_train(reseeded_each_call, False)[0], _train(reseeded_each_call, True, check=3)[0])


def closure_view_logged():
    """A view of the weight's array kept in the step's closure, read only to log its maximum."""
    layer, log = _linear(), []
    opt, weight = O.SGD(layer.parameters(), lr=0.5), layer.weight.data

    def step(X, y):
        opt.zero_grad(); loss = _loss(layer, X, y); loss.backward(); opt.step()
        log.append(float(np.abs(weight).max()))
        return loss
    return dict(step=step, params=list(layer.parameters()))


def test_a_weight_view_in_the_closure_read_for_a_log_list_runs_eagerly():
    want, _ = _train(closure_view_logged, False)
    got, step = _train(closure_view_logged, True)
    _agree(want, got)
    assert "a list of its scope" in step.fallback_reason


class Warmup:
    """An optimizer whose own step() warms the learning rate up over 4 steps before stepping."""
    def step(self) -> None:
        self.steps = getattr(self, "steps", 0) + 1
        for group in self.param_groups:
            group["lr"] = 0.1 * min(1.0, self.steps / 4)
        super().step()


@pytest.mark.parametrize("base", [O.SGD, O.Adam])
def test_an_optimizer_overriding_step_is_stepped_through_its_override(base):
    def make():
        layer = _linear()
        return _plain(layer, type("Warm" + base.__name__, (Warmup, base), {})(layer.parameters(), lr=0.1))
    _agree(_train(make, False, 6)[0], _train(make, True, 6)[0])
