"""The prepare stage through Dagster on a real (SQLite, temp DAGSTER_HOME) instance."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import read_tsv_file
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets.defs.staleness import stale_status

KEY = "tiny_mpt|left_right"


def _latest(instance: dg.DagsterInstance, asset: str, partition: str):
    event = instance.get_latest_materialization_event(dg.AssetKey(asset))
    assert event is not None, f"{asset} was never materialized"
    mat = event.asset_materialization
    return mat


def test_definitions_pass_dagsters_own_validation(project: Path) -> None:
    """What `dagster definitions validate` / `dg check defs` run: partition mappings included."""
    dg.Definitions.validate_loadable(build_definitions(project))


def test_prepare_materializes_every_asset_with_checks(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    defs = build_definitions(project)
    report = runner.prepare(project, "tiny_quick", [], dagster_instance, defs)
    paths = ProjectPaths(project)
    view_dir, processed = paths.view_dir("tiny_mpt", "left_right"), paths.processed_dir("tiny_mpt", "left_right")
    assert {p.name for p in view_dir.iterdir()} >= {"train.tsv", "job.tsv", "meta_view.json"}
    meta = json.loads((view_dir / "meta_view.json").read_text())
    assert meta["seed"] == 7 and meta["params_hash"] == report.params.params_hash
    assert meta["label_counts_before_balance"] == {"left": 36, "right": 48}
    # grouped by speaker (the default): whole speakers of 12 documents, 2 of 3 left and 3 of 4 right in train
    assert meta["split"]["n_train"] == 60 and meta["split"]["n_job"] == 24
    formats = json.loads((processed / "meta_formats.json").read_text())
    # each format the profile's models read (no `models:` override: every model of its families), written once
    assert formats["families"] == {"check": "tsv", "sklearn": "tsv", "spacy": "spacy_docbin", "hf": "hf_jsonl", "cluster": "tsv"}
    assert set(formats["formats"]) == {"tsv", "spacy_docbin", "hf_jsonl"}
    assert formats["formats"]["spacy_docbin"]["train"] == [
        f"data/processed/tiny_mpt/left_right/spacy/train/part-000{i}.spacy" for i in range(1, 7)
    ]
    assert formats["formats"]["spacy_docbin"]["job"] == paths.rel(view_dir / "job.tsv")  # no job shards: spaCy models score job.tsv
    assert sorted(p.name for p in (processed / "spacy").iterdir()) == ["train"]
    hf_rows = [json.loads(line) for line in (processed / "hf" / "train.jsonl").read_text().splitlines()]
    # the fixture's `small` preset caps hf at 50: its format holds the first 50 rows of train.tsv (formats on demand)
    train = read_tsv_file(view_dir / "train.tsv")
    assert [str(r["doc_id"]) for r in hf_rows] == [str(d) for d in train["doc_id"].head(50)] and {r["label"] for r in hf_rows} == {
        "left",
        "right",
    }
    assert formats["formats"]["hf_jsonl"]["holds"]["n_train"] == 50 and formats["formats"]["spacy_docbin"]["holds"]["n_train"] == 60
    # every check ran and passed, and the UI gets the params hash as metadata
    assert len(report.checks) == 5 and all(report.checks.values())
    mat = _latest(dagster_instance, "view_split", KEY)
    assert mat.partition == KEY and mat.metadata["params_hash"].value == report.params.params_hash
    assert (paths.actors_dir("mpt") / "actors_counts_mpt.tsv").is_file()
    # no temp files left behind by the atomic writes
    assert not [p for p in project.rglob("*.tmp")]


def test_train_prop_override_makes_split_and_formats_stale(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    defs = build_definitions(project)
    runner.prepare(project, "tiny_quick", [], dagster_instance, defs)
    for asset in ("view_split", "model_formats"):
        assert stale_status(dagster_instance, defs, asset, KEY)[0] == "FRESH"
    first_train = pd.read_csv(ProjectPaths(project).view_dir("tiny_mpt", "left_right") / "train.tsv", sep="\t")

    # what `pepm prepare -o train_prop=0.5` records before its run: the params hash it is about to use
    from pepm_assets.core.config import resolve_profile

    new = resolve_profile(project, "tiny_quick", ["train_prop=0.5"])
    runner.observe(dagster_instance, "view_params", {KEY: new.params_hash})
    for asset in ("view_split", "model_formats"):
        status, causes = stale_status(dagster_instance, defs, asset, KEY)
        assert status == "STALE" and any("view_params" in c or "dependency data version" in c for c in causes), causes
    # corpora did not change: still fresh
    assert stale_status(dagster_instance, defs, "corpus_docs", "mpt")[0] == "FRESH"

    report = runner.prepare(project, "tiny_quick", ["train_prop=0.5"], dagster_instance, defs)
    assert "corpus_docs[mpt]" in report.skipped
    assert report.observed == []  # the observe job above already recorded this params hash
    train = pd.read_csv(ProjectPaths(project).view_dir("tiny_mpt", "left_right") / "train.tsv", sep="\t")
    assert len(train) == 36 and len(first_train) == 60  # whole speakers: 1 of 3 left, 2 of 4 right at train_prop 0.5
    for asset in ("view_split", "model_formats"):
        assert stale_status(dagster_instance, defs, asset, KEY)[0] == "FRESH"


def test_editing_a_profile_file_is_seen_as_stale(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    defs = build_definitions(project)
    runner.prepare(project, "tiny_quick", [], dagster_instance, defs)
    profile = project / "configs" / "profiles" / "tiny_quick.yml"
    profile.write_text(profile.read_text().replace("seed: 7", "seed: 8"))
    runner._execute(defs, "observe_view_params", dagster_instance)
    assert stale_status(dagster_instance, defs, "view_split", KEY)[0] == "STALE"


def test_failing_blocking_check_stops_the_formats(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    defs = build_definitions(project)
    with pytest.raises(runner.StageFailed, match="enough_docs_per_class|blocking"):
        runner.prepare(project, "tiny_quick", ["quality.min_docs_per_class=1000"], dagster_instance, defs)
    assert not (ProjectPaths(project).processed_dir("tiny_mpt", "left_right") / "meta_formats.json").exists()
    records = dagster_instance.get_latest_materialization_event(dg.AssetKey("model_formats"))
    assert records is None


def test_config_error_stops_before_any_run(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    from pepm_assets.core.config import ConfigError

    with pytest.raises(ConfigError, match="train_prop"):
        runner.prepare(project, "tiny_quick", ["train_prop=7"], dagster_instance, build_definitions(project))
    assert dagster_instance.get_runs() == []


def test_the_runner_records_new_source_versions_itself(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    """Without the observe job: the runner's own (runless) observation is what Dagster's staleness sees."""
    defs = build_definitions(project)
    first = runner.prepare(project, "tiny_quick", [], dagster_instance, defs)
    assert first.observed == ["raw_tei[mpt]", f"view_params[{KEY}]", f"train_params[{KEY}]"]
    again = runner.prepare(project, "tiny_quick", [], dagster_instance, defs)
    assert again.observed == [] and again.runs == []
    second = runner.prepare(project, "tiny_quick", ["train_prop=0.5"], dagster_instance, defs)
    assert second.observed == [f"view_params[{KEY}]"]
    assert [job for job, _, _ in second.runs] == ["view_pipeline"]
    assert runner.recorded_version(dagster_instance, "view_params", KEY) == second.params.params_hash
    assert stale_status(dagster_instance, defs, "view_split", KEY)[0] == "FRESH"


def test_leakage_check_fails_when_a_text_is_on_both_sides() -> None:
    """The gate itself, on frames as read back from train.tsv / job.tsv (with and without text_key)."""
    from pepm_assets.core import split
    from pepm_assets.defs.assets.prepare import view_checks

    train = pd.DataFrame({"doc_id": ["a", "b"], "label": ["left", "right"], "text": ["Très bien !", "un autre texte"]})
    job = pd.DataFrame({"doc_id": ["c", "d"], "label": ["left", "right"], "text": ["très   bien", "encore un texte"]})
    for keyed in (False, True):
        if keyed:
            train, job = (df.assign(text_key=split.text_key(df["text"])) for df in (train, job))
        results = {c.check_name: c for c in view_checks(train, job, 1, None)}
        assert results["no_train_job_leakage"].passed is False
        assert results["no_train_job_leakage"].metadata["shared_texts"].value == 1
        assert results["enough_docs_per_class"].passed and results["no_empty_texts"].passed


def test_separate_datasets_are_checked_within_each_corpus() -> None:
    """merge_mode separate: a speaker in mpt's train and an's job is no leak (each corpus's model
    sees only its own corpus), a class short in one corpus is, named with its corpus."""
    from pepm_assets.defs.assets.prepare import view_checks

    train = pd.DataFrame(
        {"doc_id": ["a", "b", "c", "d"], "label": ["left", "right", "left", "right"], "corpus_id": ["mpt", "mpt", "an", "an"],
         "speaker": ["s1", "s2", "s3", "s4"], "text": ["un", "deux", "trois", "quatre"]}
    )  # fmt: skip
    job = pd.DataFrame(
        {"doc_id": ["e", "f", "g"], "label": ["left", "right", "left"], "corpus_id": ["mpt", "mpt", "an"],
         "speaker": ["s3", "s5", "s6"], "text": ["cinq", "six", "sept"]}
    )  # fmt: skip
    pooled = {c.check_name: c for c in view_checks(train, job, 1, "speaker")}
    assert pooled["no_train_job_leakage"].passed is False and pooled["enough_docs_per_class"].passed
    per_corpus = {c.check_name: c for c in view_checks(train, job, 1, "speaker", per="corpus_id")}
    assert per_corpus["no_train_job_leakage"].passed is True
    assert per_corpus["enough_docs_per_class"].passed is False
    assert per_corpus["enough_docs_per_class"].metadata["classes_below"].value == {"an/right": {"train": 1, "job": 0}}


def test_instance_files_are_dagster_sqlite_files(project: Path, dagster_instance: dg.DagsterInstance, tmp_path: Path) -> None:
    """dagster.yaml's storage (engine-caching subclasses) writes the same SQLite files as Dagster's
    own `storage: sqlite:`: a stock instance on the same folder sees the runs, events and checks."""
    from pepm_assets.defs.sqlite_storage import EngineCachingEventLogStorage

    storage = dagster_instance.event_log_storage
    assert isinstance(storage, EngineCachingEventLogStorage)
    report = runner.prepare(project, "tiny_quick", [], dagster_instance, build_definitions(project))
    assert 0 < len(storage._engines) <= len(report.runs) + 2  # per run database, the index, runless events ("")  # noqa: SLF001

    stock_home = tmp_path / "stock_home"
    stock_home.mkdir()
    (stock_home / "dagster.yaml").write_text(
        f"storage:\n  sqlite:\n    base_dir: {dagster_instance.root_directory}\ntelemetry:\n  enabled: false\n", encoding="utf-8"
    )
    with dg.DagsterInstance.from_config(str(stock_home)) as stock:
        assert type(stock.event_log_storage).__name__ == "SqliteEventLogStorage"
        assert [r.run_id for r in stock.get_runs()] == [r.run_id for r in dagster_instance.get_runs()]
        assert {run_id for _, _, run_id in report.runs} <= {r.run_id for r in stock.get_runs()}
        event = stock.get_latest_materialization_event(dg.AssetKey("view_split"))
        assert event is not None and event.asset_materialization.partition == KEY
        assert len(stock.get_records_for_run(report.runs[-1][2]).records) == len(
            dagster_instance.get_records_for_run(report.runs[-1][2]).records
        )
        # run databases are copies of a template: same schema revision as Dagster's own
        from dagster._core.storage.event_log.sqlite import sqlite_event_log
        from dagster._core.storage.sql import check_alembic_revision, get_alembic_config

        with stock.event_log_storage.run_connection(report.runs[-1][2]) as conn:
            db_revision, head = check_alembic_revision(get_alembic_config(sqlite_event_log.__file__), conn)
        assert db_revision == head and head
