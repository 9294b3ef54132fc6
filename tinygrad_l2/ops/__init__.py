"""Every built-in op: forward and backward side by side, saving only what backward needs.

Each op is a public `Function` like one a user would write.  Notation: `g` is the gradient of
the final scalar with respect to the op's output; backward returns the gradient with respect
to each input (the vector-Jacobian product).  Gradients of broadcast inputs come back in the
output's shape; the engine's `unbroadcast` sums them to each input's own shape, once, for
every op.  A Python scalar operand (`x * 0.5`) is an argument, not a tensor: it gets no
gradient, and float32 stays float32 (numpy 2, NEP 50).
"""
from .base import Op
from .elementwise import (Abs, Add, Cast, Clamp, Div, Exp, Log, Maximum, Minimum, Mul, Neg, Pow,
                          ReLU, Sigmoid, Sqrt, Sub, Tanh, Where, sigmoid)
from .matmul import MatMul
from .no_gradient import ArgReduce, Compare
from .reduce import Max, Mean, Min, Sum
from .shape import Concatenate, Index, PickLabels, Reshape, Stack, Transpose, one_per_row, row_indices
from .softmax import LogSoftmax, Softmax

__all__ = ["Op", "Add", "Sub", "Mul", "Div", "Neg", "Pow", "Exp", "Log", "Sqrt", "ReLU", "Sigmoid",
           "sigmoid", "Tanh", "Abs", "Cast", "Clamp", "Compare", "Maximum", "Minimum", "Where", "MatMul", "Sum",
           "Mean", "Max", "Min", "ArgReduce", "Reshape", "Transpose", "Index", "PickLabels", "Concatenate", "Stack",
           "row_indices", "one_per_row", "Softmax", "LogSoftmax"]
