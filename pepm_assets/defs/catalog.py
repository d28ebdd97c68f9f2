"""Owners and kinds of every asset, in one place: what the Dagster UI's asset graph and catalog show
(the kind icons, the owner filter).

Kinds say what an asset is made with and what it writes: `python` + `parquet` for the parsed
corpora, `scikit-learn` / `spacy` / `pytorch` + `huggingface` by model family, `mlflow` where a
step logs to MLflow. Owners are the roles that answer for an asset, by its group: `team:corpus`
(parsing, labels, splits: someone who knows the corpora and the label maps), `team:modelling`
(models, evaluations, the leaderboard, sweeps), `team:monitoring` (drift), `team:analysis` (the
polarization and label-validity reports). They are roles, not people: a project that has people
names them here (an e-mail address is an owner too), and the whole catalog follows.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

OWNERS = {
    "prepare": "team:corpus",
    "train": "team:modelling",
    "evaluate": "team:modelling",
    "reports": "team:modelling",
    "sweep": "team:modelling",
    "drift": "team:monitoring",
    "analysis": "team:analysis",
}
FAMILY_KINDS = {
    "sklearn": {"scikit-learn"},
    "cluster": {"scikit-learn"},
    "spacy": {"spacy"},
    "hf": {"pytorch", "huggingface"},
    "check": {"python"},  # the majority-class control: no library
}
KINDS = {  # assets whose kinds do not follow from a model family
    "raw_tei": {"xml"},
    "view_params": {"yaml"},
    "train_params": {"yaml"},
    "corpus_docs": {"python", "parquet"},
    "actor_counts": {"python", "csv"},
    "view_split": {"python", "csv"},
    "model_formats": {"spacy", "json"},
    "leaderboard": {"python", "markdown", "mlflow"},  # it sets the champion alias of each dataset x view
    "cross_corpus_matrix": {"scikit-learn", "mlflow"},
    "drift_train_vs_job": {"python", "html"},
    "drift_corpus_version": {"python", "html"},
    "drift_between_corpora": {"python", "html"},
    "drift_predictions": {"python", "html"},
    "polarization_over_time": {"python", "markdown"},
    "label_validity": {"python", "markdown"},
    "sweep_run": {"python", "mlflow"},
}
DEFAULT_OWNER = "team:modelling"


def family_kinds(family: str) -> set[str]:
    """A model or evaluation asset's kinds: its family's library, and mlflow (each logs a run)."""
    return {*FAMILY_KINDS.get(family, {"python"}), "mlflow"}


def owner(group: str | None) -> str:
    return OWNERS.get(group or "", DEFAULT_OWNER)


def _described(spec: dg.AssetSpec) -> dg.AssetSpec:
    kinds = KINDS.get(spec.key.to_user_string(), set()) - set(spec.kinds)
    return (
        spec.merge_attributes(owners=[owner(spec.group_name)], kinds=kinds)
        if kinds
        else spec.merge_attributes(owners=[owner(spec.group_name)])
    )


def with_owners_and_kinds(assets: list[Any]) -> list[Any]:
    """Every asset with its owner and kinds. An observable source asset (a SourceAsset, which has no
    owners) is made the asset definition that Dagster itself turns it into first."""
    from .dagster_internals import create_external_asset_from_source_asset

    out = []
    for asset in assets:
        if isinstance(asset, dg.SourceAsset):
            asset = create_external_asset_from_source_asset(asset)
        out.append(asset.map_asset_specs(_described) if isinstance(asset, dg.AssetsDefinition) else asset)
    return out
