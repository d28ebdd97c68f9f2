"""Cap every class at `max_docs` documents (or at the smallest class with `max_docs: min`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from . import LABEL, REGISTRY, Strategy, StrategyParams, sample_per_class

if TYPE_CHECKING:  # annotations only; the functions that compute import them (CLI start-up, docs/internals.md)
    import numpy as np
    import pandas as pd


class CapDocsParams(StrategyParams):
    max_docs: Annotated[int, Field(ge=1)] | Literal["min"] = Field(2000)  # 0 would empty every class


@REGISTRY.register("cap_docs")
class CapDocs(Strategy):
    params_model = CapDocsParams
    stage = "pool"

    def resample(self, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        counts = df[LABEL].value_counts()
        cap = int(counts.min()) if self.params.max_docs == "min" else int(self.params.max_docs)
        return sample_per_class(df, {label: min(cap, int(n)) for label, n in counts.items()}, rng)
