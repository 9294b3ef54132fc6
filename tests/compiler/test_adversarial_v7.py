"""Compiled steps against the same steps run eagerly: optimizers' step() as users change it
(on the instance, by a decorator, step(closure), around another optimizer), arguments keyed by
value, parameter views in the scope, generators inside objects, the written SGD update in mixed
dtypes.  Built twice from the same seeds; after every call the loss and every parameter must
agree norm-wise (1e-12 in float64, 1e-5 in float32), and so must what the scenario probes."""
import copy
import dataclasses
import functools
import inspect
import types

import numpy as np
import pytest

import tinygrad_l2 as tl
from twins import plain, same

O, F64, F32 = tl.optim, np.float64, np.float32




def _warmup(step):
    """A warm-up: each call sets lr = 0.5·min(1, calls/4), then steps."""
    @functools.wraps(step)
    def stepping(opt, *args, **kwargs):
        opt.calls = getattr(opt, "calls", 0) + 1
        for group in opt.param_groups:
            group["lr"] = 0.5 * min(1.0, opt.calls / 4)
        return step(opt, *args, **kwargs)
    return stepping


def _stepping(make_opt, count="calls"):
    """The plain step of a Linear layer with make_opt(its parameters); probe: opt.<count>."""
    def make():
        layer = tl.nn.Linear(4, 3, dtype=F64)
        opt = make_opt(layer.parameters())
        return plain(layer, opt, probe=lambda: getattr(opt, count))
    return make


# ---- the optimizer's step() as users change it ------------------------------------------------

def _warmed_on_the_instance(opt):
    opt.step = functools.partial(_warmup(type(opt).step), opt)
    return opt


@pytest.mark.parametrize("momentum", [0.0, 0.9], ids=["lr_in_seed", "written_step"])
def test_a_step_replaced_on_the_instance_runs_every_call(momentum):
    same(_stepping(lambda p: _warmed_on_the_instance(O.SGD(p, lr=0.5, momentum=momentum))))


@pytest.mark.parametrize("base", [O.SGD, O.Adam], ids=["SGD", "Adam"])
def test_a_subclass_step_made_by_a_wrapping_decorator_runs_every_call(base):
    cls = type("Decorated", (base,), {"step": _warmup(base.step)})  # (its __module__ is tinygrad_l2's)
    same(_stepping(lambda p: cls(p, lr=0.5)))


class OptionalClosureSGD(O.SGD):
    """PyTorch's step(closure=None): the closure clears, computes the loss, calls backward."""
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        super().step()
        return loss


class RequiredClosureSGD(OptionalClosureSGD):
    def step(self, closure):  # (no default, as LBFGS)
        return super().step(closure)


def closure_step(cls):
    layer = tl.nn.Linear(4, 3, dtype=F64)
    opt = cls(layer.parameters(), lr=0.5, momentum=0.5)

    def step(X, y):
        def closure():
            opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(layer(X), y); loss.backward()
            return loss
        return opt.step(closure)
    return dict(step=step, params=list(layer.parameters()))


def test_an_optional_closure_step_trains_as_eager():
    same(lambda: closure_step(OptionalClosureSGD))


def test_a_step_that_requires_its_closure_is_replayed_with_it():
    same(lambda: closure_step(RequiredClosureSGD))


def test_step_wrapper_keeps_introspection_deepcopy_and_super_calls():
    class Counted(O.SGD):
        def step(self):
            self.n = getattr(self, "n", 0) + 1
            return super().step()
    assert O.SGD.step.__qualname__ == "SGD.step" and inspect.signature(O.Adam.step).parameters.keys() == {"self"}
    w = tl.Tensor(np.ones(3), requires_grad=True)
    opt = Counted([w], lr=0.5, momentum=0.9)
    (w * w).sum().backward(); opt.step()
    twin = copy.deepcopy(opt)
    twin.step(); opt.step()  # from the same state: the same weights, counted twice each
    assert opt.n == twin.n == 2 and np.array_equal(twin.param_groups[0]["params"][0].data, w.data)


class Lookahead(O.Optimizer):
    """Lookahead (Zhang et al. 2019) around another optimizer: every k steps the slow weights
    move α of the way to the fast ones, which are then set to them (in place)."""
    def __init__(self, inner, k, defaults):
        super().__init__(inner.param_groups[0]["params"], defaults)
        self.inner, self.k, self.t = inner, k, 0
        self.slow = [p.data.copy() for p in self.param_groups[0]["params"]]

    def step(self):
        self.inner.step(); self.t += 1
        for p, slow in zip(self.param_groups[0]["params"], self.slow) if self.t % self.k == 0 else ():
            slow += 0.5 * (p.data - slow)
            p.data[...] = slow


@pytest.mark.parametrize("k", [1, 2])
def test_an_optimizer_stepping_another_one_is_replayed_whole(k):
    same(_stepping(lambda p: Lookahead(O.SGD(p, lr=0.5), k, dict(lr=0.0)), "t"))


def test_an_optimizer_whose_groups_have_no_lr_traces_once():
    assert same(_stepping(lambda p: Lookahead(O.SGD(p, lr=0.5), 1, {}), "t")).traces == 1


def checkpoint_restored(make_opt):
    """The optimizer's state_dict and the weights saved at call 1, loaded back at call 3."""
    layer = tl.nn.Linear(4, 3, dtype=F64)
    opt, saved = make_opt(layer.parameters()), {}

    def extra(call):
        if call == 1:
            saved.update(sd=copy.deepcopy(opt.state_dict()), w=[p.data.copy() for p in layer.parameters()])
        if call == 3:
            opt.load_state_dict(saved["sd"])
            for p, w in zip(layer.parameters(), saved["w"]): p.data[...] = w  # noqa: E701
        return ()
    return plain(layer, opt, extra=extra)


@pytest.mark.parametrize("make_opt", [lambda p: O.SGD(p, lr=0.5, momentum=0.9), lambda p: O.Adam(p, lr=0.1)],
                         ids=["SGD_momentum", "Adam"])
def test_a_checkpoint_loaded_between_replays_trains_as_eager(make_opt):
    assert same(lambda: checkpoint_restored(make_opt)).fallback_reason is None


# ---- arguments remembered by value -----------------------------------------------------------

def annealed_in_the_step():
    """A temperature in a dict argument that the step itself halves after using it."""
    layer, schedule = tl.nn.Linear(4, 3, dtype=F64), {"T": 8.0}
    opt = O.SGD(layer.parameters(), lr=0.5)

    def step(X, y, schedule):
        opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(layer(X) / schedule["T"], y)
        schedule["T"] = max(1.0, schedule["T"] / 2)
        loss.backward(); opt.step()
        return loss
    return dict(step=step, params=list(layer.parameters()), extra=lambda c: (schedule,),
                probe=lambda: schedule["T"])


def test_a_dict_argument_the_step_changes_is_not_replayed_with_its_old_value():
    same(annealed_in_the_step)


def parameters_as_argument():
    layer = tl.nn.Linear(4, 3, dtype=F64)
    opt = O.SGD(layer.parameters(), lr=0.5, momentum=0.9)

    def step(X, y, params):
        opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(X @ params[0].T + params[1], y)
        loss.backward(); opt.step()
        return loss
    return dict(step=step, params=list(layer.parameters()), extra=lambda c: ([layer.weight, layer.bias],))


def test_a_list_of_parameters_as_an_argument_traces_once():
    assert same(parameters_as_argument).traces == 1


def _given(fresh):  # the plain step given one more argument, a new fresh() each call
    return lambda: dict(_stepping(lambda p: O.SGD(p, lr=0.5), "defaults")(), extra=lambda c: (fresh(),))


class Elementwise(types.SimpleNamespace):  # == element by element, as an array-like's
    def __eq__(self, other):
        return self.values == other.values


def test_an_argument_with_elementwise_equality_does_not_crash_the_replay():
    same(_given(lambda: Elementwise(values=np.array([1.0, 2.0]))))


@dataclasses.dataclass
class LazyConfig:
    scale: float
    cache: dict = dataclasses.field(init=False)  # set on first use, if ever


def test_a_dataclass_argument_with_a_field_not_set_yet_compiles():
    same(_given(lambda: LazyConfig(2.0)))


# ---- views of parameters, generators inside objects ------------------------------------------

def max_norm_through_a_view():
    """A view of the weight's array kept when the model was built, clipped after each step."""
    layer = tl.nn.Linear(4, 3, dtype=F64)
    opt, weight = O.SGD(layer.parameters(), lr=2.0), layer.weight.data

    def step(X, y):
        opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(layer(X), y); loss.backward(); opt.step()
        np.clip(weight, -0.3, 0.3, out=weight)
        return loss
    return dict(step=step, params=list(layer.parameters()))


def test_a_weight_view_from_the_scope_clipped_in_place_is_clipped_by_the_replay():
    same(max_norm_through_a_view)


class ConfiguredNoise(tl.Function):  # x + σ·ε, ε from the config object's generator
    def forward(self, x, config):
        return x + config.sigma * config.rng.standard_normal(x.shape)

    def backward(self, g):
        return g, None


def noise_from_a_config():
    layer, config = tl.nn.Linear(4, 3, dtype=F64), types.SimpleNamespace(sigma=0.1, rng=np.random.default_rng(3))
    opt = O.SGD(layer.parameters(), lr=0.5)

    def step(X, y):
        opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(ConfiguredNoise.apply(layer(X), config), y)
        loss.backward(); opt.step()
        return loss
    return dict(step=step, params=list(layer.parameters()), probe=lambda: config.rng.random())


def test_a_generator_inside_an_ops_config_object_keeps_the_eager_noise_stream():
    same(noise_from_a_config)


# ---- the written SGD update in mixed dtypes --------------------------------------------------

def mixed_dtypes(weight_dtype, bias_dtype, x_dtype):
    """W and b of different dtypes, L2 on W in the loss and weight_decay on both."""
    r = np.random.default_rng(1)
    W = tl.Tensor((r.standard_normal((3, 4)) * 0.5).astype(weight_dtype), requires_grad=True)
    b = tl.Tensor(r.standard_normal(3).astype(bias_dtype), requires_grad=True)
    opt = O.SGD([W, b], lr=0.1, weight_decay=1e-3)

    def step(X, y):
        opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(X @ W.T + b, y) + 0.01 * (W ** 2).sum()
        loss.backward(); opt.step(); opt.zero_grad()
        return loss
    return dict(step=step, params=[W, b], dtype=x_dtype)


@pytest.mark.parametrize("dtypes", [(F64, F64, F64), (F32, F32, F32), (F32, F64, F32), (F64, F32, F64),
                                    (F32, F32, F64)], ids=str)
def test_the_written_sgd_update_in_mixed_dtypes_trains_as_eager(dtypes):
    step = same(lambda: mixed_dtypes(*dtypes), rtol=1e-12 if dtypes == (F64,) * 3 else 1e-5, calls=6)
    assert step.program.update is not None and step.fallback_reason is None
