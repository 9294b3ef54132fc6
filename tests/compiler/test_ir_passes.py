"""Each IR pass alone, on programs recorded from plain numpy code: what it rewrites, what it
must leave alone, and that the rewritten program computes what the original did."""
import numpy as np
import pytest

from tinygrad_l2.compiler import passes
from tinygrad_l2.compiler.emit import Emitter
from tinygrad_l2.compiler.lower import IR
from tinygrad_l2.compiler.naming import Names
from tinygrad_l2.compiler.symbolic import Instr, Recording, Value, recording


def program(fn, *arrays):
    """The IR of `fn` run on Values standing for `arrays` (its outputs returned)."""
    ir = IR()
    for i, a in enumerate(arrays):
        value = Value(a.copy(), role="argument")
        ir.add(Instr("input", ("argument", i), out=value), "arguments")
        ir.inputs.append(value)
    rec = Recording()
    with recording(rec):
        outs = fn(*ir.inputs)
    for instr in rec.instrs:
        ir.add(instr, "forward")
    ir.outputs = list(outs) if isinstance(outs, tuple) else [outs]
    return ir


def execute(ir, *arrays):
    """Emit the IR as numpy source, run it on `arrays`: (outputs, source)."""
    names = Names()
    for i, v in enumerate(ir.inputs):
        names.claim(v, f"a{i}")
    emitter = Emitter(ir, names)
    body = [line for _, line in emitter.lines(ir.instrs)]
    outputs = ", ".join(emitter.operand(v) for v in ir.outputs)
    source = "\n".join([f"def f({', '.join(f'a{i}' for i in range(len(arrays)))}):", *body,
                        f"    return [{outputs}]"])
    namespace = dict(emitter.constants, np=np)
    exec(source, namespace)  # noqa: S102 - test
    return namespace["f"](*[a.copy() for a in arrays]), source


rng = np.random.default_rng(0)
A, B = rng.standard_normal((4, 3)), rng.standard_normal((3, 4))


def test_in_place_writes_into_an_operand_only_once_nothing_reads_it():
    def fn(a, b):
        t = a + 2
        return (a + 1) * 2, np.exp(t) + t
    ir = program(fn, A, B)
    want, _ = execute(ir, A, B)
    passes.in_place(ir)
    got, source = execute(ir, A, B)
    assert "out=" in source  # (a + 1) dies at "* 2": written over
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    exp_line = next(line for line in source.splitlines() if "np.exp(" in line)
    assert "out=" not in exp_line  # a + 2 is read again after exp: never overwritten


def test_in_place_lets_a_primitive_declared_out_like_first_write_into_its_dying_first_operand():
    from tinygrad_l2.ops.elementwise import zero_where

    def fn(a, b):
        g, kept = a * 3, b.T * 1  # g dies at the first zero_where; kept is read again after
        return zero_where(g, b.T <= 0) + zero_where(kept, a <= 0), kept
    ir = program(fn, A, B)
    want, _ = execute(ir, A, B)
    passes.in_place(ir)
    got, source = execute(ir, A, B)
    calls = [i for i in ir.instrs if i.fn is zero_where.__wrapped__]
    assert "out=t" in source and "out" in calls[0].kwargs and "out" not in calls[1].kwargs
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_in_place_never_writes_into_an_input_or_a_view():
    ir = program(lambda a, b: (a * 2 + a.T.T, np.negative(b.T) * 3), A, B)
    passes.in_place(ir)
    got, source = execute(ir, A, B)
    assert "out=a0" not in source and "out=a1" not in source
    np.testing.assert_array_equal(got[1], -B.T * 3)


def test_fold_transposes_reads_the_array_itself():
    ir = program(lambda a, b: a.T.T @ b, A, B)
    passes.fold_transposes(ir)
    passes.dead_code(ir)
    got, source = execute(ir, A, B)
    assert ".T" not in source
    np.testing.assert_array_equal(got[0], A @ B)


def test_sum_of_squares_becomes_one_dot_product_only_when_the_square_is_read_once():
    ir = program(lambda a, b: np.square(a).sum(), A, B)
    passes.sum_of_squares(ir)
    passes.dead_code(ir)
    got, source = execute(ir, A, B)
    assert "np.vdot(a0, a0)" in source and "np.square" not in source
    assert got[0] == pytest.approx(np.sum(A * A), rel=1e-15)
    kept = program(lambda a, b: (np.square(a).sum(), np.square(a)), A, B)
    squares = [i for i in kept.instrs if i.fn is np.square]
    passes.sum_of_squares(kept)
    assert all(i.fn is np.square for i in squares)  # both squares are read elsewhere or kept


def test_a_broadcast_scalar_multiplies_as_the_scalar_only_where_the_shape_is_kept():
    s = np.array(0.25)
    ir = program(lambda a, g: (a * (2 * np.broadcast_to(g, (4, 3))), -np.broadcast_to(g, (4,))), A, s)
    want, _ = execute(ir, A, s)
    passes.scalars_unbroadcast(ir)
    passes.dead_code(ir)
    got, source = execute(ir, A, s)
    assert got[1].shape == (4,)  # a unary op keeps its broadcast shape
    np.testing.assert_array_equal(got[0], want[0])
    product = next(line for line in source.splitlines() if "a0 *" in line)
    assert "broadcast_to" not in product


def test_buffers_are_shared_only_by_products_whose_lifetimes_do_not_overlap():
    def fn(a, b):
        first = a @ b       # (4, 4), dead after the sum below
        s = first.sum()
        second = a @ b      # can reuse first's buffer
        third = a @ b       # second is still read: needs another buffer
        return (second * third).sum() + s
    ir = program(fn, A, B)
    want, _ = execute(ir, A, B)
    buffers = passes.buffers(ir)
    got, source = execute(ir, A, B)
    assert len(buffers) == 2 and source.count("out=BUF0") == 2 and source.count("out=BUF1") == 1
    assert got[0] == want[0]


def test_dead_code_drops_unread_results_but_keeps_writes():
    def fn(a, b):
        np.exp(a)           # nobody reads it
        c = a * 1.0
        c += 1              # a write: kept
        return c
    ir = program(fn, A, B)
    passes.dead_code(ir)
    got, source = execute(ir, A, B)
    assert "np.exp" not in source and "+= 1" in source
    np.testing.assert_array_equal(got[0], A + 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sum_of_squares_of_a_matrix_keeps_its_dtype_s_digits(dtype):
    W = rng.uniform(-0.1, 0.1, (160, 128)).astype(dtype)
    ir = program(lambda w: np.square(w).sum(), W)
    passes.sum_of_squares(ir)
    passes.dead_code(ir)
    got, source = execute(ir, W)
    exact = np.sum(W.astype(np.float64) ** 2)
    assert ("np.vecdot(a0, a0)" if dtype == np.float32 else "np.vdot(a0, a0)") in source  # float32:
    assert "np.square" not in source  # row dots summed pairwise, not one dot summing 10⁴ in float32
    assert got[0].dtype == dtype and abs(got[0] - exact) <= 4 * np.finfo(dtype).eps * exact


def test_a_power_of_two_scaling_moves_into_the_scalar_bit_for_bit():
    def fn(x, g):
        t = g * x
        t *= 2           # the square's backward: 2·(g·x)
        return t
    x, g = rng.standard_normal((5, 7)).astype(np.float32), np.array(0.3, np.float32)
    ir = program(fn, x, g)
    passes.powers_of_two_to_scalars(ir)
    got, source = execute(ir, x, g)
    assert "*= 2" not in source and got[0].dtype == np.float32
    np.testing.assert_array_equal(got[0], fn(x, g))


@pytest.mark.parametrize("fn", [
    lambda x, g: _scaled(g * x, 3),                       # 3 is no power of two: rounding differs
    lambda x, g: _scaled(g * x, 2, read_before=True),     # t read before it is scaled
    lambda x, g: _scaled(x * x, 2)])                      # no 0-d factor to take the 2
def test_a_scaling_that_would_change_a_result_stays_in_place(fn):
    x, g = rng.standard_normal((5, 7)), np.array(0.3)
    ir = program(fn, x, g)
    passes.powers_of_two_to_scalars(ir)
    got, source = execute(ir, x, g)
    assert "*= " in source
    for a, b in zip(got, fn(x, g) if isinstance(fn(x, g), tuple) else [fn(x, g)]):
        np.testing.assert_array_equal(a, b)


def _scaled(t, c, read_before=False):
    before = t + 1 if read_before else None
    t *= c
    return (t, before) if read_before else t


def test_a_broadcast_scalar_scattered_or_used_as_a_template_stays_0d():
    def fn(labels, g):
        spread = np.broadcast_to(-g, (4,))
        out = np.zeros_like(spread, shape=(4, 3))
        np.add.at(out, (np.arange(4), labels), spread)
        return out
    labels, g = np.array([0, 2, 2, 1]), np.array(0.25)
    ir = program(fn, labels, g)
    passes.scalars_unbroadcast(ir)
    passes.dead_code(ir)
    got, source = execute(ir, labels, g)
    assert "broadcast_to" not in source
    np.testing.assert_array_equal(got[0], fn(labels, g))


def test_only_numbers_nobody_can_change_or_keep_are_computed_once():
    from tinygrad_l2.compiler.invariants import hoist_constants
    want, _ = execute(_seeded_program()[0], A)
    ir, (seed, written, scale, returned, product) = _seeded_program()
    hoist_constants(ir)
    phase = {id(i.out): i.phase for i in ir.instrs if i.out is not None}
    assert phase[id(scale)] == phase[id(seed)] == "constants"
    assert "constants" not in (phase[id(written)], phase[id(returned)], phase[id(product)])
    assert ir.instrs[0].kind == "seed"
    got, _ = execute(ir, A)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def _seeded_program():
    ir = program(lambda a: a, A)
    seed = Value(np.ones(()))
    ir.add(Instr("seed", None, out=seed), "backward")
    rec = Recording()
    with recording(rec):
        scale = (seed * 1e-4) * 2        # from the seed alone: hoisted
        written = np.full_like(seed, 3.0)
        np.add(written, 1, out=written)  # written in place: every call
        returned = seed * 0.5            # returned: the caller may keep it
        product = scale * ir.inputs[0] + written
    for instr in rec.instrs:
        ir.add(instr, "backward")
    ir.outputs = [product, returned]
    return ir, (seed, written, scale, returned, product)


def _log_softmax_pick_backward(logp, labels, s, rows):
    g = np.zeros_like(s, shape=logp.shape)
    g[rows, labels] = s
    return g - np.exp(logp) * g.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_cross_entropy_backward_becomes_softmax_minus_one_hot_bit_for_bit(dtype):
    from tinygrad_l2.ops.shape import row_indices
    z = rng.standard_normal((6, 4)).astype(dtype) * 30  # some probabilities underflow to 0
    logp = z - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True)) - z.max(1, keepdims=True)
    labels, s = np.array([0, 3, 3, 1, 2, 0]), np.array(-0.01 / 6, dtype)
    fn = lambda lp, y, g: _log_softmax_pick_backward(lp, y, g, row_indices(6))  # noqa: E731
    ir = program(fn, logp, labels, s)
    want, _ = execute(ir, logp, labels, s)
    passes.softmax_cross_entropy(ir)
    passes.dead_code(ir)
    got, source = execute(ir, logp, labels, s)
    assert "zeros_like" not in source and "np.add.at" in source
    np.testing.assert_array_equal(got[0], want[0])


def test_a_pick_with_rows_that_may_repeat_keeps_the_general_backward():
    rows = np.array([0, 0, 1, 2, 3, 5])  # not one label per row
    logp = np.log(np.full((6, 4), 0.25))
    ir = program(lambda lp, y, g: _log_softmax_pick_backward(lp, y, g, rows), logp, np.zeros(6, int), np.array(-0.1))
    passes.softmax_cross_entropy(ir)
    assert any(i.fn is np.zeros_like for i in ir.instrs)


def _log_softmax_scatter_backward(logp, labels, s, rows):
    g = np.zeros_like(s, shape=logp.shape)
    np.add.at(g, (rows, labels), s)
    return g - np.exp(logp) * g.sum(axis=1, keepdims=True)


def test_input_rows_equal_to_arange_are_fused_and_listed_for_the_per_call_check():
    logp = np.log(np.full((5, 4), 0.25))
    args = (logp, np.array([0, 3, 3, 1, 2]), np.array(-0.2), np.arange(5))
    ir = program(_log_softmax_scatter_backward, *args)
    want, _ = execute(ir, *args)
    passes.softmax_cross_entropy(ir)
    passes.dead_code(ir)
    got, source = execute(ir, *args)
    assert "zeros_like" not in source and ir.arange_inputs == [ir.inputs[3]]
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize("rows", [np.array([0, 1, 2, 3, 3]), np.arange(5.0), np.arange(5)[::-1]])
def test_input_rows_not_arange_or_not_integers_keep_the_general_backward(rows):
    args = (np.log(np.full((5, 4), 0.25)), np.zeros(5, int), np.array(-0.2), rows)
    ir = program(lambda lp, y, s, r: _log_softmax_scatter_backward(lp, y, s, r.astype(int)) if r.dtype.kind == "f"
                 else _log_softmax_scatter_backward(lp, y, s, r), *args)
    passes.softmax_cross_entropy(ir)
    assert any(i.fn is np.zeros_like for i in ir.instrs) and ir.arange_inputs == []


def test_a_scaling_with_unrelated_lines_between_still_moves_into_the_scalar():
    def fn(x, g):
        t = g * x
        other = np.exp(x) + 1   # reads other arrays in between: not t
        t *= 2
        return t, other
    x, g = rng.standard_normal((5, 7)), np.array(0.3)
    ir = program(fn, x, g)
    passes.powers_of_two_to_scalars(ir)
    got, source = execute(ir, x, g)
    assert "*= 2" not in source
    for a, b in zip(got, fn(x, g)):
        np.testing.assert_array_equal(a, b)
