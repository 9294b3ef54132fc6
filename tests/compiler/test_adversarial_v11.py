"""Compiled steps against the same steps run eagerly, round 11: Python state the step itself
changes (a gradient-accumulation counter, a learning rate decayed by hand, an average of the
weights, a checkpoint written, a loss history, a hand-written batch norm's running statistics, a
temperature on the model), a step wrapped by functools.partial or a decorator, train and eval
steps that set their own mode, batches passed as one tuple or prepared inside the step, frozen
layers, detached and no_grad targets, tensors in a parameter group, check=N's restore, a method
decorated in its class; and, holding, accumulation decided by an argument, tied weights (one
tensor or one array), penalties of every shape under the written SGD update, and arrays of one
call kept by the user across the next. Built twice from the same seeds; after every call the
loss and every parameter must agree norm-wise (1e-12 in float64), and so must what the scenario
probes.

Found and fixed since, each test failing before its fix: the replay skipped Python effects on
objects of the step's scope (a counter kept in an object, a learning rate changed in the step's
groups, an average kept in a dict, a checkpoint file written by the step, a loss history, a
hand-written batch norm's buffers, a temperature on the model: now a shallow snapshot of the
scope, effects.ScopeState, makes such a step run eagerly); a global λ read by a partial or
decorated step was not guarded; check=N's restore made views stale and untied shared weights;
tensors under a group key of the user's crashed the readiness check; @tl.compile on a method in
its class body had no self; steps that set train()/eval() first, and a batch given as one tuple,
traced again every call; a batch tuple of tensors, an integer regression target and a frozen
layer ran eagerly."""
import functools
import itertools
import warnings

import numpy as np
import pytest

import tinygrad_l2 as tl
from twins import agree, same, train

O, F64 = tl.optim, np.float64


def _mlp(seed=0):
    return tl.nn.Sequential(tl.nn.Linear(4, 5, dtype=F64, rng=seed), tl.nn.Tanh(),
                            tl.nn.Linear(5, 3, dtype=F64, rng=seed + 1))


def _loss(model, X, y):
    return tl.nn.softmax_cross_entropy(model(X), y)


def _probed(make, calls=4):
    """Like twins.same, but what probe() returns (arrays) is compared norm-wise."""
    (want, probe_w, _), (got, probe_g, step) = train(make, False, calls), train(make, True, calls)
    agree(want, got)
    agree([probe_w], [probe_g])
    return step


# ---- Python state the step itself changes: silently skipped by the replay ---------------------

class _Trainer:
    """Gradient accumulation as a trainer class writes it: step every k-th call."""
    def __init__(self, model, opt, k):
        self.model, self.opt, self.k, self.n = model, opt, k, 0

    def step(self, X, y):
        loss = _loss(self.model, X, y) / self.k
        loss.backward()
        self.n += 1
        if self.n % self.k == 0:
            self.opt.step(); self.opt.zero_grad()
        return loss


def _accumulating(holder, k=2):
    def make():
        model = _mlp()
        opt, seen = O.SGD(model.parameters(), lr=0.5, momentum=0.9), {"n": 0}

        def in_closure(X, y):
            loss = _loss(model, X, y) / k; loss.backward()
            seen["n"] += 1
            if seen["n"] % k == 0:
                opt.step(); opt.zero_grad()
            return loss

        def in_default(X, y, count={"n": 0}):  # noqa: B006 - the idiom under test
            loss = _loss(model, X, y) / k; loss.backward()
            count["n"] += 1
            if count["n"] % k == 0:
                opt.step(); opt.zero_grad()
            return loss
        step = {"self_attribute": _Trainer(model, opt, k).step, "closure_dict": in_closure,
                "mutable_default": in_default}[holder]
        return dict(step=step, params=list(model.parameters()))
    return make


@pytest.mark.parametrize("holder", ["self_attribute", "closure_dict", "mutable_default"])
def test_gradient_accumulation_with_a_counter_in_an_object_steps_every_k_calls_as_eager(holder):
    same(_accumulating(holder), calls=4)


class _Warmup:
    """A warm-up schedule of the user's own (not an LRScheduler)."""
    def __init__(self, opt, n):
        self.opt, self.n, self.t = opt, n, 0

    def step(self):
        self.t += 1
        for group in self.opt.param_groups:
            group["lr"] = 0.5 * min(1.0, self.t / self.n)


def _decayed_by_hand(how):
    def make():
        model = _mlp()
        opt = O.SGD(model.parameters(), lr=0.4, momentum=0.9)
        warmup = _Warmup(opt, 4)

        def step(X, y):
            if how == "own_warmup_object":
                warmup.step()
            opt.zero_grad(); loss = _loss(model, X, y); loss.backward(); opt.step()
            if how == "lr_times_gamma":
                for group in opt.param_groups:
                    group["lr"] *= 0.5
            return loss
        return dict(step=step, params=list(model.parameters()), probe=lambda: opt.param_groups[0]["lr"])
    return make


@pytest.mark.parametrize("how", ["lr_times_gamma", "own_warmup_object"])
def test_a_learning_rate_changed_by_the_steps_own_code_changes_every_call_as_eager(how):
    same(_decayed_by_hand(how), calls=4)


def _averaged():
    """An exponential moving average of the weights, kept in a dict (Polyak averaging)."""
    model = _mlp()
    opt = O.Adam(model.parameters(), lr=0.1)
    ema = {name: p.data.copy() for name, p in model.named_parameters()}

    def step(X, y):
        opt.zero_grad(); loss = _loss(model, X, y); loss.backward(); opt.step()
        for name, p in model.named_parameters():
            ema[name] = 0.9 * ema[name] + 0.1 * p.data
        return loss
    return dict(step=step, params=list(model.parameters()), probe=lambda: [v.copy() for v in ema.values()])


def test_an_average_of_the_weights_kept_in_a_dict_is_updated_every_call_as_eager():
    _probed(_averaged)


def _checkpointing(folder, how, runs=itertools.count()):
    def make():
        path, model = str(folder / f"run{next(runs)}.npz"), _mlp()
        opt = O.SGD(model.parameters(), lr=0.5, momentum=0.9)

        def step(X, y):
            opt.zero_grad(); loss = _loss(model, X, y); loss.backward(); opt.step()
            model.save(path) if how == "module_save" else tl.save(model.state_dict(), path)
            return loss
        return dict(step=step, params=list(model.parameters()), probe=lambda: list(tl.load(path).values()))
    return make


@pytest.mark.parametrize("how", ["module_save", "tl_save_of_state_dict"])
def test_a_checkpoint_written_inside_the_step_holds_the_latest_weights(tmp_path, how):
    _probed(_checkpointing(tmp_path, how))


def _history(kept):
    """The step keeps each call's loss in a list (for a loss curve), without .item()."""
    model = _mlp()
    opt, losses = O.SGD(model.parameters(), lr=0.5), []

    def step(X, y):
        opt.zero_grad(); loss = _loss(model, X, y); loss.backward(); opt.step()
        losses.append(loss if kept == "the_loss" else loss.detach())
        return loss
    return dict(step=step, params=list(model.parameters()), probe=lambda: [np.array([t.data for t in losses])])


@pytest.mark.parametrize("kept", ["the_loss", "its_detached_copy"])
def test_a_loss_history_appended_inside_the_step_gets_one_entry_per_call(kept):
    _probed(lambda: _history(kept))


class _HandWrittenBatchNorm(tl.nn.Module):
    """Batch statistics in training, running statistics (buffers, updated with numpy as the
    cs231n exercise does) in eval."""
    def __init__(self, n, how):
        super().__init__()
        self.how = how
        self.register_buffer("running_mean", np.zeros(n))
        self.register_buffer("running_var", np.ones(n))

    def forward(self, x):
        if not self.training:
            return (x - self.running_mean) / tl.Tensor(np.sqrt(self.running_var.data + 1e-5))
        mean = x.mean(axis=0)
        var = ((x - mean) ** 2).mean(axis=0)
        new_mean, new_var = 0.9 * self.running_mean.data + 0.1 * mean.data, 0.9 * self.running_var.data + 0.1 * var.data
        if self.how == "written_in_place":
            self.running_mean.data[...], self.running_var.data[...] = new_mean, new_var
        else:
            self.running_mean, self.running_var = tl.Tensor(new_mean), tl.Tensor(new_var)
        return (x - mean) / (var + 1e-5) ** 0.5


def _normalised(how):
    def make():
        norm = _HandWrittenBatchNorm(5, how)
        model = tl.nn.Sequential(tl.nn.Linear(4, 5, dtype=F64, rng=0), norm, tl.nn.ReLU(),
                                 tl.nn.Linear(5, 3, dtype=F64, rng=1))
        opt = O.SGD(model.parameters(), lr=0.5, momentum=0.9)

        def step(X, y):
            opt.zero_grad(); loss = _loss(model, X, y); loss.backward(); opt.step()
            return loss
        return dict(step=step, params=list(model.parameters()),
                    probe=lambda: [norm.running_mean.data.copy(), norm.running_var.data.copy()])
    return make


@pytest.mark.parametrize("how", ["written_in_place", "rebound"])
def test_the_running_statistics_of_a_hand_written_batch_norm_are_updated_every_call_as_eager(how):
    _probed(_normalised(how))


class _Tempered(tl.nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.temperature = _mlp(), 4.0

    def forward(self, x):
        return self.body(x) / self.temperature


def _annealed():
    """The step anneals a temperature kept on the model it calls."""
    model = _Tempered()
    opt = O.SGD(model.parameters(), lr=0.5)

    def step(X, y):
        opt.zero_grad(); loss = _loss(model, X, y); loss.backward(); opt.step()
        model.temperature = max(1.0, model.temperature / 2)
        return loss
    return dict(step=step, params=list(model.parameters()), probe=lambda: model.temperature)


def test_a_temperature_the_step_anneals_on_its_model_is_used_as_eager():
    same(_annealed, calls=4)


_LAM = 0.01  # the L2 coefficient of a sweep, a module global the step reads


def _set_lam(value):
    global _LAM
    _LAM = value
    return ()


def _l2_step(X, y, model, opt):
    opt.zero_grad()
    loss = _loss(model, X, y) + _LAM * (model[0].weight ** 2).sum()
    loss.backward(); opt.step()
    return loss


def _logged(fn):
    """A decorator of the user's (timing, logging) that keeps the name with functools.wraps."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper


def _wrapped_step(how):
    """tl.compile of a functools.partial of the step, or of the step under a decorator; the
    global λ changed between calls."""
    def make():
        _set_lam(0.01)
        model = _mlp()
        opt = O.SGD(model.parameters(), lr=0.5)

        @_logged
        def decorated(X, y):
            opt.zero_grad()
            loss = _loss(model, X, y) + _LAM * (model[0].weight ** 2).sum()
            loss.backward(); opt.step()
            return loss
        step = functools.partial(_l2_step, model=model, opt=opt) if how == "functools_partial" else decorated
        return dict(step=step, params=list(model.parameters()),
                    extra=lambda call: _set_lam([0.01, 0.01, 0.5, 0.0, 0.2][call]))
    return make


@pytest.mark.parametrize("how", ["functools_partial", "decorated_with_wraps"])
def test_a_wrapped_step_sees_a_global_coefficient_changed_between_calls(how):
    same(_wrapped_step(how))


# ---- traced again every call -----------------------------------------------------------------

def _train_and_eval(compiled):
    tl.manual_seed(0)
    model = _mlp()
    opt = O.SGD(model.parameters(), lr=0.5, momentum=0.9)

    def train_step(X, y):
        model.train(); opt.zero_grad(); loss = _loss(model, X, y); loss.backward(); opt.step()
        return loss

    def eval_loss(X, y):
        model.eval()
        with tl.no_grad():  # (a forward returning a graph runs eagerly: its result may be differentiated)
            return _loss(model, X, y)
    train_step, eval_loss = (tl.compile(train_step), tl.compile(eval_loss)) if compiled else (train_step, eval_loss)
    rng, seen = np.random.default_rng(5), []
    for _ in range(4):
        X, y = tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6)
        seen += [[train_step(X, y).data, *(p.data.copy() for p in model.parameters())], [eval_loss(X, y).data]]
    return seen, (train_step, eval_loss)


def test_train_and_eval_steps_that_set_their_mode_first_agree_with_eager():
    (want, _), (got, _) = _train_and_eval(False), _train_and_eval(True)
    agree(want, got)


def test_train_and_eval_steps_that_set_their_mode_first_trace_once_per_mode_they_are_entered_in():
    """Not every call: once for each mode a step finds its model in (a step may compute the
    mode it sets from the one it finds, so that mode is part of the trace's conditions)."""
    _, steps = _train_and_eval(True)
    assert [s.traces for s in steps] == [2, 1] and all(s.fallback_reason is None for s in steps)


def _one_tuple_batches(compiled, tensors):
    tl.manual_seed(0)
    model = _mlp()
    opt = O.SGD(model.parameters(), lr=0.5, momentum=0.9)

    def step(batch):
        X, y = batch
        opt.zero_grad(); loss = _loss(model, X, y); loss.backward(); opt.step()
        return loss
    step = tl.compile(step) if compiled else step
    rng = np.random.default_rng(1)
    data = tl.data.TensorDataset(rng.standard_normal((12, 4)), rng.integers(0, 3, 12))
    seen = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for _ in range(2):
            for batch in tl.data.DataLoader(data, batch_size=4, shuffle=True):
                batch = batch if tensors else tuple(b.data for b in batch)
                seen.append([step(batch).data, *(p.data.copy() for p in model.parameters())])
    return seen, step


def _tuple_twins(tensors):
    (want, _), (got, step) = _one_tuple_batches(False, tensors), _one_tuple_batches(True, tensors)
    agree(want, got)
    return step


@pytest.mark.parametrize("tensors", [True, False], ids=["dataloader_tensors", "arrays"])
def test_a_batch_given_as_one_tuple_trains_as_eager(tensors):
    _tuple_twins(tensors)


@pytest.mark.parametrize("tensors", [True, False], ids=["dataloader_tensors", "arrays"])
def test_a_batch_given_as_one_tuple_is_replayed_without_tracing_again(tensors):
    step = _tuple_twins(tensors)
    assert step.fallback_reason is None and step.traces == 1


# ---- a crash where eager works ------------------------------------------------------------------

def _tagged_group(make_opt):
    """The group also carries tensors under a key of the user's (the starting weights, kept to
    measure or penalise the distance travelled later): the optimizer never reads it."""
    def make():
        model = _mlp()
        opt = make_opt(model.parameters())
        opt.param_groups[0]["start"] = [tl.Tensor(p.data.copy()) for p in model.parameters()]
        return dict(step=_zero_first(model, opt), params=list(model.parameters()))
    return make


def _zero_first(model, opt):
    def step(X, y):
        opt.zero_grad(); loss = _loss(model, X, y); loss.backward(); opt.step()
        return loss
    return step


@pytest.mark.parametrize("make_opt", [lambda p: O.SGD(p, lr=0.5, momentum=0.9), lambda p: O.Adam(p, lr=0.1)],
                         ids=["SGD_momentum", "Adam"])
def test_a_parameter_group_carrying_tensors_under_a_key_of_its_own_replays_as_eager(make_opt):
    same(_tagged_group(make_opt))


def _trainer_init(self, seed):
    self.model = _mlp(seed)
    self.opt = O.SGD(self.model.parameters(), lr=0.5, momentum=0.9)


def _trainer_step(self, X, y):
    self.opt.zero_grad(); loss = _loss(self.model, X, y); loss.backward(); self.opt.step()
    return loss


def _two_trainers(decorate):
    """`@tl.compile` on a method in the class body (as `@torch.compile` is used), two instances
    called in turn."""
    cls = type("Trainer", (), {"__init__": _trainer_init,
                               "step": tl.compile(_trainer_step) if decorate else _trainer_step})
    trainers, rng, seen = [cls(0), cls(2)], np.random.default_rng(3), []
    for call in range(6):
        trainer = trainers[call % 2]
        loss = trainer.step(tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6))
        seen.append([loss.data, *(p.data.copy() for p in trainer.model.parameters())])
    return seen


def test_a_method_decorated_with_compile_in_its_class_trains_each_instance_as_eager():
    agree(_two_trainers(False), _two_trainers(True))


# ---- check=N: its restore rebinds the parameters' arrays -------------------------------------

def _checked_run(check, shared):
    """Four calls (check=None: eager); the user holds a view of the first weight, or the second
    layer's weight shares the first one's array (tied by memory, updated in place twice)."""
    first, second = tl.nn.Linear(4, 4, dtype=F64, rng=0), tl.nn.Linear(4, 4, dtype=F64, rng=1)
    if shared:
        second.weight.data = first.weight.data
    held = first.weight.data
    opt = O.SGD([*first.parameters(), *second.parameters()], lr=0.5, momentum=0.9)

    def step(X, y):
        opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(second(first(X).tanh())[:, :3], y)
        loss.backward(); opt.step()
        return loss
    step = step if check is None else tl.compile(step, check=check)
    rng = np.random.default_rng(0)
    losses = [step(tl.Tensor(rng.standard_normal((6, 4))), rng.integers(0, 3, 6)).data for _ in range(4)]
    return [losses, [held.copy(), first.weight.data.copy(), second.weight.data.copy()]]


def test_two_weights_sharing_one_array_train_as_eager_when_compiled():
    agree(_checked_run(None, True), _checked_run(0, True))


@pytest.mark.parametrize("shared", [False, True], ids=["a_view_held_by_the_user", "two_weights_sharing_an_array"])
def test_check_mode_keeps_each_parameters_array_so_views_and_shared_weights_stay_live(shared):
    agree(_checked_run(None, shared), _checked_run(2, shared))


# ---- run eagerly every call for want of a node: ops on tensors that need no gradient --------

def _prepared(how):
    def make():
        model = _mlp()
        opt = O.SGD(model.parameters(), lr=0.5)
        frozen = tl.nn.Linear(4, 4, dtype=F64, rng=7)
        frozen.weight.requires_grad_(False); frozen.bias.requires_grad_(False)

        def step(X, y):
            opt.zero_grad()
            if how == "scaled_and_reshaped_batch":
                loss = _loss(model, (X.reshape(6, 2, 2) / 4.0).reshape(6, 4), y)
            elif how == "integer_regression_target":
                loss = tl.nn.mse_loss(model(X)[:, 0], y)
            elif how == "frozen_first_layer":
                loss = _loss(model, frozen(X).relu(), y)
            elif how == "detached_target":  # (self-distillation)
                logits = model(X)
                loss = _loss(model, X, y) + ((logits - 0.5 * logits.detach()) ** 2).mean()
            elif how == "target_under_no_grad":
                with tl.no_grad():
                    target = 0.5 * model(X)
                loss = _loss(model, X, y) + ((model(X) - target) ** 2).mean()
            loss.backward(); opt.step()
            return loss
        return dict(step=step, params=list(model.parameters()))
    return make


PREPARED = ["scaled_and_reshaped_batch", "integer_regression_target", "frozen_first_layer",
            "detached_target", "target_under_no_grad"]


@pytest.mark.parametrize("how", PREPARED)
def test_a_tensor_computed_from_the_batch_or_a_frozen_layer_trains_as_eager(how):
    same(_prepared(how), calls=3)


@pytest.mark.parametrize("how", PREPARED)
def test_a_tensor_computed_from_the_batch_or_a_frozen_layer_is_replayed(how):
    step = same(_prepared(how), calls=3)
    assert step.fallback_reason is None and step.traces == 1


# ---- holding ---------------------------------------------------------------------------------

def _accumulated_by_argument():
    """Accumulation over two calls, the update decided by an argument: two traces."""
    model = _mlp()
    opt = O.Adam(model.parameters(), lr=0.1, weight_decay=0.01)

    def step(X, y, update):
        loss = _loss(model, X, y) / 2; loss.backward()
        if update:
            opt.step(); opt.zero_grad()
        return loss
    return dict(step=step, params=list(model.parameters()), extra=lambda call: (call % 2 == 1,),
                probe=lambda: [sorted(s) for s in opt.state.values()])


def test_gradient_accumulation_decided_by_an_argument_traces_once_per_value():
    step = same(_accumulated_by_argument, calls=6)
    assert step.traces == 2 and step.fallback_reason is None


def _tied(make_opt, penalty):
    """One weight in two layers (out.weight = inp.weight), an L2 on each alias; zero_grad last
    (plain SGD: the update written in, the two L2 terms as one decay of the shared weight)."""
    def make():
        inp, out = tl.nn.Linear(4, 4, dtype=F64, rng=0), tl.nn.Linear(4, 4, dtype=F64, rng=1)
        out.weight = inp.weight
        params = list(dict.fromkeys([*inp.parameters(), *out.parameters()]))
        opt = make_opt(params)

        def step(X, y):
            logits = out(inp(X).tanh())[:, :3]
            loss = tl.nn.softmax_cross_entropy(logits, y)
            loss = loss + penalty * ((inp.weight ** 2).sum() + (out.weight ** 2).sum())
            loss.backward(); opt.step(); opt.zero_grad()
            return loss
        return dict(step=step, params=params)
    return make


@pytest.mark.parametrize("make_opt", [lambda p: O.SGD(p, lr=0.3), lambda p: O.Adam(p, lr=0.1, weight_decay=0.01)],
                         ids=["SGD", "Adam"])
def test_a_weight_tied_in_two_layers_with_a_penalty_on_each_alias_trains_as_eager(make_opt):
    assert same(_tied(make_opt, 0.01)).fallback_reason is None


PENALTIES = {  # loss of (data loss, W): only a term W·k, k a 0-d number, may become a decay
    "product": lambda ce, W: ce * (1 + 0.01 * (W ** 2).sum()),
    "quotient": lambda ce, W: ce / (1 + 0.01 * (W ** 2).sum()),
    "norm_not_squared": lambda ce, W: ce + 0.01 * ((W ** 2).sum()) ** 0.5,
    "penalty_used_twice": lambda ce, W: (lambda p: ce + p + p * p)(0.01 * (W ** 2).sum()),
    "scaled_weight_squared": lambda ce, W: ce + ((W / 10.0) ** 2).sum() + 0.01 * ((2 * W.T) ** 2).sum(),
    "fourth_power": lambda ce, W: ce + 0.01 * ((W ** 2) * (W ** 2)).sum(),
}


def _penalised(form):
    def make():
        model = _mlp()
        opt = O.SGD(model.parameters(), lr=0.3, weight_decay=0.05)

        def step(X, y):
            loss = PENALTIES[form](_loss(model, X, y), model[0].weight)
            loss.backward(); opt.step(); opt.zero_grad()
            return loss
        return dict(step=step, params=list(model.parameters()))
    return make


@pytest.mark.parametrize("form", PENALTIES)
def test_a_penalty_of_any_shape_under_the_written_sgd_update_trains_as_eager(form):
    step = same(_penalised(form))
    assert step.fallback_reason is None and "update: SGD" in step.source


def _kept_across_calls(make_opt, order):
    """Before each call the user keeps (without copying) the .grad, .data and optimizer-state
    arrays the previous one left."""
    def make():
        model = _mlp()
        opt, kept = make_opt(model.parameters()), []

        def step(X, y):
            if order == "zero_grad_first":
                opt.zero_grad()
            loss = _loss(model, X, y); loss.backward(); opt.step()
            if order == "zero_grad_last":
                opt.zero_grad()
            return loss

        def keep():
            for p in model.parameters():
                kept.extend([p.grad, p.data, *opt.state.get(p, {}).values()])
            return kept
        return dict(step=step, params=list(model.parameters()), extra=lambda call: keep() and (), probe=keep)
    return make


@pytest.mark.parametrize("order", ["zero_grad_first", "zero_grad_last"])
@pytest.mark.parametrize("make_opt", [lambda p: O.SGD(p, lr=0.3, momentum=0.9), lambda p: O.Adam(p, lr=0.1)],
                         ids=["SGD_momentum", "Adam"])
def test_arrays_of_one_call_held_by_the_user_are_not_overwritten_by_the_next(make_opt, order):
    (want, kept_w, _), (got, kept_g, step) = train(_kept_across_calls(make_opt, order), False, 4), \
        train(_kept_across_calls(make_opt, order), True, 4)
    agree(want, got)
    assert step.fallback_reason is None and len(kept_w) == len(kept_g)
    for w, g in zip(kept_w, kept_g):
        assert (w is None) == (g is None)
        if w is not None:
            agree([[np.asarray(w, F64)]], [[np.asarray(g, F64)]])
