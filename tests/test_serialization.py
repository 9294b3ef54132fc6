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


# ---- nested checkpoints: model + optimizer + scheduler ---------------------------------------

def test_a_nested_checkpoint_keeps_every_type_and_value(tmp_path):
    state = {"model": {"0.weight": np.arange(6.0).reshape(2, 3), "n": np.array(3, np.int64)},
             "optimizer": {"state": {0: {"step": 7, "exp_avg": np.ones(2, np.float32)}, 1: {}},
                           "param_groups": [{"lr": 0.1 + 0.2, "betas": (0.9, 0.999), "params": [0, 1],
                                             "amsgrad": False, "maximize": None, "mode": "min",
                                             "best": float("inf"), "scale": np.float64(1 / 3)}]}}
    tl.save(state, tmp_path / "ckpt.npz")
    loaded = tl.load(tmp_path / "ckpt.npz")
    group = loaded["optimizer"]["param_groups"][0]
    assert group["lr"] == 0.1 + 0.2 and type(group["betas"]) is tuple and group["maximize"] is None
    assert group["best"] == float("inf") and group["amsgrad"] is False and group["params"] == [0, 1]
    assert type(group["scale"]) is np.float64 and group["scale"] == 1 / 3
    assert list(loaded["optimizer"]["state"]) == [0, 1] and loaded["optimizer"]["state"][0]["step"] == 7
    exp_avg = loaded["optimizer"]["state"][0]["exp_avg"]
    assert exp_avg.dtype == np.float32 and np.array_equal(exp_avg, np.ones(2))
    assert loaded["model"]["n"].dtype == np.int64 and np.array_equal(loaded["model"]["0.weight"], state["model"]["0.weight"])


def test_a_nested_checkpoint_refuses_what_it_cannot_hold_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "ckpt.npz"
    tl.save({"w": np.arange(4.0)}, path)
    before = path.read_bytes()
    for bad, message in (({"a": {1.5: 0}}, "keys must be strings"), ({"a": {"f": print}}, "'a/f' is a builtin_function_or_method"),
                         ({"a": {}, 3: 1}, "keys must be strings")):
        with pytest.raises(TypeError, match=message):
            tl.save(bad, path)
        assert path.read_bytes() == before


def test_a_corrupt_structure_is_named(tmp_path):
    path = tmp_path / "ckpt.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("__structure__.json", '{"dict": [["w", {"array": "missing"}]]}')
    with pytest.raises(ValueError, match=r"__structure__.json is corrupt \(KeyError"):
        tl.load(path)


def test_model_optimizer_and_scheduler_resume_bit_exactly(tmp_path):
    """Six Adam steps on a model with BatchNorm under a warm-up-then-cosine schedule, against
    three steps, a checkpoint, fresh objects (other initial weights) and three more steps."""
    rng = np.random.default_rng(0)
    batches = [(tl.Tensor(rng.standard_normal((8, 4))), rng.integers(0, 3, 8)) for _ in range(6)]

    def fresh(seed):
        model = tl.nn.Sequential(tl.nn.Linear(4, 8, dtype=np.float64, rng=seed), tl.nn.BatchNorm1d(8, dtype=np.float64),
                                 tl.nn.ReLU(), tl.nn.Linear(8, 3, dtype=np.float64, rng=seed + 1))
        opt = tl.optim.Adam(tl.optim.param_groups(model, weight_decay=1e-2), lr=0.05)
        sched = tl.optim.lr_scheduler.SequentialLR(opt, [tl.optim.lr_scheduler.LinearLR(opt, 0.1, total_iters=2),
                                                         tl.optim.lr_scheduler.CosineAnnealingLR(opt, 4)], [2])
        return model, opt, sched

    def train(model, opt, sched, batches):
        for x, y in batches:
            opt.zero_grad()
            tl.nn.softmax_cross_entropy(model(x), y).backward()
            opt.step()
            sched.step()

    reference = fresh(0)
    train(*reference, batches)
    first = fresh(0)
    train(*first, batches[:3])
    model, opt, sched = first
    tl.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()},
            tmp_path / "ckpt.npz")
    model, opt, sched = fresh(5)
    checkpoint = tl.load(tmp_path / "ckpt.npz")
    model.load_state_dict(checkpoint["model"])
    opt.load_state_dict(checkpoint["optimizer"])
    sched.load_state_dict(checkpoint["scheduler"])
    train(model, opt, sched, batches[3:])
    expected = reference[0].state_dict()
    assert list(model.state_dict()) == list(expected)
    for name, value in model.state_dict().items():
        assert value.dtype == expected[name].dtype and np.array_equal(value, expected[name]), name
    assert opt.param_groups[0]["lr"] == reference[1].param_groups[0]["lr"]
    for a, b in zip(opt.state.values(), reference[1].state.values()):
        assert a["step"] == b["step"] and np.array_equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_a_model_and_its_optimizer_pickled_after_a_step_train_on_exactly_as_the_originals():
    """pickle (and deepcopy) keep values, gradients and requires_grad, not the graph: a
    checkpoint taken mid-training with pickle.dump must not raise."""
    import pickle

    def made():
        model = tl.nn.MLP([4, 8, 3], kernel_regularizer=tl.nn.L2(1e-2), dtype=np.float64, rng=0)
        return model, tl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def train(model, opt, x, y):
        loss = tl.nn.softmax_cross_entropy(model(x), y) + model.regularization_loss()
        loss.backward()
        opt.step()
        opt.zero_grad()
        return loss
    model, opt = made()
    x, y = tl.Tensor(np.linspace(-1, 1, 8).reshape(2, 4)), np.array([0, 2])
    loss = train(model, opt, x, y)
    copied, copied_opt = pickle.loads(pickle.dumps((model, opt)))
    assert pickle.loads(pickle.dumps(loss)).item() == loss.item()
    for _ in range(3):
        assert train(copied, copied_opt, x, y).item() == train(model, opt, x, y).item()
    for p, q in zip(model.parameters(), copied.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
