"""Fuzzing: random small programs over random shapes, every gradient against finite
differences in float64; an error raised midway leaves no half-built state."""
import gc
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_l2 as tl
from tinygrad_l2 import Tensor
from tinygrad_l2 import memory

UNARY = {
    "tanh": lambda t: t.tanh(),
    "sigmoid": lambda t: t.sigmoid(),
    "exp": lambda t: (t * 0.3).exp(),
    "square": lambda t: t ** 2,
    "softmax": lambda t: t.softmax(axis=-1) if t.ndim else t,
    "log_softmax": lambda t: t.log_softmax(axis=-1) if t.ndim else t,
    "neg": lambda t: -t,
    "log1p_sq": lambda t: (t * t + 1).log(),
    "sqrt_pos": lambda t: (t * t + 1).sqrt(),
    "transpose": lambda t: t.T,
    "flatten": lambda t: t.reshape(-1),
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1),
    "matmul": lambda a, b: a @ b,
}


@st.composite
def programs(draw):
    """(inputs, steps): 1-3 float64 inputs and up to 6 ops, each naming its operands by index."""
    n_inputs = draw(st.integers(1, 3))
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=n_inputs, max_dims=3, max_side=3))
    inputs = [draw(hnp.arrays(np.float64, shape, elements=st.floats(-2, 2)))
              for shape in shapes.input_shapes]
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["unary", "binary", "reduce"]))
        if kind == "unary":
            steps.append(("unary", draw(st.sampled_from(sorted(UNARY))), draw(st.integers(0, 50))))
        elif kind == "binary":
            steps.append(("binary", draw(st.sampled_from(sorted(BINARY))),
                          draw(st.integers(0, 50)), draw(st.integers(0, 50))))
        else:
            steps.append(("reduce", draw(st.sampled_from(["sum", "mean"])), draw(st.integers(0, 50)),
                          draw(st.one_of(st.none(), st.integers(-3, 2))), draw(st.booleans())))
    return inputs, steps


# The engine's own messages for shapes that do not fit: the only errors a step may raise.
SHAPE_ERRORS = re.compile(r"not broadcastable|inner dimensions|at least one dimension|"
                          r"batch dimensions|out of range")


def fits(name, a, b):
    """Would BINARY[name](a, b) accept these shapes?  (numpy decides, on empty arrays.)"""
    try:
        (np.matmul if name == "matmul" else np.add)(np.empty(a.shape), np.empty(b.shape))
        return a.ndim > 0 and b.ndim > 0 if name == "matmul" else True
    except ValueError:
        return False


def run(program, tensors, choose_valid=True):
    """Apply the steps; returns the scalar sum of every value made and how many steps failed.

    With `choose_valid`, operands and axes are picked among those that fit (the program's
    numbers index the candidates), so almost every step runs; without it they are taken as
    drawn and a step may fail — but only with the engine's own shape error."""
    _, steps = program
    values = list(tensors)
    failed = 0
    for step in steps:
        kind, name, i = step[0], step[1], step[2] % len(values)
        try:
            if kind == "unary":
                out = UNARY[name](values[i])
            elif kind == "binary":
                if choose_valid and name == "matmul" and values[i].ndim == 0:
                    firsts = [v for v in values if v.ndim] or [values[i]]  # a scalar can't matmul
                    values.append(firsts[step[2] % len(firsts)])
                    i = len(values) - 1
                others = values
                if choose_valid:
                    others = [v for v in values if fits(name, values[i], v)]
                    if name == "matmul":  # b.T often fits where b does not (a @ a.T always)
                        swapped = [v.transpose(*range(v.ndim - 2), v.ndim - 1, v.ndim - 2)
                                   if v.ndim > 2 else v.T for v in values if v.ndim]
                        others += [v for v in swapped if fits(name, values[i], v)]
                    others = others or [None]
                other = others[step[3] % len(others)]
                if other is None:
                    failed += 1
                    continue
                out = BINARY[name](values[i], other)
            else:
                axis, keepdims = step[3], step[4]
                if choose_valid and axis is not None:
                    axis = axis % values[i].ndim if values[i].ndim else None
                out = getattr(values[i], name)(axis=axis, keepdims=keepdims)
        except ValueError as err:
            if not SHAPE_ERRORS.search(str(err)):
                raise
            failed += 1
            continue
        values.append(out)
    total = values[0].sum()
    for v in values[1:]:
        total = total + v.sum()
    return total, failed


@settings(max_examples=120, deadline=None)
@given(program=programs())
def test_random_programs_gradcheck(program):
    inputs = [Tensor(a.copy(), requires_grad=True, name=f"x{i}") for i, a in enumerate(program[0])]
    assert tl.gradcheck(lambda *ts: run(program, ts)[0], inputs)


@settings(max_examples=60, deadline=None)
@given(program=programs())
def test_errors_midway_leave_no_half_built_state(program):
    inputs = [Tensor(a.copy(), requires_grad=True) for a in program[0]]
    total, failed = run(program, inputs, choose_valid=False)
    # every node in the graph is complete: parents set, backward runs and fills every input
    for node in tl.topological_order(total):
        if not node.is_leaf:
            assert node.parents and not node.released
    assert all(t.grad is None for t in inputs)
    total.backward()
    for t, a in zip(inputs, program[0]):
        assert t.grad.shape == a.shape and np.all(np.isfinite(t.grad))
    del total
    if memory.held_count():  # (a failed op's traceback may hold a cycle; a full collection in a
        gc.collect()         # big test session costs 0.2 s, so only when something is held)
    assert memory.held_count() == 0  # failed ops locked nothing; finished ones released everything


def test_the_fuzzer_skips_almost_no_steps():
    """Programs drawn like `programs()` (numpy's generator, so the count is exact): with
    operands chosen among those that fit, fewer than 2% of steps may be skipped."""
    rng = np.random.default_rng(0)
    steps = skipped = 0
    for _ in range(300):
        n = int(rng.integers(1, 4))
        shapes = [tuple(int(d) for d in rng.integers(1, 4, rng.integers(0, 4))) for _ in range(n)]
        inputs = [Tensor(rng.standard_normal(shape)) for shape in shapes]
        program = []
        for _ in range(int(rng.integers(1, 7))):
            kind = ["unary", "binary", "reduce"][rng.integers(3)]
            if kind == "unary":
                program.append((kind, sorted(UNARY)[rng.integers(len(UNARY))], int(rng.integers(51))))
            elif kind == "binary":
                program.append((kind, sorted(BINARY)[rng.integers(len(BINARY))],
                                int(rng.integers(51)), int(rng.integers(51))))
            else:
                program.append((kind, ["sum", "mean"][rng.integers(2)], int(rng.integers(51)),
                                [None, *range(-3, 3)][rng.integers(7)], bool(rng.integers(2))))
        _, failed = run((None, program), inputs)
        steps, skipped = steps + len(program), skipped + failed
    assert steps > 800 and skipped / steps < 0.02, (skipped, steps)  # 9 of 1,055 when written (0.9%)


@settings(max_examples=60, deadline=None)
@given(program=programs(), seed=st.integers(0, 2**16))
def test_random_programs_compile_to_what_eager_computes(program, seed):
    """Differential: each program, compiled (tl.compile), replayed on new data equals eager
    (value and every gradient; rounding aside where a rewrite such as Σx² → vdot applies)."""
    params = [Tensor(a.copy(), requires_grad=True) for a in program[0]]

    def step(x):
        total = run(program, [params[0] * x, *params[1:]])[0]
        total.backward()
        return total
    compiled = tl.compile(step)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        x = rng.uniform(0.5, 1.5, params[0].shape)
        for p in params:
            p.grad = None
        want, grads = step(x).item(), [p.grad for p in params]
        for p in params:
            p.grad = None
        got = compiled(x).item()
        assert got == pytest.approx(want, rel=1e-12, abs=1e-12)
        for p, g in zip(params, grads):
            np.testing.assert_allclose(p.grad, g, rtol=1e-11, atol=1e-12)
    assert compiled.traces == 1 and not compiled.program.eager_only
