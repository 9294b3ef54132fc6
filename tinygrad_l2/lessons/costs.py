"""The costs the lessons know, by name, and the one check every function that takes a cost
name makes: an unknown name is refused, never read as the default."""

COSTS = ("cross_entropy", "quadratic")


def check_cost(where, cost):
    """`cost` if it is one of COSTS, else a ValueError naming the function and the choices."""
    if cost not in COSTS:
        raise ValueError(f"{where}: cost must be one of {', '.join(repr(c) for c in COSTS)}, "
                         f"got {cost!r}")
    return cost
