"""Module: registration, names, zero_grad, regularization_loss, state dicts."""
import gc

import numpy as np
import pytest

import tinygrad_l2 as tl

from tinygrad_l2 import Tensor, memory


def test_named_parameters_are_dotted_and_in_registration_order():
    model = tl.nn.MLP([3, 4, 2], dtype=np.float64, rng=0)
    names = [n for n, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [p for _, p in model.named_parameters()] == model.parameters()


def test_nested_modules_prefix_their_names():
    class Net(tl.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = tl.nn.MLP([2, 2], dtype=np.float64, rng=0)
            self.head = tl.nn.Linear(2, 1, rng=0)

        def forward(self, x):
            return self.head(self.layers(x))

    assert [n for n, _ in Net().named_parameters()] == ["layers.0.weight", "layers.0.bias",
                                                      "head.weight", "head.bias"]
    assert [n for n, _ in Net().named_modules()] == ["", "layers", "layers.0", "head"]


def test_zero_grad_sets_grads_to_none():
    model = tl.nn.MLP([2, 2], dtype=np.float64, rng=0)
    model(Tensor(np.ones((1, 2)))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_regularization_loss_is_zero_tensor_without_regularizers():
    loss = tl.nn.MLP([2, 2], dtype=np.float64, rng=0).regularization_loss()
    assert isinstance(loss, Tensor) and loss.item() == 0.0 and loss.dtype == np.float64


def test_regularization_loss_sums_every_layer_penalty_as_a_graph_node():
    model = tl.nn.MLP([3, 4, 2], kernel_regularizer=tl.nn.L2(0.5), dtype=np.float64, rng=0)
    reg = model.regularization_loss()
    expected = sum(0.5 * (p.data ** 2).sum() for n, p in model.named_parameters() if "weight" in n)
    assert reg.item() == pytest.approx(expected, rel=1e-15)
    assert reg.grad_fn is not None
    reg.backward()
    for name, p in model.named_parameters():
        if "weight" in name:
            np.testing.assert_array_equal(p.grad, 2 * 0.5 * p.data)
        else:
            assert p.grad is None  # biases are not regularized unless asked


def test_bias_regularizer_regularizes_biases_when_asked():
    layer = tl.nn.Linear(2, 3, bias_regularizer=tl.nn.L1(0.1), dtype=np.float64, rng=0)
    layer.regularization_loss().backward()
    np.testing.assert_array_equal(layer.bias.grad, 0.1 * np.sign(layer.bias.data))
    assert layer.weight.grad is None


def test_state_dict_round_trips_through_a_file(tmp_path):
    model, other = tl.nn.MLP([3, 4, 2], dtype=np.float64, rng=0), tl.nn.MLP([3, 4, 2], dtype=np.float64, rng=1)
    path = model.save(tmp_path / "model.npz")
    other.load(path)
    for (n1, p1), (n2, p2) in zip(model.named_parameters(), other.named_parameters()):
        assert n1 == n2
        np.testing.assert_array_equal(p1.data, p2.data)
    assert tl.load(path).keys() == model.state_dict().keys()


def test_state_dict_holds_copies():
    model = tl.nn.MLP([2, 2], dtype=np.float64, rng=0)
    state = model.state_dict()
    state["0.weight"][...] = 123.0
    assert not np.any(model[0].weight.data == 123.0)


@pytest.mark.parametrize("corrupt,match", [
    (lambda s: s.pop("2.bias"), "missing entries \\['2.bias'\\]"),
    (lambda s: s.update(extra=np.ones(2)), "unexpected entries \\['extra'\\]"),
    (lambda s: s.update({"0.weight": np.ones((5, 5))}), "'0.weight' has shape \\(5, 5\\)"),
])
def test_load_state_dict_rejects_bad_entries_and_leaves_model_unchanged(corrupt, match, tmp_path):
    model = tl.nn.MLP([3, 4, 2], dtype=np.float64, rng=0)
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    state = tl.nn.MLP([3, 4, 2], dtype=np.float64, rng=9).state_dict()
    corrupt(state)
    tl.save(state, tmp_path / "bad.npz")
    with pytest.raises(ValueError, match=match):
        model.load(tmp_path / "bad.npz")
    for n, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, before[n])


def test_loading_never_unpickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"0.weight": np.array([object()], dtype=object)})
    with pytest.raises(ValueError, match="unpickling"):
        tl.load(path)


def test_weights_and_biases_split_the_tree_by_parameter_role():
    model = tl.nn.Sequential(tl.nn.Conv2d(1, 2, 3, rng=0), tl.nn.Flatten(), tl.nn.Linear(8, 2, bias=False, rng=0))
    weights, biases = tl.nn.weights_and_biases(model)
    assert [p.shape for p in weights] == [(2, 1, 3, 3), (2, 8)]
    assert [p.shape for p in biases] == [(2,)]
    assert all(isinstance(p, tl.Tensor) and p.requires_grad for p in weights + biases)


def test_a_module_that_returns_its_input_leaves_no_graph_held():
    """An eval-mode Dropout returns its input: recording that call for drawing must not keep
    the graph (and the read-only lock on the user's input array) alive."""
    x = np.ones((2, 4))
    model = tl.nn.Sequential(tl.nn.Linear(4, 3, dtype=np.float64), tl.nn.Dropout(0.5)).eval()
    out = model(tl.Tensor(x)).sum()
    del out
    gc.collect()
    assert memory.held_count() == 0 and x.flags.writeable
