"""Parameter groups without decay on γ, β and biases; the penalty coupled decay stands for;
and the rendered picture: the L2 term's gradient reaches the kernels only."""
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor

SVG = "{http://www.w3.org/2000/svg}"
rng = np.random.default_rng(2)


def convnet(l2=None):
    reg = tl.nn.L2(l2) if l2 else None
    return tl.nn.Sequential(
        tl.nn.Conv2d(1, 2, 3, kernel_regularizer=reg, dtype=np.float64, rng=0), tl.nn.BatchNorm2d(2, dtype=np.float64),
        tl.nn.ReLU(), tl.nn.Flatten(), tl.nn.LayerNorm(8, dtype=np.float64),
        tl.nn.Linear(8, 3, kernel_regularizer=reg, dtype=np.float64, rng=1))


def test_param_groups_exempt_normalization_and_bias_parameters():
    model = convnet()
    groups = tl.optim.param_groups(model, weight_decay=5e-4)
    names = {id(p): n for n, p in model.named_parameters()}
    assert [[names[id(p)] for p in g["params"]] for g in groups] == [
        ["0.weight", "5.weight"], ["0.bias", "1.weight", "1.bias", "4.weight", "4.bias", "5.bias"]]
    assert [g["weight_decay"] for g in groups] == [5e-4, 0.0]


def test_no_decay_takes_full_names_and_an_empty_group_is_left_out():
    groups = tl.optim.param_groups(tl.nn.Linear(2, 2, rng=0), 0.1, no_decay=("weight", "bias"))
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.0
    model = convnet()
    groups = tl.optim.param_groups(model, 0.1, no_decay=("bias", "5.weight"))
    assert groups[0]["params"] == [model[0].weight]


def test_decay_skips_gamma_beta_and_biases_in_an_sgd_step():
    """With the groups, one step moves γ, β and biases by −lr·g alone; the kernels also by
    −lr·wd·θ: the same step as decay-free SGD on loss + decay_penalty."""
    x, y = Tensor(rng.standard_normal((4, 1, 4, 4))), rng.integers(0, 3, 4)
    grouped, reference = convnet(), convnet()
    opt = tl.optim.SGD(tl.optim.param_groups(grouped, weight_decay=0.1), lr=0.5)
    plain = tl.optim.SGD(reference.parameters(), lr=0.5)
    tl.nn.softmax_cross_entropy(grouped(x), y).backward()
    penalty = tl.optim.decay_penalty(tl.optim.param_groups(reference, weight_decay=0.1))
    (tl.nn.softmax_cross_entropy(reference(x), y) + penalty).backward()
    before = {n: p.data.copy() for n, p in grouped.named_parameters()}
    grads = {n: p.grad.copy() for n, p in grouped.named_parameters()}
    opt.step()
    plain.step()
    for name, p in grouped.named_parameters():
        decay = 0.1 * before[name] if name in ("0.weight", "5.weight") else 0.0
        np.testing.assert_allclose(p.data, before[name] - 0.5 * (grads[name] + decay), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(p.data, dict(reference.named_parameters())[name].data, rtol=1e-13, atol=1e-15)


def test_plain_weight_decay_reaches_gamma_and_beta():
    model = convnet()
    penalty = tl.optim.decay_penalty(tl.optim.SGD(model.parameters(), lr=0.1, weight_decay=0.2))
    penalty.backward()
    np.testing.assert_allclose(model[1].weight.grad, 0.2 * model[1].weight.data, rtol=1e-15)


def test_decay_penalty_refuses_decoupled_decay_and_is_none_without_decay():
    model = convnet()
    with pytest.raises(ValueError, match="AdamW's decoupled weight decay"):
        tl.optim.decay_penalty(tl.optim.AdamW(model.parameters(), weight_decay=0.1))
    assert tl.optim.decay_penalty(tl.optim.SGD(model.parameters(), lr=0.1)) is None


def terms_leaving(svg_path):
    """{first line of a node's label: the loss terms on the edges leaving it}, from the SVG."""
    root = ET.parse(svg_path).getroot()
    labels, terms = {}, {}
    for g in root.iter(SVG + "g"):
        kind, title = g.get("class", ""), g.find(SVG + "title").text
        if kind == "node":
            labels[title] = g.find(SVG + "text").text
        elif kind.startswith("edge"):
            tail = title.split("->")[0]
            terms.setdefault(tail, set()).update(c.removeprefix("term-") for c in kind.split()[1:])
    return {labels[tail]: found for tail, found in terms.items() if tail in labels}


@pytest.mark.parametrize("how", ["keras regularizers", "torch groups"])
def test_the_rendered_picture_has_no_penalty_edge_to_gamma_or_beta(how, tmp_path):
    model = convnet(l2=1e-3 if how == "keras regularizers" else None)
    x, y = Tensor(rng.standard_normal((3, 1, 4, 4))), rng.integers(0, 3, 3)
    cost = tl.nn.softmax_cross_entropy(model(x), y)
    if how == "keras regularizers":
        penalty = model.regularization_loss()
    else:
        penalty = tl.optim.decay_penalty(tl.optim.param_groups(model, weight_decay=2e-3))
    svg = tl.render(cost + penalty, tmp_path / "net.svg", params=dict(model.named_parameters()),
                    terms={"data": cost, "l2": penalty})
    leaving = terms_leaving(svg)
    for name, _ in model.named_parameters():
        expected = {"data", "l2"} if name in ("0.weight", "5.weight") else {"data"}
        assert leaving[name] == expected, name


def test_a_users_own_normalization_layer_is_exempt_when_its_class_says_so():
    class RMSNorm(tl.nn.Module):
        normalization = True

        def __init__(self):
            super().__init__()
            self.weight = Tensor(np.ones(3), requires_grad=True)

        def forward(self, x):
            return x / (x * x).mean(axis=-1, keepdims=True).sqrt() * self.weight

    model = tl.nn.Sequential(tl.nn.Linear(3, 3, rng=0), RMSNorm())
    groups = tl.optim.param_groups(model, 0.1)
    assert groups[0]["params"] == [model[0].weight] and any(p is model[1].weight for p in groups[1]["params"])


def test_weights_and_biases_leaves_gamma_and_beta_out_of_the_kernels():
    model = convnet()
    weights, biases = tl.nn.weights_and_biases(model)
    assert weights == [model[0].weight, model[5].weight] and biases == [model[0].bias, model[5].bias]
