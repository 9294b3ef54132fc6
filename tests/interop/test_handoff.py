"""tl.to_torch: N optimizer steps in tinygrad_l2 and in PyTorch from the same weights give the
same parameters (float64 1e-10, float32 1e-5), with the L2 as a penalty or as weight_decay."""
import numpy as np
import pytest

import tinygrad_l2 as tl
from interop.frameworks import assert_close, need_torch

torch = need_torch()
F = torch.nn.functional
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def convnet(dtype):
    nn = tl.nn
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, kernel_regularizer=nn.L2(0.05), dtype=dtype, rng=0),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(48, 5, kernel_regularizer=nn.L2(0.02), bias_regularizer=nn.L1(0.01),
                                   dtype=dtype, rng=1))


OPTIMIZERS = {"SGD momentum": (tl.optim.SGD, dict(lr=0.1, momentum=0.9, weight_decay=0.003)),
              "SGD nesterov": (tl.optim.SGD, dict(lr=0.1, momentum=0.5, nesterov=True)),
              "Adam": (tl.optim.Adam, dict(lr=0.01, weight_decay=0.001)),
              "AdamW": (tl.optim.AdamW, dict(lr=0.01, weight_decay=0.1))}


def batch(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((6, 1, 8, 8)).astype(dtype), rng.integers(0, 5, 6)


def train_both(model, optimizer, torch_model, torch_optimizer, steps, dtype):
    X, y = batch(dtype)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = tl.nn.functional.cross_entropy(model(tl.Tensor(X)), y) + model.regularization_loss()
        loss.backward()
        optimizer.step()
        torch_optimizer.zero_grad()
        torch_loss = F.cross_entropy(torch_model(torch.tensor(X)), torch.tensor(y)) + torch_model.regularization_loss()
        torch_loss.backward()
        torch_optimizer.step()


def assert_same_parameters(model, torch_model):
    ours, theirs = dict(model.named_parameters()), dict(torch_model.named_parameters())
    assert list(ours) == list(theirs)
    for name, p in ours.items():
        assert_close(p.data, theirs[name].detach().numpy(), name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind, l2_as", [(kind, l2_as) for kind in sorted(OPTIMIZERS)
                                         for l2_as in ("penalty", "weight_decay")
                                         if (kind, l2_as) != ("AdamW", "weight_decay")])  # refused, below
def test_n_steps_in_both_frameworks_give_the_same_parameters(kind, l2_as, dtype):
    model = convnet(dtype)
    cls, options = OPTIMIZERS[kind]
    optimizer = cls(model.parameters(), **options)
    torch_model, torch_optimizer = tl.to_torch(model, optimizer, l2_as=l2_as)
    train_both(model, optimizer, torch_model, torch_optimizer, 5, dtype)
    assert_same_parameters(model, torch_model)
    assert np.abs(model[0].weight.data - convnet(dtype)[0].weight.data).max() > 1e-3  # it trained


def test_weight_decay_goes_only_to_the_l2_tensors_as_twice_lambda():
    model = convnet(np.float64)
    optimizer = tl.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.003)
    torch_model, torch_optimizer = tl.to_torch(model, optimizer, l2_as="weight_decay")
    names = {id(p): name for name, p in torch_model.named_parameters()}
    decay = {names[id(p)]: g["weight_decay"] for g in torch_optimizer.param_groups for p in g["params"]}
    assert decay == {"0.weight": 0.003 + 2 * 0.05, "4.weight": 0.003 + 2 * 0.02,
                     "0.bias": 0.003, "4.bias": 0.003}
    assert torch_model.penalties == {"4.bias": ("L1", (0.01,))}  # L1 has no weight_decay form


def test_adamw_refuses_l2_as_weight_decay():
    model = convnet(np.float64)
    with pytest.raises(ValueError, match="AdamW's decoupled decay is no L2 term"):
        tl.to_torch(model, tl.optim.AdamW(model.parameters()), l2_as="weight_decay")


def test_a_run_handed_over_midway_continues_identically():
    """Momentum buffers and Adam moments travel with the optimizer."""
    for cls, options in (OPTIMIZERS["SGD momentum"], OPTIMIZERS["Adam"]):
        model = convnet(np.float64)
        optimizer = cls(model.parameters(), **options)
        reference = convnet(np.float64)
        reference_optimizer = cls(reference.parameters(), **options)
        twin_model, twin_optimizer = tl.to_torch(reference, reference_optimizer)  # trained in lockstep
        train_both(model, optimizer, twin_model, twin_optimizer, 3, np.float64)
        torch_model, torch_optimizer = tl.to_torch(model, optimizer)
        train_both(model, optimizer, torch_model, torch_optimizer, 3, np.float64)
        assert_same_parameters(model, torch_model)


def test_a_keras_convnet_goes_on_training_in_torch(tmp_path):
    """The issue's path: a Keras ConvNet with kernel_regularizer -> tl -> a few steps -> torch."""
    from interop.frameworks import need_keras
    keras = need_keras()
    L, R = keras.layers, keras.regularizers
    keras.Sequential([keras.Input((7, 7, 1)),
                      L.Conv2D(3, 3, strides=2, padding="same", activation="relu", kernel_regularizer=R.L2(0.01)),
                      L.Flatten(), L.Dense(5, kernel_regularizer=R.L2(0.02))]).save(tmp_path / "m.keras")
    model = tl.from_keras(tmp_path / "m.keras")
    optimizer = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    X, y = np.random.default_rng(5).standard_normal((4, 7, 7, 1)).astype(np.float32), np.arange(4)
    torch_model = torch_optimizer = None
    for step in range(4):
        if step == 2:  # hand over midway
            torch_model, torch_optimizer = tl.to_torch(model, optimizer, l2_as="weight_decay")
        optimizer.zero_grad()
        (tl.nn.functional.cross_entropy(model(tl.Tensor(X)), y) + model.regularization_loss()).backward()
        optimizer.step()
        if torch_model is not None:
            torch_optimizer.zero_grad()
            F.cross_entropy(torch_model(torch.tensor(X)), torch.tensor(y)).backward()  # L2 in weight_decay
            torch_optimizer.step()
    assert_same_parameters(model, torch_model)


def test_a_module_without_a_torch_counterpart_is_refused_by_path():
    class Scale(tl.nn.Module):
        def forward(self, x):
            return 2 * x
    with pytest.raises(TypeError, match="to_torch: 1 is a Scale, which has no torch counterpart"):
        tl.to_torch(tl.nn.Sequential(tl.nn.Linear(2, 2), Scale()))


def test_a_custom_regularizer_is_refused():
    model = tl.nn.Linear(2, 2, kernel_regularizer=lambda w: (w ** 4).sum())
    with pytest.raises(TypeError, match="only tl.nn.L1, L2 and L1L2"):
        tl.to_torch(model)


def batch_norm_convnet(dtype, correction):
    nn = tl.nn
    bn = nn.BatchNorm2d(3, momentum=0.3, dtype=dtype, running_var_correction=correction,
                        gamma_regularizer=nn.L2(0.1))
    bn.running_var.data = np.linspace(0.5, 2, 3).astype(dtype)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, kernel_regularizer=nn.L2(0.05), dtype=dtype, rng=0),
                         bn, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.BatchNorm1d(48, dtype=dtype, running_var_correction=correction),
                         nn.Linear(48, 5, dtype=dtype, rng=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("correction", [1, 0])
def test_batch_norm_trains_the_same_in_torch_running_statistics_included(correction, dtype):
    """Training mode: torch.nn.BatchNorm*d for torch's unbiased running_var, the subclass that
    stores the biased one (Keras') for running_var_correction=0; then the same eval output."""
    model = batch_norm_convnet(dtype, correction)
    optimizer = tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    torch_model, torch_optimizer = tl.to_torch(model, optimizer)
    train_both(model, optimizer, torch_model, torch_optimizer, 3, dtype)
    assert_same_parameters(model, torch_model)
    theirs = dict(torch_model.named_buffers())
    for name, buffer in model.named_buffers():
        if name.endswith("num_batches_tracked"):
            assert int(buffer.data) == int(theirs[name]) == 3
        else:
            assert_close(buffer.data, theirs[name].numpy(), name)
    model.eval(), torch_model.eval()
    X, _ = batch(dtype, seed=1)
    assert_close(model(tl.Tensor(X)).data, torch_model(torch.tensor(X)).detach().numpy(), "eval output")
    assert type(torch_model[1]).__name__ == ("BatchNorm2d" if correction else "BiasedVarBatchNorm2d")


def test_batch_norm_without_gamma_keeps_beta_alone_in_torch():
    bn = tl.nn.BatchNorm1d(3, running_var_correction=0)
    bn.weight = None  # Keras' scale=False
    torch_bn = tl.to_torch(tl.nn.Sequential(bn))[0]
    assert torch_bn.weight is None and torch_bn.bias is not None
