"""Bring a model in from Keras or PyTorch, or hand one to PyTorch, with its L2 carried exactly.

    tl.from_keras(model_or_path)            Keras 3 model or .keras file -> tl module
    tl.from_torch(module, example_input)    torch.nn.Module -> tl module (+ optimizer)
    tl.to_torch(model, optimizer=None)      tl module (+ optimizer) -> torch.nn.Module (+ optimizer)

torch and keras are optional (the `interop` extra) and imported only when one of these runs.
"""
from __future__ import annotations

from typing import Any

from ..nn.module import Module
from .layers import Chain, SamePaddedConv2d, Softmax, ToChannelsFirst, ToChannelsLast

__all__ = ["from_keras", "from_torch", "to_torch", "Chain", "Softmax", "ToChannelsFirst",
           "ToChannelsLast", "SamePaddedConv2d"]


def from_keras(model_or_path: Any) -> Chain:
    from . import keras
    return keras.from_keras(model_or_path)


from_keras.__doc__ = "See `tinygrad_l2.interop.keras.from_keras`."
