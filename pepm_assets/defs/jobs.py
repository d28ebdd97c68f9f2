"""Jobs: one per partitioning, so a run covers exactly one corpus, one dataset x view, or the reports.
The leaderboard (unpartitioned) may close a dataset x view run: it only reads reports/index.json,
and a run of its own would cost more than the table (run creation, a new event database)."""

from __future__ import annotations

import dagster as dg

PREPARE_CORPUS = "prepare_corpus"
PREPARE_VIEW = "prepare_view"
TRAIN_EVALUATE = "train_evaluate"
VIEW_PIPELINE = "view_pipeline"
REPORTS = "reports"
OBSERVE_RAW = "observe_raw_tei"
OBSERVE_PARAMS = "observe_view_params"
DRIFT_VIEW = "drift_view"
DRIFT_CORPUS = "drift_corpus"


def build_jobs() -> list[dg.UnresolvedAssetJobDefinition]:
    return [
        dg.define_asset_job(
            PREPARE_CORPUS,
            selection=dg.AssetSelection.assets("corpus_docs", "actor_counts"),
            description="Parse one corpus and count its actors.",
        ),
        dg.define_asset_job(
            PREPARE_VIEW,
            selection=dg.AssetSelection.assets("view_split", "model_formats"),
            description="Label, balance, split one dataset x view and write the model formats.",
        ),
        dg.define_asset_job(
            TRAIN_EVALUATE,
            selection=dg.AssetSelection.groups("train", "evaluate") | dg.AssetSelection.assets("leaderboard"),
            description="Train and evaluate models on one dataset x view, then refresh the leaderboard (the CLI selects the profile's models).",
        ),
        dg.define_asset_job(
            VIEW_PIPELINE,
            selection=dg.AssetSelection.assets("view_split", "model_formats", "leaderboard")
            | dg.AssetSelection.groups("train", "evaluate"),
            description="One dataset x view from split to evaluations, then the leaderboard, in one run (the pipeline stage; the CLI selects the profile's models).",
        ),
        dg.define_asset_job(REPORTS, selection=dg.AssetSelection.groups("reports"), description="Leaderboard and cross-corpus matrix."),
        dg.define_asset_job(
            OBSERVE_RAW, selection=dg.AssetSelection.assets("raw_tei"), description="Record the DVC hash of every raw corpus."
        ),
        dg.define_asset_job(
            DRIFT_VIEW,
            selection=dg.AssetSelection.assets("drift_train_vs_job", "drift_predictions"),
            description="Drift of one split: train vs job, and each model's predictions on its job set vs on another dataset's.",
        ),
        dg.define_asset_job(
            DRIFT_CORPUS,
            selection=dg.AssetSelection.assets("drift_corpus_version", "drift_between_corpora"),
            description="Drift of one corpus (this version vs the previous), and between every pair of corpora (the CLI and the sensor select them).",
        ),
        dg.define_asset_job(
            OBSERVE_PARAMS,
            selection=dg.AssetSelection.assets("view_params", "train_params"),
            description="Record the params hash of every dataset x view (after editing a profile).",
        ),
    ]
