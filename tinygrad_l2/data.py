"""tl.data: TensorDataset and DataLoader (PyTorch's names and semantics, on numpy)."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
import numpy.typing as npt

from .random import default_generator
from .tensor import Tensor


class TensorDataset:
    """Rows of several tensors of the same length: `dataset[i]` is a tuple of their i-th rows."""

    def __init__(self, *tensors: Tensor | npt.ArrayLike) -> None:
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor")
        self.tensors = tuple(_as_tensor(t) for t in tensors)
        lengths = {len(t) for t in self.tensors}
        if len(lengths) != 1:
            raise ValueError(f"TensorDataset: tensors of different lengths "
                             f"{[len(t) for t in self.tensors]}; they must share the first axis")

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: Any) -> tuple[Tensor, ...]:
        return tuple(t[index] for t in self.tensors)


def _as_tensor(value):
    """A Tensor as is; an array keeps its dtype (integer labels stay integers)."""
    if isinstance(value, Tensor):
        return value
    array = np.asarray(value)
    return Tensor(array, dtype=array.dtype if array.dtype.kind in "iu" else None)


class DataLoader:
    """Batches of a TensorDataset as tuples of Tensors.  With `shuffle`, each epoch (each
    `iter`) draws a new permutation from the generator `tl.manual_seed` seeds; `drop_last`
    drops a final batch smaller than `batch_size`.  Batches are new leaf tensors (gathered with
    numpy, not graph ops), as PyTorch's collate makes them."""

    def __init__(self, dataset: TensorDataset, batch_size: int = 1, shuffle: bool = False,
                 drop_last: bool = False) -> None:
        if not isinstance(dataset, TensorDataset):
            raise TypeError(f"DataLoader: expected a TensorDataset, got {type(dataset).__name__}")
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be a positive integer, got {batch_size!r}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)

    def __len__(self) -> int:
        n, size = len(self.dataset), self.batch_size
        return n // size if self.drop_last else -(-n // size)

    def __iter__(self) -> Iterator[tuple[Tensor, ...]]:
        n = len(self.dataset)
        order = default_generator().permutation(n) if self.shuffle else np.arange(n)
        for batch in range(len(self)):
            rows = order[batch * self.batch_size:(batch + 1) * self.batch_size]
            yield tuple(Tensor(t.data[rows], dtype=t.dtype) for t in self.dataset.tensors)
