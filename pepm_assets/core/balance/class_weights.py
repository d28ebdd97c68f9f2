"""No resampling: report per-class weights (n / (k * n_c), scikit-learn's "balanced") for trainers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from . import LABEL, REGISTRY, Strategy, StrategyParams

if TYPE_CHECKING:  # annotations only; the functions that compute import them (CLI start-up, docs/internals.md)
    import pandas as pd


class ClassWeightsParams(StrategyParams):
    scheme: Literal["balanced"] = "balanced"


@REGISTRY.register("class_weights")
class ClassWeights(Strategy):
    params_model = ClassWeightsParams
    stage = "none"

    def class_weights(self, df: pd.DataFrame) -> dict[str, float]:
        counts = df[LABEL].value_counts()
        total, k = int(counts.sum()), len(counts)
        return {str(label): round(total / (k * int(n)), 6) for label, n in sorted(counts.items())}
