"""Draw `total` documents with class shares proportional to count**alpha.

alpha=1 keeps natural proportions, alpha=0 asks for uniform classes; a class never gives more
documents than it has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from . import LABEL, REGISTRY, Strategy, StrategyParams, sample_per_class

if TYPE_CHECKING:  # annotations only; the functions that compute import them (CLI start-up, docs/internals.md)
    import numpy as np
    import pandas as pd


class AlphaTotalParams(StrategyParams):
    alpha: float = Field(0.5, ge=0, le=1)
    total: int = Field(10000, ge=1)


@REGISTRY.register("alpha_total")
class AlphaTotal(Strategy):
    params_model = AlphaTotalParams
    stage = "pool"

    def resample(self, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        counts = df[LABEL].value_counts().sort_index()
        weights = counts.astype(float) ** self.params.alpha
        shares = weights / weights.sum()
        quota = {label: min(int(counts[label]), max(1, int(round(share * self.params.total)))) for label, share in shares.items()}
        return sample_per_class(df, quota, rng)
