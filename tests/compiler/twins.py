"""Twin runs for the adversarial tests of tl.compile: the same scenario built twice from the
same seeds, one copy compiled; after every call the loss and every parameter must agree."""
import warnings

import numpy as np

import tinygrad_l2 as tl

F64 = np.float64


def train(make, compiled, calls=5):
    """(per call: loss and parameters), the env's probe() after the last call, and the step."""
    tl.manual_seed(0); np.random.seed(0)
    env = make()
    step = tl.compile(env["step"]) if compiled else env["step"]
    rng, seen = np.random.default_rng(5), []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tl.CompileWarning)
        for call in range(calls):
            X, y = rng.standard_normal((6, 4)), rng.integers(0, 3, 6)
            out = step(tl.Tensor(X.astype(env.get("dtype", F64))), y, *env.get("extra", lambda c: ())(call))
            seen.append([np.array(out.data)] + [p.data.copy() for p in env["params"]])
    return seen, env.get("probe", lambda: None)(), step


def agree(want, got, rtol=1e-12):
    for row_w, row_g in zip(want, got, strict=True):
        for w, g in zip(row_w, row_g, strict=True):
            assert w.shape == g.shape and w.dtype == g.dtype
            assert np.linalg.norm(g.astype(F64) - w) <= rtol * np.linalg.norm(w.astype(F64)), (w, g)


def same(make, rtol=1e-12, calls=5):
    """Compiled and eager agree, also on what probe() reports; returns the compiled step."""
    (want, probe_w, _), (got, probe_g, step) = train(make, False, calls), train(make, True, calls)
    agree(want, got, rtol)
    assert probe_g == probe_w
    return step


def plain(layer, opt, **env):
    def step(X, y, *extra):
        opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(layer(X), y); loss.backward(); opt.step()
        return loss
    return dict(step=step, params=list(layer.parameters()), **env)


def frozen_batch_norm():
    """(model, step): fine-tuning with BatchNorm in eval mode (its running statistics are module
    buffers), a float64 MLP and its SGD step."""
    tl.manual_seed(0)
    model = tl.nn.Sequential(tl.nn.Linear(4, 5, dtype=F64), tl.nn.BatchNorm1d(5, dtype=F64),
                             tl.nn.ReLU(), tl.nn.Linear(5, 3, dtype=F64)).eval()
    opt = tl.optim.SGD(model.parameters(), lr=0.1)

    def step(X, y):
        opt.zero_grad(); loss = tl.nn.softmax_cross_entropy(model(X), y); loss.backward(); opt.step()
        return loss
    return model, step


def arrays_of(value):
    """A returned value as a flat list of arrays (tensors, numbers, None, tuples, lists, dicts
    in key order), to compare two runs' results with `agree`."""
    if isinstance(value, tl.Tensor):
        return [np.array(value.data)]
    if isinstance(value, dict):
        return [a for key in sorted(value) for a in arrays_of(value[key])]
    if isinstance(value, (list, tuple)):
        return [a for item in value for a in arrays_of(item)]
    return [] if value is None else [np.array(value)]
