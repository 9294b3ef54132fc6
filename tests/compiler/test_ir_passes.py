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
