"""`from_exported`: a torch.export program (`torch.export.load` of a .pt2 file) as a Traced tl
model, through the same replay as an fx trace, with the ATen ops of `torch_aten`.  Imports
torch: only `from_torch` of an ExportedProgram imports this module."""
from __future__ import annotations

from typing import Any

from .torch_import import TorchConversionError, _check_same_output, _replay
from .traced import Traced


def from_exported(program: Any) -> Traced:
    """A `torch.export` ExportedProgram (torch.export.load of a .pt2 file) as a Traced tl model:
    its ATen graph (`program.module()`) replayed op for op, an op with no tl counterpart
    refused by name, checked on the program's example input.  The program must have been
    exported in eval mode (its dropout and batch_norm ops carry the mode as a constant)."""
    import torch

    from . import torch_aten
    if not isinstance(program, torch.export.ExportedProgram):
        raise TypeError(f"from_exported: expected a torch.export.ExportedProgram, got "
                        f"{type(program).__name__}")
    module = program.module()
    args: tuple[Any, ...] = program.example_inputs[0] if program.example_inputs else ()
    kwargs: dict[str, Any] = program.example_inputs[1] if program.example_inputs else {}
    if len(args) != 1 or kwargs or not isinstance(args[0], torch.Tensor):
        raise TorchConversionError(f"from_torch: the exported program takes {len(args)} "
                                   f"positional and {len(kwargs)} keyword inputs; only one tensor "
                                   f"input is supported")
    for node in module.graph.nodes:
        if node.target in (torch.ops.aten.batch_norm.default, torch.ops.aten.dropout.default) \
                and node.args[5 if "batch_norm" in str(node.target) else 2]:
            raise TorchConversionError(f"from_torch: the program was exported in training mode "
                                       f"({node.target} with training=True): export it after "
                                       f"module.eval()")
    model = _replay(torch, module, module.graph, torch_aten)
    if len(model.output) != 1:  # the ATen graph returns a tuple of the program's outputs
        raise TorchConversionError(f"from_torch: the exported program has {len(model.output)} "
                                   f"outputs; only one is supported")
    object.__setattr__(model, "output", model.output[0])
    _check_same_output(torch, module, model, args[0], switch=False)
    return model
