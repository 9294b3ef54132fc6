"""tl.nn.MLP: the Linear → activation → … → Linear stack every lesson and benchmark uses."""
import numpy as np
import pytest

import tinygrad_l2 as tl


def test_layers_names_and_weights_are_those_of_the_hand_built_sequential():
    model = tl.nn.MLP((3, 5, 4, 2), activation="tanh", kernel_regularizer=tl.nn.L2(0.1),
                      dtype=np.float64, rng=7)
    rng = np.random.default_rng(7)
    by_hand = tl.nn.Sequential(
        tl.nn.Linear(3, 5, kernel_regularizer=tl.nn.L2(0.1), dtype=np.float64, rng=rng), tl.nn.Tanh(),
        tl.nn.Linear(5, 4, kernel_regularizer=tl.nn.L2(0.1), dtype=np.float64, rng=rng), tl.nn.Tanh(),
        tl.nn.Linear(4, 2, kernel_regularizer=tl.nn.L2(0.1), dtype=np.float64, rng=rng))
    assert [type(m).__name__ for m in model] == ["Linear", "Tanh", "Linear", "Tanh", "Linear"]
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in by_hand.named_parameters()]
    for (_, a), (_, b) in zip(model.named_parameters(), by_hand.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    x = np.random.default_rng(0).standard_normal((6, 3))
    np.testing.assert_array_equal(model(x).data, by_hand(x).data)
    assert model.regularization_loss().item() == by_hand.regularization_loss().item()


def test_the_last_layer_gives_logits_unless_an_output_activation_is_asked():
    assert type(tl.nn.MLP((2, 3, 1))[-1]).__name__ == "Linear"
    model = tl.nn.MLP((2, 3, 1), output_activation=tl.nn.Sigmoid, rng=0)
    assert type(model[-1]).__name__ == "Sigmoid" and len(model.linears) == 2
    assert np.all((model(np.ones((4, 2), np.float32)).data > 0) & (model(np.ones((4, 2), np.float32)).data < 1))


def test_bias_regularizer_reaches_biases_only_when_asked():
    plain = tl.nn.MLP((2, 3, 1), kernel_regularizer=tl.nn.L2(0.5), rng=0)
    both = tl.nn.MLP((2, 3, 1), kernel_regularizer=tl.nn.L2(0.5), bias_regularizer=tl.nn.L2(0.5), rng=0)
    assert [n for n, _ in plain.named_penalties()] == ["0.weight", "2.weight"]
    assert [n for n, _ in both.named_penalties()] == ["0.weight", "0.bias", "2.weight", "2.bias"]


@pytest.mark.parametrize("sizes, kwargs, message", [
    ((3,), {}, "at least two positive integers"),
    ((3, 0, 2), {}, "at least two positive integers"),
    ((3, 2.5, 2), {}, "at least two positive integers"),
    ((3, 2), {"activation": "gelu"}, "activation must be one of"),
    ((3, 2), {"activation": None}, "activation must be one of"),
    ((3, 2), {"output_activation": "softplus"}, "output_activation must be one of"),
])
def test_bad_arguments_are_refused_by_name(sizes, kwargs, message):
    with pytest.raises(ValueError, match=f"MLP: .*{message}"):
        tl.nn.MLP(sizes, **kwargs)
