"""A small ConvNet train step: tinygrad_l2 against PyTorch CPU eager (each in its own process).

    python benchmarks/convnet.py [--rounds N]

8×8 single-channel input, batch 64: Conv2d 1→16 3×3 same, ReLU, MaxPool2d 2, Conv2d 16→32 3×3
same, ReLU, Flatten, Linear 512→10; softmax cross-entropy + L2 on the kernels; SGD.  Target:
tinygrad_l2 ≤ 3× PyTorch's time.  Prints the median of each and the ratio.
"""
import argparse
import json
import subprocess
import sys
import time

import numpy as np

LAM, LR, BATCH = 1e-3, 0.05, 64


def tinygrad_step():
    import tinygrad_l2 as tl
    tl.manual_seed(0)
    l2 = tl.nn.L2(LAM)
    model = tl.nn.Sequential(
        tl.nn.Conv2d(1, 16, 3, padding="same", kernel_regularizer=l2), tl.nn.ReLU(), tl.nn.MaxPool2d(2),
        tl.nn.Conv2d(16, 32, 3, padding="same", kernel_regularizer=l2), tl.nn.ReLU(), tl.nn.Flatten(),
        tl.nn.Linear(32 * 4 * 4, 10, kernel_regularizer=l2))
    opt = tl.optim.SGD(model.parameters(), lr=LR)
    rng = np.random.default_rng(0)
    x, y = tl.Tensor(rng.standard_normal((BATCH, 1, 8, 8)).astype(np.float32)), rng.integers(0, 10, BATCH)

    def step():
        opt.zero_grad()
        (tl.nn.softmax_cross_entropy(model(x), y) + model.regularization_loss()).backward()
        opt.step()
    return step


def torch_step():
    import torch
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding="same"), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding="same"), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(32 * 4 * 4, 10))
    kernels = [m.weight for m in model if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((BATCH, 1, 8, 8)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 10, BATCH))

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y) + LAM * sum((w * w).sum() for w in kernels)
        loss.backward()
        opt.step()
    return step


def measure(name, rounds):
    """Median seconds per step of one contender (run in this process)."""
    step = {"tinygrad_l2": tinygrad_step, "PyTorch": torch_step}[name]()
    for _ in range(5):
        step()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), float(min(times)), float(max(times))


def in_subprocess(name, rounds):
    code = (f"import sys; sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r}); "
            f"import json, convnet; print(json.dumps(convnet.measure({name!r}, {rounds})))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if result.returncode:
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50, help="timed steps per contender (default 50)")
    args = parser.parse_args(argv)
    results = {name: in_subprocess(name, args.rounds) for name in ("tinygrad_l2", "PyTorch")}
    print(f"ConvNet train step, batch {BATCH}, 8x8 input (median ms per step, min–max):")
    for name, r in results.items():
        print(f"  {name:<12} " + ("not installed" if r is None else
                                  f"{r[0] * 1e3:.2f} ms ({r[1] * 1e3:.2f}–{r[2] * 1e3:.2f})"))
    if results["PyTorch"] and results["tinygrad_l2"]:
        ratio = results["tinygrad_l2"][0] / results["PyTorch"][0]
        print(f"  ratio {ratio:.2f}× PyTorch (target ≤ 3×: {'met' if ratio <= 3 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
