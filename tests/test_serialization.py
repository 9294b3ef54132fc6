"""Checkpoints: validated before writing, written atomically, any string key, clear errors."""
import os
import zipfile

import numpy as np
import pytest

import tinygrad_l2 as tl


def test_round_trip_keeps_every_key_dtype_and_value(tmp_path):
    state = {"allow_pickle": np.arange(3.0), "file": np.ones((2, 2), np.float32),
             "arr_0": np.array([1, 2], np.int64), "Gewicht.ß/λ": np.array(True),
             "0.weight": np.zeros((0, 3))}
    tl.save(state, tmp_path / "ckpt.npz")
    loaded = tl.load(tmp_path / "ckpt.npz")
    assert list(loaded) == list(state)
    for key, value in state.items():
        assert loaded[key].dtype == value.dtype and np.array_equal(loaded[key], value)
    assert set(np.load(tmp_path / "ckpt.npz").files) == set(state)  # numpy reads it too


def test_a_rejected_save_leaves_the_old_checkpoint_byte_for_byte(tmp_path):
    path = tmp_path / "ckpt.npz"
    tl.save({"w": np.arange(4.0)}, path)
    before = path.read_bytes()
    for bad in ({"w": np.array(["a"])}, {1: np.zeros(2)}, {"w": np.array([object()])}):
        with pytest.raises(TypeError, match="save: "):
            tl.save(bad, path)
        assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.npz"]  # no temporary left behind


def test_module_save_and_load(tmp_path):
    model = tl.nn.Linear(3, 2, rng=0)
    model.save(tmp_path / "m.npz")
    other = tl.nn.Linear(3, 2, rng=1).load(tmp_path / "m.npz")
    np.testing.assert_array_equal(other.weight.data, model.weight.data)


def test_load_names_the_file_and_what_is_wrong(tmp_path):
    good = tmp_path / "good.npz"
    tl.save({"w": np.arange(1000.0)}, good)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:300])
    npy = tmp_path / "plain.npy"
    np.save(npy, np.arange(3.0))
    text = tmp_path / "notes.npz"
    text.write_text("not a checkpoint")
    corrupt = tmp_path / "corrupt.npz"
    with zipfile.ZipFile(corrupt, "w") as archive:
        archive.writestr("w.npy", b"\x93NUMPY garbage")
    pickled = tmp_path / "objects.npz"
    np.savez(pickled, w=np.array([{"a": 1}], dtype=object))
    cases = [(truncated, "not a zip archive|damaged|truncated"), (npy, "a single .npy array"),
             (text, "not a zip archive"), (corrupt, "entry 'w' is corrupt"),
             (pickled, "entry 'w' holds Python objects, which would need unpickling")]
    for path, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            tl.load(path)
        assert str(path) in str(err.value)
    with pytest.raises(FileNotFoundError, match="no such file"):
        tl.load(tmp_path / "missing.npz")


def test_save_into_a_missing_folder_names_the_target_not_a_temporary_file(tmp_path):
    target = tmp_path / "no-such-folder" / "model.npz"
    with pytest.raises(FileNotFoundError) as caught:
        tl.save({"w": np.ones(2)}, target)
    message = str(caught.value)
    assert str(target) in message and "does not exist" in message and ".tmp-" not in message
    assert not target.parent.exists()


def test_save_into_a_read_only_folder_names_the_target(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root ignores the mode bits
            pytest.skip("this user can write into a read-only folder")
        with pytest.raises(PermissionError, match=f"save: cannot write {folder / 'm.npz'}"):
            tl.save({"w": np.ones(2)}, folder / "m.npz")
    finally:
        folder.chmod(0o700)
