"""Fuzzing: random small programs over random shapes, every gradient against finite
differences in float64; an error raised midway leaves no half-built state."""
import gc

import numpy as np
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


def run(program, tensors):
    """Apply the steps; a step that is invalid for its shapes must raise ValueError, and is
    skipped.  Returns the scalar sum of every value made, and how many steps failed."""
    _, steps = program
    values = list(tensors)
    failed = 0
    for step in steps:
        kind, name, i = step[0], step[1], step[2] % len(values)
        try:
            if kind == "unary":
                out = UNARY[name](values[i])
            elif kind == "binary":
                out = BINARY[name](values[i], values[step[3] % len(values)])
            else:
                axis, keepdims = step[3], step[4]
                out = getattr(values[i], name)(axis=axis, keepdims=keepdims)
        except ValueError:
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
    total, failed = run(program, inputs)
    # every node in the graph is complete: parents set, backward runs and fills every input
    for node in tl.topological_order(total):
        if not node.is_leaf:
            assert node.parents and not node.released
    assert all(t.grad is None for t in inputs)
    total.backward()
    for t, a in zip(inputs, program[0]):
        assert t.grad.shape == a.shape and np.all(np.isfinite(t.grad))
    del total
    gc.collect()
    assert memory.held_count() == 0  # failed ops locked nothing; finished ones released everything
