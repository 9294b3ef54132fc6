"""The SGD update written into the step, when the algebra allows it and nobody can tell.

A step `backward(); opt.step(); opt.zero_grad()` with plain SGD leaves no gradient behind:
zero_grad sets every `.grad` to None.  The gradients are then dead after the update, and two
exact rewrites apply (they change rounding only):

- learning rate into the seed:  θ ← θ − η·∂L/∂θ,  and η·∂L/∂θ = ∂(η·L)/∂θ, so the backward
  starts from dL = η instead of 1 and the update is θ ← θ − d θ (no multiply by η);
- L2 as a decay:  for L = data + c·Σw²,  ∂L/∂w = ∂data/∂w + 2c·w, so
      w − η·(∂data/∂w + 2c·w) = (1 − 2ηc)·w − η·∂data/∂w,
  one scaling of w instead of a w-sized gradient array; coupled weight decay λ adds η·λ to
  the same factor.  In float64 only: in float32, 1 − 2ηc keeps 2ηc to the nearest 6e-8 (2ηc =
  2e-7, λ = 1e-4 at η = 1e-3, would decay 11% too little; below 3e-8 not at all), so there
  w − (2ηc·w + η·∂data/∂w) is computed, as eager rounds it.  Only weights whose gradient has that term decay: biases never, unless the
  optimizer's weight_decay says so (then, as in eager SGD, every parameter of the group).

Not applied (the step calls `opt.step()` on written gradients instead) for Adam/AdamW (Adam on
L2 is not AdamW), momentum (the buffer holds unscaled gradients), several parameter groups,
a gradient that survives the call, or, at a given call, a parameter that already has a
gradient, is held by another pending graph, or is read-only.
"""
import functools
import operator

import numpy as np

from ..memory import held_count, is_held
from ..ops import Op
from ..optim.sgd import SGD
from .guards import groups_unchanged
from .symbolic import Instr, Recording, Value, recording
from .written_step import WrittenStep


class FusedUpdate:
    """What an SGD update written into the step needs to know, and its per-call check."""

    def __init__(self, optimizer, cleared, params):
        self.optimizer, self.cleared, self.params = optimizer, cleared, params
        group = optimizer.param_groups[0]
        self.weight_decay = group["weight_decay"]
        self.hyper_unchanged = groups_unchanged(optimizer)  # (written in: a change runs opt.step())

    @property
    def lr(self):
        return self.optimizer.param_groups[0]["lr"]

    title = "update: SGD; L2 (and weight_decay) as a decay of the weights it touches, (1 − lr·κ)·W"

    def arguments(self):
        """What the updating function takes after the step's own arguments: lr."""
        return (self.lr,)

    def write(self, ir):
        _write_seeded(ir, self)
        if any(w.dtype != np.float64 for _, w in ir.params):
            self.title = ("update: SGD; L2 (and weight_decay) as lr·κ·W added to the gradient of "
                          "the weights it touches (in float32, 1 − lr·κ would round)")

    def ready(self):
        """May this call run the written update?  The hyper-parameters are as traced (the
        step's guards check the optimizer's groups before every replay; the learning rate is
        read each call); no gradient anywhere to accumulate into or to step on, every
        parameter writable in place."""
        if any(p._grad is not None for p in self.cleared) or not self.hyper_unchanged():
            return False
        held = held_count() > 0
        return all(p._requires_grad and p._data.flags.writeable and not (held and is_held(p._data))
                   for p in self.params)


def _steps_what_backward_made(kinds):
    """One backward, then one step, with no zero_grad between them (eager's step would then
    find no gradient), and no scheduler stepped (it may change any hyper-parameter, which the
    written update holds as constants) nor a tensor frozen or unfrozen (eager's step skips a
    frozen one) before the step: (backward, step) indices, or None."""
    if kinds.count("backward") != 1 or kinds.count("step") != 1:
        return None
    backward, step = kinds.index("backward"), kinds.index("step")
    if step < backward or "zero_grad" in kinds[backward:step] or {"schedule", "requires_grad"} & set(kinds[:step]):
        return None
    return backward, step


def plan(events, params, nodes=()):
    """How this step's update is written in: the learning rate in the seed (plain SGD whose
    gradients die with the call, below), else the optimizer's own update (written_step.py),
    else None (the program calls opt.step())."""
    return _seeded(events, params, nodes) or _written(events, params)


def _written(events, params):
    found = _steps_what_backward_made([e[0] for e in events])
    if found is None:
        return None
    backward, step = found
    optimizer = events[step][1]
    if not hasattr(optimizer, "update") or not hasattr(optimizer, "param_groups"):
        return None
    if not _library_step(optimizer):
        return None  # a step() of the user's own (a warm-up) runs as it is, every call
    everyone = {id(p) for g in optimizer.param_groups for p in g["params"]}
    cleared_before = everyone <= _cleared(events[:backward])
    grads_dead = {id(p) for p in params} <= _cleared(events[step + 1:])
    return WrittenStep(optimizer, params, grads_dead, cleared_before)


def _library_step(optimizer):
    """Does `optimizer.step()` run this package's own step, which the written update repeats?
    Not if replaced on the instance, nor if a class of the user's overrides a method it calls
    (step, even one that copies its name with functools.wraps, or _params_with_grad); a
    subclass may override update(), which the written update records."""
    if "step" in vars(optimizer) or not getattr(type(optimizer).step, "library_step", False):
        return False
    for cls in type(optimizer).__mro__:
        if cls.__module__.partition(".")[0] == "tinygrad_l2":
            return True
        if any(callable(v) and k not in _MAY_OVERRIDE for k, v in vars(cls).items()):
            return False
    return False


_MAY_OVERRIDE = {"update", "__init__", "__init_subclass__", "__repr__"}


def _cleared(events):
    """ids of the parameters some zero_grad(set_to_none=True) among `events` clears."""
    return {id(p) for e in events if e[0] == "zero_grad" and e[2] is True for p in _targets(e[1])}


def _seeded(events, params, nodes=()):
    """A FusedUpdate if this step's events allow one, else None: one backward, then one step of
    a plain SGD with one group holding every traced parameter, then a zero_grad(set_to_none)
    that clears them all."""
    found = _steps_what_backward_made([e[0] for e in events])
    if found is None or any(not n.is_leaf and not isinstance(n, Op) for n in nodes):
        return None  # lr in the seed needs backwards linear in g: a custom Function may clip it
    if any(_narrow_float(n) for n in nodes):
        return None  # a float16 gradient lr times smaller falls among float16's subnormals
    backward, step = found
    optimizer = events[step][1]
    if type(optimizer) is not SGD or not _library_step(optimizer) or len(optimizer.param_groups) != 1:
        return None
    group = optimizer.param_groups[0]
    if group["momentum"] != 0 or group["nesterov"]:
        return None
    cleared, dead = [], set()
    for event in events[step + 1:]:
        if event[0] == "zero_grad" and event[2] is True:
            targets = _targets(event[1])
            cleared += targets
            dead.update(id(p) for p in targets)
    in_group = {id(p) for p in group["params"]}
    if not all(id(p) in dead and id(p) in in_group for p in params):
        return None
    everyone = {id(p): p for p in [*cleared, *group["params"]]}
    for event in events[:backward]:
        if event[0] == "zero_grad":
            everyone.update((id(p), p) for p in _targets(event[1]))
    return FusedUpdate(optimizer, list(everyone.values()), params)


def _narrow_float(node):
    """Does the node's array (so its gradient) hold a float narrower than float32?"""
    dtype = node.tensor()._data.dtype if node.is_leaf else node.out_dtype
    return dtype.kind == "f" and dtype.itemsize < 4


def _targets(owner):
    """The parameters a zero_grad of this optimizer or module clears."""
    if hasattr(owner, "param_groups"):
        return [p for group in owner.param_groups for p in group["params"]]
    return list(owner.parameters())


def _write_seeded(ir, update):
    """Rewrite the IR: the seed becomes lr, and the gradients' hand-over to `.grad` and the
    optimizer's step become, for each parameter W with gradient dW = dW_data + k·W (k a
    scalar the penalty's backward made): W *= 1 − (k + lr·λ_wd);  W −= dW_data."""
    seed = next(i for i in ir.instrs if i.kind == "seed")
    seed.kind = "lr_seed"
    step = next(i for i in ir.instrs if i.kind == "event" and i.fn[0] == "step")
    ir.instrs = [i for i in ir.instrs if i.kind != "grads"]
    at = ir.instrs.index(step)
    del ir.instrs[at]
    lr = Value(np.float64(update.lr), role="lr")
    lines = [Instr("lr", None, out=lr)]
    for tensor, weight in ir.params:
        g = ir.grads.get(id(tensor))
        if g is not None:
            lines += _update_lines(ir, weight, g, lr, update.weight_decay)
    for instr in lines:
        instr.phase = "update"
    ir.instrs[at:at] = lines
    ir.grads = {}


def _update_lines(ir, weight, g, lr, weight_decay):
    rest, decays = [], []
    writers: dict[int, list] = {}
    for instr in ir.instrs:
        if instr.writes is not None:
            writers.setdefault(id(instr.writes), []).append(instr)
    for term in _terms(g, writers):
        factors = _scale_of(term, weight, writers.get(id(term), []))
        (rest.append(term) if factors is None else decays.append(factors))
    rec = Recording()
    with recording(rec):
        for i, factors in enumerate(decays):  # W·s·2 (the square's backward): k = s·2
            decays[i] = functools.reduce(operator.mul, factors)
            if isinstance(decays[i], Value):
                ir.decays.append((decays[i], weight))  # named k<W> in the source
        if len(rest) == 1 and isinstance(rest[0], Value):
            ir.data_grads.append((rest[0], weight))
        factor = None
        for k in decays + ([lr * weight_decay] if weight_decay else []):
            factor = k if factor is None else factor + k
        if factor is not None and weight.dtype != np.float64:  # 1 − lr·κ would round away
            rest.insert(0, weight * factor)                    # most of a small lr·κ: added
            rec.instrs[-1].note = "the L2 gradient: lr·κ·W"
        elif factor is not None:
            np.multiply(weight, 1 - factor, out=weight)
            rec.instrs[-1].note = "the L2 gradient as weight decay"
        if rest:
            total = rest[0]
            for term in rest[1:]:
                total = total + term
            np.subtract(weight, total, out=weight)
    return rec.instrs


def _terms(v, writers):
    """The addends of a gradient sum (the engine's accumulation), unless written in place."""
    instr = v.instr
    if (instr is not None and instr.kind == "call" and instr.fn is np.add and not instr.kwargs
            and id(v) not in writers and all(isinstance(a, Value) for a in instr.args)):
        return _terms(instr.args[0], writers) + _terms(instr.args[1], writers)
    return [v]


def _scale_of(term, weight, writes):
    """[k, c, ...] when `term` is weight·k for a 0-d k, then scaled in place by 0-d numbers
    c (`writes`: the instructions writing into it, such as the square's `*= 2`), else None."""
    instr = term.instr
    if (instr is None or instr.kind != "call" or instr.fn is not np.multiply or instr.kwargs
            or len(instr.args) != 2):
        return None
    a, b = instr.args
    other = b if a is weight else a if b is weight else None
    if other is None or not _scalar(other):
        return None
    factors = [other]
    for write in writes:
        if not (write.fn is np.multiply and write.kwargs == {"out": term} and write.args[0] is term
                and _scalar(write.args[1])):
            return None
        factors.append(write.args[1])
    return factors


def _scalar(x):
    return np.ndim(x.example if isinstance(x, Value) else x) == 0
