"""Manual backprop vs autodiff, with and without L2.

    python examples/02_manual_vs_autodiff.py

Answers "why does dC/da not change when I add L2?" and "why do dA and db not change, only dW?":
the penalty (λ/2m)·Σ‖W‖² is a node whose only inputs are the weights, so reverse mode sends its
gradient to the weights alone.  The table shows it tensor by tensor, for the hand-written
textbook equations and for the autodiff engine.
"""
from tinygrad_l2.lessons.compare import compare_dlai, compare_nielsen

for lambd in (0.0, 0.7):
    table = compare_dlai(layer_dims=(2, 20, 3, 1), lambd=lambd)
    print(table)
    print()

changed = [row["gradient"] for row in table.to_rows() if row["changed by L2"]]
print(f"With λ = 0.7, L2 changed: {', '.join(changed)} — each by exactly (λ/m)·W = "
      f"{0.7 / table.m:.4g}·W; every dA, dZ and db is bit-identical.")
print(f"Autodiff and the textbook equations agree to {table.max_difference():.1e}.\n")

nielsen = compare_nielsen(sizes=(2, 8, 1), cost="cross_entropy", lmbda=5.0, eta=0.5, epochs=3)
print(nielsen)
print(f"\nNielsen's update w ← (1 − ηλ/n)·w − (η/m)·Σ∇w and autodiff + L2 in the loss + SGD "
      f"reach the same weights to {nielsen.max_difference():.1e}.")
