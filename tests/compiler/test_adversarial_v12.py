"""Compiled steps against the same steps run eagerly, round 12: tensors computed outside the
graph (detached, no_grad, comparisons, views of weights), module buffers and frozen parameters
read each call, the snapshot of the step's scope (effects.ScopeState), mode events and Dropout's
random stream, partials, compiled methods, files.  Built twice from the same seeds; after every
call the loss and every parameter must agree norm-wise (1e-12 in float64), and so must what the
scenario probes.

Found and fixed since, each test failing before its fix.  Silently different from eager: random
ops replayed in the graph's order rather than the order they ran (now in the order they ran);
the mean over rows a comparison chose divided by the traced count (a boolean-mask selection now
runs eagerly: its shapes depend on the data); a step toggling its model's mode, and a model
switched to eval() right after its forward (the mode guard now keys on every switched module's
entering mode); a Dropout rate annealed between calls (the numbers modules hold are guarded);
tl.manual_seed inside the step; Python state changed three levels down, in an object held by a
tuple, through a generator, a helper's closure, a generator of the user's drawn by the step, a
global list rebound (ScopeState goes three levels, through tuples, closures, generators); a
config dict or list held by a functools.partial changed between calls (keyed by value); a copy of
a trainer whose method is compiled in its class body; np.savez of state_dict() inside the step.
Crashes where eager runs: copy.deepcopy of such a trainer; a statistic over rows chosen after
the update; a step whose loss is NaN when traced and a clip with an infinite bound (constants
printed as `nan`/`inf`); a step reading the tl.optim module as a global; under check=N, a replay
that raises before its effects.  Open (strict xfails): a file written with np.save of a weight's
.data (documented, as printing); a step that returns the learning rate its scheduler set, and a
trainer that builds its optimizer on the first call, run eagerly (results as eager).

Holding: a sum over rows a comparison chose, no_grad/detached values read after the update,
returned intermediates, accuracy as a Tensor, views of weights taken before the update, writes
into computed arrays, BatchNorm buffers edited/replaced/loaded between calls, frozen layers
inside optimizer groups (weight decay, AdamW) frozen and unfrozen between calls, a buffer shared
by two modules, schedulers stepped inside the step, Dropout's stream across calls with
manual_seed between them and with check=N."""
import copy
import functools
import warnings

import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2.nn.layers import dropout

from twins import F64, agree, same, train

O, S, CE = tl.optim, tl.optim.lr_scheduler, tl.nn.softmax_cross_entropy


def _mlp(seed=0):
    return tl.nn.Sequential(tl.nn.Linear(4, 5, dtype=F64, rng=seed), tl.nn.Tanh(),
                            tl.nn.Linear(5, 3, dtype=F64, rng=seed + 1))


def _scenario(body, make_opt=lambda p: O.SGD(p, lr=0.1, momentum=0.9), model=_mlp, **env):
    """A twins.py scenario: `body(model, opt, X, y)` is the step."""
    def make():
        net = model()
        opt = make_opt(net.parameters())
        return dict(step=lambda X, y: body(net, opt, X, y), params=list(net.parameters()),
                    **{k: v(net, opt) if callable(v) else v for k, v in env.items()})
    return make


def _probed(make, calls=4):
    """Like twins.same, but what probe() returns (arrays) is compared norm-wise."""
    (want, probe_w, _), (got, probe_g, step) = train(make, False, calls), train(make, True, calls)
    agree(want, got)
    agree([probe_w], [probe_g])
    return step


# ---- random ops: replayed in the order they ran ----------------------------------------------

def _two_dropouts(model, opt, X, y):
    """Two masks drawn a then b, consumed b first (the graph's order differs from eager's)."""
    opt.zero_grad(); h = model[1](model[0](X))
    a, b = dropout(h, 0.5), dropout(h, 0.5)
    loss = CE(model[2](b), y) + 0.5 * CE(model[2](a), y)
    loss.backward(); opt.step()
    return loss


def _no_grad_dropout_and_layer(model, opt, X, y):
    """A noisy copy drawn under no_grad, then the model's own Dropout layer."""
    opt.zero_grad(); h = model[1](model[0](X))
    with tl.no_grad():
        noisy = dropout(h, 0.3)
    loss = CE(model[3](model[2](h)), y) + (noisy * 0.01).sum()
    loss.backward(); opt.step()
    return loss


def _with_dropout_layer():
    return tl.nn.Sequential(tl.nn.Linear(4, 5, dtype=F64, rng=0), tl.nn.Tanh(), tl.nn.Dropout(0.5),
                            tl.nn.Linear(5, 3, dtype=F64, rng=1))


@pytest.mark.parametrize("body", [_two_dropouts, _no_grad_dropout_and_layer])
def test_random_ops_draw_their_masks_in_the_order_the_step_ran_them(body):
    same(_scenario(body, model=_with_dropout_layer if body is _no_grad_dropout_and_layer else _mlp))


def _plain(model, opt, X, y):
    opt.zero_grad(); loss = CE(model(X), y); loss.backward(); opt.step()
    return loss


def _draw_next(net, opt):
    return lambda: tl.random.default_generator().random()


def test_dropouts_stream_matches_eager_with_manual_seed_between_calls():
    same(_scenario(_plain, model=_with_dropout_layer, probe=_draw_next,
                   extra=lambda net, opt: lambda call: (tl.manual_seed(call % 2), ())[1]), calls=5)


def _reseeding(model, opt, X, y):
    tl.manual_seed(3)  # the same masks every call
    return _plain(model, opt, X, y)


def test_a_step_that_seeds_its_own_generator_draws_the_same_masks_every_call():
    same(_scenario(_reseeding, model=_with_dropout_layer, probe=_draw_next))


# ---- mode events -----------------------------------------------------------------------------

def _eval_after_forward(model, opt, X, y):
    opt.zero_grad(); out = model(X)
    model.eval()  # right after the forward: the next call is entered in eval mode
    loss = CE(out, y); loss.backward(); opt.step()
    return loss


def test_a_model_switched_to_eval_right_after_its_forward_runs_the_next_call_in_eval():
    same(_scenario(_eval_after_forward, model=_with_dropout_layer))


def _toggling(model, opt, X, y):
    model.train(not model.training)  # before the model's first call: its mode is not guarded
    return _plain(model, opt, X, y)


def test_a_step_that_toggles_its_models_mode_alternates_as_eager():
    same(_scenario(_toggling, model=_with_dropout_layer), calls=4)


def _annealed_rate(net, opt):
    def anneal(call):
        net[2].p = 0.5 - 0.1 * call  # a dropout schedule, set between calls
        return ()
    return anneal


def test_a_dropout_rate_annealed_between_calls_is_used_as_eager():
    same(_scenario(_plain, model=_with_dropout_layer, extra=_annealed_rate))


def _submodule_eval(model, opt, X, y):
    model[2].eval()
    return _plain(model, opt, X, y)


def test_a_submodule_switched_inside_the_step_with_the_model_switched_between_calls():
    same(_scenario(_submodule_eval, model=_with_dropout_layer,
                   extra=lambda net, opt: lambda call: (net.train(call % 2 == 0), ())[1]), calls=5)


# ---- tensors computed outside the graph ------------------------------------------------------

def _read_after_update(model, opt, X, y):
    """Values computed before the update, read after it (in-place passes must not clobber them)."""
    opt.zero_grad(); h = model[0](X); a = h.tanh(); out = model[2](a)
    with tl.no_grad():
        weight_norm = (model[0].weight ** 2).sum()
        transposed = model[0].weight.T  # a view: eager returns the updated weight
    loss = CE(out, y); loss.backward(); opt.step()
    accuracy = (out.argmax(-1) == tl.Tensor(y)).mean()
    saturated = (a.detach().abs() > 0.5).mean()
    return loss, weight_norm, transposed, accuracy, saturated, (h.detach() * 1.0).sum(), out.detach()


def _compiled_outputs(make, calls=4, check=0):
    """The returned tensors of each call, eager and compiled (with check=N)."""
    runs = []
    for compiled in (False, True):
        tl.manual_seed(0)
        env = make()
        step = tl.compile(env["step"], check=check) if compiled else env["step"]
        rng, seen = np.random.default_rng(1), []
        for _ in range(calls):
            out = step(tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6))
            seen.append([np.array(o.data) for o in out] + [p.data.copy() for p in env["params"]])
        runs.append((seen, step))
    return runs


@pytest.mark.parametrize("make_opt", [lambda p: O.SGD(p, lr=0.1), lambda p: O.Adam(p, lr=0.01)])
def test_values_computed_before_the_update_and_read_after_it_are_each_calls(make_opt):
    (want, _), (got, step) = _compiled_outputs(_scenario(_read_after_update, make_opt))
    agree(want, got)
    assert step.fallback_reason is None


def _gram_after_update(model, opt, X, y):
    opt.zero_grad(); out = model(X); loss = CE(out, y); loss.backward(); opt.step()
    kept = out.detach()
    chosen = kept[kept.max(-1) > 0.0]  # as many rows as this call's outputs pick
    return loss, (chosen @ chosen.T).sum()


def test_a_statistic_over_rows_chosen_after_the_update_is_computed_each_call():
    (want, _), (got, step) = _compiled_outputs(_scenario(_gram_after_update, lambda p: O.SGD(p, lr=0.1)))
    agree(want, got)


def _gram_in_loss(model, opt, X, y):
    opt.zero_grad(); out = model(X)
    h = model[1](model[0](X))
    chosen = h[h.max(-1) > 0.0]  # its matmul gets a buffer of the traced shape: the replay raises
    loss = CE(out, y) + 0.1 * (chosen @ chosen.T).sum(); loss.backward(); opt.step()
    return (loss,)


def test_a_selection_by_a_boolean_mask_runs_eagerly_as_its_shapes_depend_on_the_data():
    """(It replayed with buffers of the traced shape, raised, and fell back at that call.)"""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        (want, _), (got, step) = _compiled_outputs(_scenario(_gram_in_loss, lambda p: O.SGD(p, lr=0.1)))
    agree(want, got)
    assert "boolean mask" in step.fallback_reason


def test_a_replay_that_raises_before_its_effects_under_check_falls_back_to_the_eager_step():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        (want, _), (got, step) = _compiled_outputs(_scenario(_gram_in_loss, lambda p: O.SGD(p, lr=0.1)),
                                                   check=3)
    agree(want, got)


def _write_into_detached(model, opt, X, y):
    opt.zero_grad(); out = model(X); loss = CE(out, y); loss.backward(); opt.step()
    np.asarray(out.detach())[...] = 7.0  # eager returns the edited array
    return loss, out


def test_writing_into_a_detached_outputs_array_makes_the_step_run_eagerly():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        (want, _), (got, step) = _compiled_outputs(_scenario(_write_into_detached))
    agree(want, got)
    assert "writes into" in step.fallback_reason


def _selected(reduce):
    def body(model, opt, X, y):
        opt.zero_grad(); out = model(X)
        chosen = out[out.max(-1) > 0.0]  # a Compare op: recomputed each call, so is its count
        loss = getattr(chosen * chosen, reduce)()
        loss.backward(); opt.step()
        return loss
    return body


def test_a_mean_over_rows_chosen_by_a_comparison_divides_by_each_calls_count():
    same(_scenario(_selected("mean"), lambda p: O.SGD(p, lr=0.1)))


def test_a_sum_over_rows_chosen_by_a_comparison_trains_as_eager():
    step = same(_scenario(_selected("sum"), lambda p: O.SGD(p, lr=0.1)))
    assert "boolean mask" in step.fallback_reason


def _clipped(model, opt, X, y):
    opt.zero_grad(); out = model(X)
    loss = CE(out.clip(float("-inf"), 50.0), y); loss.backward(); opt.step()
    return loss


def test_a_clip_with_an_infinite_bound_replays():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        step = same(_scenario(_clipped, lambda p: O.SGD(p, lr=0.1)))
    assert step.fallback_reason is None


def _variance_of_one(compiled):
    """The variance of a single value: NaN (n − 1 = 0), as in torch; the loss of two calls."""
    layer = tl.nn.Linear(4, 1, dtype=F64, rng=0)

    def step(X):
        loss = layer(X).var(); loss.backward()
        return loss
    step = tl.compile(step) if compiled else step
    return [np.array(step(tl.Tensor(np.ones((1, 4)))).data) for _ in range(2)]


def test_a_step_whose_loss_is_nan_returns_nan_when_compiled_as_eager():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want, got = _variance_of_one(False), _variance_of_one(True)
    assert np.isnan(want).all() and np.isnan(got).all()


# ---- module buffers and frozen parameters ----------------------------------------------------

def _batch_norm_model():
    model = tl.nn.Sequential(tl.nn.Linear(4, 5, dtype=F64, rng=0), tl.nn.BatchNorm1d(5, dtype=F64),
                             tl.nn.Tanh(), tl.nn.Linear(5, 3, dtype=F64, rng=1))
    return model.eval()


def _buffer_change(how):
    def change(net, call):
        bn = net[1]
        if how == "in_place":
            bn.running_mean.data[...] += 0.3
        elif how == "load_state_dict":
            state = net.state_dict(); state["1.running_mean"] = state["1.running_mean"] + call
            net.load_state_dict(state)
        elif how == "float32" and call == 2:
            bn.running_var.data = np.full(5, 4.0, dtype=np.float32)
        elif how == "rebound" and call == 2:
            bn.running_var = tl.Tensor(np.full(5, 4.0))
    return lambda net, opt: lambda call: (change(net, call), ())[1]


@pytest.mark.parametrize("how", ["in_place", "load_state_dict", "float32", "rebound"])
def test_batch_norm_buffers_changed_between_calls_are_read_by_the_replay(how):
    probe = lambda net, opt: lambda: [b.data.copy() for b in net.buffers()]  # noqa: E731
    _probed(_scenario(_plain, model=_batch_norm_model, extra=_buffer_change(how), probe=probe), calls=5)


def _frozen_first_layer():
    model = _mlp()
    for p in model[0].parameters():
        p.requires_grad = False
    return model


def _toggle_freeze(net, opt):
    def toggle(call):
        if call in (2, 4):
            for p in net[0].parameters():
                p.requires_grad = call == 2
        return ()
    return toggle


@pytest.mark.parametrize("make_opt", [lambda p: O.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.1),
                                      lambda p: O.AdamW(p, lr=0.01, weight_decay=0.1)])
def test_a_frozen_layer_in_the_optimizers_group_unfrozen_and_frozen_again_trains_as_eager(make_opt):
    same(_scenario(_plain, make_opt, model=_frozen_first_layer, extra=_toggle_freeze), calls=6)


class _Scaled(tl.nn.Module):
    def __init__(self, seed, scale):
        super().__init__()
        self.lin = tl.nn.Linear(4, 3, dtype=F64, rng=seed)
        self.register_buffer("scale", scale)

    def forward(self, x):
        return self.lin(x) * self.scale


def test_a_buffer_shared_by_two_modules_and_rebound_in_one_trains_as_eager():
    def make():
        shared = tl.Tensor(np.full(3, 2.0))
        a, b = _Scaled(0, shared), _Scaled(1, shared)
        params = [*a.parameters(), *b.parameters()]
        opt = O.SGD(params, lr=0.1)

        def step(X, y):
            opt.zero_grad(); loss = CE(a(X) + b(X), y); loss.backward(); opt.step()
            return loss

        def change(call):
            if call == 2:
                a.scale = tl.Tensor(np.full(3, 0.5))
            elif call == 3:
                b.scale.data = np.full((1, 3), 0.25)
            return ()
        return dict(step=step, params=params, extra=change)
    same(make)


# ---- the step's scope: effects a replay must not skip ----------------------------------------

class _Box:
    def __init__(self):
        self.n = 0


def _counting(where):
    """A plain step that also counts its calls somewhere in its scope; probe: the count."""
    def make():
        model = _mlp(); opt = O.SGD(model.parameters(), lr=0.1)
        deep, held, rng, counted = {"a": {"b": {"n": 0}}}, (_Box(),), np.random.default_rng(1), {"n": 0}

        def ticks():
            while True:
                counted["n"] += 1
                yield

        def bump():
            counted["n"] += 1
        ticker = ticks()

        def three_levels_deep(X, y):
            deep["a"]["b"]["n"] += 1
            return _plain(model, opt, X, y)

        def object_in_a_tuple(X, y):
            held[0].n += 1
            return _plain(model, opt, X, y)

        def generator(X, y):
            next(ticker)
            return _plain(model, opt, X, y)

        def helper_closure(X, y):
            bump()
            return _plain(model, opt, X, y)

        def users_rng(X, y):
            return _plain(model, opt, X * (1 + 0 * rng.random()), y)  # a draw the graph does not hold
        probe = {"three_levels_deep": lambda: deep["a"]["b"]["n"], "object_in_a_tuple": lambda: held[0].n,
                 "users_rng": lambda: rng.random()}.get(where, lambda: counted["n"])
        return dict(step=locals()[where], params=list(model.parameters()), probe=probe)
    return make


@pytest.mark.parametrize("where", ["three_levels_deep", "object_in_a_tuple", "generator", "helper_closure",
                                   "users_rng"])
def test_a_change_the_step_makes_anywhere_in_its_scope_happens_every_call(where):
    same(_counting(where))


class _LazyTrainer:
    """Creates its optimizer on the first call (as a Keras-style build does)."""
    def __init__(self):
        self.model, self.opt = _mlp(), None

    def step(self, X, y):
        if self.opt is None:
            self.opt = _Adam(self.model.parameters(), lr=0.01)
        return _plain(self.model, self.opt, X, y)


class _LazyThroughModule(_LazyTrainer):
    def step(self, X, y):
        if self.opt is None:
            self.opt = O.Adam(self.model.parameters(), lr=0.01)  # O: the tl.optim module
        return _plain(self.model, self.opt, X, y)


_Adam = O.Adam


def _lazy(through_module):
    def make():
        trainer = _LazyThroughModule() if through_module else _LazyTrainer()
        return dict(step=trainer.step, params=list(trainer.model.parameters()))
    return make


def test_a_step_that_reads_the_optim_module_as_a_global_compiles():
    same(_lazy(True), calls=3)


@pytest.mark.xfail(strict=True, reason="open (a fallback, results as eager): the first call's change (an "
                   "optimizer built lazily) makes the step run eagerly for good; tracing again after it "
                   "let a step whose effect comes back on a later call replay stale (round 13)")
def test_a_trainer_that_builds_its_optimizer_on_the_first_call_replays_afterwards():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        step = same(_lazy(False), calls=4)
    assert step.fallback_reason is None


HISTORY: list = []


def _rebinding_history(X, y):
    global HISTORY
    loss = _plain(_GLOBAL_MODEL, _GLOBAL_OPT, X, y)
    HISTORY = HISTORY + [1]
    return loss


def _history_run(compiled):
    global HISTORY, _GLOBAL_MODEL, _GLOBAL_OPT
    HISTORY, _GLOBAL_MODEL = [], _mlp()
    _GLOBAL_OPT = O.SGD(_GLOBAL_MODEL.parameters(), lr=0.1)
    step = tl.compile(_rebinding_history) if compiled else _rebinding_history
    rng = np.random.default_rng(0)
    for _ in range(4):
        step(tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6))
    return len(HISTORY)


_GLOBAL_MODEL = _GLOBAL_OPT = None


def test_a_global_list_the_step_rebinds_grows_every_call():
    assert _history_run(True) == _history_run(False) == 4


def _scheduled(make_opt):
    def make():
        model = _mlp(); opt = make_opt(model.parameters())
        sched = S.OneCycleLR(opt, max_lr=0.1, total_steps=20)  # (it sets momentum/betas too)

        def step(X, y):
            loss = _plain(model, opt, X, y); sched.step()
            return loss
        return dict(step=step, params=list(model.parameters()), probe=lambda: opt.param_groups[0]["lr"])
    return make


@pytest.mark.parametrize("make_opt", [lambda p: O.Adam(p, lr=0.01),
                                      lambda p: O.SGD(p, lr=0.1, momentum=0.9, nesterov=True)])
def test_a_scheduler_stepped_inside_the_step_replays_without_falling_back(make_opt):
    step = same(_scheduled(make_opt), calls=5)
    assert step.fallback_reason is None and step.traces == 1


@pytest.mark.xfail(strict=True, reason="a returned hyper-parameter (the scheduled lr, for logging) is 'a "
                   "number computed during the call': the whole step runs eagerly")
def test_a_step_that_returns_the_scheduled_learning_rate_replays():
    def make():
        model = _mlp(); opt = O.SGD(model.parameters(), lr=0.1)
        sched = S.CosineAnnealingLR(opt, 4)

        def step(X, y):
            loss = _plain(model, opt, X, y); sched.step()
            return {"loss": loss.item(), "lr": opt.param_groups[0]["lr"]}
        return dict(step=step, params=list(model.parameters()))
    tl.manual_seed(0)
    env = make()
    step, rng = tl.compile(env["step"]), np.random.default_rng(0)
    for _ in range(3):
        step(tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6))
    assert step.fallback_reason is None


# ---- functools.partial, methods compiled in their class, files -------------------------------

def _partial_holding(kind):
    def make():
        model = _mlp(); opt = O.SGD(model.parameters(), lr=0.1)
        config = {"lam": 0.01} if kind == "dict" else [0.01]

        def raw(X, y, config):
            lam = config["lam"] if isinstance(config, dict) else config[0]
            opt.zero_grad(); loss = CE(model(X), y) + lam * (model[0].weight ** 2).sum()
            loss.backward(); opt.step()
            return loss

        def change(call):
            if call == 2:
                config.__setitem__("lam" if kind == "dict" else 0, 0.5)
            return ()
        return dict(step=functools.partial(raw, config=config), params=list(model.parameters()), extra=change)
    return make


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_a_config_held_by_a_partial_and_changed_between_calls_is_used_as_eager(kind):
    same(_partial_holding(kind))


class _Trainer:
    def __init__(self, seed):
        self.model = _mlp(seed); self.opt = O.SGD(self.model.parameters(), lr=0.1)

    @tl.compile
    def step(self, X, y):
        return _plain(self.model, self.opt, X, y)


def _batch():
    rng = np.random.default_rng(0)
    return tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6)


def test_a_copied_trainer_with_a_compiled_method_trains_its_own_model():
    original = _Trainer(0)
    original.step(*_batch())
    clone = copy.copy(original)
    clone.model = _mlp(5); clone.opt = O.SGD(clone.model.parameters(), lr=0.1)
    before = [p.data.copy() for p in [*original.model.parameters(), *clone.model.parameters()]]
    clone.step(*_batch())
    moved = [not np.array_equal(b, p.data) for b, p in
             zip(before, [*original.model.parameters(), *clone.model.parameters()])]
    assert moved == [False] * 4 + [True] * 4


def test_a_trainer_with_a_compiled_method_can_be_deep_copied_after_a_call():
    original = _Trainer(0)
    original.step(*_batch())
    clone = copy.deepcopy(original)
    assert clone.model is not original.model


def _file_writing(path, how):
    def make():
        model = _mlp(); opt = O.SGD(model.parameters(), lr=0.1)

        def step(X, y):
            loss = _plain(model, opt, X, y)
            if how == "np.save":
                np.save(path, model[0].weight.data)
            else:
                np.savez(path, **model.state_dict())
            return loss
        return dict(step=step, params=list(model.parameters()), probe=lambda: _read(path))
    return make


def _read(path):
    if path.endswith(".npy"):
        return np.load(path)
    with np.load(path) as saved:
        return saved["0.weight"].copy()


@pytest.mark.parametrize("how", [pytest.param("np.save", marks=pytest.mark.xfail(strict=True, reason=(
    "open (documented: a file numpy writes is not seen, as printing is not): np.save of weight.data "
    "inside the step is an effect the replay skips, a stale file"))), "np.savez"])  # (state_dict(): eager)
def test_a_checkpoint_written_with_numpy_inside_the_step_holds_the_latest_weights(tmp_path, how):
    path = str(tmp_path / ("w.npy" if how == "np.save" else "w.npz"))
    _probed(_file_writing(path, how))


def _dropout_run(check):
    """Five calls with Adam through Dropout (check=None: eager), manual_seed before the fourth;
    the losses, the weights and the generator's next draw."""
    tl.manual_seed(0)
    model = _with_dropout_layer(); opt = O.Adam(model.parameters(), lr=0.01)

    def step(X, y):
        return _plain(model, opt, X, y)
    step = step if check is None else tl.compile(step, check=check)
    rng, seen = np.random.default_rng(0), []
    for call in range(5):
        if call == 3:
            tl.manual_seed(7)
        seen.append(step(tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6)).data)
    after = np.array(tl.random.default_generator().random())
    return [seen, [p.data.copy() for p in model.parameters()], [after]]


def test_dropout_under_check_draws_the_same_stream_as_eager():
    agree(_dropout_run(None), _dropout_run(3))
