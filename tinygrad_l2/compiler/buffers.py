"""Buffer reuse: two matmul buffers of one shape and dtype become one when their lifetimes do
not overlap (the second is first written after the last line that reads the first).

Lifetimes are found on the generated source itself, so they cover every alias: a variable
may hold a buffer if its expression may return a view of, or write into, something that holds
it (W1_T = W1.T, Z1 = np.add(M1, b1, out=M1), dW = dW_T.T, x[i], any call not known to
return a new array).  Arithmetic (a * b, -a), reductions (x.sum()) and numpy functions called
without out= make new arrays and hold nothing.  Over-approximating only makes a lifetime
longer, never shorter: safe.
"""
import ast
import re


def reuse_buffers(source, buffers):
    """(source with reused buffers renamed, the buffers still needed)."""
    body = ast.parse(source).body[0].body
    holds, first_write, last_read = {}, {}, {}
    for i, statement in enumerate(body):
        for name in _loads(statement):
            for buffer in holds.get(name, ()):
                last_read[buffer] = i
        for buffer in _buffers_named(statement, buffers):
            first_write.setdefault(buffer, i)
        if isinstance(statement, ast.Assign) and isinstance(statement.targets[0], ast.Name):
            holds[statement.targets[0].id] = _held(statement.value, holds, buffers)
    renames = _assign(buffers, first_write, last_read)
    for old, new in renames.items():
        source = re.sub(rf"\b{old}\b", f"{new}", source)
    return source, {k: v for k, v in buffers.items() if k not in renames}


def _assign(buffers, first_write, last_read):
    """Greedy, in order of first write: take a same-shaped buffer whose last reader is done."""
    free_after, renames = {}, {}  # kept buffer -> last line its holders read
    for buffer in sorted(first_write, key=first_write.get):
        array = buffers[buffer]
        for kept, done in free_after.items():
            other = buffers[kept]
            if other.shape == array.shape and other.dtype == array.dtype and done < first_write[buffer]:
                renames[buffer] = kept
                free_after[kept] = max(last_read.get(buffer, first_write[buffer]), done)
                break
        else:
            free_after[buffer] = last_read.get(buffer, first_write[buffer])
    return renames


_NEW_ARRAY_METHODS = {"sum", "mean", "max", "min", "copy"}
_NEW_ARRAY_FUNCTIONS = {"np.exp", "np.log", "np.sqrt", "np.tanh", "np.abs", "np.sign", "np.square",
                        "np.maximum", "np.minimum", "np.add", "np.subtract", "np.multiply",
                        "np.matmul", "np.vdot", "np.array", "np.zeros_like", "np.where",
                        "sigmoid", "_place", "_scatter", "_log_softmax"}


def _held(value, holds, buffers):
    """The buffers whose memory the value of this expression may share."""
    if isinstance(value, (ast.BinOp, ast.UnaryOp, ast.Compare, ast.Constant)):
        return set()
    if isinstance(value, (ast.Attribute, ast.Subscript)):  # x.T, x[i]: a view of x
        return _held(value.value, holds, buffers)
    if isinstance(value, ast.Name):
        return set(holds.get(value.id, ())) | ({value.id} & buffers.keys())
    if isinstance(value, ast.Call):
        out = [k.value for k in value.keywords if k.arg == "out"]
        if out:
            return _held(out[0], holds, buffers) | (_names(out[0]) & buffers.keys())
        function = ast.unparse(value.func)
        if function in _NEW_ARRAY_FUNCTIONS or (
                isinstance(value.func, ast.Attribute) and value.func.attr in _NEW_ARRAY_METHODS):
            return set()
    mentioned = _names(value)
    return set().union(*(holds.get(n, ()) for n in mentioned)) | (mentioned & buffers.keys())


def _names(node):
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _loads(statement):
    """Every name a statement reads (an augmented assignment reads its target too)."""
    names = {n.id for n in ast.walk(statement) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    if isinstance(statement, ast.AugAssign) and isinstance(statement.target, ast.Name):
        names.add(statement.target.id)
    return names


def _buffers_named(statement, buffers):
    return [n.id for n in ast.walk(statement) if isinstance(n, ast.Name) and n.id in buffers]
