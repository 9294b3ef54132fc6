"""Shared test helpers."""
import numpy as np

import tinygrad_l2 as tl


def assert_machine_equal(actual, expected, ulps=8):
    """Equal up to a few units in the last place of the largest magnitude involved: the same
    arithmetic in a different order, not an approximation."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(np.abs(actual).max(initial=0), np.abs(expected).max(initial=0), 1e-300)
    bound = ulps * np.finfo(actual.dtype).eps * scale
    worst = np.abs(actual - expected).max(initial=0)
    assert worst <= bound, f"differ by {worst:.3g} > {ulps} ulps of {scale:.3g} ({bound:.3g})"


def mlp(sizes, seed=0, dtype=np.float64, kernel_regularizer=None, activation=tl.nn.ReLU):
    """A Sequential MLP: Linear -> activation ... -> Linear."""
    rng = np.random.default_rng(seed)
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(tl.nn.Linear(n_in, n_out, kernel_regularizer=kernel_regularizer,
                                   dtype=dtype, rng=rng))
        if i < len(sizes) - 2:
            layers.append(activation())
    return tl.nn.Sequential(*layers)
