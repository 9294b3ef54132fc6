"""Benchmarks: tinygrad_l2 against the hand-written numpy floor, PyTorch and HIPS autograd.

    python benchmarks/run.py              # the full table (about a minute)
    python benchmarks/run.py --quick      # fewer rounds, a smoke run

Every comparison is measured interleaved in one process (round-robin over the contenders, the
median of the rounds), so the machine's state affects all of them alike; ratios are to the floor
(the same math with the backward written by hand in numpy).  PyTorch (`pip install
torch==2.13.0`) and HIPS autograd (`pip install autograd`) are measured when installed.
"""
import argparse
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy_floor  # noqa: E402

import tinygrad_l2 as tl  # noqa: E402
from tinygrad_l2 import Tensor  # noqa: E402

LAM, LR = 1e-4, 0.01


# ---- contenders: one train step each, built from the same weights ----------------------------

def tinygrad_step(params, x, labels):
    layers = []
    for i, (W, b) in enumerate(params):
        linear = tl.nn.Linear(W.shape[1], W.shape[0], kernel_regularizer=tl.nn.L2(LAM), dtype=W.dtype)
        linear.weight.data, linear.bias.data = W.copy(), b.copy()
        layers += [linear, tl.nn.ReLU()] if i < len(params) - 1 else [linear]
    model = tl.nn.Sequential(*layers)
    opt = tl.optim.SGD(model.parameters(), lr=LR)
    X = Tensor(x)

    def step():
        opt.zero_grad()
        loss = tl.nn.softmax_cross_entropy(model(X), labels) + model.regularization_loss()
        loss.backward()
        opt.step()
    return step


def floor_step(params, x, labels):
    params = [(W.copy(), b.copy()) for W, b in params]
    return lambda: numpy_floor.train_step(params, x, labels, LAM, LR)


def torch_step(params, x, labels):
    try:
        import torch
    except ImportError:
        return None
    dtype = {np.float32: torch.float32, np.float64: torch.float64}[params[0][0].dtype.type]
    layers = []
    for i, (W, b) in enumerate(params):
        linear = torch.nn.Linear(W.shape[1], W.shape[0], dtype=dtype)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(W))
            linear.bias.copy_(torch.from_numpy(b))
        layers += [linear, torch.nn.ReLU()] if i < len(params) - 1 else [linear]
    model = torch.nn.Sequential(*layers)
    weights = [m.weight for m in model if isinstance(m, torch.nn.Linear)]
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    X, y = torch.from_numpy(x), torch.from_numpy(labels)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), y) + LAM * sum((w * w).sum() for w in weights)
        loss.backward()
        opt.step()
    return step


def autograd_step(params, x, labels):
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError:
        return None
    flat = [np.array(a) for W, b in params for a in (W, b)]

    def loss(ps):
        a = x
        for i in range(0, len(ps), 2):
            a = anp.dot(a, ps[i].T) + ps[i + 1]
            if i < len(ps) - 2:
                a = anp.maximum(a, 0)
        shifted = a - anp.max(a, axis=1, keepdims=True)
        logp = shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
        return -anp.mean(logp[np.arange(len(labels)), labels]) + LAM * sum(anp.sum(W * W) for W in ps[::2])
    grad = autograd.grad(loss)

    def step():
        for p, g in zip(flat, grad(flat)):
            p -= LR * g
    return step


CONTENDERS = {"numpy floor": floor_step, "tinygrad_l2": tinygrad_step,
              "PyTorch": torch_step, "HIPS autograd": autograd_step}


# ---- measurement -----------------------------------------------------------------------------

def interleaved(steps, rounds, warmup=5, block=6):
    """{name: (median seconds, minor page faults per step)}.

    Round-robin over the contenders, `block` steps each per round; the first step of each
    block is dropped, so that one contender's leftovers (a thread pool still spinning, caches)
    do not land on the next one's clock."""
    for step in steps.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steps}
    faults = {name: [0, 0] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            for i in range(block):
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = time.perf_counter()
                step()
                elapsed = time.perf_counter() - start
                if i:
                    times[name].append(elapsed)
                    faults[name][0] += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
                    faults[name][1] += 1
    return {name: (float(np.median(t)), faults[name][0] / faults[name][1]) for name, t in times.items()}


def problem(batch, sizes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = numpy_floor.init_params(sizes, dtype=dtype, seed=seed)
    x = rng.standard_normal((batch, sizes[0])).astype(dtype)
    labels = rng.integers(0, sizes[-1], batch)
    return params, x, labels


def mlp_table(rounds):
    rows = []
    for dtype in (np.float32, np.float64):
        for batch in (32, 256):
            params, x, labels = problem(batch, numpy_floor.SIZES, dtype)
            steps = {n: make(params, x, labels) for n, make in CONTENDERS.items()}
            results = interleaved({n: s for n, s in steps.items() if s is not None}, rounds)
            floor = results["numpy floor"][0]
            for name, (seconds, faults) in results.items():
                rows.append([np.dtype(dtype).name, batch, name, seconds * 1e3, seconds / floor, faults])
    return tl.Table(["dtype", "batch", "engine", "median ms", "× floor", "page faults/step"], rows,
                    title="MLP train step 784-256-128-10, ReLU, softmax CE + L2 on the weights, SGD")


def solo(name, batch, dtype, rounds):
    """Median ms and page faults per step of one contender running alone (this process)."""
    params, x, labels = problem(batch, numpy_floor.SIZES, np.dtype(dtype).type)
    result = interleaved({name: CONTENDERS[name](params, x, labels)}, rounds)
    return result[name]


def solo_table(rounds):
    """Each contender alone in a fresh process: what a training loop sees.  Interleaving hides
    the allocator's behaviour, because the contenders share one heap."""
    rows = []
    for batch in (32, 256):
        results = {}
        for name in ("numpy floor", "tinygrad_l2"):
            code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import run; "
                    f"print(*run.solo({name!r}, {batch}, 'float32', {rounds}))")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            results[name] = tuple(float(v) for v in out.stdout.split())
        floor = results["numpy floor"][0]
        for name, (seconds, faults) in results.items():
            rows.append([batch, name, seconds * 1e3, seconds / floor, faults])
    return tl.Table(["batch", "engine", "median ms", "× floor", "page faults/step"], rows,
                    title="The same MLP step (float32), each engine alone in its own process")


def chain_table(rounds, n=2000):
    def tinygrad_chain():
        x = Tensor(np.ones(16, np.float32), requires_grad=True)
        y = x
        for i in range(n):
            y = y * 1.0001 if i % 2 else y + 0.5
        y.sum().backward()

    def numpy_chain():  # the same arithmetic, forward and backward, numpy calls only
        x = np.ones(16, np.float32)
        ys = [x]
        for i in range(n):
            ys.append(ys[-1] * np.float32(1.0001) if i % 2 else ys[-1] + np.float32(0.5))
        g = np.ones(16, np.float32)
        for i in reversed(range(n)):
            if i % 2:
                g = g * np.float32(1.0001)

    steps = {"numpy calls alone": numpy_chain, "tinygrad_l2": tinygrad_chain}
    try:
        import torch

        def torch_chain():
            x = torch.ones(16, requires_grad=True)
            y = x
            for i in range(n):
                y = y * 1.0001 if i % 2 else y + 0.5
            y.sum().backward()
        steps["PyTorch"] = torch_chain
    except ImportError:
        pass
    results = interleaved(steps, rounds, warmup=2, block=2)
    rows = [[name, seconds / n * 1e6] for name, (seconds, _) in results.items()]
    return tl.Table(["engine", "µs per op (forward + backward)"], rows,
                    title=f"Graph overhead: a chain of {n} elementwise ops on 16 float32 elements")


def scaling_table(rounds):
    rows = []
    for factor in (1, 2, 4, 8):
        sizes = (784, 256 * factor, 128 * factor, 10)
        params, x, labels = problem(32 * factor, sizes, np.float32)
        results = interleaved({"numpy floor": floor_step(params, x, labels),
                               "tinygrad_l2": tinygrad_step(params, x, labels)}, max(3, rounds // factor))
        floor, ours = results["numpy floor"][0], results["tinygrad_l2"][0]
        rows.append([f"×{factor}", 32 * factor, f"784-{256 * factor}-{128 * factor}-10",
                     floor * 1e3, ours * 1e3, ours / floor])
    return tl.Table(["scale", "batch", "sizes", "floor ms", "tinygrad_l2 ms", "× floor"], rows,
                    title="Scaling: batch and width grow together (float32)")


def memory_table():
    rows = []
    for batch in (32, 256):
        params, x, labels = problem(batch, numpy_floor.SIZES, np.float32)
        peaks = {}
        for name in ("numpy floor", "tinygrad_l2"):
            step = CONTENDERS[name](params, x, labels)
            step()
            tracemalloc.start()
            tracemalloc.reset_peak()
            step()
            peaks[name] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        rows.append([batch, peaks["numpy floor"] / 1e6, peaks["tinygrad_l2"] / 1e6,
                     peaks["tinygrad_l2"] / peaks["numpy floor"]])
    return tl.Table(["batch", "floor peak MB", "tinygrad_l2 peak MB", "ratio"], rows,
                    title="Memory: peak traced allocation during one train step (float32)")


def linearity_table(repeats=3):
    def backward_seconds(n):
        x = Tensor(np.float64(1.0), requires_grad=True)
        y = x
        for _ in range(n):
            y = y * 1.0
        start = time.perf_counter()
        y.backward()
        return time.perf_counter() - start

    backward_seconds(10_000)  # warm-up
    rows = []
    for n in (10_000, 100_000):
        best = min(backward_seconds(n) for _ in range(repeats))
        rows.append([n, best / n * 1e6])
    for row in rows:
        row.append(row[1] / rows[0][1])
    return tl.Table(["chain length", "backward µs per node", "ratio to 10k"], rows,
                    title=f"Backward is O(N): time per node on a 10k and a 100k chain (best of {repeats})")


def render_table():
    """Rendering a graph of hundreds of nodes: seconds to draw and to render SVG."""
    import tempfile
    layers = []
    for i in range(60):
        layers += [tl.nn.Linear(8, 8, kernel_regularizer=tl.nn.L2(1e-3), rng=i), tl.nn.ReLU()]
    model = tl.nn.Sequential(*layers)
    loss = model(np.ones((4, 8), np.float32)).sum() + model.regularization_loss()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, options in (("every op and tensor", dict(collapse_modules=False, show_intermediates=True)),
                               ("default (collapsed per module)", {})):
            start = time.perf_counter()
            graph = tl.draw_dot(loss, **options)
            drawn = time.perf_counter() - start
            tl.render(graph, Path(tmp) / "g.svg")
            rows.append([label, graph.source.count("label="), drawn, time.perf_counter() - start])
    return tl.Table(["picture", "nodes and clusters", "draw_dot s", "draw + render SVG s"], rows,
                    title="Rendering a 60-layer MLP with L2 (a few hundred nodes)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else 20
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"numpy {np.__version__}")
    for table in (mlp_table(rounds), solo_table(rounds), chain_table(max(3, rounds // 4)), scaling_table(rounds),
                  memory_table(), linearity_table(), render_table()):
        print()
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
