"""tl.optim: SGD, Adam, AdamW (PyTorch's rules) and a gradient-free particle swarm."""
from .adam import Adam, AdamW
from .groups import decay_penalty, param_groups
from .optimizer import Optimizer
from .pso import PSO
from .sgd import SGD
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "PSO", "lr_scheduler", "param_groups", "decay_penalty"]
