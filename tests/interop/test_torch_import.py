"""tl.from_torch against PyTorch autograd: each supported layer (as a Sequential tree) and a
ConvNet with a custom forward (through torch.fx), weights saved to a file and loaded back; the
loss and every parameter's data gradient equal torch's, and the penalty that SGD's weight_decay
becomes has exactly the gradient torch's update adds (wd·θ)."""
import warnings

import numpy as np
import pytest

import tinygrad_l2 as tl
from interop.frameworks import assert_close, need_torch, tl_terms, torch_grads

torch = need_torch()
T, F = torch.nn, torch.nn.functional
WD = 0.02
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")


def saved_and_loaded(make, tmp_path, dtype):
    """A module made twice with different seeds; the first's weights saved to a file and loaded
    into the second (a real round trip through torch.save/torch.load)."""
    torch.manual_seed(0)
    original = make().to(getattr(torch, dtype))
    torch.save(original.state_dict(), tmp_path / "weights.pt")
    torch.manual_seed(1)
    loaded = make().to(getattr(torch, dtype))
    loaded.load_state_dict(torch.load(tmp_path / "weights.pt"))
    return loaded


def assert_same_as_torch(module, X, y):
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1, weight_decay=WD)
    model, _ = tl.from_torch(module, torch.tensor(X), optimizer)
    module.eval()
    out = module(torch.tensor(X))
    data = F.cross_entropy(out, torch.tensor(y))
    params = dict(module.named_parameters())
    t_data, t_penalty, t_grads = tl_terms(model, X, lambda z: tl.nn.functional.cross_entropy(z, y))
    dtype = np.dtype(X.dtype)
    assert_close(np.array(t_data, dtype), np.array(data.item(), dtype), "data loss")
    penalty = sum((WD / 2) * (p ** 2).sum() for p in params.values())
    assert_close(np.array(t_penalty, dtype), np.array(penalty.item(), dtype), "penalty (wd/2)·Σθ²")
    assert sorted(t_grads) == sorted(params)
    for (name, p), g in zip(params.items(), torch_grads(torch, data, list(params.values()))):
        assert_close(t_grads[name][0], g, f"{name} data gradient")
        assert_close(t_grads[name][1], (WD * p).detach().numpy(), f"{name} penalty gradient = wd·θ")


LAYER_CASES = {
    "Linear": lambda: T.Sequential(T.Flatten(), T.Linear(72, 4)),
    "Conv2d stride 2 padding 1": lambda: T.Sequential(T.Conv2d(2, 3, 3, stride=2, padding=1), T.Flatten(), T.Linear(27, 4)),
    "Conv2d padding same": lambda: T.Sequential(T.Conv2d(2, 1, (2, 3), padding="same"), T.Flatten(), T.Linear(36, 4)),
    "MaxPool2d": lambda: T.Sequential(T.Conv2d(2, 3, 3), T.MaxPool2d(2), T.Flatten(), T.Linear(12, 4)),
    "AvgPool2d 3 stride 2": lambda: T.Sequential(T.Conv2d(2, 3, 1), T.AvgPool2d(3, 2), T.Flatten(), T.Linear(12, 4)),
    "Dropout (eval)": lambda: T.Sequential(T.Flatten(), T.Dropout(0.5), T.Linear(72, 4)),
    "ReLU": lambda: T.Sequential(T.Flatten(), T.Linear(72, 5), T.ReLU(), T.Linear(5, 4)),
    "Sigmoid": lambda: T.Sequential(T.Flatten(), T.Linear(72, 5), T.Sigmoid(), T.Linear(5, 4)),
    "Tanh": lambda: T.Sequential(T.Flatten(), T.Linear(72, 5), T.Tanh(), T.Linear(5, 4)),
    "Softmax": lambda: T.Sequential(T.Flatten(), T.Linear(72, 5), T.Softmax(dim=1), T.Linear(5, 4)),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(LAYER_CASES))
def test_each_layer_gives_torch_loss_and_gradients(case, dtype, tmp_path):
    module = saved_and_loaded(LAYER_CASES[case], tmp_path, dtype)
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((3, 2, 6, 6)).astype(dtype), rng.integers(0, 4, 3)
    assert_same_as_torch(module, X, y)


class CustomNet(T.Module):
    """A forward of functional calls, a view, a parameter used directly and a nested block."""

    def __init__(self):
        super().__init__()
        self.conv = T.Conv2d(1, 3, 3, padding=1)
        self.head = T.Sequential(T.Linear(48, 8), T.Tanh(), T.Linear(8, 4))
        self.temperature = T.Parameter(torch.tensor(1.5))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(x)), 2)
        x = F.dropout(x.view(x.size(0), -1), 0.3, self.training)
        return self.head(x) / self.temperature


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_custom_forward_traced_with_fx_gives_torch_loss_and_gradients(dtype, tmp_path):
    module = saved_and_loaded(CustomNet, tmp_path, dtype)
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((5, 1, 8, 8)).astype(dtype), rng.integers(0, 4, 5)
    assert_same_as_torch(module, X, y)
    model = tl.from_torch(module, torch.tensor(X))
    assert isinstance(model, tl.interop.Traced) and "max_pool2d" in model.code()


@pytest.mark.parametrize("kind, options", [("SGD", dict(lr=0.1, momentum=0.9, weight_decay=0.01)),
                                           ("Adam", dict(lr=0.01, weight_decay=0.01))])
def test_weight_decay_carried_as_l2_trains_identically(kind, options):
    torch.manual_seed(0)
    module = CustomNet().double()
    optimizer = getattr(torch.optim, kind)(module.parameters(), **options)
    X, y = torch.randn(4, 1, 8, 8, dtype=torch.float64), torch.tensor([0, 1, 2, 3])
    model, tl_optimizer = tl.from_torch(module, X, optimizer)
    assert all(g["weight_decay"] == 0 for g in tl_optimizer.param_groups)
    assert model.conv.bias_regularizer.lam == options["weight_decay"] / 2  # biases decay too in torch
    module.eval(), model.eval()
    for _ in range(4):
        optimizer.zero_grad()
        F.cross_entropy(module(X), y).backward()
        optimizer.step()
        tl_optimizer.zero_grad()
        (tl.nn.functional.cross_entropy(model(tl.Tensor(X.numpy())), y.numpy()) + model.regularization_loss()).backward()
        tl_optimizer.step()
    for name, p in module.named_parameters():
        assert_close(dict(model.named_parameters())[name].data, p.detach().numpy(), name)


def test_adamw_warns_that_its_decay_is_no_l2_term_and_stays_decoupled():
    module = T.Sequential(T.Linear(3, 2))
    optimizer = torch.optim.AdamW(module.parameters(), weight_decay=0.1)
    with pytest.warns(UserWarning, match="AdamW.*decoupled decay.*not an L2 term"):
        model, tl_optimizer = tl.from_torch(module, torch.randn(2, 3), optimizer)
    assert isinstance(tl_optimizer, tl.optim.AdamW) and tl_optimizer.param_groups[0]["weight_decay"] == 0.1
    assert list(model.named_penalties()) == []


def test_an_unsupported_op_is_refused_by_name():
    class Erf(T.Module):
        def forward(self, x):
            return torch.erf(x)
    with pytest.raises(ValueError, match="the op torch.erf"):
        tl.from_torch(Erf(), torch.randn(2, 3))


def test_an_unsupported_layer_is_refused_by_name_with_the_supported_list():
    with pytest.raises(ValueError, match=r"1 is a torch.nn.LayerNorm, which has no tl.nn counterpart; supported layers: Linear"):
        tl.from_torch(T.Sequential(T.Linear(3, 4), T.LayerNorm(4)), torch.randn(2, 3))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_batch_norm_trains_as_torch_running_statistics_included(dtype):
    """torch.nn.BatchNorm1d/2d -> tl's (unbiased running_var, torch's momentum and eps): a
    training-mode step gives torch's output, gradients and running statistics."""
    torch.manual_seed(0)
    module = T.Sequential(T.Conv2d(2, 3, 3), T.BatchNorm2d(3, momentum=0.3, eps=1e-3), T.ReLU(),
                          T.Flatten(), T.BatchNorm1d(48), T.Linear(48, 4)).to(getattr(torch, dtype))
    X = torch.randn(5, 2, 6, 6, dtype=module[0].weight.dtype) * 2 + 1
    module(X)  # running statistics away from 0 and 1 before the conversion
    model = tl.from_torch(module, X)
    out, ours = module(X), model(tl.Tensor(X.numpy()))
    assert_close(ours.data, out.detach().numpy(), "training-mode output")
    params = dict(module.named_parameters())
    tl_grads = tl.grad((ours ** 2).mean(), [p for _, p in model.named_parameters()])
    for (name, g_torch), g in zip(zip(params, torch_grads(torch, (out ** 2).mean(), list(params.values()))), tl_grads):
        assert_close(g, g_torch, f"{name} gradient")
    buffers = dict(module.named_buffers())
    for name, buffer in model.named_buffers():
        if name.endswith("num_batches_tracked"):
            assert int(buffer.data) == int(buffers[name]) == 2
        else:
            assert_close(buffer.data, buffers[name].numpy(), name)


def test_data_dependent_control_flow_is_refused_with_fx_reason():
    class Branchy(T.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x
    with pytest.raises(ValueError, match="torch.fx can't trace Branchy"):
        tl.from_torch(Branchy(), torch.randn(2, 3))


def test_round_trip_through_torch_gives_back_the_same_model():
    model = tl.nn.MLP((4, 6, 3), kernel_regularizer=tl.nn.L2(0.01), dtype=np.float64, rng=0)
    back = tl.from_torch(tl.to_torch(model), torch.randn(2, 4, dtype=torch.float64))
    for (name, p), (name_back, q) in zip(model.named_parameters(), back.named_parameters()):
        assert name == name_back and np.array_equal(p.data, q.data)


def test_a_conversion_whose_output_differs_from_torch_is_refused():
    from tinygrad_l2.interop import torch_import
    module = T.Linear(3, 2).double()
    model = tl.from_torch(module, torch.randn(4, 3, dtype=torch.float64))
    model.weight.data = model.weight.data + 1e-6  # what a wrong conversion would look like
    with pytest.raises(ValueError, match="output on the example differs from torch's"):
        torch_import._check_same_output(torch, module, model, torch.randn(4, 3, dtype=torch.float64))


def test_a_keras_batch_norm_handed_to_torch_comes_back_with_its_biased_update():
    bn = tl.nn.BatchNorm2d(3, eps=1e-3, momentum=0.01, dtype=np.float64, running_var_correction=0)
    bn.bias = None  # Keras' center=False
    bn.running_var.data = np.array([0.5, 1.5, 2.0])
    model = tl.from_torch(tl.to_torch(tl.nn.Sequential(bn)), torch.randn(4, 3, 2, 2, dtype=torch.float64))
    back = dict(model.named_modules())["0"]
    assert (back.running_var_correction, back.eps, back.momentum, back.bias) == (0, 1e-3, 0.01, None)
    assert np.array_equal(back.running_var.data, bn.running_var.data)
