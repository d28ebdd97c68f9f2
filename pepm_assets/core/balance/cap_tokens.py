"""Cap every class at `max_tokens` tokens: long speeches and short interruptions weigh by length."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from . import LABEL, REGISTRY, Strategy, StrategyParams

if TYPE_CHECKING:  # annotations only; the functions that compute import them (CLI start-up, docs/internals.md)
    import numpy as np
    import pandas as pd


class CapTokensParams(StrategyParams):
    max_tokens: int = Field(200000, ge=1)


@REGISTRY.register("cap_tokens")
class CapTokens(Strategy):
    params_model = CapTokensParams
    stage = "pool"

    def resample(self, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        import pandas as pd

        parts = []
        for _, group in df.groupby(LABEL, sort=True):
            shuffled = group.iloc[rng.permutation(len(group))]
            keep = shuffled["n_tokens"].cumsum() <= self.params.max_tokens
            keep.iloc[0] = True  # never empty a class
            parts.append(shuffled[keep.to_numpy()].sort_index())
        return pd.concat(parts)
