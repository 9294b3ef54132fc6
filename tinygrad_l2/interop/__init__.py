"""Bring a model in from Keras or PyTorch, or hand one to PyTorch, with its L2 carried exactly.

    tl.from_keras(model_or_path)                       Keras 3 model or .keras file -> tl module
    tl.from_torch(module, example_input, optimizer)    torch.nn.Module (+ optimizer) -> tl
    tl.from_torch(torch.export.load("net.pt2"))        an exported program (ATen graph) -> tl
    tl.to_torch(model, optimizer, l2_as="penalty")     tl module (+ optimizer) -> torch

torch and keras are optional (the `interop` extra: pip install 'tinygrad-l2[interop]') and are
imported only when one of these functions runs; Keras runs on its torch backend unless
KERAS_BACKEND says otherwise.
"""
from __future__ import annotations

from typing import Any

from ..nn.module import Module
from ..optim import Optimizer
from .layers import Chain, SamePaddedConv2d, Softmax, ToChannelsFirst, ToChannelsLast
from .traced import Traced

__all__ = ["from_keras", "from_torch", "to_torch", "Chain", "Traced", "Softmax",
           "ToChannelsFirst", "ToChannelsLast", "SamePaddedConv2d"]


def from_keras(model_or_path: Any) -> Chain:
    """A Keras 3 Sequential or functional model, or a `.keras` file, as a tl `Chain` with the
    same weights and regularizers (see `tinygrad_l2.interop.keras`)."""
    from . import keras
    return keras.from_keras(model_or_path)


def from_torch(module: Any, example_input: Any = None, optimizer: Any = None) -> Any:
    """A torch.nn.Module as a tl module, checked on `example_input`; with a torch optimizer,
    `(model, tl_optimizer)`, weight_decay carried as L2; a torch.export ExportedProgram alone,
    checked on its own example input (see `tinygrad_l2.interop.torch_import`)."""
    from . import torch_import
    if example_input is None and optimizer is None and \
            isinstance(module, torch_import._torch().export.ExportedProgram):
        from . import torch_export
        return torch_export.from_exported(module)
    return torch_import.from_torch(module, example_input, optimizer)


def to_torch(model: Module, optimizer: Optimizer | None = None, l2_as: str = "penalty") -> Any:
    """A tl model as a torch.nn.Module with `regularization_loss()`; with an optimizer,
    `(torch_model, torch_optimizer)` (see `tinygrad_l2.interop.handoff`)."""
    from . import handoff
    return handoff.to_torch(model, optimizer, l2_as)
