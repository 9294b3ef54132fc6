"""Compiled steps against the same steps run eagerly, round 9: whole training scripts as a
learner writes them — a DataLoader loop over epochs (shuffled, a smaller last batch), a
ConvNet with L1/L2 regularizers, schedulers stepped inside and outside, ReduceLROnPlateau and
early stopping on the returned loss, checkpoints saved and loaded between calls, a tied
autoencoder, a trainer's bound method compiled in __init__, a lambda with *args, keyword
defaults, the printed source run as printed, a float16 model.  Each scenario is built twice
from the same seeds; losses, parameters, gradients, optimizer state and the random stream must
agree norm-wise (1e-12 in float64, bit for bit in float16 where the arithmetic is the same).

Found and fixed since: OneCycleLR's cycled momentum traced again every other call; a default
config dict changed in place, and a returned count equal to a literal of the code, were replayed
with their traced values; an accuracy returned with .item() and BatchNorm in eval mode made
the step run eagerly (ops outside the graph and module buffers were taken as stale constants).""" 
import os
import warnings

import numpy as np
import pytest

import tinygrad_l2 as tl
from twins import frozen_batch_norm

O, F64 = tl.optim, np.float64


def _close(want, got, rtol=1e-12):
    for w, g in zip(want, got, strict=True):
        w, g = np.asarray(w, F64), np.asarray(g, F64)
        assert w.shape == g.shape and np.linalg.norm(g - w) <= rtol * np.linalg.norm(w), (w, g)


def _twins(run):
    """run(compiled) -> (record, step) for an eager and a compiled build of one script."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        (want, _), (got, step) = run(False), run(True)
    _close(want, got)
    return step


def _state(params, opt=None):
    """Parameters, gradients and optimizer buffers, flattened; the next draw of tl's generator."""
    out = [p.data.copy() for p in params] + [p.grad.copy() for p in params if p.grad is not None]
    for entry in (opt.state.values() if opt is not None else ()):
        out += [np.array(v) for _, v in sorted(entry.items()) if isinstance(v, (np.ndarray, float, int))]
    return out + [tl.random.default_generator().random(3)]


def _images(seed=1, n=10):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 6, 6)), rng.integers(0, 3, n)


def _convnet_script(compiled):
    tl.manual_seed(0)
    conv = tl.nn.Conv2d(1, 3, 3, dtype=F64, kernel_regularizer=tl.nn.L2(1e-3))
    head = tl.nn.Linear(12, 3, dtype=F64, kernel_regularizer=tl.nn.L1(1e-3))
    model = tl.nn.Sequential(conv, tl.nn.ReLU(), tl.nn.MaxPool2d(2), tl.nn.Flatten(), head)
    opt = O.Adam(model.parameters(), lr=0.01, weight_decay=1e-4)
    cosine = O.lr_scheduler.CosineAnnealingLR(opt, T_max=4)

    def train_step(X, y):
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(X), y) + model.regularization_loss()
        loss.backward(); opt.step()
        return loss.item()
    step = tl.compile(train_step) if compiled else train_step
    loader = tl.data.DataLoader(tl.data.TensorDataset(*_images()), batch_size=4, shuffle=True)
    losses = []
    for _ in range(4):
        losses += [step(X, y) for X, y in loader]  # 4, 4, then 2 rows; labels as int tensors
        cosine.step()
    return losses + _state(model.parameters(), opt) + [opt.param_groups[0]["lr"]], step


def test_a_dataloader_loop_over_epochs_with_a_smaller_last_batch_trains_as_eager():
    step = _twins(_convnet_script)
    assert step.fallback_reason is None and step.traces == 2  # the full and the last batch


def _accuracy_script(compiled):
    tl.manual_seed(0)
    model = tl.nn.Sequential(tl.nn.Linear(4, 8, dtype=F64), tl.nn.Tanh(), tl.nn.Linear(8, 3, dtype=F64))
    opt = O.SGD(model.parameters(), lr=0.1)

    def train_step(X, y):
        opt.zero_grad(); logits = model(X)
        loss = tl.nn.softmax_cross_entropy(logits, y); loss.backward(); opt.step()
        accuracy = (logits.argmax(axis=1) == tl.Tensor(y)).float().mean()
        return loss.item(), accuracy.item()
    step = tl.compile(train_step) if compiled else train_step
    rng = np.random.default_rng(1)
    seen = [v for _ in range(4) for v in step(rng.standard_normal((6, 4)), rng.integers(0, 3, 6))]
    return seen + _state(model.parameters()), step


def test_accuracy_returned_with_item_agrees_with_eager():
    _twins(_accuracy_script)


def test_accuracy_returned_with_item_does_not_force_eager():
    assert _twins(_accuracy_script).fallback_reason is None


class _Trainer:
    """A learner's class: the step compiled on the bound method in __init__; *extra adds an L2
    term on the first layer, `weight` a keyword with a default; StepLR inside the step."""

    def __init__(self, compiled):
        tl.manual_seed(0)
        self.model = tl.nn.Sequential(tl.nn.Linear(4, 8, dtype=F64), tl.nn.Sigmoid(), tl.nn.Linear(8, 3, dtype=F64))
        self.opt = O.SGD(self.model.parameters(), lr=0.2, momentum=0.9, weight_decay=1e-3)
        self.scheduler = O.lr_scheduler.StepLR(self.opt, step_size=2, gamma=0.5)
        self.step = tl.compile(self.train_step) if compiled else self.train_step

    def train_step(self, X, Y, *extra, weight=0.5):
        self.opt.zero_grad()
        loss = tl.nn.mse_loss(self.model(X), Y) * weight
        for lam in extra:
            loss = loss + lam * (self.model[0].weight ** 2).sum()
        loss.backward(); self.opt.step(); self.scheduler.step()
        return loss

    def checkpoint(self):
        return dict(model=self.model.state_dict(), opt=self.opt.state_dict(), sched=self.scheduler.state_dict())

    def restore(self, saved):
        for part, key in ((self.model, "model"), (self.opt, "opt"), (self.scheduler, "sched")):
            part.load_state_dict(saved[key])


def _trainer_script(compiled, folder):
    trainer, rng, seen = _Trainer(compiled), np.random.default_rng(1), []
    path = os.path.join(folder, f"ck{int(compiled)}.npz")
    for call in range(8):
        X, Y = rng.standard_normal((6, 4)), np.eye(3)[rng.integers(0, 3, 6)]
        extra = (1e-3,) if call % 3 == 0 else ()
        seen.append((trainer.step(X, Y, *extra) if call % 2 else trainer.step(X, Y, *extra, weight=0.25)).item())
        _ = tl.save(trainer.checkpoint(), path) if call == 3 else None
        _ = trainer.restore(tl.load(path)) if call == 5 else None  # two calls done again
    return seen + _state(trainer.model.parameters(), trainer.opt) + [trainer.opt.param_groups[0]["lr"]], trainer.step


def test_a_bound_method_with_star_args_keyword_defaults_and_a_checkpoint_reload_trains_as_eager(tmp_path):
    step = _twins(lambda compiled: _trainer_script(compiled, str(tmp_path)))
    assert step.fallback_reason is None and step.traces == 4  # (extra or not) × (weight or not)


def _tied_script(compiled):
    """A tied autoencoder (decoder = encoder's weight), a lambda with *args, StepLR inside,
    ReduceLROnPlateau and early stopping on the summed returned losses outside."""
    tl.manual_seed(0)
    conv, enc = tl.nn.Conv2d(1, 2, 3, dtype=F64), tl.nn.Linear(8, 5, dtype=F64)
    params = conv.parameters() + enc.parameters()
    opt = O.SGD(params, lr=0.05, momentum=0.9, nesterov=True)
    every, plateau = O.lr_scheduler.StepLR(opt, 3, 0.7), O.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5)

    def body(X, scale=1.0):
        opt.zero_grad()
        h = tl.nn.functional.max_pool2d(conv(X).relu(), 2).reshape(X.shape[0], 8)
        loss = tl.nn.mse_loss(enc(h) @ enc.weight, h) * scale
        loss.backward(); opt.step(); every.step()
        return loss
    step = tl.compile(lambda X, *a: body(X, *a)) if compiled else (lambda X, *a: body(X, *a))
    loader = tl.data.DataLoader(tl.data.TensorDataset(_images()[0]), batch_size=4, shuffle=True)
    totals, best, patience = [], np.inf, 0
    for epoch in range(12):
        totals.append(sum(step(X, *((0.5,) if epoch % 2 else ())).item() for (X,) in loader))
        plateau.step(totals[-1])
        best, patience = (totals[-1], 0) if totals[-1] < best - 1e-3 else (best, patience + 1)
        if patience == 2:
            break
    return totals + [len(totals)] + _state(params, opt) + [opt.param_groups[0]["lr"]], step


def test_a_tied_autoencoder_with_plateau_and_early_stopping_trains_as_eager():
    step = _twins(_tied_script)
    assert step.fallback_reason is None and step.traces == 4  # (scale or not) × (4 or 2 rows)


def test_the_printed_source_runs_as_printed():
    """exec(step.source) in the namespace the step was built in gives the same code, and that
    function trains the next batch exactly as the eager twin does."""
    rng = np.random.default_rng(1)
    batches = [(rng.standard_normal((6, 4)), np.eye(3)[rng.integers(0, 3, 6)]) for _ in range(4)]
    compiled, eager = _Trainer(True), _Trainer(False)
    for X, Y in batches[:3]:
        compiled.step(X, Y, weight=1.0); eager.step(X, Y, weight=1.0)
    program = compiled.step.program
    function = program.updating if program.update is not None else program.function
    namespace = dict(function.__globals__)
    exec(compiled.step.source, namespace)  # noqa: S102 - the code tl.compile printed
    assert namespace["step"].__code__.co_code == function.__code__.co_code
    namespace["step"](*batches[3]); eager.step(*batches[3], weight=1.0)
    assert all(np.array_equal(p.data, q.data) for p, q in zip(compiled.model.parameters(), eager.model.parameters()))


@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "bce_with_logits"])
def test_a_float16_mlp_compiles_and_trains_as_eager_bit_for_bit(loss):
    def run(compiled):  # float16 parameters, batch and one-hot targets
        tl.manual_seed(0)
        model = tl.nn.Sequential(tl.nn.Linear(4, 8, dtype=np.float16, kernel_regularizer=tl.nn.L2(1e-2)),
                                 tl.nn.Tanh(), tl.nn.Linear(8, 3, dtype=np.float16))
        opt = O.SGD(model.parameters(), lr=0.1, momentum=0.9)
        losses = {"cross_entropy": lambda out, y, Y: tl.nn.softmax_cross_entropy(out, y),
                  "mse": lambda out, y, Y: tl.nn.mse_loss(out, Y),
                  "bce_with_logits": lambda out, y, Y: tl.nn.binary_cross_entropy_with_logits(out, Y)}

        def train_step(X, y, Y):
            opt.zero_grad()
            total = losses[loss](model(X), y, Y) + model.regularization_loss()
            total.backward(); opt.step()
            return total
        step = tl.compile(train_step) if compiled else train_step
        rng, seen = np.random.default_rng(1), []
        for _ in range(5):
            X, y = rng.standard_normal((6, 4)).astype(np.float16), rng.integers(0, 3, 6)
            seen.append(np.array(step(tl.Tensor(X, dtype=np.float16), y, np.eye(3, dtype=np.float16)[y]).data))
        return seen + _state(model.parameters(), opt), step
    (want, _), (got, step) = run(False), run(True)
    assert step.fallback_reason is None
    for w, g in zip(want, got, strict=True):
        assert w.dtype == g.dtype and np.array_equal(w, g, equal_nan=True)


def _one_cycle_script(compiled):
    tl.manual_seed(0)
    lin = tl.nn.Linear(4, 3, dtype=F64)
    opt = O.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    cycle = O.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=30)  # cycles momentum too

    def train_step(X, y):
        opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(lin(X), y); loss.backward(); opt.step()
        cycle.step()
        return loss
    step = tl.compile(train_step) if compiled else train_step
    rng = np.random.default_rng(1)
    seen = [step(rng.standard_normal((6, 4)), rng.integers(0, 3, 6)).item() for _ in range(12)]
    return seen + _state(lin.parameters(), opt) + [opt.param_groups[0]["momentum"]], step


def test_one_cycle_with_cycled_momentum_trains_as_eager():
    _twins(_one_cycle_script)


def test_one_cycle_with_cycled_momentum_does_not_trace_again_each_call():
    assert _twins(_one_cycle_script).traces <= 2


CONFIG = {"lam": 0.01}


def _config_script(compiled, explicit):
    """A config dict the learner changes in place mid-run, given as a default or passed."""
    tl.manual_seed(0)
    lin = tl.nn.Linear(4, 3, dtype=F64)
    opt = O.SGD(lin.parameters(), lr=0.1)

    def train_step(X, y, config=CONFIG):
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(lin(X), y) + config["lam"] * (lin.weight ** 2).sum()
        loss.backward(); opt.step()
        return loss
    step = tl.compile(train_step) if compiled else train_step
    rng, seen = np.random.default_rng(1), []
    for call in range(6):
        CONFIG["lam"] = 0.5 if call >= 3 else 0.01  # the learner strengthens the penalty
        X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
        seen.append((step(X, y, CONFIG) if explicit else step(X, y)).item())
    return seen + _state(lin.parameters()), step


def test_a_config_dict_passed_and_changed_in_place_is_honoured():
    assert _twins(lambda compiled: _config_script(compiled, True)).traces == 2


def test_a_default_config_dict_changed_in_place_is_not_replayed_stale():
    _twins(lambda compiled: _config_script(compiled, False))


def _epoch_counter_script(compiled):
    """The step returns the scheduler's count: 1 at the trace, equal to the code's literal 1."""
    tl.manual_seed(0)
    lin = tl.nn.Linear(4, 3, dtype=F64)
    opt = O.SGD(lin.parameters(), lr=0.1)
    sched = O.lr_scheduler.StepLR(opt, 2, 0.5)

    def train_step(X, Y):
        opt.zero_grad(); loss = ((lin(X) - Y) ** 2).sum(axis=1).mean(); loss.backward(); opt.step()
        sched.step()
        return loss.item(), sched.last_epoch
    step = tl.compile(train_step) if compiled else train_step
    rng = np.random.default_rng(1)
    seen = [step(rng.standard_normal((6, 4)), np.eye(3)[rng.integers(0, 3, 6)]) for _ in range(4)]
    return [value for pair in seen for value in pair] + _state(lin.parameters()), step


def test_a_returned_scheduler_count_equal_to_a_literal_is_not_frozen():
    _twins(_epoch_counter_script)


def _frozen_batch_norm_script(compiled):
    """Fine-tuning with BatchNorm in eval mode: its running statistics are module buffers."""
    model, train_step = frozen_batch_norm()
    step = tl.compile(train_step) if compiled else train_step
    rng = np.random.default_rng(1)
    seen = [step(rng.standard_normal((6, 4)), rng.integers(0, 3, 6)).item() for _ in range(4)]
    return seen + _state(model.parameters()), step


def test_a_model_with_batch_norm_in_eval_mode_is_replayed():
    assert _twins(_frozen_batch_norm_script).fallback_reason is None
