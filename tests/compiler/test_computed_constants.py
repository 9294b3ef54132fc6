"""Tensors a step computes outside the graph (an argmax, a comparison, an op under no_grad, a
detached target, `Tensor(y)` of an argument): the trace keeps the op that made each one
(context.Trace.made), so a replay computes it again from each call's inputs instead of baking
in the traced values; anything else that is not an argument still makes the step run eagerly."""
import warnings

import numpy as np
import pytest

import tinygrad_l2 as tl
from tinygrad_l2 import optim as O

from twins import F64, agree, frozen_batch_norm


def _twin_calls(body, calls=4):
    """Run `body(model, opt, X, y)` (a step's code, returning a tuple) eagerly and compiled from
    the same seeds: [(returned values, parameters)] per call must agree; the compiled step."""
    runs = []
    for compiled in (False, True):
        tl.manual_seed(0)
        model = tl.nn.Sequential(tl.nn.Linear(4, 8, dtype=F64), tl.nn.Tanh(), tl.nn.Linear(8, 3, dtype=F64))
        opt = O.SGD(model.parameters(), lr=0.1)
        step = lambda X, y: body(model, opt, X, y)  # noqa: E731
        step = tl.compile(step) if compiled else step
        rng, seen = np.random.default_rng(1), []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", tl.CompileWarning)
            for _ in range(calls):
                out = step(rng.standard_normal((6, 4)), rng.integers(0, 3, 6))
                seen.append([np.atleast_1d(np.asarray(getattr(o, "data", o), F64)) for o in out]
                            + [p.data.copy() for p in model.parameters()])
        runs.append((seen, step))
    (want, _), (got, step) = runs
    agree(want, got)
    return step


def _trained(model, opt, X, y):
    """zero_grad, the cross-entropy, backward, step: (logits, loss)."""
    opt.zero_grad()
    logits = model(X)
    loss = tl.nn.softmax_cross_entropy(logits, y)
    loss.backward(); opt.step()
    return logits, loss


def test_a_validation_forward_under_no_grad_is_computed_again_each_call():
    def body(model, opt, X, y):
        with tl.no_grad():  # before the update: reads the weights the loss reads
            held_out = tl.nn.softmax_cross_entropy(model(tl.Tensor(X) * 0.5), y)
        _, loss = _trained(model, opt, X, y)
        return loss, held_out.item()
    assert _twin_calls(body).fallback_reason is None


def test_an_op_under_no_grad_after_the_update_runs_eagerly_and_reads_the_new_weights():
    def body(model, opt, X, y):
        _, loss = _trained(model, opt, X, y)
        with tl.no_grad():
            after = tl.nn.softmax_cross_entropy(model(X), y)
        return loss, after
    assert "after opt.step()" in _twin_calls(body).fallback_reason


def test_a_detached_target_is_the_current_output_not_the_traced_one():
    def body(model, opt, X, y):  # self-distillation: match a detached copy of the output, scaled
        opt.zero_grad()
        logits = model(X)
        loss = tl.nn.softmax_cross_entropy(logits, y) + ((logits - logits.detach() * 0.9) ** 2).mean()
        loss.backward(); opt.step()
        return (loss,)
    assert _twin_calls(body).fallback_reason is None


def test_labels_converted_with_tensor_of_an_argument_follow_each_call():
    def body(model, opt, X, y):
        logits, loss = _trained(model, opt, X, y)
        hits = (logits.argmax(axis=1) == tl.Tensor(y)).float()  # y: int64 -> float32 each call
        return loss, hits, tl.where(hits > 0, logits.max(axis=1), 0.0)
    step = _twin_calls(body)
    assert step.fallback_reason is None and "argmax" in step.source


def test_writing_into_a_computed_tensors_array_makes_the_step_run_eagerly():
    w = tl.Tensor(np.array([[1.0, -2.0], [0.5, 1.0]]), requires_grad=True)

    def step(x):
        h = x @ w
        mask = (h > 0).float()
        mask.data[0] = 1.0  # a hand edit the replay could not repeat
        loss = (h * mask).sum()
        loss.backward()
        return loss
    compiled = tl.compile(step)
    with pytest.warns(tl.CompileWarning, match="computed tensor's array"):
        compiled(np.array([[-1.0, 1.0], [1.0, 1.0]]))
    assert compiled.fallback_reason is not None


def test_a_constant_made_inside_the_step_from_fresh_data_still_runs_eagerly():
    w = tl.Tensor(np.ones(3), requires_grad=True)
    rng = np.random.default_rng(0)

    def step(x):
        noise = tl.Tensor(rng.standard_normal(3))  # new data each call, made by no op
        loss = (w * x * noise).sum()
        loss.backward()
        return loss
    compiled = tl.compile(step)
    with pytest.warns(tl.CompileWarning, match="nor computed by an op of the step|the state of a Generator it draws from"):
        compiled(np.ones(3))


def test_an_op_after_the_update_reading_a_view_of_a_weight_taken_before_runs_eagerly():
    def body(model, opt, X, y):
        weight_t = model[0].weight.T  # a view: after the update it shows the new values
        _, loss = _trained(model, opt, X, y)
        return loss, (tl.Tensor(X) @ weight_t).sum()
    assert "after opt.step()" in _twin_calls(body).fallback_reason


@pytest.mark.parametrize("change", [
    lambda bn, rng: setattr(bn.running_mean, "data", rng.standard_normal(5)),  # a new array
    lambda bn, rng: np.copyto(bn.running_var.data, rng.uniform(0.5, 2.0, 5)),  # in place
    lambda bn, rng: setattr(bn, "running_var", rng.uniform(0.5, 2.0, 5)),  # another buffer tensor
    lambda bn, rng: bn.load_state_dict({**bn.state_dict(), "running_mean": rng.standard_normal(5)})])
def test_batch_norm_statistics_changed_between_calls_are_read_by_the_replay(change):
    runs = []
    for compiled in (False, True):
        model, step = frozen_batch_norm()
        step = tl.compile(step) if compiled else step
        rng, data, seen = np.random.default_rng(3), np.random.default_rng(1), []
        for call in range(4):
            if call == 2:
                change(model[1], rng)
            seen.append([step(data.standard_normal((6, 4)), data.integers(0, 3, 6)).data]
                        + [p.data.copy() for p in model.parameters()])
        runs.append((seen, step))
    (want, _), (got, step) = runs
    agree(want, got)
    assert step.fallback_reason is None and "running_mean = B" in step.source
