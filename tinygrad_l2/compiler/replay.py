"""An op replayed through its own methods: what the IR calls for an op whose forward or
backward has no symbolic form (it reads values into Python, or writes into plain arrays)."""
import numpy as np


class Replayer:
    """Runs one op's own forward/backward on a fresh node each call, as the engine would
    (the contract checks aside: they passed when the step was traced)."""

    def __init__(self, traced):
        from .lower import _attributes
        self.traced, self.node = traced, None
        self.attributes = _attributes(traced)
        self.__name__ = type(traced).__name__

    def forward(self, *arrays):
        node = type(self.traced).__new__(type(self.traced))
        node.saved_arrays, node.parents = (), self.traced.parents
        for key, value in self.attributes.items():
            setattr(node, key, value)
        self.node = node
        return np.asarray(node.forward(*arrays))

    def backward(self, g):
        grads = self.node.backward(g)
        if type(grads) is not tuple:
            grads = tuple(grads) if isinstance(grads, list) else (grads,)
        return list(grads)
