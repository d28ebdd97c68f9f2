"""Results that never lie: the version chain from raw bytes to metrics (core/lineage.py).

Each test is one reproduction of the bug report, on a real temp project and Dagster instance: it
failed on the code before the version chain (a model scored on a job set overlapping its own train
set, raw edits that never reached the split, models.yml edits that never made a model stale,
deleted outputs that read as fresh, a partition from the UI that never went stale).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from pepm_assets.core import lineage, training
from pepm_assets.core.config import load_common, resolve_profile
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets.defs.staleness import stale_status

KEY = "tiny_mpt|left_right"
SK = ["families=[sklearn]", "models=[tfidf_svm_quick,tfidf_logreg]"]


def _status(project: Path, overrides: list[str] = SK) -> dict[str, str]:
    params = resolve_profile(project, "tiny_quick", overrides)
    return {st.asset: st.state for st in lineage.Expected(project).statuses(params, params.model_specs)}


def _index(project: Path) -> list[dict]:
    return training.read_index(ProjectPaths(project))


def test_a_model_is_never_scored_on_a_split_it_was_not_fitted_on(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    """Case 1: pipeline (seed 7), prepare with seed 8, evaluate with seed 8 -> refused, nothing recorded."""
    defs = build_definitions(project)
    runner.run_stage(project, "pipeline", "tiny_quick", ["models=[tfidf_svm_quick]"], dagster_instance, defs)
    before = _index(project)
    runner.run_stage(project, "prepare", "tiny_quick", ["seed=8"], dagster_instance, defs)
    with pytest.raises(runner.StageFailed, match="model/tfidf_svm_quick.*(stale|missing).*train first"):
        runner.run_stage(project, "evaluate", "tiny_quick", ["seed=8", "models=[tfidf_svm_quick]"], dagster_instance, defs)
    # the step itself refuses too (a run launched from the UI does not go through the runner's check)
    params = resolve_profile(project, "tiny_quick", ["seed=8", "models=[tfidf_svm_quick]"])
    spec = load_common(project).models["tfidf_svm_quick"]
    with pytest.raises(lineage.LineageError, match="was fitted on split .* its job set may hold its own training documents"):
        training.evaluate_model(params, "tfidf_svm_quick", spec, project)
    with pytest.raises(runner.StageFailed, match="evaluation/tfidf_svm_quick.*failed|fitted on split"):
        runner._execute(
            defs,
            runner.VIEW_PIPELINE,
            dagster_instance,
            KEY,
            assets=["evaluation/tfidf_svm_quick"],
            tags={"pepm/profile": "tiny_quick", "pepm/overrides": json.dumps(["seed=8"])},
        )
    assert _index(project) == before  # no score under the wrong settings
    # train then evaluate with seed 8: the score is recorded with the seed it was trained with
    runner.run_stage(project, "pipeline", "tiny_quick", ["seed=8", "models=[tfidf_svm_quick]"], dagster_instance, defs)
    meta_eval = json.loads(
        (ProjectPaths(project).report_dir("tiny_mpt", "left_right", "sklearn", "tfidf_svm_quick") / "meta_eval.json").read_text()
    )
    meta_model = json.loads(
        (ProjectPaths(project).model_dir("tiny_mpt", "left_right", "sklearn", "tfidf_svm_quick") / "meta_model.json").read_text()
    )
    assert meta_eval["seed"] == meta_model["seed"] == 8 and meta_eval["split_version"] == meta_model["split_version"]
    train = pd.read_csv(ProjectPaths(project).view_dir("tiny_mpt", "left_right") / "train.tsv", sep="\t")
    predictions = pd.read_csv(
        ProjectPaths(project).report_dir("tiny_mpt", "left_right", "sklearn", "tfidf_svm_quick") / "predictions.tsv", sep="\t"
    )
    assert not set(train["doc_id"]) & set(predictions["doc_id"])


def _flip_one_speaker(project: Path) -> str:
    """Edit one raw file: Hervé Mariton's speeches become SRC (left). Returns a doc's text marker."""
    path = project / "data" / "raw" / "mpt" / "20130101.xml"
    text = path.read_text(encoding="utf-8")
    assert 'auteur="Hervé_Mariton" interventiontype="intervention" politicalgroup="UMP"' in text
    path.write_text(
        text.replace(
            'auteur="Hervé_Mariton" interventiontype="intervention" politicalgroup="UMP"',
            'auteur="Hervé_Mariton" interventiontype="intervention" politicalgroup="SRC"',
        ),
        encoding="utf-8",
    )
    return "Hervé Mariton"


def test_a_raw_edit_reaches_the_split_the_models_and_the_scores(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    """Case 2: edit one raw file (no `dvc add`) -> everything downstream is stale -> rebuilt with the new label."""
    defs = build_definitions(project)
    runner.run_stage(project, "pipeline", "tiny_quick", SK, dagster_instance, defs)
    assert set(_status(project).values()) == {"FRESH"}
    raw_before = runner.recorded_version(dagster_instance, "raw_tei", "mpt")
    _flip_one_speaker(project)
    status = _status(project)
    assert status == {a: "STALE" for a in status}, status  # corpus_docs, view, formats, models, evaluations
    report = runner.run_stage(project, "pipeline", "tiny_quick", SK, dagster_instance, defs)
    assert "raw_tei[mpt]" in report.observed and runner.recorded_version(dagster_instance, "raw_tei", "mpt") != raw_before
    assert set(_status(project).values()) == {"FRESH"}
    view_dir = ProjectPaths(project).view_dir("tiny_mpt", "left_right")
    rows = pd.concat([pd.read_csv(view_dir / f"{s}.tsv", sep="\t") for s in ("train", "job")])
    edited = rows[(rows["speaker"] == "Hervé_Mariton") & rows["doc_id"].str.contains("20130101")]
    assert len(edited) and set(edited["label"]) == {"left"}
    assert set(rows[(rows["speaker"] == "Hervé_Mariton") & rows["doc_id"].str.contains("20130102")]["label"]) == {"right"}


def test_corpus_config_edits_are_applied_not_only_stamped(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    """Case 2: editing `glob` in corpora.yml makes the corpus stale and the new glob is what is parsed."""
    defs = build_definitions(project)
    runner.run_stage(project, "prepare", "tiny_quick", SK, dagster_instance, defs)
    n_before = json.loads((ProjectPaths(project).corpus_dir("mpt") / "parse_stats.json").read_text())["n_docs"]
    corpora = project / "configs" / "common" / "corpora.yml"
    corpora.write_text(corpora.read_text().replace("    dialect: mpt\n", "    dialect: mpt\n    glob: '20130101.xml'\n", 1))
    status = _status(project)
    assert status["corpus_docs"] == "STALE" and status["view_split"] == "STALE"
    runner.run_stage(project, "prepare", "tiny_quick", SK, dagster_instance, build_definitions(project))
    stats = json.loads((ProjectPaths(project).corpus_dir("mpt") / "parse_stats.json").read_text())
    assert stats["n_files"] == 1 and 0 < stats["n_docs"] < n_before
    meta_view = json.loads((ProjectPaths(project).view_dir("tiny_mpt", "left_right") / "meta_view.json").read_text())
    assert meta_view["lineage"]["inputs"]["corpus_docs"]["mpt"] == stats["lineage"]["version"]


def test_editing_one_model_rebuilds_only_that_model(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    """Case 3: models.yml C of one model -> only it and its evaluation are stale (pepm and Dagster's UI)."""
    defs = build_definitions(project)
    runner.run_stage(project, "pipeline", "tiny_quick", SK, dagster_instance, defs)
    models_yml = project / "configs" / "common" / "models.yml"
    models_yml.write_text(
        models_yml.read_text().replace("params: {estimator: logreg, min_df: 1}", "params: {estimator: logreg, min_df: 1, C: 0.25}")
    )
    status = _status(project)
    assert {a for a, s in status.items() if s != "FRESH"} == {"model/tfidf_logreg", "evaluation/tfidf_logreg"}, status
    new_defs = build_definitions(project)
    assert stale_status(dagster_instance, new_defs, "model/tfidf_logreg", KEY)[0] == "STALE"  # code version
    assert stale_status(dagster_instance, new_defs, "model/tfidf_svm_quick", KEY)[0] == "FRESH"
    report = runner.run_stage(project, "pipeline", "tiny_quick", SK, dagster_instance, new_defs)
    events = [r.event_log_entry.dagster_event for r in dagster_instance.get_records_for_run(report.runs[-1][2]).records]
    ran = {e.asset_key.to_user_string() for e in events if e is not None and e.is_step_materialization}
    assert ran == {"model/tfidf_logreg", "evaluation/tfidf_logreg", "leaderboard"}
    meta = json.loads(
        (ProjectPaths(project).model_dir("tiny_mpt", "left_right", "sklearn", "tfidf_logreg") / "meta_model.json").read_text()
    )
    assert meta["model_params"]["C"] == 0.25 and set(_status(project).values()) == {"FRESH"}


def test_a_hardware_value_a_family_fits_with_makes_its_models_stale(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    """Case 3: hardware preset values are in the version of the models whose family reads them."""
    defs = build_definitions(project)
    runner.run_stage(
        project, "pipeline", "tiny_quick", ["families=[sklearn,check]", "models=[tfidf_svm_quick,check_default]"], dagster_instance, defs
    )
    hw = project / "configs" / "common" / "hardware.yml"
    hw.write_text(hw.read_text() + "    max_train_docs_sklearn: 30\n")
    status = _status(project, ["families=[sklearn,check]", "models=[tfidf_svm_quick,check_default]"])
    assert status["model/tfidf_svm_quick"] == "STALE" and status["model/check_default"] == "FRESH"
    runner._execute(defs, "observe_view_params", dagster_instance)  # Dagster's UI: the preset is a source of the models
    assert stale_status(dagster_instance, defs, "model/tfidf_svm_quick", KEY)[0] == "STALE"
    assert stale_status(dagster_instance, defs, "view_split", KEY)[0] == "FRESH"
    hw.write_text(hw.read_text().replace("threads: 1", "threads: 2"))  # the sklearn fit does not depend on threads
    assert _status(project, ["families=[sklearn,check]", "models=[tfidf_svm_quick,check_default]"])["model/check_default"] == "FRESH"


def test_deleted_outputs_are_missing_and_rebuilt(project: Path, dagster_instance: dg.DagsterInstance, tmp_path: Path) -> None:
    """Case 3: `mv data/interim elsewhere` -> missing, not fresh; the next run rebuilds, no traceback."""
    defs = build_definitions(project)
    runner.run_stage(project, "pipeline", "tiny_quick", SK, dagster_instance, defs)
    shutil.move(project / "data" / "interim", tmp_path / "elsewhere")
    status = _status(project)
    assert status["corpus_docs"] == "MISSING" and status["view_split"] == "MISSING"
    (ProjectPaths(project).model_dir("tiny_mpt", "left_right", "sklearn", "tfidf_logreg") / "model.pkl").unlink(missing_ok=True)
    runner.run_stage(project, "pipeline", "tiny_quick", SK, dagster_instance, defs)
    assert set(_status(project).values()) == {"FRESH"}
    # same inputs, same versions: the rebuilt split is the same, so the models trained on it stay valid
    old = json.loads((tmp_path / "elsewhere" / "tiny_mpt" / "left_right" / "meta_view.json").read_text())["lineage"]["version"]
    new = json.loads((ProjectPaths(project).view_dir("tiny_mpt", "left_right") / "meta_view.json").read_text())["lineage"]["version"]
    assert old == new


def test_a_partition_built_from_the_ui_goes_stale_when_its_profile_changes(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    """Case 3: a run launched without the CLI (no pepm tags, as from the UI) records the versions of
    what it used, so a later profile edit shows as stale in Dagster's own staleness too."""
    defs = build_definitions(project)
    for cid in ("mpt",):
        runner._execute(defs, "prepare_corpus", dagster_instance, cid)
    runner._execute(defs, "prepare_view", dagster_instance, KEY)  # no tags: the configured profile (tiny_quick)
    meta = json.loads((ProjectPaths(project).view_dir("tiny_mpt", "left_right") / "meta_view.json").read_text())
    assert meta["profile"] == "tiny_quick" and meta["seed"] == 7
    assert stale_status(dagster_instance, defs, "view_split", KEY)[0] == "FRESH"
    profile = project / "configs" / "profiles" / "tiny_quick.yml"
    profile.write_text(profile.read_text().replace("seed: 7", "seed: 8"))
    runner._execute(defs, "observe_view_params", dagster_instance)
    assert stale_status(dagster_instance, defs, "view_split", KEY)[0] == "STALE"
    assert _status(project, [])["view_split"] == "STALE"


def test_a_failed_prepare_changes_no_recorded_state(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    """Case 5: a prepare that fails (every document too short: no labelled document) leaves the
    previous split, its stamp and what `train` accepts exactly as they were."""
    defs = build_definitions(project)
    runner.run_stage(project, "prepare", "tiny_quick", SK, dagster_instance, defs)
    view_dir = ProjectPaths(project).view_dir("tiny_mpt", "left_right")
    before = {p.name: p.read_bytes() for p in view_dir.iterdir()}
    with pytest.raises(runner.StageFailed, match="no labelled document"):
        runner.run_stage(project, "prepare", "tiny_quick", [*SK, "filters.min_tokens=100000"], dagster_instance, defs)
    assert {p.name: p.read_bytes() for p in view_dir.iterdir()} == before
    report = runner.run_stage(project, "train", "tiny_quick", SK, dagster_instance, defs)
    assert report.runs


def test_two_pipelines_of_one_partition_with_different_seeds_never_mix(project: Path, tmp_path: Path) -> None:
    """Case 5: two `pepm run` of the same dataset x view, seeds 7 and 8, started together (real
    processes): the second waits for the partition's lock, both succeed, and every output on disk
    is one run's, end to end (a run once printed "seed 43" beside seed-42 scores)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PEPM_ROOT": str(project), "DAGSTER_HOME": str(tmp_path / "dh"), "COLUMNS": "200"}
    pepm = str(Path(sys.executable).with_name("pepm"))
    subprocess.run(
        [pepm, "status", "-p", "tiny_quick"], env=env, check=True, capture_output=True
    )  # the store exists (case 4 is tested apart)
    procs = [
        subprocess.Popen(
            [
                pepm,
                "run",
                "--stage",
                "pipeline",
                "-p",
                "tiny_quick",
                "-o",
                f"seed={seed}",
                "-o",
                "families=[sklearn]",
                "-o",
                "models=[tfidf_svm_quick,tfidf_logreg]",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in (7, 8)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert any("waiting" in err for _, err in outs), [err for _, err in outs]
    paths = ProjectPaths(project)
    meta_view = json.loads((paths.view_dir("tiny_mpt", "left_right") / "meta_view.json").read_text())
    for model_id in ("tfidf_svm_quick", "tfidf_logreg"):
        meta_model = json.loads((paths.model_dir("tiny_mpt", "left_right", "sklearn", model_id) / "meta_model.json").read_text())
        meta_eval = json.loads((paths.report_dir("tiny_mpt", "left_right", "sklearn", model_id) / "meta_eval.json").read_text())
        assert meta_view["seed"] == meta_model["seed"] == meta_eval["seed"]
        assert meta_view["lineage"]["version"] == meta_model["split_version"] == meta_eval["split_version"]
    last_seed = meta_view["seed"]
    assert set(_status(project, [*SK[:1], "models=[tfidf_svm_quick,tfidf_logreg]", f"seed={last_seed}"]).values()) == {"FRESH"}


def test_the_index_keeps_every_seed_and_the_leaderboard_summarises_them(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    """reports/index.json is a history: seed repeats are all kept (it kept only the last), the
    leaderboard ranks the latest and shows mean ± sd over the seeds run with the same settings."""
    from pepm_assets.core import reports

    defs = build_definitions(project)
    one = ["families=[sklearn]", "models=[tfidf_svm_quick]"]
    for seed in (7, 8, 9):
        runner.run_stage(project, "pipeline", "tiny_quick", [*one, f"seed={seed}"], dagster_instance, defs)
    runner.run_stage(project, "pipeline", "tiny_quick", [*one, "seed=8", "train_prop=0.5"], dagster_instance, defs)  # other settings
    history = [e for e in _index(project) if e["model_id"] == "tfidf_svm_quick"]
    assert [e["seed"] for e in history] == [7, 8, 9, 8]
    assert len({e["settings_hash"] for e in history[:3]}) == 1 and history[3]["settings_hash"] != history[0]["settings_hash"]
    table = reports.leaderboard_table(ProjectPaths(project))
    row = table[table["model_id"] == "tfidf_svm_quick"].iloc[0]
    assert row["seed"] == 8 and row["n_seeds"] == 1  # the latest: train_prop 0.5, one seed so far
    runner.run_stage(project, "pipeline", "tiny_quick", [*one, "seed=9"], dagster_instance, defs)  # back to the repeated settings
    assert runner.run_stage(project, "pipeline", "tiny_quick", [*one, "seed=9"], dagster_instance, defs).runs == []  # fresh now
    table = reports.leaderboard_table(ProjectPaths(project))
    row = table[table["model_id"] == "tfidf_svm_quick"].iloc[0]
    scores = [e["metrics"]["macro_f1"] for e in history[:3]]
    assert row["n_seeds"] == 3 and abs(row["macro_f1_mean"] - sum(scores) / 3) < 1e-4
    assert "(3)" in (project / "reports" / "leaderboard.md").read_text()
    assert [e["seed"] for e in _index(project) if e["model_id"] == "tfidf_svm_quick"] == [7, 8, 9, 8, 9]  # seed 9 fitted again


def test_a_model_trained_again_makes_its_evaluation_stale(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    """Versions are content-addressed, but an evaluation scores one fit: a model trained again (a
    GPU fit need not be bit-identical) is evaluated again, never left with the old fit's scores."""
    defs = build_definitions(project)
    runner.run_stage(project, "pipeline", "tiny_quick", SK, dagster_instance, defs)
    shutil.rmtree(ProjectPaths(project).model_dir("tiny_mpt", "left_right", "sklearn", "tfidf_logreg"))
    runner.run_stage(project, "train", "tiny_quick", SK, dagster_instance, defs)
    status = _status(project)
    assert status["model/tfidf_logreg"] == "FRESH" and status["evaluation/tfidf_logreg"] == "STALE"
    assert status["evaluation/tfidf_svm_quick"] == "FRESH"
    report = runner.run_stage(project, "pipeline", "tiny_quick", SK, dagster_instance, defs)
    assert "evaluation/tfidf_logreg[tiny_mpt|left_right]" not in report.skipped and set(_status(project).values()) == {"FRESH"}


def test_overrides_reach_models_yml_params_and_hardware_values(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    """`-o models.<id>.params.C=…` and `-o hardware.<field>=…` (the spec's light grids over model
    and hardware values) are validated, fitted with, versioned and recorded."""
    from pepm_assets.core.config import ConfigError

    defs = build_definitions(project)
    runner.run_stage(project, "pipeline", "tiny_quick", SK, dagster_instance, defs)
    tuned = [*SK, "models.tfidf_logreg.params.C=0.25", "hardware.max_train_docs_sklearn=30"]
    status = _status(project, tuned)
    assert status["model/tfidf_logreg"] == "STALE" and status["model/tfidf_svm_quick"] == "STALE"  # both sklearn: capped
    assert status["view_split"] == "FRESH"
    runner.run_stage(project, "pipeline", "tiny_quick", tuned, dagster_instance, defs)
    paths = ProjectPaths(project)
    logreg = json.loads((paths.model_dir("tiny_mpt", "left_right", "sklearn", "tfidf_logreg") / "meta_model.json").read_text())
    svm = json.loads((paths.model_dir("tiny_mpt", "left_right", "sklearn", "tfidf_svm_quick") / "meta_model.json").read_text())
    assert logreg["model_params"]["C"] == 0.25 and logreg["n_train_used"] == svm["n_train_used"] == 30
    assert set(_status(project, tuned).values()) == {"FRESH"}, [(k, v) for k, v in _status(project, tuned).items() if v != "FRESH"]
    assert _status(project)["model/tfidf_logreg"] == "STALE"
    for bad, key in (
        ("models.tfidf_logreg.params.CC=1", "models.tfidf_logreg.params.CC"),
        ("models.nope.params.C=1", "models.nope"),
        ("hardware.max_train_docs_sklearn=-3", "hardware.max_train_docs_sklearn"),
        ("hardware.nope=1", "hardware.nope"),
    ):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            resolve_profile(project, "tiny_quick", [*SK, bad])


def test_a_family_added_to_a_prepared_split_gets_its_format(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    """Prepared for scikit-learn only, then a spaCy model is asked for: the formats are stale (the
    shards were never written) and the pipeline writes them, instead of failing in the fit."""
    defs = build_definitions(project)
    runner.run_stage(project, "prepare", "tiny_quick", SK, dagster_instance, defs)
    with_spacy = ["families=[sklearn,spacy]", "models=[tfidf_svm_quick,spacy_bow]"]
    params = resolve_profile(project, "tiny_quick", with_spacy)
    states = {st.asset: st for st in lineage.Expected(project).statuses(params, params.model_specs)}
    assert states["view_split"].state == "FRESH"
    assert (states["model_formats"].state, states["model_formats"].why) == ("STALE", ["formats missing: spacy_docbin"])
    runner.run_stage(project, "pipeline", "tiny_quick", with_spacy, dagster_instance, defs)
    meta = json.loads((ProjectPaths(project).processed_dir("tiny_mpt", "left_right") / "meta_formats.json").read_text(encoding="utf-8"))
    assert set(meta["formats"]) == {"tsv", "spacy_docbin"}
    assert _status(project, with_spacy)["evaluation/spacy_bow"] == "FRESH"
