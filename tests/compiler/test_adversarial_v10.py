"""Compiled steps against the same steps run eagerly, round 10: hyper-parameters checked by the
written update's ready() (changed, changed back, toggled, a key added, a scheduler before
opt.step(), check=N), default arguments guarded by value, returned small integers told from
literals by the return statements, and tensors pickled or deep-copied without their graph.
Built twice from the same seeds; after every call the loss and every parameter must agree
norm-wise (1e-12 in float64), and so must what the scenario probes."""
import collections
import copy
import functools
import pickle
import warnings

import numpy as np
import pytest

import tinygrad_l2 as tl
from twins import agree, plain, same, train

O, F64 = tl.optim, np.float64
LR = O.lr_scheduler


def _set(key, value_at):
    return lambda opt, call: opt.param_groups[-1].__setitem__(key, value_at(call))


def _with_array(opt, key):
    """The group's hyper-parameter as a 0-d array (assigned after the constructor's checks)."""
    opt.param_groups[0][key] = np.array(opt.param_groups[0][key])
    return opt


HYPER = {  # (optimizer, what changes before each call)
    "sgd_weight_decay_grows": (lambda p: O.SGD(p, lr=0.1, weight_decay=0.01), _set("weight_decay", lambda c: 0.01 * (c + 1))),
    "sgd_weight_decay_changed_back": (lambda p: O.SGD(p, lr=0.1, weight_decay=0.01),
                                      _set("weight_decay", lambda c: 0.5 if c == 2 else 0.01)),
    "sgd_nesterov_turned_on": (lambda p: O.SGD(p, lr=0.1, momentum=0.9), _set("nesterov", lambda c: c >= 2)),
    "sgd_dampening": (lambda p: O.SGD(p, lr=0.1, momentum=0.9), _set("dampening", lambda c: 0.1 * c)),
    "sgd_momentum_numpy_scalar": (lambda p: O.SGD(p, lr=0.1, momentum=np.float64(0.9)),
                                  _set("momentum", lambda c: np.float64(0.9 - 0.1 * c))),
    "adam_betas": (lambda p: O.Adam(p, lr=0.1), _set("betas", lambda c: (0.9 - 0.1 * c, 0.999))),
    "adam_eps": (lambda p: O.Adam(p, lr=0.1), _set("eps", lambda c: 1e-8 * 10 ** c)),
    "adam_weight_decay_changed_back": (lambda p: O.Adam(p, lr=0.1, weight_decay=0.1),
                                       _set("weight_decay", lambda c: 0.3 if c == 2 else 0.1)),
    "adamw_weight_decay": (lambda p: O.AdamW(p, lr=0.1, weight_decay=0.1), _set("weight_decay", lambda c: 0.1 * (c + 1))),
    "sgd_momentum_0d_array_in_place": (lambda p: _with_array(O.SGD(p, lr=0.1, momentum=0.5), "momentum"),
                                       lambda opt, c: opt.param_groups[0]["momentum"].__setitem__((), 0.5 - 0.1 * c)),
    "adam_weight_decay_0d_array_in_place": (lambda p: _with_array(O.Adam(p, lr=0.1, weight_decay=0.1), "weight_decay"),
                                            lambda opt, c: opt.param_groups[0]["weight_decay"].__setitem__((), 0.1 * c)),
    "a_new_key_each_call": (lambda p: O.SGD(p, lr=0.1, momentum=0.9), lambda opt, c: opt.param_groups[0].__setitem__(f"note{c}", c)),
    "second_group_weight_decay": (lambda p: O.SGD([{"params": [p[0]]}, {"params": [p[1]], "weight_decay": 0.1}],
                                                  lr=0.1, momentum=0.5), _set("weight_decay", lambda c: 0.1 * (c + 1))),
}


@pytest.mark.parametrize("name", HYPER)
def test_a_hyper_parameter_changed_between_calls_is_used_as_eager_without_a_retrace(name):
    make_opt, change = HYPER[name]

    def make():
        layer = tl.nn.Linear(4, 3, dtype=F64)
        opt = make_opt(list(layer.parameters()))
        return plain(layer, opt, extra=lambda call: change(opt, call) or (),
                     probe=lambda: [sorted(map(str, g.items())) for g in opt.param_groups])
    step = same(make, calls=6)
    assert step.traces == 1 and step.fallback_reason is None


@pytest.mark.parametrize("optimizer", ["SGD", "Adam", "AdamW"])
@pytest.mark.parametrize("before", [True, False], ids=["sched_before_step", "sched_after_step"])
def test_one_cycle_momentum_cycled_inside_the_step_replays_as_eager(optimizer, before):
    def make():
        layer = tl.nn.Linear(4, 3, dtype=F64)
        kw = dict(momentum=0.9) if optimizer == "SGD" else {}
        opt = getattr(O, optimizer)(layer.parameters(), lr=0.1, weight_decay=0.01, **kw)
        sched = LR.OneCycleLR(opt, max_lr=0.5, total_steps=12)

        def step(X, y):
            opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(layer(X), y); loss.backward()
            sched.step() if before else None
            opt.step()
            sched.step() if not before else None
            return loss
        return dict(step=step, params=list(layer.parameters()),
                    probe=lambda: [(g.get("momentum"), g.get("betas"), g["lr"]) for g in opt.param_groups])
    assert same(make, calls=8).traces == 1


def test_check_n_with_a_momentum_alternating_between_calls_raises_nothing_and_agrees(monkeypatch):
    def make():
        layer = tl.nn.Linear(4, 3, dtype=F64)
        opt = O.SGD(layer.parameters(), lr=0.1, momentum=0.9)
        return plain(layer, opt, extra=lambda c: opt.param_groups[0].__setitem__("momentum", 0.5 if c % 2 else 0.9) or ())
    want, _, _ = train(make, False, 6)
    monkeypatch.setattr(tl, "compile", functools.partial(tl.compile, check=5))  # (every replay checked)
    got, _, step = train(make, True, 6)
    agree(want, got)
    assert step.checks_left == 0


# ---- default arguments guarded by value -------------------------------------------------------

SCALE = np.array([1.0])
LISTED = [np.array([1.0])]


class Trainer:
    def __init__(self, layer, opt):
        self.layer, self.opt = layer, opt

    def step(self, X, y, config={"scale": 1.0}):  # noqa: B006 - changed in place on purpose
        self.opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(self.layer(X) * config["scale"], y); loss.backward(); self.opt.step()
        return loss


def _scaled(read_scale, signature):
    def make():
        layer = tl.nn.Linear(4, 3, dtype=F64)
        opt = O.SGD(layer.parameters(), lr=0.1, momentum=0.9)
        if signature == "method":
            step = Trainer(layer, opt).step
        else:
            namespace = {"tl": tl, "layer": layer, "opt": opt, "read": read_scale, "SCALE": SCALE, "LISTED": LISTED}
            exec(f"def step(X, y, {signature}):\n"  # noqa: S102 - a def with the signature under test
                 "    opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(layer(X) * read(scale), y)\n"
                 "    loss.backward(); opt.step(); return loss\n", namespace)
            step = namespace["step"]
        return dict(step=step, params=list(layer.parameters()), extra=lambda c: _change_default(step, signature, c) or ())
    return make


def _change_default(step, signature, call):
    value = 1.0 + 0.5 * call
    if signature == "scale=SCALE":
        SCALE[0] = value
    elif signature == "scale=LISTED":
        LISTED[0][0] = value
    elif signature == "scale=1.0":
        step.__defaults__ = (value,)
    elif signature == "*, scale=1.0":
        step.__kwdefaults__ = {"scale": value}
    else:
        step.__func__.__defaults__[0]["scale"] = value


@pytest.mark.parametrize("signature, read", [("scale=SCALE", lambda s: s[0]), ("scale=LISTED", lambda s: s[0][0]),
                                             ("scale=1.0", lambda s: s), ("*, scale=1.0", lambda s: s),
                                             ("method", None)])
def test_a_default_argument_changed_in_place_or_reassigned_is_seen_as_eager(signature, read):
    SCALE[0], LISTED[0][0] = 1.0, 1.0
    step = same(_scaled(read, signature))
    assert step.fallback_reason is None and step.traces > 1  # (traced again for each new default)


def test_a_default_argument_holding_the_model_neither_retraces_nor_falls_back():
    def make():
        layer = tl.nn.Linear(4, 3, dtype=F64)
        opt = O.SGD(layer.parameters(), lr=0.1, momentum=0.9)

        def step(X, y, model=layer):
            opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(model(X), y); loss.backward(); opt.step()
            return loss
        return dict(step=step, params=list(layer.parameters()))
    step = same(make)
    assert step.traces == 1 and step.fallback_reason is None


# ---- returned small integers ------------------------------------------------------------------

def _compiled_results(fn, calls=4):
    """What fn(loss-like step) returns, eager vs compiled, per call."""
    runs = []
    for compiled in (False, True):
        tl.manual_seed(0)
        layer = tl.nn.Linear(4, 3, dtype=F64)
        opt = O.SGD(layer.parameters(), lr=0.1)
        body = fn(layer, opt, LR.StepLR(opt, 2))
        step, rng = (tl.compile(body) if compiled else body), np.random.default_rng(1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tl.CompileWarning)
            out = [step(tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6)) for _ in range(calls)]
        runs.append(([_flat(o) for o in out], step))
    return runs


def _flat(out):
    if isinstance(out, dict):
        return {k: _flat(v) for k, v in out.items()}
    if isinstance(out, tuple):
        return type(out)(*map(_flat, out)) if hasattr(out, "_fields") else tuple(map(_flat, out))
    return float(out.data) if isinstance(out, tl.Tensor) else out


Pair = collections.namedtuple("Pair", "loss flag")
EPOCHS = 1


def _loss(layer, opt, sched, X, y):
    opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(layer(X), y); loss.backward(); opt.step(); sched.step()
    return loss


def _literal_bodies():
    def literals(layer, opt, sched):
        def step(X, y):
            loss = _loss(layer, opt, sched, X, y)
            return {"loss": (loss, 0), "done": True, "epochs": EPOCHS}
        return step

    def negative(layer, opt, sched):
        def step(X, y):
            return _loss(layer, opt, sched, X, y), -1
        return step

    def named(layer, opt, sched):
        def step(X, y):
            return Pair(_loss(layer, opt, sched, X, y), 1)
        return step

    def lam(layer, opt, sched):
        return lambda X, y: (_loss(layer, opt, sched, X, y), 1)
    return {"literals_in_nested_displays": literals, "lambda": lam, "negative": negative, "namedtuple": named}


@pytest.mark.parametrize("name", ["literals_in_nested_displays", "lambda"])
def test_small_integers_a_return_statement_writes_are_replayed_as_constants(name):
    (want, _), (got, step) = _compiled_results(_literal_bodies()[name])
    assert got == want and step.fallback_reason is None and step.traces == 1


def _computed_bodies():
    def epoch(layer, opt, sched):
        def step(X, y):
            return _loss(layer, opt, sched, X, y), sched.last_epoch
        return step

    def length(layer, opt, sched):
        def step(X, y):
            loss = _loss(layer, opt, sched, X, y)
            return loss, len(range(sched.last_epoch))
        return step

    def partial(layer, opt, sched):
        def step(X, y, unused):
            return _loss(layer, opt, sched, X, y), sched.last_epoch
        return functools.partial(step, unused=0)

    def executed(layer, opt, sched):
        namespace = {"_loss": _loss, "layer": layer, "opt": opt, "sched": sched}
        exec("def step(X, y):\n    return _loss(layer, opt, sched, X, y), sched.last_epoch\n", namespace)  # noqa: S102
        return namespace["step"]
    return {"epoch": epoch, "len": length, "partial": partial, "exec": executed}


@pytest.mark.parametrize("name", ["epoch", "len", "partial", "exec"])
def test_a_computed_small_integer_returned_is_as_eager(name):
    (want, _), (got, step) = _compiled_results(_computed_bodies()[name])
    assert got == want and [w[1] for w in want] == [1, 2, 3, 4]


def _defect_bodies():
    def other_return(layer, opt, sched):
        def step(X, y):
            loss = _loss(layer, opt, sched, X, y)
            if X.shape[0] == 0:  # an early exit elsewhere writes the literal 1
                return loss, 1
            return loss, sched.last_epoch
        return step

    def lambda_elsewhere(layer, opt, sched):
        def step(X, y):
            loss = _loss(layer, opt, sched, X, y)
            return loss, max([sched.last_epoch], key=lambda e: 1)
        return step

    def dict_neighbour(layer, opt, sched):
        def step(X, y):
            loss = _loss(layer, opt, sched, X, y)
            return {"loss": loss, "epoch": sched.last_epoch, "workers": 1}
        return step
    return {"another_return_writes_1": other_return, "a_lambda_body_is_1": lambda_elsewhere,
            "another_dict_value_is_1": dict_neighbour}


@pytest.mark.parametrize("name", ["another_return_writes_1", "a_lambda_body_is_1", "another_dict_value_is_1"])
def test_a_computed_epoch_equal_to_a_literal_written_elsewhere_is_as_eager(name):
    (want, _), (got, _) = _compiled_results(_defect_bodies()[name])
    assert got == want


# ---- tensors pickled or deep-copied -----------------------------------------------------------

def test_a_returned_loss_pickled_and_a_model_deep_copied_after_compiled_steps_are_as_eager():
    runs = []
    for compiled in (False, True):
        tl.manual_seed(0)
        layer = tl.nn.Linear(4, 3, dtype=F64)
        env = plain(layer, O.SGD(layer.parameters(), lr=0.1, momentum=0.9))
        step, rng = (tl.compile(env["step"]) if compiled else env["step"]), np.random.default_rng(1)
        losses = [pickle.loads(pickle.dumps(step(tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6))))
                  for _ in range(4)]
        twin = copy.deepcopy(layer)
        assert all(t.data is not p.data for t, p in zip(twin.parameters(), layer.parameters()))
        runs.append(([float(loss.data) for loss in losses], [p.data.copy() for p in twin.parameters()],
                     [getattr(loss, "_ctx", None) for loss in losses]))
    (want_l, want_p, _), (got_l, got_p, ctx) = runs
    assert got_l == want_l and all(np.array_equal(w, g) for w, g in zip(want_p, got_p))
    assert ctx == [None] * 4  # (no graph travels with a pickled tensor)


@pytest.mark.parametrize("name", ["negative", "namedtuple"])
def test_a_returned_minus_one_or_a_literal_in_a_namedtuple_call_replays_without_fallback(name):
    (want, _), (got, step) = _compiled_results(_literal_bodies()[name])
    assert got == want and step.fallback_reason is None, step.fallback_reason
