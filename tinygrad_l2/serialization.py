"""Saving and loading state dicts as .npz files: validated first, written atomically, never
unpickled.

An .npz is a zip archive of .npy members, one per key (`key.npy`).  We write it ourselves with
`zipfile` and numpy's `.npy` writer, so any string is a key (numpy's `np.savez(file, **arrays)`
takes keys as keyword arguments: a key named `file` or `allow_pickle` collides with its own
parameters), and we write to a temporary file beside the target and rename it over the target
only once complete: an error (or a crash) never leaves a truncated checkpoint.

A checkpoint may nest: `tl.save({"model": model.state_dict(), "optimizer": opt.state_dict(),
"scheduler": scheduler.state_dict()}, path)`.  Then each array is a member named by its path
("optimizer/state/0/exp_avg.npy") and one JSON member, `__structure__.json`, holds the tree:
dicts (with their key types: an optimizer's state is keyed by int), lists, tuples and the
Python numbers, booleans, strings and None in it, exactly (a float's repr round-trips).  JSON
and .npy are plain data: loading still executes nothing.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from typing import Any, Mapping

import numpy as np

from . import context
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


STRUCTURE = "__structure__.json"


def _encode(value, where, arrays, top=False):
    """The JSON form of a nested checkpoint; arrays go to `arrays` under their path."""
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, str) and (top or not isinstance(key, int) or isinstance(key, bool)):
                raise TypeError(f"save: keys must be strings (or ints below the top level), got "
                                f"{key!r} ({type(key).__name__}) at {where or 'the top level'!r}")
            items.append([key, _encode(item, f"{where}/{key}" if where else str(key), arrays)])
        return {"dict": items}
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_encode(v, f"{where}/{i}", arrays) for i, v in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, float, str)) and not isinstance(value, np.generic):
        return value  # (np.float64 is a float: kept a numpy scalar below)
    array = np.asarray(value.data if isinstance(value, Tensor) else value)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"save: entry {where!r} is a {type(value).__name__}; a checkpoint holds "
                        f"numeric arrays, numbers, strings, None, lists, tuples and dicts")
    name = where
    while name in arrays:  # a key holding "/" could collide with a nested path
        name += "'"
    arrays[name] = array
    return {"scalar" if isinstance(value, np.generic) else "array": name}


def _decode(node, arrays):
    if not isinstance(node, dict):
        return node
    (kind, content), = node.items()
    if kind == "dict":
        return {key: _decode(item, arrays) for key, item in content}
    if kind in ("list", "tuple"):
        items = [_decode(item, arrays) for item in content]
        return items if kind == "list" else tuple(items)
    return arrays[content][()] if kind == "scalar" else arrays[content]


def _decode_checkpoint(text, arrays, path):
    try:
        return _decode(json.loads(text), arrays)
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ValueError(f"load: {path}: its {STRUCTURE} is corrupt ({type(err).__name__}: "
                         f"{err})") from None


def save(state_dict: Mapping[str, Any], path: str | os.PathLike[str]) -> str:
    """Write {name: array} to `path` as .npz (plain arrays, nothing executable), atomically:
    the previous file at `path`, if any, is replaced only by a complete new one.  A value
    that is a dict makes a nested checkpoint (see the module's docstring)."""
    context.record_unreplayable(f"tl.save writes the file {os.fspath(path)!r}")  # (a traced step:
    structure = None                                                       # eager every call)
    if hasattr(state_dict, "items") and any(isinstance(v, Mapping) for v in state_dict.values()):
        arrays: dict[str, np.ndarray] = {}
        structure = json.dumps(_encode(state_dict, "", arrays, top=True)).encode()
    else:
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
                if structure is not None:
                    archive.writestr(STRUCTURE, structure)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a state dict written by `save` (or np.savez): {name: array}, or the nested
    checkpoint as it was saved; never unpickles, and says what is wrong with which file when
    it cannot be read."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path}")
    if not zipfile.is_zipfile(path):
        what = "a single .npy array" if _is_npy(path) else "not a zip archive"
        raise ValueError(f"load: {path} is not an .npz state dict ({what}); save one with "
                         f"tl.save(state_dict, path) or Module.save(path)")
    try:
        with zipfile.ZipFile(path) as archive:
            arrays = {member[:-4]: _member(archive, member, path)
                      for member in archive.namelist() if member.endswith(".npy")}
            if STRUCTURE not in archive.namelist():
                return arrays
            return _decode_checkpoint(archive.read(STRUCTURE), arrays, path)
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
