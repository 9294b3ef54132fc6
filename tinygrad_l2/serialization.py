"""Saving and loading state dicts as .npz files: validated first, written atomically, never
unpickled.

An .npz is a zip archive of .npy members, one per key (`key.npy`).  We write it ourselves with
`zipfile` and numpy's `.npy` writer, so any string is a key (numpy's `np.savez(file, **arrays)`
takes keys as keyword arguments: a key named `file` or `allow_pickle` collides with its own
parameters), and we write to a temporary file beside the target and rename it over the target
only once complete: an error (or a crash) never leaves a truncated checkpoint.
"""
from __future__ import annotations

import os
import tempfile
import zipfile
from typing import Mapping

import numpy as np
import numpy.typing as npt

from .tensor import Tensor


def _arrays(state_dict):
    """{key: ndarray}, every key a string and every value numeric, or a clear error."""
    if not hasattr(state_dict, "items"):
        raise TypeError(f"save: expected a dict of name -> array, got {type(state_dict).__name__}")
    arrays = {}
    for name, value in state_dict.items():
        if not isinstance(name, str):
            raise TypeError(f"save: keys must be strings, got {name!r} ({type(name).__name__})")
        array = np.asarray(value.data if isinstance(value, Tensor) else value)
        if array.dtype.kind not in "fiub":
            raise TypeError(f"save: entry {name!r} has dtype {array.dtype}; only numeric "
                            f"arrays can be saved")
        arrays[name] = array
    return arrays


def save(state_dict: Mapping[str, npt.ArrayLike], path: str | os.PathLike[str]) -> str:
    """Write {name: array} to `path` as .npz (plain arrays, nothing executable), atomically:
    the previous file at `path`, if any, is replaced only by a complete new one."""
    arrays = _arrays(state_dict)
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"save: cannot write {path}: the folder {directory} does not "
                                f"exist (create it first, e.g. os.makedirs)")
    try:  # the temporary file is ours: an error names the target the user gave
        descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    except OSError as err:
        raise type(err)(err.errno, f"save: cannot write {path}: {err.strerror}") from None
    try:
        with os.fdopen(descriptor, "wb") as f:
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for name, array in arrays.items():
                    with archive.open(name + ".npy", "w", force_zip64=True) as member:
                        np.lib.format.write_array(member, array,
                                                  allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def load(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Read a state dict written by `save` (or np.savez); never unpickles, and says what is
    wrong with which file when it cannot be read."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path}")
    if not zipfile.is_zipfile(path):
        what = "a single .npy array" if _is_npy(path) else "not a zip archive"
        raise ValueError(f"load: {path} is not an .npz state dict ({what}); save one with "
                         f"tl.save(state_dict, path) or Module.save(path)")
    try:
        with zipfile.ZipFile(path) as archive:
            return {member[:-4]: _member(archive, member, path)
                    for member in archive.namelist() if member.endswith(".npy")}
    except zipfile.BadZipFile as err:
        raise ValueError(f"load: {path} is a damaged .npz archive (truncated or corrupt: "
                         f"{err})") from None


def _member(archive, member, path):
    try:
        with archive.open(member) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except ValueError as err:
        if "allow_pickle" in str(err):
            raise ValueError(f"load: {path}: entry {member[:-4]!r} holds Python objects, which "
                             f"would need unpickling: refused") from None
        raise ValueError(f"load: {path}: entry {member[:-4]!r} is corrupt ({err})") from None
    except (zipfile.BadZipFile, EOFError, OSError) as err:
        raise ValueError(f"load: {path}: entry {member[:-4]!r} is corrupt or truncated "
                         f"({err})") from None


def _is_npy(path):
    with open(path, "rb") as f:
        return f.read(6) == b"\x93NUMPY"
