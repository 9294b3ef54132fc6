"""`Traced`: a tl module that replays a graph recorded from another framework (a torch.fx
graph) step by step on tl Tensors, with the source's sub-modules and parameters under the
source's names ("block.0.weight").  Torch-free: the steps hold tl callables only."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

from ..nn.module import Module
from ..tensor import Tensor


class Ref(NamedTuple):
    """An argument that is the value of an earlier step (by the step's name)."""
    name: str


class Step(NamedTuple):
    """`name = call(*args, **kwargs)`; `call` is a tl function, or a sub-module's dotted path
    (kind "module"), or a parameter's dotted path (kind "parameter"); `source` is what the
    source graph called (for messages and printing)."""
    name: str
    kind: str
    call: Any
    args: tuple
    kwargs: dict
    source: str


class Container(Module):
    """A sub-module of the source that only holds others (its forward is the graph's)."""

    def forward(self, *args: Any) -> Any:
        raise TypeError("Container: this module only holds sub-modules; call the whole model")


def _resolve(value, env):
    if isinstance(value, Ref):
        return env[value.name]
    if isinstance(value, (tuple, list)):
        return type(value)(_resolve(v, env) for v in value)
    if isinstance(value, dict):
        return {k: _resolve(v, env) for k, v in value.items()}
    return value


class Traced(Module):
    """Runs `steps` in order: inputs, sub-module calls, parameter reads, tl functions, output."""
    steps: list[Step]
    inputs: list[str]
    output: Any

    def __init__(self, steps: list[Step], inputs: list[str], output: Any) -> None:
        super().__init__()
        object.__setattr__(self, "steps", list(steps))
        object.__setattr__(self, "inputs", list(inputs))
        object.__setattr__(self, "output", output)

    def attribute(self, path: str) -> Any:
        target: Any = self
        for part in path.split("."):
            target = getattr(target, part)
        return target

    def forward(self, *args: Any) -> Any:
        if len(args) != len(self.inputs):
            raise TypeError(f"Traced: expected {len(self.inputs)} inputs ({', '.join(self.inputs)}), "
                            f"got {len(args)}")
        env: dict[str, Any] = dict(zip(self.inputs, args))
        for step in self.steps:
            args_, kwargs = _resolve(step.args, env), _resolve(step.kwargs, env)
            if step.kind == "module":
                env[step.name] = self.attribute(step.call)(*args_, **kwargs)
            elif step.kind == "parameter":
                env[step.name] = self.attribute(step.call)
            else:
                env[step.name] = step.call(self, *args_, **kwargs)
        return _resolve(self.output, env)

    def code(self) -> str:
        """The replayed program, one line per step (as torch.fx's `.code` shows the source's)."""
        lines = [f"def forward(self, {', '.join(self.inputs)}):"]
        for step in self.steps:
            shown = ", ".join([repr(a) if not isinstance(a, Ref) else a.name for a in step.args] +
                              [f"{k}={v!r}" for k, v in step.kwargs.items()])
            call = step.source if step.kind == "parameter" else f"{step.source}({shown})"
            lines.append(f"    {step.name} = {call}")
        output = self.output.name if isinstance(self.output, Ref) else repr(self.output)
        lines.append(f"    return {output}")
        return "\n".join(lines)


Function = Callable[..., Any]  # a step's call: f(model, *args, **kwargs) on tl values
