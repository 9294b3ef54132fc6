"""Benchmarks: tinygrad_l2 against the tightest hand-written numpy floor and PyTorch CPU eager.

    python benchmarks/run.py                  # about three minutes
    python benchmarks/run.py --quick          # a smoke run
    python benchmarks/run.py --markdown out.md --update-readme

How it is measured, so that the ratios are honest:
- every comparison runs in a fresh process that holds only its two contenders: the floor and
  tinygrad_l2, or the floor and PyTorch (so PyTorch's OpenMP pool and numpy's OpenBLAS pool
  never spin against each other inside one measurement);
- in that process, rounds alternate a block of floor steps and a block of contender steps,
  with a 0.3 s pause after each block so thread pools go idle; each block's median is taken;
- the reported figure is the median over rounds of the PAIRED ratio (contender block ÷ the
  floor block measured just before it), with the min–max spread over rounds.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import numpy_floor  # noqa: E402

LAM, LR, ADAM_LR = 1e-4, 0.01, 1e-3
PAUSE = 0.3
TARGETS = {("tinygrad_l2", "float32", 32): 2.0, ("tinygrad_l2", "float32", 256): 1.40,  # ÷ floor
           ("tinygrad_l2 compiled", "float32", 32): 1.05, ("tinygrad_l2 compiled", "float32", 256): 1.05,
           ("tinygrad_l2 compiled", "float64", 32): 1.0, ("tinygrad_l2 compiled", "float64", 256): 1.0,
           **{("tinygrad_l2 compiled, PyTorch-style loop", d, b): 1.05
              for d in ("float32", "float64") for b in (32, 256)},
           **{("tinygrad_l2 compiled Adam, PyTorch-style loop", d, b): 1.10
              for d in ("float32", "float64") for b in (32, 256)}}
CHAIN_TARGET = 3.0


# ---- the MLP train step, one per contender ---------------------------------------------------

def problem(batch, dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = numpy_floor.init_params(numpy_floor.SIZES, dtype=dtype, seed=seed)
    x = rng.standard_normal((batch, numpy_floor.SIZES[0])).astype(dtype)
    return params, x, rng.integers(0, numpy_floor.SIZES[-1], batch)


def floor_step(params, x, labels):
    floor = numpy_floor.Floor([(W.copy(), b.copy()) for W, b in params])
    return lambda: floor.train_step(x, labels, LAM, LR)


def tinygrad_model(params):
    import tinygrad_l2 as tl
    model = tl.nn.MLP(numpy_floor.SIZES, kernel_regularizer=tl.nn.L2(LAM), dtype=params[0][0].dtype)
    for linear, (W, b) in zip(model.linears, params):
        linear.weight.data, linear.bias.data = W.copy(), b.copy()
    return model


def tinygrad_step(params, x, labels, compiled=False):
    import tinygrad_l2 as tl
    model = tinygrad_model(params)
    step = _mlp_step(model, tl.optim.SGD(model.parameters(), lr=LR), compiled)
    X = tl.Tensor(x)
    return lambda: step(X, labels)


def torch_loop_step(params, x, labels, compiled=True, optimizer="sgd"):
    """The loop as a PyTorch user writes it: zero_grad first, a hand-written cross-entropy
    over `rows` and `y` read from the enclosing scope, the penalty added, then step."""
    import tinygrad_l2 as tl
    model = tinygrad_model(params)
    opt = (tl.optim.SGD(model.parameters(), lr=LR) if optimizer == "sgd" else
           tl.optim.Adam(model.parameters(), lr=ADAM_LR))
    X, y = tl.Tensor(x), labels
    rows = np.arange(len(labels))

    def step():
        opt.zero_grad()
        logp = model(X).log_softmax(-1)
        loss = -logp[rows, y].mean() + model.regularization_loss()
        loss.backward()
        opt.step()
        return loss
    return tl.compile(step) if compiled else step


def adam_floor_step(params, x, labels):
    floor = numpy_floor.AdamFloor([(W.copy(), b.copy()) for W, b in params])
    return lambda: floor.train_step(x, labels, LAM, ADAM_LR)


def _mlp_step(model, opt, compiled):
    import tinygrad_l2 as tl

    def step(X, y):  # zero_grad last: the gradients are dead after the step (compile uses it)
        loss = tl.nn.softmax_cross_entropy(model(X), y) + model.regularization_loss()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    return tl.compile(step) if compiled else step


def torch_step(params, x, labels):
    import torch
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

    def step():  # the same order as tinygrad_step
        loss = torch.nn.functional.cross_entropy(model(X), y) + LAM * sum((w * w).sum() for w in weights)
        loss.backward()
        opt.step()
        opt.zero_grad()
    return step


MLP_CONTENDERS = {"tinygrad_l2": tinygrad_step, "PyTorch": torch_step,
                  "tinygrad_l2 compiled": lambda *a: tinygrad_step(*a, compiled=True),
                  "tinygrad_l2 compiled, PyTorch-style loop": torch_loop_step}
ADAM_CONTENDERS = {"tinygrad_l2 compiled Adam, PyTorch-style loop":
                   lambda *a: torch_loop_step(*a, optimizer="adam")}


# ---- the chain: Python overhead per op ---------------------------------------------------------

def chain_steps(n):
    ones = np.ones(16, np.float32)

    def numpy_chain():  # the same arithmetic, forward and backward, numpy calls only
        ys = [ones]
        for i in range(n):
            ys.append(ys[-1] * np.float32(1.0001) if i % 2 else ys[-1] + np.float32(0.5))
        g = np.ones(16, np.float32)
        for i in reversed(range(n)):
            if i % 2:
                g = g * np.float32(1.0001)

    def tinygrad_chain():
        import tinygrad_l2 as tl
        y = x = tl.Tensor(ones, requires_grad=True)
        for i in range(n):
            y = y * 1.0001 if i % 2 else y + 0.5
        y.sum().backward()
        return x

    def torch_chain():
        import torch
        y = x = torch.ones(16, requires_grad=True)
        for i in range(n):
            y = y * 1.0001 if i % 2 else y + 0.5
        y.sum().backward()
        return x
    return {"numpy calls alone": numpy_chain, "tinygrad_l2": tinygrad_chain, "PyTorch": torch_chain}


# ---- measurement (inside one worker process) ---------------------------------------------------

def block(step, steps):
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def paired(baseline, contender, rounds, steps, warmup=3):
    """[(baseline block, contender block)] per round, blocks separated by pauses."""
    for _ in range(warmup):
        baseline()
        contender()
    pairs = []
    for _ in range(rounds):
        first = block(baseline, steps)
        time.sleep(PAUSE)
        second = block(contender, steps)
        time.sleep(PAUSE)
        pairs.append((first, second))
    return pairs


def worker(job):
    """Measure one job in this process; returns JSON-able results."""
    kind = job["kind"]
    if kind in ("mlp", "adam"):
        params, x, labels = problem(job["batch"], np.dtype(job["dtype"]).type)
        contenders, floor = ((MLP_CONTENDERS, floor_step) if kind == "mlp" else
                             (ADAM_CONTENDERS, adam_floor_step))
        contender = contenders[job["name"]](params, x, labels)
        return paired(floor(params, x, labels), contender, job["rounds"], job["steps"])
    if kind == "chain":
        steps = chain_steps(job["n"])
        return paired(steps["numpy calls alone"], steps[job["name"]], job["rounds"], 1)
    if kind == "long chain":
        run = chain_steps(job["n"])[job["name"]]
        run()
        return [min(_seconds(run) for _ in range(job["repeats"]))]
    raise ValueError(f"unknown job {kind!r}")


def _seconds(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def in_process(job):
    """Run `job` in a fresh Python process; None if its contender is not installed."""
    code = (f"import sys, json; sys.path.insert(0, {str(HERE)!r}); import run; "
            f"print(json.dumps(run.worker(json.loads({json.dumps(json.dumps(job))}))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode:
        if "ModuleNotFoundError" in result.stderr or "has no attribute 'compile'" in result.stderr:
            return None
        raise RuntimeError(f"benchmark worker failed for {job}:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def ratios(pairs):
    values = [c / b for b, c in pairs]
    return float(np.median(values)), min(values), max(values)


# ---- tables --------------------------------------------------------------------------------

def mlp_table(rounds, steps, kind="mlp"):
    lines = ["| dtype | batch | engine | floor ms | engine ms | × floor (median of paired ratios) | spread | target |",
             "|---|---|---|---|---|---|---|---|"]
    for dtype in ("float32", "float64"):
        for batch in (32, 256):
            for name in (MLP_CONTENDERS if kind == "mlp" else ADAM_CONTENDERS):
                pairs = in_process(dict(kind=kind, name=name, dtype=dtype, batch=batch,
                                        rounds=rounds, steps=steps))
                if pairs is None:
                    continue
                median, low, high = ratios(pairs)
                floor_ms = np.median([b for b, _ in pairs]) * 1e3
                engine_ms = np.median([c for _, c in pairs]) * 1e3
                target = TARGETS.get((name, dtype, batch))
                verdict = "" if target is None else f"≤ {target}: {'met' if median <= target else 'MISSED'}"
                lines.append(f"| {dtype} | {batch} | {name} | {floor_ms:.3f} | {engine_ms:.3f} | "
                             f"{median:.2f} | {low:.2f}–{high:.2f} | {verdict} |")
    if kind == "adam":
        return ("The same MLP with Adam on the L2 loss (floor: numpy_floor.AdamFloor, hand-written "
                "numpy Adam)", lines)
    return ("MLP train step 784-256-128-10, ReLU, softmax CE + L2 on the weights, SGD "
            "(floor: benchmarks/numpy_floor.py)", lines)


def chain_table(rounds, n=2000):
    lines = ["| engine | µs per op | × numpy calls alone (median of paired ratios) | spread | target |",
             "|---|---|---|---|---|"]
    for name in ("tinygrad_l2", "PyTorch"):
        pairs = in_process(dict(kind="chain", name=name, n=n, rounds=rounds))
        if pairs is None:
            continue
        median, low, high = ratios(pairs)
        if name == "tinygrad_l2":
            base = np.median([b for b, _ in pairs]) / n * 1e6
            lines.insert(2, f"| numpy calls alone | {base:.2f} | 1 | | |")
        verdict = f"≤ {CHAIN_TARGET}: {'met' if median <= CHAIN_TARGET else 'MISSED'}" if name == "tinygrad_l2" else ""
        lines.append(f"| {name} | {np.median([c for _, c in pairs]) / n * 1e6:.2f} | {median:.2f} | "
                     f"{low:.2f}–{high:.2f} | {verdict} |")
    return (f"Graph overhead: a chain of {n:,} elementwise ops on 16 float32 elements, forward + "
            f"backward", lines)


def long_chain_table(repeats, n=100_000):
    results = {name: in_process(dict(kind="long chain", name=name, n=n, repeats=repeats))
               for name in ("tinygrad_l2", "PyTorch")}
    lines = ["| engine | seconds (best of %d) | µs per op |" % repeats, "|---|---|---|"]
    for name, r in results.items():
        if r is not None:
            lines.append(f"| {name} | {r[0]:.3f} | {r[0] / n * 1e6:.2f} |")
    if all(results.values()):
        ours, theirs = results["tinygrad_l2"][0], results["PyTorch"][0]
        lines.append(f"| target: no slower than PyTorch | {'met' if ours <= theirs else 'MISSED'} "
                     f"({ours / theirs:.2f}×) | |")
    return f"A {n:,}-op chain, forward + backward, each engine in its own process", lines


def agreement_table(steps=20, batch=32):
    """Compiled against eager over `steps` SGD steps from the same weights, new batches each
    step: the largest parameter difference relative to the parameter's largest entry."""
    import tinygrad_l2 as tl
    lines = ["| dtype | max relative parameter difference | target |", "|---|---|---|"]
    for dtype, target in ((np.float32, 1e-5), (np.float64, 1e-9)):
        params, _, _ = problem(batch, dtype)
        models = [tinygrad_model(params) for _ in range(2)]
        steps_ = []
        for model, compiled in zip(models, (False, True)):
            opt = tl.optim.SGD(model.parameters(), lr=LR)
            steps_.append(_mlp_step(model, opt, compiled))
        rng = np.random.default_rng(1)
        for _ in range(steps):
            x = tl.Tensor(rng.standard_normal((batch, numpy_floor.SIZES[0])).astype(dtype))
            y = rng.integers(0, numpy_floor.SIZES[-1], batch)
            for step in steps_:
                step(x, y)
        worst = max(float(np.max(np.abs(a.data - b.data)) / np.max(np.abs(a.data)))
                    for a, b in zip(models[0].parameters(), models[1].parameters()))
        lines.append(f"| {np.dtype(dtype).name} | {worst:.1e} | ≤ {target:g}: "
                     f"{'met' if worst <= target else 'MISSED'} |")
    return f"tinygrad_l2 compiled vs eager: {steps} SGD steps from the same weights", lines


def drawing_table(layers=60):
    """Drawing a deep MLP with L2: records in the default (collapsed) and the full picture, and
    the time to draw and render the default one to SVG."""
    import re
    import tempfile
    import tinygrad_l2 as tl
    model = tl.nn.MLP([8] * layers + [1], kernel_regularizer=tl.nn.L2(1e-3), dtype=np.float64, rng=0)
    loss = model(np.ones((4, 8))).sum() + model.regularization_loss()
    counts = {}
    for label, options in (("default (modules collapsed)", {}),
                           ("full", dict(collapse_modules=False, show_intermediates=True))):
        source = tl.draw_dot(loss, **options).source
        counts[label] = len(re.findall(r"^\s*\w+ \[label=", source, re.M))
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        tl.render(loss, Path(scratch) / "mlp.svg")
        seconds = time.perf_counter() - start
    lines = ["| picture | nodes drawn | draw + render to SVG |", "|---|---|---|",
             f"| default (modules collapsed) | {counts['default (modules collapsed)']} | {seconds:.2f} s |",
             f"| full (`collapse_modules=False, show_intermediates=True`) | {counts['full']} | not timed |"]
    return f"Drawing a {layers}-layer MLP with L2 (`tl.render`)", lines


def report(tables, header):
    parts = [header, ""]
    for title, lines in tables:
        parts += [f"**{title}**", "", *lines, ""]
    return "\n".join(parts)


def update_readme(fragment, readme=HERE.parent / "README.md"):
    """Replace the text between the benchmark markers in README.md with `fragment`."""
    start, end = "<!-- benchmark:start -->", "<!-- benchmark:end -->"
    text = Path(readme).read_text()
    if start not in text or end not in text:
        raise SystemExit(f"run.py: {readme} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    Path(readme).write_text(f"{head}{start}\n{fragment.strip()}\n{end}{tail}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run (default: off)")
    parser.add_argument("--markdown", metavar="PATH", help="also write the tables to PATH (default: none)")
    parser.add_argument("--update-readme", action="store_true",
                        help="replace README.md's benchmark section with this run (default: off)")
    args = parser.parse_args(argv)
    rounds, steps = (3, 3) if args.quick else (9, 15)
    header = (f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}, numpy {np.__version__}"
              + _torch_version() + f"; `python benchmarks/run.py{' --quick' if args.quick else ''}`.")
    tables = [mlp_table(rounds, steps), mlp_table(rounds, steps, "adam"), agreement_table(), chain_table(rounds),
              long_chain_table(1 if args.quick else 2), drawing_table()]
    text = report(tables, header)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")
    if args.update_readme:
        update_readme(text)
    return 0


def _torch_version():
    try:
        import importlib.metadata
        return f", PyTorch {importlib.metadata.version('torch')} CPU"
    except Exception:  # noqa: BLE001 - not installed
        return ", PyTorch not installed"


if __name__ == "__main__":
    sys.exit(main())
