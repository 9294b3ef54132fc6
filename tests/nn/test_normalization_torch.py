"""BatchNorm1d/2d and LayerNorm against torch 2.13 in float64, element by element (1e-10):
outputs, gradients of x, γ and β, running statistics, train/eval and state dicts."""
import numpy as np
import pytest

import tinygrad_l2 as tl

torch = pytest.importorskip("torch")

TOL = 1e-10


def close(ours, theirs):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    np.testing.assert_allclose(np.asarray(ours), theirs, rtol=0, atol=TOL)


def run_both(ours, theirs, x, upstream):
    """One forward and backward of each on the same input and upstream gradient."""
    xt = tl.Tensor(x.copy(), requires_grad=True)
    xr = torch.tensor(x, requires_grad=True)
    y, yr = ours(xt), theirs(xr)
    close(y.data, yr)
    (y * tl.Tensor(upstream)).sum().backward()
    (yr * torch.tensor(upstream)).sum().backward()
    close(xt.grad, xr.grad)
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        close(p.grad, q.grad)
        p.grad, q.grad = None, None


def same_state(ours, theirs):
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert list(mine) == list(reference)
    for key, value in reference.items():
        assert mine[key].dtype == value.numpy().dtype, key
        close(mine[key], value)


BATCHNORMS = [  # (our class, torch's, input shape)
    (tl.nn.BatchNorm1d, torch.nn.BatchNorm1d, (6, 3)),
    (tl.nn.BatchNorm1d, torch.nn.BatchNorm1d, (4, 3, 5)),
    (tl.nn.BatchNorm2d, torch.nn.BatchNorm2d, (4, 3, 5, 2)),
]
SETTINGS = [dict(), dict(momentum=None), dict(momentum=0.3, eps=1e-3), dict(affine=False),
            dict(track_running_stats=False)]


@pytest.mark.parametrize("ours_cls, torch_cls, shape", BATCHNORMS)
@pytest.mark.parametrize("settings", SETTINGS, ids=str)
def test_batchnorm_train_then_eval_matches_torch(ours_cls, torch_cls, shape, settings):
    rng = np.random.default_rng(len(shape))
    ours = ours_cls(shape[1], dtype=np.float64, **settings)
    theirs = torch_cls(shape[1], dtype=torch.float64, **settings)
    if ours.weight is not None:  # not the trivial γ = 1, β = 0
        ours.weight.data, ours.bias.data = rng.standard_normal((2, shape[1]))
        theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    for step in range(4):  # several batches: the running averages accumulate
        x = rng.standard_normal(shape) * (step + 1) + step
        run_both(ours.train(), theirs.train(), x, rng.standard_normal(shape))
        same_state(ours, theirs)
    x = rng.standard_normal(shape) * 3
    run_both(ours.eval(), theirs.eval(), x, rng.standard_normal(shape))
    same_state(ours, theirs)


@pytest.mark.parametrize("shape, normalized, settings", [
    ((5, 4), 4, dict()), ((2, 3, 4), (3, 4), dict(eps=1e-3)),
    ((2, 3, 4), (4,), dict(elementwise_affine=False)), ((3, 2, 2, 3), (2, 3), dict(bias=False))])
def test_layernorm_matches_torch(shape, normalized, settings):
    rng = np.random.default_rng(7)
    ours = tl.nn.LayerNorm(normalized, dtype=np.float64, **settings)
    theirs = torch.nn.LayerNorm(normalized, dtype=torch.float64, **settings)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        p.data = rng.standard_normal(p.shape)
        q.data = torch.tensor(p.data)
    for mode in (True, False):  # no difference between the modes
        run_both(ours.train(mode), theirs.train(mode), rng.standard_normal(shape) * 2 + 1,
                 rng.standard_normal(shape))
    same_state(ours, theirs)


def test_a_torch_state_dict_loads_and_gives_torch_eval_outputs():
    rng = np.random.default_rng(3)
    theirs = torch.nn.BatchNorm2d(3, dtype=torch.float64)
    for _ in range(3):
        theirs(torch.tensor(rng.standard_normal((4, 3, 2, 2)) * 2 + 1))
    ours = tl.nn.BatchNorm2d(3, dtype=np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((2, 3, 2, 2))
    close(ours.eval()(tl.Tensor(x)).data, theirs.eval()(torch.tensor(x)))
    assert ours.num_batches_tracked.dtype == np.int64 and int(ours.num_batches_tracked.data) == 3


def test_batchnorm_in_a_convnet_trains_like_torch():
    """Conv → BatchNorm2d → ReLU → Linear, two SGD steps with momentum: same weights, same
    running statistics."""
    rng = np.random.default_rng(11)
    ours = tl.nn.Sequential(tl.nn.Conv2d(2, 3, 3, dtype=np.float64, rng=0),
                            tl.nn.BatchNorm2d(3, dtype=np.float64), tl.nn.ReLU(), tl.nn.Flatten(),
                            tl.nn.Linear(12, 2, dtype=np.float64, rng=1))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3),
                                 torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(12, 2)).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    opt = tl.optim.SGD(ours.parameters(), lr=0.1, momentum=0.9)
    opt_t = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        x, y = rng.standard_normal((5, 2, 4, 4)), rng.integers(0, 2, 5)
        opt.zero_grad()
        tl.nn.softmax_cross_entropy(ours(tl.Tensor(x)), y).backward()
        opt.step()
        opt_t.zero_grad()
        torch.nn.functional.cross_entropy(theirs(torch.tensor(x)), torch.tensor(y)).backward()
        opt_t.step()
    same_state(ours, theirs)


def test_functional_batch_norm_and_layer_norm_match_torch():
    rng = np.random.default_rng(13)
    x, w, b = rng.standard_normal((5, 3, 4)), rng.standard_normal(3), rng.standard_normal(3)
    mean, var = rng.standard_normal(3), rng.random(3) + 0.5
    ours_stats = [tl.Tensor(mean.copy()), tl.Tensor(var.copy())]
    torch_stats = [torch.tensor(mean), torch.tensor(var)]
    for training in (True, False):
        run_both_functional(lambda x, w, b: tl.nn.functional.batch_norm(x, *ours_stats, w, b, training, 0.2, 1e-3),
                            lambda x, w, b: torch.nn.functional.batch_norm(x, *torch_stats, w, b, training, 0.2, 1e-3),
                            [x, w, b], rng)
        close(ours_stats[0].data, torch_stats[0]), close(ours_stats[1].data, torch_stats[1])
    run_both_functional(lambda x, w, b: tl.nn.functional.layer_norm(x, (4,), w, b),
                        lambda x, w, b: torch.nn.functional.layer_norm(x, (4,), w, b),
                        [x, rng.standard_normal(4), rng.standard_normal(4)], rng)


def run_both_functional(ours, theirs, arrays, rng):
    mine = [tl.Tensor(a.copy(), requires_grad=True) for a in arrays]
    ref = [torch.tensor(a, requires_grad=True) for a in arrays]
    y, yr = ours(*mine), theirs(*ref)
    close(y.data, yr)
    upstream = rng.standard_normal(y.shape)
    (y * tl.Tensor(upstream)).sum().backward()
    (yr * torch.tensor(upstream)).sum().backward()
    for m, r in zip(mine, ref):
        close(m.grad, r.grad)
