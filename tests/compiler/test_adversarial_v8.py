"""Compiled steps against the same steps run eagerly, round 8: the optimizer step() wrapper
(exceptions, recursion, threads, a scheduler inside it, a subclass's own helpers), arguments
keyed by value (models, configs, epochs, dataclasses of arrays), parameter views held in
containers, generators inside an op's arguments, and tensors pickled or deep-copied.  Built
twice from the same seeds; after every call the loss and every parameter must agree norm-wise
(1e-12 in float64), and so must what the scenario probes."""
import copy
import dataclasses
import pickle
import threading
import types

import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2.context import state
from twins import agree, plain, same, train

O, F64 = tl.optim, np.float64




def _with(make_opt, probe=lambda opt: None):
    def make():
        layer = tl.nn.Linear(4, 3, dtype=F64)
        opt = make_opt(layer.parameters())
        return plain(layer, opt, probe=lambda: probe(opt))
    return make


# ---- the step() wrapper: exceptions, recursion, threads, schedulers, helpers -----------------

class Flaky(O.SGD):
    """Raises at its `fails_at`-th call (a NaN guard, say), before writing anything."""
    fails_at = 1

    def step(self):
        self.n = getattr(self, "n", 0) + 1
        if self.n == self.fails_at:
            raise FloatingPointError("loss went NaN")
        return super().step()


@pytest.mark.parametrize("fails_at", [1, 2], ids=["while_tracing", "while_replaying"])
def test_an_exception_in_step_leaves_later_steps_recorded_and_replayed_as_eager(fails_at):
    def run(compiled):
        tl.manual_seed(0)
        env = _with(lambda p: type("F", (Flaky,), {"fails_at": fails_at})(p, lr=0.5, momentum=0.9))()
        step, rng, seen = tl.compile(env["step"]) if compiled else env["step"], np.random.default_rng(1), []
        for _ in range(5):
            X, y = tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6)
            try:
                seen.append([step(X, y).data] + [p.data.copy() for p in env["params"]])
            except FloatingPointError:
                seen.append([])
            assert state.steps_running == 0 and state.recorder is None
        return seen, step
    (want, _), (got, step) = run(False), run(True)
    agree(want, got)
    assert [len(r) for r in got] == [len(r) for r in want]
    assert step.fallback_reason is None and step.traces == 1  # (a trace that raised is not one)


def test_a_library_step_that_raises_outside_a_trace_leaves_no_step_running():
    w = tl.Tensor(np.ones(3), requires_grad=True)
    w._grad = np.ones(4)  # a wrong gradient: SGD's update raises
    with pytest.raises(ValueError):
        O.SGD([w], lr=0.1).step()
    assert state.steps_running == 0


class Repeating(O.SGD):
    """Steps itself again, `k` times: only the outermost call is the event."""
    def step(self, k=2):
        super().step()
        if k:
            self.step(k - 1)


def test_an_optimizer_stepping_itself_recursively_is_replayed_whole():
    assert same(_with(lambda p: Repeating(p, lr=0.1, momentum=0.5))).traces == 1


def test_steps_traced_and_run_eagerly_in_two_threads_at_once_agree():
    results = {}
    make = _with(lambda p: O.Adam(p, lr=0.1), probe=lambda opt: len(opt.state))
    threads = [threading.Thread(target=lambda c=c: results.setdefault(c, train(make, c))) for c in (False, True)]
    [t.start() for t in threads]; [t.join() for t in threads]  # noqa: E702
    agree(results[False][0], results[True][0])
    assert results[True][2].fallback_reason is None


class Scheduling(O.SGD):
    """Steps its own scheduler after each update (a warm-up folded into the optimizer)."""
    def step(self):
        super().step()
        self.scheduler.step()


def _scheduling(p):
    opt = Scheduling(p, lr=0.5)
    opt.scheduler = O.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    return opt


def test_a_scheduler_stepped_inside_the_optimizers_step_is_stepped_once_per_call():
    same(_with(_scheduling, probe=lambda opt: (opt.scheduler.last_epoch, opt.param_groups[0]["lr"])))


class FrozenBiases(O.SGD):
    """Updates only the weight matrices (a subclass's own choice of what to step)."""
    def _params_with_grad(self):
        return [(g, p, grad) for g, p, grad in super()._params_with_grad() if p.ndim == 2]


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_a_subclass_that_chooses_which_parameters_to_step_trains_as_eager(momentum):
    def make():
        layer = tl.nn.Linear(4, 3, dtype=F64)
        opt = FrozenBiases(layer.parameters(), lr=0.5, momentum=momentum)
        env = plain(layer, opt)
        env["step"] = lambda X, y, _s=env["step"]: (_s(X, y), opt.zero_grad())[0]  # gradients die
        return env
    same(make)


# ---- arguments keyed by value ----------------------------------------------------------------

def _given(extra):
    return lambda: dict(_with(lambda p: O.SGD(p, lr=0.5, momentum=0.9))(), extra=extra)


def test_a_model_a_list_of_modules_and_an_unchanged_config_as_arguments_trace_once():
    layer, relu = tl.nn.Linear(2, 2), tl.nn.ReLU()
    config = {"lr": 0.5, "schedule": [1, 2], "name": "run", "eps": float("nan")}
    step = same(_given(lambda c: (layer, [layer, relu], dict(config))))
    assert step.traces == 1 and step.fallback_reason is None


def test_an_epoch_number_as_an_argument_trains_as_eager():
    assert same(_given(lambda c: (c,)), calls=10).fallback_reason is None


@dataclasses.dataclass
class Weights:
    w: np.ndarray


def _weighted(config, change):
    """Logits scaled by config's class weights (read by key or attribute); change(config) after."""
    layer = tl.nn.Linear(4, 3, dtype=F64)
    opt = O.SGD(layer.parameters(), lr=0.5)
    read = (lambda: config["w"]) if isinstance(config, dict) else (lambda: config.w)

    def step(X, y, config):
        opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(layer(X) * read(), y); loss.backward(); opt.step()
        change(config)
        return loss
    return dict(step=step, params=list(layer.parameters()), extra=lambda c: (config,), probe=lambda: read().tolist())


def test_a_dataclass_of_arrays_the_step_changes_after_backward_is_not_replayed_stale():
    def halve(config):
        config.w *= 0.5
    same(lambda: _weighted(Weights(np.array([1.0, 2.0, 3.0])), halve))


@pytest.mark.parametrize("config", [lambda: {"w": np.arange(1.0, 4.0)}, lambda: Weights(np.arange(1.0, 4.0))],
                         ids=["dict", "dataclass"])
def test_an_unchanged_config_holding_an_array_is_replayed(config):
    assert same(lambda: _weighted(config(), lambda c: None)).fallback_reason is None


def test_a_namespace_argument_the_step_anneals_is_not_replayed_with_its_old_value():
    def make():
        layer, schedule = tl.nn.Linear(4, 3, dtype=F64), types.SimpleNamespace(T=8.0)
        opt = O.SGD(layer.parameters(), lr=0.5)

        def step(X, y, schedule):
            opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(layer(X) / schedule.T, y)
            schedule.T = max(1.0, schedule.T / 2)
            loss.backward(); opt.step()
            return loss
        return dict(step=step, params=list(layer.parameters()), extra=lambda c: (schedule,), probe=lambda: schedule.T)
    same(make)


# ---- parameter views held in containers; generators inside an op's arguments -----------------

def _clipped_through(hold):
    """Max-norm through views of the weight built with the model, held as hold(view) is."""
    layer = tl.nn.Linear(4, 3, dtype=F64)
    opt, held = O.SGD(layer.parameters(), lr=2.0), hold(layer.weight.data)

    def step(X, y):
        opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(layer(X), y); loss.backward(); opt.step()
        for view in (held if isinstance(held, list) else [held.view]):
            np.clip(view, -0.3, 0.3, out=view)
        return loss
    return dict(step=step, params=list(layer.parameters()))


@pytest.mark.parametrize("hold", [lambda v: [v], lambda v: types.SimpleNamespace(view=v.T)], ids=["list", "attribute"])
def test_a_weight_view_held_in_a_container_clipped_in_place_is_clipped_by_the_replay(hold):
    same(lambda: _clipped_through(hold))


def test_a_transposed_weight_view_in_the_scope_clipped_in_place_runs_eagerly():
    step = same(_view_in_scope)
    assert "parameter's array" in step.fallback_reason


def _view_in_scope():
    layer = tl.nn.Linear(4, 3, dtype=F64)
    opt, view = O.SGD(layer.parameters(), lr=2.0), layer.weight.data.T

    def step(X, y):
        opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(layer(X), y); loss.backward(); opt.step()
        np.clip(view, -0.3, 0.3, out=view)
        return loss
    return dict(step=step, params=list(layer.parameters()))


class Noise(tl.Function):  # x + 0.1·ε, ε from the generator config holds two levels down
    def forward(self, x, config):
        return x + 0.1 * config.draw().standard_normal(x.shape)

    def backward(self, g):
        return g, None


@pytest.mark.parametrize("holder", ["attribute", "list"])
def test_a_generator_two_levels_inside_an_ops_argument_keeps_the_eager_stream(holder):
    def make():
        rng = np.random.default_rng(3)
        config = (types.SimpleNamespace(inner=types.SimpleNamespace(rng=rng), draw=lambda: config.inner.rng)
                  if holder == "attribute" else types.SimpleNamespace(rngs=[rng], draw=lambda: config.rngs[0]))
        layer = tl.nn.Linear(4, 3, dtype=F64)
        opt = O.SGD(layer.parameters(), lr=0.5)

        def step(X, y):
            opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(Noise.apply(layer(X), config), y)
            loss.backward(); opt.step()
            return loss
        return dict(step=step, params=list(layer.parameters()), probe=lambda: rng.random())
    same(make)


# ---- tensors pickled and deep-copied ---------------------------------------------------------

def test_a_float16_scalar_tensor_pickles_with_its_gradient_and_name():
    t = tl.Tensor(np.float16(1.5), requires_grad=True, name="scale")
    (t * t).backward()
    u = pickle.loads(pickle.dumps(t))
    assert (u.data.dtype, u.shape, float(u.grad), u.requires_grad, u.name) == (np.float16, (), 3.0, True, "scale")


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda o: pickle.loads(pickle.dumps(o))], ids=["deepcopy", "pickle"])
def test_a_model_copied_mid_forward_and_its_adam_state_train_on_as_the_original(clone):
    layer, x = tl.nn.Linear(4, 3, dtype=F64), tl.Tensor(np.linspace(-1, 1, 8).reshape(2, 4))
    opt = O.Adam(layer.parameters(), lr=0.1)
    (layer(x) ** 2).sum().backward(); opt.step()
    pending = (layer(x) ** 2).sum()  # a graph alive, holding the parameters
    twin, twin_opt = clone((layer, opt))
    assert all(any(k is p for p in twin.parameters()) for k in twin_opt.state)
    pending.backward(); opt.step()
    (twin(x) ** 2).sum().backward(); twin_opt.step()
    assert all(a.data.tobytes() == b.data.tobytes() for a, b in zip(layer.parameters(), twin.parameters()))


def test_a_deep_copy_of_a_compiled_steps_model_trains_eagerly_as_the_compiled_original():
    layer = tl.nn.Linear(4, 3, dtype=F64)
    opt = O.SGD(layer.parameters(), lr=0.5, momentum=0.9)
    step = tl.compile(plain(layer, opt)["step"])
    rng = np.random.default_rng(1)
    batches = [(tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6)) for _ in range(6)]
    step(*batches[0]); step(*batches[1])
    twin_layer, twin_opt = copy.deepcopy((layer, opt))
    eager = plain(twin_layer, twin_opt)["step"]
    agree([[eager(X, y).data] + [p.data.copy() for p in twin_layer.parameters()] for X, y in batches[2:]],
           [[step(X, y).data] + [p.data.copy() for p in layer.parameters()] for X, y in batches[2:]])
    assert step.traces == 1 and step.fallback_reason is None
