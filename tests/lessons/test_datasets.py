"""The built-in dataset is deterministic and shaped as documented."""
import numpy as np

from tinygrad_l2.lessons.datasets import make_dataset


def test_same_seed_same_arrays_and_shapes():
    a, b = make_dataset(seed=0), make_dataset(seed=0)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert a.X_train.shape == (200, 2) and a.y_train.shape == (200,) and a.X_test.shape == (1000, 2)
    assert set(np.unique(a.y_train)) == {0, 1}
    assert not np.array_equal(make_dataset(seed=1).X_train, a.X_train)


def test_classes_overlap_so_there_is_noise_to_overfit():
    d = make_dataset(seed=0)
    # a nearest-neighbour classifier (memorizes the training set) is far from perfect on test
    distances = ((d.X_test[:, None, :] - d.X_train[None, :, :]) ** 2).sum(-1)
    nearest = d.y_train[distances.argmin(1)]
    assert 0.7 < (nearest == d.y_test).mean() < 0.9
