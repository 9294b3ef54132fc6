"""check=N: snapshot the state a step changes, restore it, and name the first difference."""
import numpy as np

from .program import tensors_in


def _optimizers(program):
    return [e[1] for e in program.events if e[0] == "step"]


def snapshot(program):
    params = [(p, p._data.copy(), None if p._grad is None else p._grad.copy()) for p in program.params]
    states = [(o, {k: {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in s.items()}
                   for k, s in o.state.items()}, [dict(g) for g in o.param_groups]) for o in _optimizers(program)]
    schedulers = [(e[1], e[1].last_epoch) for e in program.events if e[0] == "schedule"]
    return params, states, schedulers


def restore(program, snapshot):
    params, states, schedulers = snapshot
    for p, data, grad in params:
        p.data, p._grad = data.copy(), None if grad is None else grad.copy()
    for optimizer, saved, groups in states:
        optimizer.state = {k: {n: (v.copy() if isinstance(v, np.ndarray) else v) for n, v in s.items()}
                           for k, s in saved.items()}
        for group, values in zip(optimizer.param_groups, groups):
            group.update(values)  # the learning rate a scheduler changed
    for scheduler, epoch in schedulers:
        scheduler.last_epoch = epoch


def compare(program, replayed, eager, after):
    """(name, replayed value, eager value) for each observable that differs."""
    names = program.names
    for i, (got, want) in enumerate(zip(tensors_in(replayed), tensors_in(eager))):
        if not np.allclose(got.data, want.data, rtol=1e-6, atol=1e-12, equal_nan=True):
            yield f"returned tensor {i}", got.data, want.data
    for (p, data, grad) in after[0]:
        name = names.get(id(p), "a parameter")
        if not np.allclose(data, p.data, rtol=1e-6, atol=1e-12):
            yield f"parameter {name}", data, p.data
        if (grad is None) != (p.grad is None) or (
                grad is not None and not np.allclose(grad, p.grad, rtol=1e-6, atol=1e-12)):
            yield f"gradient of {name}", np.asarray(grad if grad is not None else 0.0), \
                np.asarray(p.grad if p.grad is not None else 0.0)
