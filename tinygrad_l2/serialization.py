"""Saving and loading state dicts as .npz files, without pickle."""
import os

import numpy as np

from .tensor import Tensor


def save(state_dict, path):
    """Write {name: array} to `path` (numpy's .npz: plain arrays, nothing executable)."""
    arrays = {name: np.asarray(value.data if isinstance(value, Tensor) else value)
              for name, value in state_dict.items()}
    for name, array in arrays.items():
        if array.dtype.kind not in "fiub":
            raise TypeError(f"save: entry {name!r} has dtype {array.dtype}; only numeric "
                            f"arrays can be saved")
    with open(os.fspath(path), "wb") as f:
        np.savez(f, **arrays)
    return path


def load(path):
    """Read a state dict written by `save`; never unpickles (allow_pickle=False)."""
    try:
        with np.load(os.fspath(path), allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as err:  # object arrays need pickle: refuse them
        raise ValueError(f"load: {path} holds data that would need unpickling, which is "
                         f"refused ({err})") from None
