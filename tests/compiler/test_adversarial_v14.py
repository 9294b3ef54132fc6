"""Compiled steps against the same steps run eagerly, round 14: mixed precision under the
written SGD update, numbers modules and configs hold, tensors made inside the step, models that
change between calls (a ModuleList grown, a hand-written model's frozen tensor unfrozen, batch
norm without running statistics), state the user feeds back (a hidden state, a target
network), optimizers over part of a model.  Built twice from the same seeds (twins.py); after
every call the loss and every parameter must agree norm-wise (1e-12 in float64), and so must
what the scenario probes.

Found and fixed since, each failing before its fix:
- Silently wrong update: plain SGD whose gradients die with the call folded the learning rate
  into the backward's seed (update.py, `dloss = lr`) also when the backward ran in float16
  (float32 weights, a float16 forward: mixed precision without loss scaling); every float16
  gradient was then lr times smaller, among float16's subnormals: at lr = 1e-5 the first
  layer's update was 9% off eager's norm-wise (57% at 1e-6).  Now only when every array of the
  graph is float32 or wider.
- Stale replays: λ read from a numpy array a module or a config namespace holds
  (`self.lams[0]`, per-layer coefficients), set in place between calls (loss 1.129 where
  eager's is 2.134), and a number the forward reads as `self.temperature` from the module's
  class, set on the class: the settings guard now compares small arrays by value and reads the
  numbers a user's module class sets.  (λ read from a global or closure array, `LAMS[0]`, is
  still replayed as traced: v13's open case, a number computed with numpy.)
- A crash where eager runs: a `@dataclass(slots=True)` config in the step's closure made every
  call raise TypeError from vars(), after the eager step ran: slots are read like a __dict__.
- Needless fallbacks: a tensor made inside the step by tl.zeros, tl.eye, tl.full or tl.arange
  (an RNN's zero initial state, one-hot targets tl.eye(k)[y]) is now a constant of the trace,
  as a number is (tl.randn and tl.rand are a RandomDraw op: new samples each replay); a
  discriminator frozen with requires_grad_(False) in a GAN generator step and unfrozen at its end (pix2pix's set_requires_grad) replays: a
  flag changed inside the step is a replayed event guarded on its value at entry.  That also
  fixed a silently stale replay found with it: a weight the step freezes at its end was still
  trained by later replays.

Holding (no test added where an earlier round has one): SGD with momentum, dampening,
nesterov, weight_decay and per-group lr/momentum, Adam/AdamW with amsgrad and weight_decay, in
each zero_grad order and under check=3, also on parameters of mixed dtypes (float16/32/64,
bit for bit) and non-contiguous arrays; StepLR, cosine, LambdaLR and ExponentialLR over groups,
stepped inside or outside; .grad set to None, scaled or replaced between calls; requires_grad
toggled; a weight's .data rebound; state dicts reloaded; a group added; betas, amsgrad,
nesterov or momentum switched; the momentum buffer or Adam's step count reset; references to
parameter, gradient and optimizer-state arrays held across calls; two compiled steps
alternating on one model and optimizer; labels of int8 to uint64; batches of one; a custom
backward raising on some batches; Conv2d with MaxPool2d/AvgPool2d, ties in max and relu; a
grad penalty with create_graph, max-norm clipping by .data, returned .data and generators
(run eagerly, each saying why).  Tested below: a ModuleList grown, a hand-written model's
frozen tensor unfrozen, BatchNorm without running statistics in training mode (replayed), a
hidden state returned and fed back (truncated backprop through time), an optimizer over the
head only, a DQN target network used under no_grad and synced between calls, and mixed
precision with the gradients kept."""
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

import tinygrad_l2 as tl

from twins import F64, agree, same, train

O, CE, NN = tl.optim, tl.nn.softmax_cross_entropy, tl.nn
F16, F32 = np.float16, np.float32


def _probed(make, calls=5):
    """Like twins.same, but what probe() returns (arrays) is compared norm-wise."""
    (want, probe_w, _), (got, probe_g, step) = train(make, False, calls), train(make, True, calls)
    agree(want, got)
    agree([probe_w], [probe_g])
    return step


def _mlp(seed):
    return NN.Sequential(NN.Linear(4, 5, dtype=F64, rng=seed), NN.Tanh(), NN.Linear(5, 3, dtype=F64, rng=seed + 1))


def _on_call_2(change):
    """twins.train's `extra`: `change()` between the second and the third call."""
    return lambda call: (change() if call == 2 else None, ())[1]


# ---- mixed precision: float32 weights, float16 forward and backward --------------------------

def _mixed_precision_updates(compiled, lr, zero_grad_first):
    """ΔW of each float32 weight after 3 plain SGD steps of a float16 forward (no loss scaling)."""
    r = np.random.default_rng(0)
    W1 = tl.Tensor((r.standard_normal((4, 16)) * 0.5).astype(F32), requires_grad=True)
    W2 = tl.Tensor((r.standard_normal((16, 3)) * 0.5).astype(F32), requires_grad=True)
    opt = O.SGD([W1, W2], lr=lr)

    def step(X, y):
        if zero_grad_first:
            opt.zero_grad()
        logits = (X.astype(F16) @ W1.astype(F16)).tanh() @ W2.astype(F16)
        loss = CE(logits.astype(F32), y)
        loss.backward(); opt.step()
        if not zero_grad_first:
            opt.zero_grad()
        return loss
    run, data = tl.compile(step) if compiled else step, np.random.default_rng(5)
    before = [W1.data.copy(), W2.data.copy()]
    for _ in range(3):
        run(tl.Tensor(data.standard_normal((32, 4)).astype(F32)), data.integers(0, 3, 32))
    assert not compiled or run.fallback_reason is None
    return [(W.data.astype(F64) - w) for W, w in zip((W1, W2), before)]


def _relative_errors(want, got):
    return [np.linalg.norm(g - w) / np.linalg.norm(w) for w, g in zip(want, got)]


def test_mixed_precision_sgd_whose_gradients_die_updates_as_eager_at_a_fine_tuning_rate():
    want, got = _mixed_precision_updates(False, 1e-5, False), _mixed_precision_updates(True, 1e-5, False)
    assert max(_relative_errors(want, got)) <= 1e-2  # float16 rounds at 5e-4


def test_mixed_precision_sgd_with_the_gradients_kept_updates_as_eager():
    want, got = _mixed_precision_updates(False, 1e-5, True), _mixed_precision_updates(True, 1e-5, True)
    assert max(_relative_errors(want, got)) <= 1e-6


# ---- tensors made inside the step by tl.zeros / tl.eye: they depend on no data ----------------

def _recurrent(X, y, W):
    """Two steps of a recurrence from a zero initial state made inside the step."""
    h = tl.zeros((X.shape[0], 5), dtype=F64)
    for _ in range(2):
        h = (X @ W[0] + h @ W[1]).tanh()
    return CE(h @ W[2], y)


def _one_hot_mse(X, y, W):
    return tl.nn.mse_loss(((X @ W[0]).tanh() @ W[2]).softmax(1), tl.eye(3, dtype=F64)[y])


@pytest.mark.parametrize("loss", [_recurrent, _one_hot_mse], ids=["zeros_initial_state", "eye_one_hot_targets"])
def test_a_tensor_made_by_tl_zeros_or_tl_eye_inside_the_step_is_replayed(loss):
    def make():
        r = np.random.default_rng(0)
        W = [tl.Tensor(r.standard_normal(s) * 0.5, requires_grad=True) for s in ((4, 5), (5, 5), (5, 3))]
        opt = O.SGD(W, lr=0.1, momentum=0.9)

        def step(X, y):
            opt.zero_grad(); value = loss(X, y, W); value.backward(); opt.step()
            return value
        return dict(step=step, params=W)
    assert same(make).fallback_reason is None


def _noisy(X, y, W):
    """Noise drawn inside the step: new each call, never a constant."""
    return CE(((X + tl.randn(*X.shape, dtype=F64) * 0.1) @ W[0]).tanh() @ W[2], y)


def test_noise_drawn_by_tl_randn_inside_the_step_is_drawn_anew_by_each_replay():
    loss = _noisy
    def make():
        r = np.random.default_rng(0)
        W = [tl.Tensor(r.standard_normal(s) * 0.5, requires_grad=True) for s in ((4, 5), (5, 5), (5, 3))]
        opt = O.SGD(W, lr=0.1)

        def step(X, y):
            opt.zero_grad(); value = loss(X, y, W); value.backward(); opt.step()
            return value
        return dict(step=step, params=W)
    assert same(make).fallback_reason is None  # (the same draws as eager's: same seed)


def _generator_step():
    """A GAN's generator step as pix2pix writes it: the discriminator frozen while G trains
    through it, unfrozen at the end (so its own step, elsewhere, gets gradients again)."""
    G, D = _mlp(0), NN.Sequential(NN.Linear(3, 4, dtype=F64, rng=2), NN.Tanh(), NN.Linear(4, 1, dtype=F64, rng=3))
    opt = O.Adam(G.parameters(), lr=0.05)

    def step(z, y):
        for p in D.parameters():
            p.requires_grad_(False)
        opt.zero_grad()
        judged = D(G(z))
        loss = tl.nn.binary_cross_entropy_with_logits(judged, tl.ones_like(judged)); loss.backward(); opt.step()
        for p in D.parameters():
            p.requires_grad_(True)
        return loss
    return dict(step=step, params=G.parameters() + D.parameters(),
                probe=lambda: [p.requires_grad for p in D.parameters()])


def test_a_generator_step_through_a_discriminator_it_freezes_and_unfreezes_is_replayed():
    assert same(_generator_step).fallback_reason is None


def _frozen_after_one_call(hand_written=False):
    """A step that freezes the first layer's weight (or a hand-written tensor) at its end:
    eager's later calls no longer train it."""
    def make():
        net = _mlp(0)
        W = tl.Tensor(np.linspace(-1, 1, 12).reshape(4, 3), requires_grad=True) if hand_written else None
        params = net.parameters() + ([W] if hand_written else [])
        opt, target = O.SGD(params, lr=0.1), (W if hand_written else net[0].weight)

        def step(X, y):
            opt.zero_grad()
            loss = CE(net(X) + (X @ W if hand_written else 0.0), y); loss.backward(); opt.step()
            target.requires_grad_(False)
            return loss
        return dict(step=step, params=params, probe=lambda: target.requires_grad)
    return make


@pytest.mark.parametrize("hand_written", [False, True], ids=["module_weight", "hand_written_tensor"])
def test_a_weight_the_step_freezes_at_its_end_is_frozen_in_the_next_calls_as_eager(hand_written):
    assert same(_frozen_after_one_call(hand_written), calls=4).fallback_reason is None


# ---- λ per layer in a numpy array a module or a config holds, set in place between calls ------

class _PerLayerL2(NN.Module):
    """An MLP holding each layer's λ in a numpy array (the step reads the first)."""
    def __init__(self):
        super().__init__()
        self.hidden, self.out = NN.Linear(4, 5, dtype=F64, rng=0), NN.Linear(5, 3, dtype=F64, rng=1)
        self.lams = np.array([0.01, 0.02])

    def forward(self, x):
        return self.out(self.hidden(x).tanh())


def _per_layer_l2(holder):
    def make():
        net = _PerLayerL2()
        config = SimpleNamespace(lams=net.lams) if holder == "namespace" else net
        opt = O.SGD(net.parameters(), lr=0.1)

        def step(X, y):
            opt.zero_grad()
            loss = CE(net(X), y) + config.lams[0] * (net.hidden.weight ** 2).sum()
            loss.backward(); opt.step()
            return loss
        return dict(step=step, params=net.parameters(), extra=_on_call_2(lambda: config.lams.__setitem__(0, 0.5)))
    return make


@pytest.mark.parametrize("holder", ["module", "namespace"])
def test_a_lambda_in_a_numpy_array_held_by_a_module_or_config_set_in_place_is_used_as_eager(holder):
    same(_per_layer_l2(holder))


def _class_temperature():
    """A module whose forward divides by a temperature its class sets for every instance."""
    class Tempered(NN.Module):
        temperature = 1.0

        def __init__(self):
            super().__init__()
            self.body = _mlp(0)

        def forward(self, x):
            return self.body(x) / self.temperature
    net = Tempered()
    opt = O.SGD(net.parameters(), lr=0.1)

    def step(X, y):
        opt.zero_grad(); loss = CE(net(X), y); loss.backward(); opt.step()
        return loss
    return dict(step=step, params=net.parameters(), extra=_on_call_2(lambda: setattr(Tempered, "temperature", 3.0)))


def test_a_temperature_set_on_the_modules_class_between_calls_is_used_as_eager():
    same(_class_temperature)


@dataclasses.dataclass(slots=True)
class _SlottedConfig:
    lam: float = 0.01


def _slotted_config_in_scope():
    config, net = _SlottedConfig(), _mlp(0)
    opt = O.SGD(net.parameters(), lr=0.1)

    def step(X, y):
        opt.zero_grad(); loss = CE(net(X), y) + config.lam * (net[0].weight ** 2).sum(); loss.backward(); opt.step()
        return loss
    return dict(step=step, params=net.parameters(), extra=_on_call_2(lambda: setattr(config, "lam", 0.5)))


def test_a_slotted_dataclass_config_in_the_steps_scope_compiles():
    same(_slotted_config_in_scope)


# ---- models that change between calls ---------------------------------------------------------

class _Blocks(NN.Module):
    """A body kept in a ModuleList (grown by hand between calls), then a head."""
    def __init__(self):
        super().__init__()
        self.blocks = NN.ModuleList([NN.Linear(4, 5, dtype=F64, rng=0), NN.Tanh()])
        self.head = NN.Linear(5, 3, dtype=F64, rng=1)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def _grown(change):
    def make():
        net = _Blocks()
        opt = O.SGD(net.parameters(), lr=0.1, momentum=0.9)

        def step(X, y):
            opt.zero_grad(); loss = CE(net(X), y); loss.backward(); opt.step()
            return loss
        return dict(step=step, params=net.parameters(), extra=_on_call_2(lambda: change(net, opt)))
    return make


def _add_layer(net, opt):
    layer = NN.Linear(5, 5, dtype=F64, rng=3)
    net.blocks.append(layer)
    opt.add_param_group({"params": layer.parameters()})


@pytest.mark.parametrize("change", [lambda net, opt: net.blocks.append(NN.Tanh()),
                                    lambda net, opt: net.blocks.insert(1, NN.ReLU()),
                                    _add_layer], ids=["append_tanh", "insert_relu", "append_linear"])
def test_a_module_list_grown_between_calls_retraces(change):
    assert same(_grown(change)).traces == 2


def test_a_hand_written_models_frozen_tensor_unfrozen_between_calls_trains_as_eager():
    """Fine-tuning by hand: W2 starts frozen (kept in the optimizer, skipped) and is unfrozen."""
    def make():
        r = np.random.default_rng(0)
        W1 = tl.Tensor(r.standard_normal((4, 5)) * 0.5, requires_grad=True)
        b1 = tl.Tensor(np.zeros(5), requires_grad=True)
        W2, b2 = tl.Tensor(r.standard_normal((5, 3)) * 0.5), tl.Tensor(np.zeros(3), requires_grad=True)
        opt = O.Adam([W1, b1, W2, b2], lr=0.05)

        def step(X, y):
            opt.zero_grad(); loss = CE((X @ W1 + b1).tanh() @ W2 + b2, y); loss.backward(); opt.step()
            return loss
        return dict(step=step, params=[W1, b1, W2, b2], extra=_on_call_2(lambda: W2.requires_grad_(True)))
    assert same(make).traces == 2


def test_batch_norm_without_running_statistics_in_training_mode_is_replayed():
    """track_running_stats=False: training mode normalizes by the batch and updates no buffer."""
    def make():
        net = NN.Sequential(NN.Linear(4, 5, dtype=F64, rng=0), NN.BatchNorm1d(5, dtype=F64, track_running_stats=False),
                            NN.Tanh(), NN.Linear(5, 3, dtype=F64, rng=1))
        opt = O.SGD(net.parameters(), lr=0.1, momentum=0.9)

        def step(X, y):
            opt.zero_grad(); loss = CE(net(X), y); loss.backward(); opt.step()
            return loss
        return dict(step=step, params=net.parameters())
    step = same(make)
    assert step.fallback_reason is None and step.traces == 1


# ---- state the user feeds back, optimizers over part of a model ------------------------------

@pytest.mark.parametrize("zero_grad_first", [True, False])
def test_a_hidden_state_returned_and_fed_back_trains_as_eager(zero_grad_first):
    """Truncated backprop through time: each call gets the previous call's detached state."""
    def run(compiled):
        r = np.random.default_rng(0)
        Wx, Wh, Wo = (tl.Tensor(r.standard_normal(s) * 0.5, requires_grad=True) for s in ((4, 5), (5, 5), (5, 3)))
        opt = O.Adam([Wx, Wh, Wo], lr=0.05)

        def step(X, y, h):
            if zero_grad_first:
                opt.zero_grad()
            h = (X @ Wx + h @ Wh).tanh(); loss = CE(h @ Wo, y); loss.backward(); opt.step()
            if not zero_grad_first:
                opt.zero_grad()
            return loss, h.detach()
        run, data = tl.compile(step) if compiled else step, np.random.default_rng(5)
        h, seen = tl.Tensor(np.zeros((6, 5))), []
        for _ in range(5):
            loss, h = run(tl.Tensor(data.standard_normal((6, 4))), data.integers(0, 3, 6), h)
            seen.append([loss.data.copy(), h.data.copy(), Wx.data.copy(), Wh.data.copy(), Wo.data.copy()])
        assert not compiled or (run.fallback_reason is None and run.traces == 1)
        return seen
    agree(run(False), run(True))


@pytest.mark.parametrize("clear", ["opt", "model"])
def test_an_optimizer_over_the_head_only_lets_the_bodys_gradients_accumulate_as_eager(clear):
    """The body requires grad but is in no optimizer: its .grad grows call after call unless
    model.zero_grad() clears it."""
    def make():
        net = _mlp(0)
        opt = O.SGD(net[2].parameters(), lr=0.1)
        owner = opt if clear == "opt" else net

        def step(X, y):
            loss = CE(net(X), y); loss.backward(); opt.step(); owner.zero_grad()
            return loss
        return dict(step=step, params=net.parameters(),
                    probe=lambda: [p.grad if p.grad is not None else np.zeros(0) for p in net.parameters()])
    _probed(make)


def _polyak(target, online):
    for t, q in zip(target.parameters(), online.parameters()):
        t.data[...] = 0.5 * t.data + 0.5 * q.data


def _polyak_rebound(target, online):
    for t, q in zip(target.parameters(), online.parameters()):
        t.data = 0.5 * t.data + 0.5 * q.data


@pytest.mark.parametrize("sync", [_polyak, _polyak_rebound,
                                  lambda target, online: target.load_state_dict(online.state_dict())],
                         ids=["polyak_in_place", "polyak_rebound", "load_state_dict"])
def test_a_target_network_under_no_grad_synced_between_calls_is_read_each_call(sync):
    """DQN: the target network's parameters require grad but are in no optimizer and are used
    under no_grad only; between calls they move towards the online network's."""
    rows = np.arange(6)

    def make():
        online, target = _mlp(0), _mlp(10)
        opt = O.Adam(online.parameters(), lr=0.05)

        def step(X, y):
            opt.zero_grad()
            with tl.no_grad():
                bootstrap = target(X).max(1) * 0.9
            loss = ((online(X)[rows, y] - bootstrap) ** 2).mean(); loss.backward(); opt.step()
            return loss
        return dict(step=step, params=online.parameters() + target.parameters(),
                    extra=lambda call: (sync(target, online), ())[1])
    assert same(make).fallback_reason is None
