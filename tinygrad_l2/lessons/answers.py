"""The answers the lessons print, in words (the numbers beside them come from the tools)."""
from .lam import TERMS


def why_only_dw(lam):
    """Why L2 changes only dW, in the convention λ was given in (`lam`, a Lambda)."""
    term = TERMS[lam.convention] if lam.convention != "torch" else "(λ/2)·Σw², what weight_decay λ adds to g,"
    size = {"dlai": f", m = {lam.size}", "nielsen": f", n = {lam.size}"}.get(lam.convention, "")
    return (
        "Why does L2 change only dW?\n"
        f"  The L2 term, {term}{size} with λ = {lam.value:g}, is a separate node of the "
        f"loss whose only inputs are the weights. Reverse mode sends a node's gradient to its inputs "
        f"and nowhere else, so the penalty adds κ·W_l (κ = {lam.kappa:.6g}) to dW_l and cannot reach any "
        f"activation (dA_l), pre-activation (dZ_l) or bias (db_l): those are bit-identical with and "
        f"without it. dC/da does not change when you add L2.\n")
