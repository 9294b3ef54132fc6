"""tl.nn: modules, layers, Keras-style regularizers, losses and `tl.nn.functional`."""
from .layers import (Conv2d, Dropout, Flatten, Linear, ModuleList, ReLU, Sequential, Sigmoid,
                     Tanh)
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .losses import (BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, binary_cross_entropy,
                     binary_cross_entropy_with_logits, mse_loss, quadratic_cost,
                     softmax_cross_entropy)
from .module import Module, weights_and_biases
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .mlp import MLP
from .regularizers import L1, L1L2, L2
from . import functional

__all__ = ["Module", "MLP", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Dropout",
           "BatchNorm1d", "BatchNorm2d", "LayerNorm",
           "Sequential", "ModuleList", "ReLU", "Sigmoid", "Tanh", "L1", "L2", "L1L2",
           "quadratic_cost", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "softmax_cross_entropy", "mse_loss", "MSELoss", "CrossEntropyLoss", "BCELoss",
           "BCEWithLogitsLoss", "functional", "weights_and_biases"]
