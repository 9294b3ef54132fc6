"""An op replayed through its own methods: what the IR calls for an op whose forward or
backward has no symbolic form (it reads values into Python, or writes into plain arrays)."""
import numpy as np

_ENGINE_ATTRIBUTES = {"parents", "saved_arrays", "out_shape", "out_dtype", "output", "hold",
                      "arguments", "given", "created_at", "anomaly_snapshot", "retains_grad",
                      "events_before", "ran", "__weakref__", "__dict__"}


def attributes(node):
    """What the op's own code set on the node (its slots and dict), not what the engine did."""
    slots = [s for c in type(node).__mro__ for s in getattr(c, "__slots__", ())]
    found = {s: getattr(node, s) for s in slots if s not in _ENGINE_ATTRIBUTES and hasattr(node, s)}
    found.update({k: v for k, v in getattr(node, "__dict__", {}).items() if k not in _ENGINE_ATTRIBUTES})
    return found




class Replayer:
    """Runs one op's own forward/backward on a fresh node each call, as the engine would
    (the contract checks aside: they passed when the step was traced)."""

    def __init__(self, traced):
        self.traced, self.node = traced, None
        self.attributes = attributes(traced)
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
