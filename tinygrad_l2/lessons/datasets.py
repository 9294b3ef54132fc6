"""The built-in dataset: a noisy 2-D two-class problem generated deterministically in code."""
from dataclasses import dataclass

import numpy as np


@dataclass
class Dataset:
    """Rows are examples (X: (m, 2) float64, y: (m,) int64 in {0, 1})."""
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray

    def column_major(self, m=None):
        """The first m training examples as the courses lay them out: X (2, m), Y (1, m)
        float64 (all of them when m is None)."""
        return self.X_train[:m].T, self.y_train[None, :m].astype(np.float64)


def make_moons(m, noise, rng):
    """Two interleaving half circles (as scikit-learn's make_moons), Gaussian noise added."""
    top = m // 2
    t_top, t_bottom = rng.uniform(0, np.pi, top), rng.uniform(0, np.pi, m - top)
    X = np.concatenate([np.stack([np.cos(t_top), np.sin(t_top)], axis=1),
                        np.stack([1 - np.cos(t_bottom), 0.5 - np.sin(t_bottom)], axis=1)])
    y = np.concatenate([np.zeros(top, np.int64), np.ones(m - top, np.int64)])
    X = X + rng.normal(0.0, noise, X.shape)
    order = rng.permutation(m)
    return X[order], y[order]


def make_dataset(n_train=200, n_test=1000, noise=0.35, seed=0):
    """Noisy two moons: few training points and enough noise that the classes overlap, so a
    wide network can fit the training set's noise (overfit) and L2 helps it generalize.
    The same seed gives the same arrays on every machine (numpy's PCG64)."""
    rng = np.random.default_rng(seed)
    X_train, y_train = make_moons(n_train, noise, rng)
    X_test, y_test = make_moons(n_test, noise, rng)
    return Dataset(X_train, y_train, X_test, y_test)
