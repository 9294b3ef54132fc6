"""The `train --plot` pictures (matplotlib, the `plot` extra)."""
import numpy as np

from ..context import no_grad
from ..tensor import Tensor


def plot_runs(data, runs, out):
    """Accuracy and data-loss curves, and each run's decision boundary, as PNG files."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for run in runs:
        label = run.label
        steps, _, _, train_acc, test_acc = zip(*run.curve)
        axes[0].plot(steps, train_acc, label=f"{label} train")
        axes[0].plot(steps, test_acc, "--", label=f"{label} test")
        axes[1].plot(steps, [c[1] for c in run.curve], label=label)
    axes[0].set(xlabel="step", ylabel="accuracy", title="accuracy")
    axes[1].set(xlabel="step", ylabel="data loss", yscale="log", title="training data loss")
    for ax in axes:
        ax.legend(fontsize=8)
    curves = out / "train_curves.png"
    fig.tight_layout()
    fig.savefig(curves, dpi=100)
    plt.close(fig)

    xs = np.linspace(-2, 3, 200)
    ys = np.linspace(-2.2, 2.2, 200)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    fig, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 4))
    for ax, run in zip(np.atleast_1d(axes), runs):
        with no_grad():
            logits = run.model(Tensor(grid)).data.reshape(len(ys), len(xs))
        ax.contourf(xs, ys, logits > 0, alpha=0.3, cmap="coolwarm")
        ax.scatter(*data.X_train.T, c=data.y_train, cmap="coolwarm", s=10, edgecolors="k", linewidths=0.3)
        ax.set_title(f"{run.label}: train {run.train:.2f}, test {run.test:.2f}")
    boundaries = out / "decision_boundaries.png"
    fig.tight_layout()
    fig.savefig(boundaries, dpi=100)
    plt.close(fig)
    return [curves, boundaries]
