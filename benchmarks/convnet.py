"""A small ConvNet train step: tinygrad_l2 against PyTorch CPU eager (each in its own process).

    python benchmarks/convnet.py [--rounds N]

8×8 single-channel input, batch 64: Conv2d 1→16 3×3 same, ReLU, MaxPool2d 2, Conv2d 16→32 3×3
same, ReLU, Flatten, Linear 512→10; softmax cross-entropy + L2 on the kernels; SGD.  The
BatchNorm variant puts a BatchNorm2d after each convolution (train mode: batch statistics and
running averages) with weight decay kept off γ, β and the biases (tl.optim.param_groups; torch:
the same groups).  Target: tinygrad_l2 ≤ 3× PyTorch's time.  Prints the median of each and the
ratio.
"""
import argparse
import json
import subprocess
import sys
import time

import numpy as np

LAM, LR, BATCH = 1e-3, 0.05, 64


def tinygrad_step(batch_norm=False):
    import tinygrad_l2 as tl
    tl.manual_seed(0)
    l2 = None if batch_norm else tl.nn.L2(LAM)
    norm = (lambda n: [tl.nn.BatchNorm2d(n)]) if batch_norm else (lambda n: [])
    model = tl.nn.Sequential(
        tl.nn.Conv2d(1, 16, 3, padding="same", kernel_regularizer=l2), *norm(16), tl.nn.ReLU(),
        tl.nn.MaxPool2d(2),
        tl.nn.Conv2d(16, 32, 3, padding="same", kernel_regularizer=l2), *norm(32), tl.nn.ReLU(),
        tl.nn.Flatten(), tl.nn.Linear(32 * 4 * 4, 10, kernel_regularizer=l2))
    opt = (tl.optim.SGD(tl.optim.param_groups(model, weight_decay=2 * LAM), lr=LR) if batch_norm
           else tl.optim.SGD(model.parameters(), lr=LR))
    rng = np.random.default_rng(0)
    x, y = tl.Tensor(rng.standard_normal((BATCH, 1, 8, 8)).astype(np.float32)), rng.integers(0, 10, BATCH)

    def step():
        opt.zero_grad()
        (tl.nn.softmax_cross_entropy(model(x), y) + model.regularization_loss()).backward()
        opt.step()
    return step


def torch_step(batch_norm=False):
    import torch
    torch.manual_seed(0)
    norm = (lambda n: [torch.nn.BatchNorm2d(n)]) if batch_norm else (lambda n: [])
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding="same"), *norm(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding="same"), *norm(32), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 10))
    kernels = [m.weight for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    if batch_norm:  # decay on the kernels only: γ, β and biases in a group without it
        others = [p for p in model.parameters() if all(p is not k for k in kernels)]
        opt = torch.optim.SGD([{"params": kernels, "weight_decay": 2 * LAM},
                               {"params": others, "weight_decay": 0.0}], lr=LR)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=LR)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((BATCH, 1, 8, 8)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, BATCH))

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        if not batch_norm:
            loss = loss + LAM * sum((w * w).sum() for w in kernels)
        loss.backward()
        opt.step()
    return step


def measure(name, rounds, batch_norm=False):
    """Median seconds per step of one contender (run in this process)."""
    step = {"tinygrad_l2": tinygrad_step, "PyTorch": torch_step}[name](batch_norm)
    for _ in range(5):
        step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(min(times)), float(max(times))


def in_subprocess(name, rounds, batch_norm=False):
    code = (f"import sys; sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r}); "
            f"import json, convnet; print(json.dumps(convnet.measure({name!r}, {rounds}, {batch_norm})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode:
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="timed steps per contender (default 50)")
    args = parser.parse_args(argv)
    for batch_norm in (False, True):
        results = {name: in_subprocess(name, args.rounds, batch_norm) for name in ("tinygrad_l2", "PyTorch")}
        variant = " with BatchNorm2d (decay off γ, β, biases)" if batch_norm else " with L2 on the kernels"
        print(f"ConvNet train step{variant}, batch {BATCH}, 8x8 input (median ms per step, min–max):")
        for name, r in results.items():
            print(f"  {name:<12} " + ("not installed" if r is None else
                                      f"{r[0] * 1e3:.2f} ms ({r[1] * 1e3:.2f}–{r[2] * 1e3:.2f})"))
        if results["PyTorch"] and results["tinygrad_l2"]:
            ratio = results["tinygrad_l2"][0] / results["PyTorch"][0]
            print(f"  ratio {ratio:.2f}× PyTorch (target ≤ 3×: {'met' if ratio <= 3 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
