"""Balance strategies: one file each, one registry.

A strategy is a small object with explicit parameters (a pydantic model validated from
balance.yml presets + profile `balance_params`) and a `stage`:
- "pool": resamples the labelled pool before the split (down-sampling: safe, job stays balanced too);
- "train": resamples the train set only (over-sampling duplicates rows, which must never reach job);
- "none": no resampling; `class_weights` only reports weights for the trainers.
To add one: write `balance/<name>.py` with a `@REGISTRY.register("<name>")` class, import it below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from ..registry import Registry

if TYPE_CHECKING:  # annotations only; the functions that compute import them (CLI start-up, docs/internals.md)
    import numpy as np
    import pandas as pd

LABEL = "label"


class StrategyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Strategy:
    params_model: ClassVar[type[StrategyParams]] = StrategyParams
    stage: ClassVar[Literal["pool", "train", "none"]] = "none"

    def __init__(self, params: StrategyParams) -> None:
        self.params = params

    def resample(self, df: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
        return df

    def class_weights(self, df: pd.DataFrame) -> dict[str, float] | None:
        return None


REGISTRY: Registry[type[Strategy]] = Registry("balance strategy")


def resolve(
    strategy: str, preset: str, params: dict[str, Any], presets: dict[str, dict[str, dict[str, Any]]], source: str
) -> dict[str, Any]:
    """Strategy name + preset + explicit params -> validated parameter dict (raises ConfigError)."""
    from ..config import ConfigError

    if strategy not in REGISTRY:
        raise ConfigError(source, "balance_strategy", f"unknown balance strategy {strategy!r} (known: {REGISTRY.names()})")
    strategy_presets = presets.get(strategy, {})
    if preset not in strategy_presets and not (preset == "default" and not strategy_presets):
        raise ConfigError(
            source,
            "balance_preset",
            f"unknown preset {preset!r} for strategy {strategy!r} (configs/common/balance.yml has: {sorted(strategy_presets)})",
        )
    merged = {**strategy_presets.get(preset, {}), **params}
    cls = REGISTRY.get(strategy)
    try:
        return cls.params_model.model_validate(merged).model_dump()
    except ValidationError as exc:
        err = exc.errors()[0]
        key = str(err["loc"][0]) if err["loc"] else ""  # the parameter, not pydantic's union-member tags after it
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise ConfigError(source, f"balance_params.{key}", f"{msg} (strategy {strategy!r}, preset {preset!r})") from None


def build(strategy: str, params: dict[str, Any]) -> Strategy:
    cls = REGISTRY.get(strategy)
    return cls(cls.params_model.model_validate(params))


def sample_per_class(df: pd.DataFrame, quota: dict[str, int], rng: np.random.Generator) -> pd.DataFrame:
    """Down-sample: keep `quota[label]` rows of each class, in their original order."""
    import numpy as np
    import pandas as pd

    parts = []
    for label, group in df.groupby(LABEL, sort=True):
        n = quota.get(label, len(group))
        parts.append(group if n >= len(group) else group.iloc[np.sort(rng.choice(len(group), size=n, replace=False))])
    return pd.concat(parts) if parts else df


from . import alpha_total, cap_docs, cap_tokens, class_weights, none, oversample  # noqa: E402,F401
