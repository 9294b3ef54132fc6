"""Many threads at once: lock bookkeeping and gradient accumulation stay exact."""
import threading

import numpy as np

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor, memory

THREADS = 8


def run_together(work, n=THREADS):
    """Start n threads on work(i) behind a barrier (so they really overlap); re-raise errors."""
    barrier, errors = threading.Barrier(n), []

    def target(i):
        try:
            barrier.wait()
            work(i)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_graphs_built_and_dropped_in_many_threads_leave_no_lock_behind():
    w = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    pending = (w ** 3).sum()  # this graph holds w until its backward

    def work(i):
        x = np.full(3, float(i))
        for _ in range(300):
            y = w * x
            del y

    run_together(work)
    assert not w.data.flags.writeable  # still held by `pending`
    pending.backward()
    assert w.data.flags.writeable and memory.held_count() == 0
    w.data[0, 0] = 1.0


def test_concurrent_backward_into_one_leaf_loses_no_update():
    w = Tensor(np.zeros(4), requires_grad=True)
    steps = 30

    def work(i):
        for _ in range(steps):
            (w * float(i + 1)).sum().backward()

    run_together(work)
    expected = steps * sum(range(1, THREADS + 1))
    np.testing.assert_array_equal(w.grad, np.full(4, float(expected)))


def test_concurrent_training_steps_on_a_shared_model_stay_consistent():
    model = tl.nn.Linear(3, 2, kernel_regularizer=tl.nn.L2(0.1), dtype=np.float64, rng=0)
    x = np.ones((4, 3))

    def work(i):
        for _ in range(20):
            (model(x).sum() + model.regularization_loss()).backward()

    single = tl.nn.Linear(3, 2, kernel_regularizer=tl.nn.L2(0.1), dtype=np.float64, rng=0)
    (single(x).sum() + single.regularization_loss()).backward()
    run_together(work)
    np.testing.assert_allclose(model.weight.grad, THREADS * 20 * single.weight.grad, rtol=1e-12)
    assert memory.held_count() == 0
