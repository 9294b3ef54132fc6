"""tl.nn: modules, layers, Keras-style regularizers and losses."""
from .layers import Linear, ReLU, Sequential, Sigmoid, Tanh
from .losses import (binary_cross_entropy, binary_cross_entropy_with_logits, quadratic_cost,
                     softmax_cross_entropy)
from .module import Module
from .regularizers import L1, L1L2, L2

__all__ = ["Module", "Linear", "Sequential", "ReLU", "Sigmoid", "Tanh", "L1", "L2", "L1L2",
           "quadratic_cost", "binary_cross_entropy", "binary_cross_entropy_with_logits",
           "softmax_cross_entropy"]
