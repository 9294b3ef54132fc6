"""The answers the lessons print, in words (the numbers beside them come from the tools)."""

ANSWER = """\
Why does L2 change only dW?
  The L2 term (λ/2m)·Σ‖W_l‖² is a separate node of the loss whose only inputs are the weights.
  Reverse mode sends a node's gradient to its inputs and nowhere else, so the penalty adds
  (λ/m)·W_l to dW_l and cannot reach any activation (dA_l), pre-activation (dZ_l) or bias
  (db_l): those are bit-identical with and without it. dC/da does not change when you add L2.
"""
