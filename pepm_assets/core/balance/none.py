"""No balancing: the classes keep their natural proportions."""

from . import REGISTRY, Strategy


@REGISTRY.register("none")
class NoBalance(Strategy):
    stage = "none"
