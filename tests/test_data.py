"""TensorDataset and DataLoader: PyTorch's batching, shuffling and drop_last."""
import numpy as np
import pytest

import tinygrad_l2 as tl


def dataset(n=10):
    return tl.data.TensorDataset(np.arange(n * 2.0).reshape(n, 2), np.arange(n))


def test_batches_in_order_with_a_short_last_batch():
    batches = list(tl.data.DataLoader(dataset(), batch_size=4))
    assert [len(x) for x, _ in batches] == [4, 4, 2] and len(tl.data.DataLoader(dataset(), 4)) == 3
    x, y = batches[2]
    np.testing.assert_array_equal(y.data, [8, 9])
    assert y.dtype == np.int64 and x.dtype == np.float64 and isinstance(x, tl.Tensor)


def test_drop_last_drops_the_short_batch():
    loader = tl.data.DataLoader(dataset(), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(y) for _, y in loader] == [4, 4]


def test_shuffle_follows_the_seed_and_changes_every_epoch():
    loader = tl.data.DataLoader(dataset(), batch_size=10, shuffle=True)
    tl.manual_seed(5)
    first, second = [np.concatenate([y.data for _, y in loader]) for _ in range(2)]
    tl.manual_seed(5)
    again = np.concatenate([y.data for _, y in loader])
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)
    assert sorted(first) == list(range(10))


def test_rows_stay_paired_when_shuffled():
    for x, y in tl.data.DataLoader(dataset(), batch_size=3, shuffle=True):
        np.testing.assert_array_equal(x.data[:, 0], 2 * y.data)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="different lengths"):
        tl.data.TensorDataset(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        tl.data.DataLoader(dataset(), batch_size=0)
    with pytest.raises(TypeError, match="expected a TensorDataset"):
        tl.data.DataLoader([1, 2, 3])
