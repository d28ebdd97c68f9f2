"""Resample the train set up to the largest class (`target: max`) or to a fixed count.

Applied to train only, after the split: duplicated rows must never land in the job set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from . import LABEL, REGISTRY, Strategy, StrategyParams

if TYPE_CHECKING:  # annotations only; the functions that compute import them (CLI start-up, docs/internals.md)
    import numpy as np
    import pandas as pd


class OversampleParams(StrategyParams):
    target: Annotated[int, Field(ge=1)] | Literal["max"] = Field("max")


@REGISTRY.register("oversample")
class Oversample(Strategy):
    params_model = OversampleParams
    stage = "train"

    def resample(self, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        import pandas as pd

        if df.empty:  # a degenerate split (every class on the job side): nothing to copy
            return df
        counts = df[LABEL].value_counts()
        target = int(counts.max()) if self.params.target == "max" else int(self.params.target)
        parts = []
        for _label, group in df.groupby(LABEL, sort=True):
            extra = max(0, target - len(group))
            parts.append(group)
            if extra:
                parts.append(group.iloc[rng.integers(0, len(group), size=extra)])
        return pd.concat(parts)
