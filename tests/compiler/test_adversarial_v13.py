"""Compiled steps against the same steps run eagerly, round 13: the numbers guarded since round
12 (modules', regularizers', config objects'), the retry of a first call that changed its scope,
copies and pickles of compiled trainers, boolean masks given as arguments, indices computed
after the update.  Built twice from the same seeds (twins.py); after every call the loss and
every parameter must agree norm-wise (1e-12 in float64), and so must what the scenario probes.

Found and fixed since, each a stale replay before its fix: a regularizer's λ set in place on
a layer, and a regularizer swapped for another (both reached through the layer's `regularizers`
dict); a module attribute that is a tuple (a custom module's, Conv2d's padding) or a list
changed in place; a number two levels below a module (module.cfg.inner.scale); a list element
of a global dataclass; a config dataclass a trainer holds (self.config.inner.lam) — the settings
of modules, regularizers and configs are now compared by value three levels down
(compiler/settings.py); a step whose effect on its scope happens on calls 1 and 3 but not 2
(the retry of a first call that changed its scope is gone); a method compiled in a class with
__slots__ (traced every call).  Open (strict xfail): a mean over a mask given as an argument,
divided by mask.sum(), a number computed with numpy from an argument (documented: replayed as
traced).

Holding: a global dataclass's nested number; a module's numpy-float attribute; boolean masks
given as arguments (run eagerly); an argmax index used after the update (run eagerly);
best-loss tracking with .item() (run eagerly); a trainer class with Adam and StepLR compiled in
its class body, deep-copied and pickled, training independently with one trace each; a nested
config dataclass given as an argument; a ConvNet DataLoader loop with Dropout, Adam, a cosine
schedule, an accuracy returned as a Tensor and an eval step (a trace per batch shape and mode);
embedding rows given as an argument, unique when traced and repeated later; where() over a mask
given as an argument."""
import copy
import dataclasses
import pickle
import types
import warnings

import numpy as np
import pytest

import tinygrad_l2 as tl

from twins import F64, agree, same, train

O, CE = tl.optim, tl.nn.softmax_cross_entropy


def _mlp(seed=0, **kw):
    return tl.nn.Sequential(tl.nn.Linear(4, 5, dtype=F64, rng=seed, **kw), tl.nn.Tanh(),
                            tl.nn.Linear(5, 3, dtype=F64, rng=seed + 1))


def _loop(net, change=lambda c: None, penalty=False, **env):
    """A plain SGD step on `net`; `change(call)` runs before each call (between calls)."""
    opt = O.SGD(net.parameters(), lr=0.1)

    def step(X, y):
        opt.zero_grad()
        loss = CE(net(X), y) + (net.regularization_loss() if penalty else 0.0)
        loss.backward(); opt.step()
        return loss
    return dict(step=step, params=list(net.parameters()), extra=lambda c: change(c) or (), **env)


# ---- regularizers reached through a layer's `regularizers` dict ------------------------------

def test_regularizer_lambda_set_in_place_on_a_layer_retraces():
    def make():
        net = _mlp(kernel_regularizer=tl.nn.L2(0.05))
        return _loop(net, lambda c: c == 2 and setattr(net[0].kernel_regularizer, "lam", 0.5), penalty=True)
    same(make)


def test_regularizer_swapped_for_another_retraces():
    def make():
        net = _mlp(kernel_regularizer=tl.nn.L2(0.05))
        return _loop(net, lambda c: c == 2 and setattr(net[0], "kernel_regularizer", tl.nn.L1(0.05)),
                     penalty=True)
    same(make)


# ---- module attributes that are not scalars ---------------------------------------------------

class _Held(tl.nn.Module):
    """Scales its Linear's output by numbers held in a tuple, a list, a numpy float and a
    namespace two levels down."""

    def __init__(self):
        super().__init__()
        self.lin = tl.nn.Linear(4, 3, dtype=F64, rng=0)
        self.pair, self.scales, self.factor = (1.0, 2.0), [1.0], np.float64(1.0)
        self.cfg = types.SimpleNamespace(inner=types.SimpleNamespace(scale=1.0))

    def forward(self, x):
        return self.lin(x) * self.pair[0] * self.scales[0] * self.factor * self.cfg.inner.scale


def _held(edit):
    def make():
        net = _Held()
        return _loop(net, lambda c: c == 2 and edit(net))
    return make


def test_module_tuple_attribute_rebound_retraces():
    same(_held(lambda net: setattr(net, "pair", (3.0, 2.0))))


def test_conv_padding_changed_retraces():
    def make():
        conv = tl.nn.Conv2d(1, 3, 1, padding=0, dtype=F64, rng=0)
        opt = O.SGD(conv.parameters(), lr=0.1)

        def step(X, y):
            opt.zero_grad(); loss = CE(conv(X.reshape(6, 1, 2, 2)).mean(axis=(2, 3)), y)
            loss.backward(); opt.step()
            return loss
        change = lambda c: c == 2 and setattr(conv, "padding", ((1, 1), (1, 1)))  # noqa: E731
        return dict(step=step, params=list(conv.parameters()), extra=lambda c: change(c) or ())
    same(make)


def test_module_list_attribute_changed_in_place_retraces():
    same(_held(lambda net: net.scales.__setitem__(0, 3.0)))


def test_module_setting_two_levels_down_retraces():
    same(_held(lambda net: setattr(net.cfg.inner, "scale", 3.0)))


def test_module_numpy_float_attribute_retraces():
    step = same(_held(lambda net: setattr(net, "factor", np.float64(3.0))))
    assert step.traces == 2 and step.fallback_reason is None


# ---- config dataclasses read as globals -------------------------------------------------------

@dataclasses.dataclass
class _Inner:
    lam: float


@dataclasses.dataclass
class _Config:
    inner: _Inner
    scales: list


CONFIG = _Config(_Inner(0.01), [1.0])


def _config_step(edit):
    def make():
        CONFIG.inner.lam, CONFIG.scales[:] = 0.01, [1.0]
        net = _mlp()
        opt = O.SGD(net.parameters(), lr=0.1)

        def step(X, y):
            opt.zero_grad()
            loss = CONFIG.scales[0] * CE(net(X), y) + CONFIG.inner.lam * (net[0].weight ** 2).sum()
            loss.backward(); opt.step()
            return loss
        return dict(step=step, params=list(net.parameters()), extra=lambda c: (c == 2 and edit()) or ())
    return make


def test_global_dataclass_nested_number_retraces():
    step = same(_config_step(lambda: setattr(CONFIG.inner, "lam", 0.5)))
    assert step.traces == 2 and step.fallback_reason is None


def test_global_dataclass_list_element_retraces():
    same(_config_step(lambda: CONFIG.scales.__setitem__(0, 3.0)))


# ---- the retry of a first call that changed its scope -----------------------------------------

class _Flag:
    """A switch of the user's, set between calls (say, "log this epoch")."""
    on = True


def test_effect_on_calls_one_and_three_not_two_is_not_skipped():
    def make():
        log, flag = [], _Flag()
        net = _mlp()
        opt = O.SGD(net.parameters(), lr=0.1)

        def step(X, y):
            opt.zero_grad(); loss = CE(net(X), y); loss.backward(); opt.step()
            if flag.on:
                log.append("logged")
            return loss
        return dict(step=step, params=list(net.parameters()), probe=lambda: len(log),
                    extra=lambda c: setattr(flag, "on", c in (0, 2)) or ())
    same(make)


def test_best_loss_tracking_runs_eagerly():
    def make():
        best = types.SimpleNamespace(loss=float("inf"), improved=[])
        env = _loop(_mlp(), probe=lambda: len(best.improved))
        inner = env["step"]

        def step(X, y):
            loss = inner(X, y)
            if loss.item() < best.loss:
                best.loss = loss.item(); best.improved.append(loss.item())
            return loss
        return dict(env, step=step)
    assert same(make, calls=8).fallback_reason is not None


# ---- masks given as arguments, indices computed after the update ------------------------------

MASKS = [np.array(m, bool) for m in ([1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 0], [1, 0, 0, 0, 0, 0])]


def test_boolean_mask_argument_runs_eagerly():
    def make():
        net = _mlp()
        opt = O.SGD(net.parameters(), lr=0.1)

        def step(X, y, mask):
            opt.zero_grad(); loss = ((net(X) ** 2).sum(axis=1)[mask]).mean(); loss.backward(); opt.step()
            return loss
        return dict(step=step, params=list(net.parameters()), extra=lambda c: (MASKS[c % 3],))
    assert "boolean mask" in same(make).fallback_reason


def test_argmax_index_after_the_update_agrees():
    def make():
        net = _mlp()
        env = _loop(net)
        inner = env["step"]

        def step(X, y):
            loss = inner(X, y)
            scores = net(X)
            return loss + 0.0 * scores[np.arange(6), scores.argmax(axis=-1)].sum().item()
        return dict(env, step=step)
    same(make)


# ---- a trainer compiled in its class body, copied and pickled ---------------------------------

class _Trainer:
    def __init__(self):
        self.net = _mlp()
        self.opt = O.Adam(self.net.parameters(), lr=0.01)
        self.sched = O.lr_scheduler.StepLR(self.opt, step_size=2, gamma=0.5)
        self.config = {"name": "run", "epochs": 3}  # only read

    @tl.compile
    def step(self, X, y):
        self.opt.zero_grad(); loss = CE(self.net(X), y); loss.backward(); self.opt.step(); self.sched.step()
        return loss if self.config["epochs"] else None


def _fit(trainer, seed, calls=4):
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", tl.CompileWarning)
        return [trainer.step(tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6)).data.item()
                for _ in range(calls)]


def test_trainer_deepcopied_and_pickled_trains_like_eager():
    tl.manual_seed(0)
    first = _Trainer()
    _fit(first, 1)
    copied, pickled = copy.deepcopy(first), pickle.loads(pickle.dumps(first))
    eager = copy.deepcopy(first)
    rng = np.random.default_rng(2)
    batches = [(rng.standard_normal((6, 4)), rng.integers(0, 3, 6)) for _ in range(4)]
    want = [type(eager).step.fn(eager, tl.Tensor(x), y).data.item() for x, y in batches]
    for trainer in (copied, pickled):
        got = [trainer.step(tl.Tensor(x), y).data.item() for x, y in batches]
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert trainer.step.traces == 1 and trainer.step.fallback_reason is None
        agree([[p.data for p in eager.net.parameters()]], [[p.data for p in trainer.net.parameters()]])
    assert first.step.traces == 1 and first.net[0].weight is not copied.net[0].weight


# ---- config objects given as arguments, or held by a trainer ---------------------------------

class _Reg:
    """A trainer of the user's (not a module) holding its config."""

    def __init__(self, config):
        self.net, self.config = _mlp(), config
        self.opt = O.SGD(self.net.parameters(), lr=0.1)

    def step(self, X, y):
        self.opt.zero_grad()
        loss = CE(self.net(X), y) + self.config.inner.lam * (self.net[0].weight ** 2).sum()
        loss.backward(); self.opt.step()
        return loss


def _configured(as_argument):
    def make():
        config = _Config(_Inner(0.01), [1.0])
        trainer = _Reg(config)
        change = lambda c: c == 2 and setattr(config.inner, "lam", 0.5)  # noqa: E731
        step = (lambda X, y, config: trainer.step(X, y)) if as_argument else trainer.step
        return dict(step=step, params=list(trainer.net.parameters()),
                    extra=lambda c: (change(c) or (config,)) if as_argument else (change(c) or ()))
    return make


def test_nested_config_dataclass_argument_retraces():
    step = same(_configured(as_argument=True))
    assert step.traces == 2 and step.fallback_reason is None


def test_config_dataclass_held_by_a_trainer_retraces():
    same(_configured(as_argument=False))


# ---- an ordinary loop: one trace per batch shape and mode entered -----------------------------

def test_convnet_dataloader_loop_with_dropout_adam_and_cosine_replays():
    def run(compiled):
        tl.manual_seed(0)
        net = tl.nn.Sequential(tl.nn.Conv2d(1, 4, 3, padding=1, dtype=F64, rng=0), tl.nn.ReLU(),
                               tl.nn.MaxPool2d(2), tl.nn.Flatten(), tl.nn.Dropout(0.3),
                               tl.nn.Linear(16, 3, dtype=F64, rng=1))
        opt = O.Adam(net.parameters(), lr=0.01, weight_decay=1e-4)
        schedule, settings = O.lr_scheduler.CosineAnnealingLR(opt, T_max=4), {"log_every": 100}

        def train_step(X, y):
            net.train(); opt.zero_grad(); out = net(X); loss = CE(out, y); loss.backward(); opt.step()
            return loss if settings["log_every"] else None, (out.argmax(axis=-1) == y).astype(F64).mean()

        def evaluate(X, y):
            net.eval()
            with tl.no_grad():
                return CE(net(X), y)
        train_step, evaluate = (tl.compile(train_step), tl.compile(evaluate)) if compiled else (train_step, evaluate)
        rng = np.random.default_rng(1)
        X, y = rng.standard_normal((20, 1, 4, 4)), rng.integers(0, 3, 20)
        loader, seen = tl.data.DataLoader(tl.data.TensorDataset(X, y), batch_size=8, shuffle=True), []
        for _ in range(3):
            seen += [[np.array(v.data if hasattr(v, "data") else v) for v in train_step(xb, yb)] for xb, yb in loader]
            schedule.step()
            seen.append([np.array(evaluate(tl.Tensor(X), y).data)] + [p.data.copy() for p in net.parameters()])
        return seen, train_step, evaluate
    (want, _, _), (got, train_step, evaluate) = run(False), run(True)
    agree(want, got)
    assert train_step.fallback_reason is None and evaluate.fallback_reason is None
    assert train_step.traces <= 3 and evaluate.traces == 1  # batches of 8 and 4, entered after eval()


# ---- index arrays given as arguments: unique when traced, repeated later ----------------------

def test_embedding_rows_repeated_after_a_trace_on_unique_rows_agree():
    rows = [np.array([0, 1, 2, 3, 4, 0]), np.array([1, 1, 1, 0, 1, 1]), np.array([3, 3, 2, 2, 4, 4])]

    def make():
        table = tl.Tensor(np.random.default_rng(0).standard_normal((5, 4)), requires_grad=True)
        lin = tl.nn.Linear(4, 3, dtype=F64, rng=1)
        opt = O.SGD([table] + list(lin.parameters()), lr=0.1, momentum=0.9)

        def step(X, y, index):
            opt.zero_grad(); loss = CE(lin(table[index] + X), y); loss.backward(); opt.step()
            return loss
        return dict(step=step, params=[table] + list(lin.parameters()), extra=lambda c: (rows[c % 3],))
    assert same(make).fallback_reason is None


# ---- a method compiled in the body of a class with __slots__ ----------------------------------

class _Slotted:
    __slots__ = ("net", "opt")

    def __init__(self):
        self.net = _mlp()
        self.opt = O.SGD(self.net.parameters(), lr=0.1)

    @tl.compile
    def step(self, X, y):
        self.opt.zero_grad(); loss = CE(self.net(X), y); loss.backward(); self.opt.step()
        return loss


def test_method_compiled_in_a_slotted_class_replays():
    trainer, rng = _Slotted(), np.random.default_rng(0)
    for _ in range(3):
        trainer.step(tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6))
    assert trainer.step.program is not None


def _masked_mean(divisor):
    """A loss over the rows a mask argument keeps, divided by divisor(mask)."""
    def make():
        net = _mlp()
        opt = O.SGD(net.parameters(), lr=0.1)

        def step(X, y, mask):
            opt.zero_grad(); per_row = (net(X) ** 2).sum(axis=1)
            loss = tl.where(mask, per_row, 0.0 * per_row).sum() / divisor(mask)
            loss.backward(); opt.step()
            return loss
        return dict(step=step, params=list(net.parameters()), extra=lambda c: (MASKS[c % 3],))
    return make


@pytest.mark.xfail(strict=True, reason="the count of a mask given as an argument (np.int64 from mask.sum()) "
                   "is baked into the trace as a constant: the masked mean divides by the traced count")
def test_masked_mean_over_a_mask_argument_divides_by_its_count():
    same(_masked_mean(lambda mask: mask.sum()))


def test_where_over_a_mask_argument_replays():
    assert same(_masked_mean(lambda mask: 3.0)).fallback_reason is None
