"""Train and evaluate every family through Dagster on the tiny fixture; reports, MLflow, cross-dataset."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from pepm_assets.core import metrics
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.training import read_index
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets_tests.conftest import temporary_instance
from pepm_assets_tests.fixtures import make_project

ALL_MODELS = [
    "check_default",
    "tfidf_svm_quick",
    "tfidf_logreg",
    "tfidf_nb",
    "spacy_bow",
    "spacy_cnn_quick",
    "hf_tiny",
    "kmeans_tfidf",
    "hdbscan_tfidf",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """One pipeline run of every model, shared by the tests of this module (training is the slow part)."""
    tmp = tmp_path_factory.mktemp("training")
    project = make_project(tmp / "proj")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PEPM_MLFLOW_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        with temporary_instance(tmp / "dagster_home", mp) as instance:
            defs = build_definitions(project)
            report = runner.run_stage(project, "pipeline", "tiny_quick", [], instance, defs)
            yield project, defs, report, tmp / "mlflow.db", instance


def test_every_family_trains_and_evaluates_through_dagster(trained) -> None:
    project, _, report, _, instance = trained
    paths = ProjectPaths(project)
    assert report.params.models == ALL_MODELS
    # one run per partitioning: the corpus, then split -> formats -> models -> evaluations -> leaderboard
    assert [job for job, _, _ in report.runs] == ["prepare_corpus", "view_pipeline"]
    _, _, view_run = report.runs[1]
    leaderboard = instance.get_latest_materialization_event(dg.AssetKey("leaderboard"))
    assert leaderboard is not None and leaderboard.run_id == view_run
    assert (paths.reports / "leaderboard.md").is_file()
    assert report.observed == ["raw_tei[mpt]", "view_params[tiny_mpt|left_right]", "train_params[tiny_mpt|left_right]"]
    # early_stop (fixture: tfidf_svm_quick min 0.6 / 0.6): a check on its evaluation, and the flags recorded
    assert report.checks["evaluation/tfidf_svm_quick[tiny_mpt|left_right].quality_ok"] is True
    index = {e["model_id"]: e for e in read_index(paths)}
    assert index["tfidf_svm_quick"]["quality_ok"] is True and index["tfidf_svm_quick"]["quality_flags"] == []
    assert set(index) == set(ALL_MODELS)
    for model_id in ALL_MODELS:
        entry = index[model_id]
        family = entry["family"]
        model_dir = paths.model_dir("tiny_mpt", "left_right", family, model_id)
        meta_model = json.loads((model_dir / "meta_model.json").read_text())
        assert meta_model["seed"] == 7 and meta_model["params_hash"] == report.params.params_hash
        out = paths.report_dir("tiny_mpt", "left_right", family, model_id)
        for name in ("metrics.json", "classification_report.txt", "meta_eval.json", "predictions.tsv"):
            assert (out / name).is_file(), (model_id, name)
        if family == "cluster":
            assert {"ari", "nmi", "homogeneity"} <= set(entry["metrics"])
        else:
            assert (out / "confusion_matrix.png").stat().st_size > 1000
            lo, hi = entry["metrics"]["macro_f1_ci95"]
            assert lo <= entry["metrics"]["macro_f1"] <= hi
    # the tiny corpora are separable by vocabulary: real models learn them, the control does not
    for model_id in ("tfidf_svm_quick", "tfidf_logreg", "tfidf_nb", "spacy_bow", "hf_tiny"):
        assert index[model_id]["metrics"]["macro_f1"] >= 0.9, (model_id, index[model_id]["metrics"])
    assert index["check_default"]["metrics"]["macro_f1"] < 0.5
    assert index["kmeans_tfidf"]["metrics"]["ari"] > 0.5
    # hardware preset: hf capped at 50 train docs, and the cap is recorded (train: 24 left + 36 right,
    # whole speakers: the split is grouped by speaker)
    hf_meta = json.loads((paths.model_dir("tiny_mpt", "left_right", "hf", "hf_tiny") / "meta_model.json").read_text())
    assert hf_meta["truncated"] and hf_meta["n_train_used"] == 50 and hf_meta["n_train_available"] == 60
    # every score states its protocol: the index, and the evaluation's Dagster metadata
    weighted = {"tfidf_svm_quick": "balanced", "tfidf_logreg": "balanced"}  # train 36 right / 24 left > 1.2: auto weights
    for model_id in ALL_MODELS:
        assert (index[model_id]["split"], index[model_id]["seed"]) == ("grouped by speaker", 7), model_id
        assert index[model_id]["class_weight"] == weighted.get(model_id, "none"), model_id
    event = instance.get_latest_materialization_event(dg.AssetKey(["evaluation", "tfidf_svm_quick"]))
    metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
    assert (metadata["split"], metadata["seed"], metadata["class_weight"]) == ("grouped by speaker", 7, "balanced")
    terms = json.loads((paths.report_dir("tiny_mpt", "left_right", "sklearn", "tfidf_svm_quick") / "top_terms.json").read_text())
    assert set(terms) == {"left", "right"} and terms["left"][0][0] in {
        "égalité",
        "droits",
        "couples",
        "familles",
        "progrès",
        "amour",
        "reconnaissance",
        "liberté",
    }
    # every gate passes; label_validity warns on every evaluation: the fixture's MPT vote is its label
    # (as in the real MPT), which core/diagnostics.py reports in each evaluation's report and metadata
    validity = {name: ok for name, ok in report.checks.items() if name.endswith(".label_validity")}
    assert len(validity) == len(ALL_MODELS) and not any(validity.values())
    assert all(ok for name, ok in report.checks.items() if name not in validity), report.checks
    assert "'vote'" in metadata["label_validity_warnings"]
    board = (project / "reports" / "leaderboard.md").read_text()
    assert "tfidf_svm_quick" in board and (project / "reports" / "leaderboard.png").is_file()
    assert "goes with 'vote'" in board


def test_mlflow_has_every_run_with_params_tags_and_registered_models(trained) -> None:
    import mlflow

    _, _, _, db, _ = trained
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("pepm")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    stages = sorted(r.data.tags["stage"] for r in runs)
    assert stages.count("train") == len(ALL_MODELS) and stages.count("evaluate") == len(ALL_MODELS)
    svm = next(r for r in runs if r.data.tags["stage"] == "evaluate" and r.data.tags["model"] == "tfidf_svm_quick")
    assert svm.data.tags["dataset"] == "tiny_mpt" and svm.data.tags["seed"] == "7" and svm.data.tags["dagster_run_id"]
    assert svm.data.metrics["macro_f1"] >= 0.9 and "macro_f1_ci95_low" in svm.data.metrics
    assert (svm.data.params["split"], svm.data.params["seed"], svm.data.params["class_weight"]) == ("grouped by speaker", "7", "balanced")
    train_run = next(r for r in runs if r.data.tags["stage"] == "train" and r.data.tags["model"] == "hf_tiny")
    assert train_run.data.params["params.seed"] == "7" and train_run.data.params["model.hidden_size"] == "32"
    versions = client.search_model_versions("name = 'pepm.tiny_mpt.left_right.tfidf_svm_quick'")
    assert len(versions) == 1 and versions[0].run_id


def test_cross_dataset_evaluation_and_matrix(trained) -> None:
    project, defs, _, _, dagster_instance = trained
    runner.run_stage(project, "pipeline", "tiny_an", [], dagster_instance, defs)
    runner.cross_corpus(project, dagster_instance, defs)
    paths = ProjectPaths(project)
    data = json.loads((project / "reports" / "cross_corpus" / "left_right" / "tfidf_svm_quick" / "matrix.json").read_text())
    assert data["rows_trained_on"] == ["tiny_mpt", "tiny_an"] and len(data["macro_f1"]) == 2
    assert data["protocol"]["tiny_mpt"]["split"] == "grouped by speaker" and data["protocol"]["tiny_an"]["split"] == "stratified"
    # off the diagonal: every labelled document of the other dataset (test_cross_corpus_whole.py), its report under cells/
    cross = paths.reports / "cross_corpus" / "left_right" / "tfidf_svm_quick" / "cells" / "tiny_mpt@tiny_an"
    meta = json.loads((cross / "meta_eval.json").read_text())
    assert meta["dataset_id"] == "tiny_mpt" and meta["eval_dataset_id"] == "tiny_an" and meta["documents"] == "all labelled documents"
    # the same vocabulary separates both corpora: a model trained on one transfers to the other
    assert data["macro_f1"][0][1] >= 0.9
    assert (project / "reports" / "cross_corpus" / "left_right" / "tfidf_svm_quick" / "matrix.png").stat().st_size > 1000


def test_same_seed_gives_identical_sklearn_metrics(trained) -> None:
    project, defs, _, _, dagster_instance = trained
    paths = ProjectPaths(project)
    first = json.loads((paths.report_dir("tiny_mpt", "left_right", "sklearn", "tfidf_logreg") / "metrics.json").read_text())
    # a fresh model is not re-run (same versions): remove it so that it is trained and scored again
    shutil.rmtree(paths.model_dir("tiny_mpt", "left_right", "sklearn", "tfidf_logreg"))
    report = runner.run_stage(project, "pipeline", "tiny_quick", ["models=[tfidf_logreg]", "families=[sklearn]"], dagster_instance, defs)
    assert [job for job, _, _ in report.runs] == ["view_pipeline"] and "view_split[tiny_mpt|left_right]" in report.skipped
    second = json.loads((paths.report_dir("tiny_mpt", "left_right", "sklearn", "tfidf_logreg") / "metrics.json").read_text())
    assert first == second


def test_bootstrap_interval_brackets_the_score_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    gold = list(rng.choice(["a", "b", "c"], size=300))
    pred = [g if rng.random() < 0.7 else "a" for g in gold]
    m = metrics.classification_metrics(gold, pred, ["a", "b", "c"])
    ci = metrics.bootstrap_intervals(gold, pred, ["a", "b", "c"], seed=1, n_boot=300)
    assert ci["macro_f1"][0] < m["macro_f1"] < ci["macro_f1"][1] and ci["accuracy"][0] < m["accuracy"] < ci["accuracy"][1]
    assert ci == metrics.bootstrap_intervals(gold, pred, ["a", "b", "c"], seed=1, n_boot=300)
    from sklearn.metrics import f1_score

    assert m["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro"))


def test_paired_bootstrap_says_which_model_is_better() -> None:
    rng = np.random.default_rng(3)
    labels = ["a", "b", "c"]
    gold = list(rng.choice(labels, size=400))
    good = [g if rng.random() < 0.85 else "a" for g in gold]
    poor = [g if rng.random() < 0.55 else "b" for g in gold]
    f1 = lambda pred: metrics.classification_metrics(gold, pred, labels)["macro_f1"]  # noqa: E731
    delta = metrics.paired_bootstrap_delta(gold, good, poor, labels, seed=2)
    assert delta["delta_macro_f1"] == pytest.approx(f1(good) - f1(poor))
    assert 0 < delta["ci95"][0] < delta["delta_macro_f1"] < delta["ci95"][1] and delta["share_a_better"] == 1.0
    reverse = metrics.paired_bootstrap_delta(gold, poor, good, labels, seed=2)
    assert reverse["ci95"][1] < 0
    assert metrics.paired_bootstrap_delta(gold, good, good, labels, seed=2)["ci95"] == [0.0, 0.0]


def test_leaderboard_compares_every_model_with_the_reference_on_the_same_documents(trained) -> None:
    project = trained[0]
    table = pd.read_csv(project / "reports" / "leaderboard.tsv", sep="\t")
    rows = table[(table["dataset_id"] == "tiny_mpt") & (table["view"] == "left_right")].set_index("model_id")
    assert rows.loc["tfidf_svm_quick", "delta_macro_f1"] != rows.loc["tfidf_svm_quick", "delta_macro_f1"]  # NaN: the reference itself
    check = rows.loc["check_default"]
    assert check["delta_vs"] == "tfidf_svm_quick"
    assert check["delta_macro_f1"] == pytest.approx(check["macro_f1"] - rows.loc["tfidf_svm_quick", "macro_f1"], abs=2e-4)
    # the split is grouped by speaker and the tiny job set holds one speaker per side: resampling
    # speakers (not documents), the paired interval reaches 0 and the Holm-adjusted p says nothing
    assert check["delta_low"] < 0 <= check["delta_high"] and check["delta_p_holm"] >= 0.05
    assert rows.loc["tfidf_logreg", "baseline_vs"] == "check_default"
    board = (project / "reports" / "leaderboard.md").read_text()
    assert "Δ macro-F1 vs tfidf_svm_quick" in board and "| reference |" in board and "| control |" in board
    assert "(worse)" not in board and "p-values Holm-adjusted over the" in board


@pytest.mark.parametrize("char_ngram_max", [None, 4])
def test_top_terms_name_the_right_features(char_ngram_max) -> None:
    """Terms are looked up by column index across the word block and (optionally) the char block;
    an off-by-one in the offsets would name the wrong terms."""
    from pepm_assets.core.families.sklearn import SklearnParams, build_pipeline, discriminative_terms

    texts = ["égalité droits couples", "droits égalité amour", "famille tradition enfant", "enfant famille filiation"] * 5
    labels_ = ["left", "left", "right", "right"] * 5
    pipeline = build_pipeline(SklearnParams(min_df=1, char_ngram_max=char_ngram_max, char_ngram_min=3), seed=0, class_weight=None)
    pipeline.fit(texts, labels_)
    terms = discriminative_terms(pipeline, k=200)
    names = pipeline.named_steps["tfidf"].get_feature_names_out()
    weights = pipeline.named_steps["clf"].coef_[0]
    expected = {("char:" + n.split("__", 1)[1]) if n.startswith("char__") else n.split("__", 1)[-1]: w for n, w in zip(names, weights)}
    for term, weight in terms["right"]:
        assert expected[term] == pytest.approx(weight, abs=1e-4)
    left_words = {"égalité", "droits", "amour", "couples"}
    assert all(set(t.split()) <= left_words for t, _ in terms["left"][:3] if not t.startswith("char:"))
    assert any(t.startswith("char:") for t, _ in terms["right"]) == (char_ngram_max is not None)


def test_retraining_adds_a_version_to_the_registered_model(tmp_path: Path) -> None:
    """The registered model is created once; each later training adds a version (not an error)."""
    import mlflow

    from pepm_assets.core.tracking import Tracker

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "meta_model.json").write_text("{}")
    meta = {"dataset_id": "d", "view": "v", "model_id": "m", "model_params": {"C": 1.0}, "train_seconds": 0.1, "n_train_used": 3}
    tracker = Tracker(tmp_path, uri)
    first = tracker.log_training(meta, {"seed": 1}, model_dir, {"seed": "1"})
    second = tracker.log_training(meta, {"seed": 2}, model_dir, {"seed": "2"})
    assert (first["registered_model"], first["version"], second["version"]) == ("pepm.d.v.m", "1", "2")
    versions = mlflow.MlflowClient(tracking_uri=uri).search_model_versions("name = 'pepm.d.v.m'")
    assert sorted(v.run_id for v in versions) == sorted([first["run_id"], second["run_id"]])


def test_each_tracking_database_gets_its_own_experiment_in_one_process(tmp_path: Path) -> None:
    """The experiment id is remembered per tracking URI: two projects in one process (a code
    server, the tests) log into their own databases."""
    import mlflow

    from pepm_assets.core.tracking import EXPERIMENT, Tracker

    report = tmp_path / "report"
    report.mkdir()
    (report / "metrics.json").write_text("{}")
    meta = {"model_id": "m", "dataset_id": "d", "eval_dataset_id": "d", "view": "v", "params_hash": "h", "seed": 1}
    (tmp_path / "b").mkdir()
    mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}").create_experiment("other")  # ids differ in b
    for project, score in (("a", 0.5), ("b", 0.7), ("a", 0.6)):
        uri = f"sqlite:///{tmp_path / project / 'mlflow.db'}"
        run_id = Tracker(tmp_path / project, uri).log_evaluation(meta, {"macro_f1": score}, report, {"seed": "1"})
        client = mlflow.MlflowClient(tracking_uri=uri)
        run = client.get_run(run_id)
        assert run.data.metrics["macro_f1"] == score and client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    runs_a = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}").search_runs([run.info.experiment_id])
    assert sorted(r.data.metrics["macro_f1"] for r in runs_a) == [0.5, 0.6]


def test_early_stop_flags_only_when_every_threshold_is_missed() -> None:
    """The spec's §8.6: accuracy AND macro-F1 both low -> quality_ok false; one low -> ok (flag kept);
    disabled or no threshold -> ok."""
    from pepm_assets.core.config import EarlyStop

    both = EarlyStop(min_accuracy=0.6, min_macro_f1=0.55)
    assert both.judge({"accuracy": 0.5, "macro_f1": 0.5}) == (False, ["low_accuracy", "low_macro_f1"])
    assert both.judge({"accuracy": 0.7, "macro_f1": 0.5}) == (True, ["low_macro_f1"])
    assert both.judge({"accuracy": 0.7, "macro_f1": 0.6}) == (True, [])
    assert EarlyStop(min_macro_f1=0.55).judge({"accuracy": 0.9, "macro_f1": 0.5}) == (False, ["low_macro_f1"])
    assert EarlyStop(enabled=False, min_accuracy=0.9, min_macro_f1=0.9).judge({"accuracy": 0.1, "macro_f1": 0.1}) == (True, [])
    assert EarlyStop(min_accuracy=0.6).judge({"ari": 0.1}) == (True, [])  # a clustering has no accuracy


def test_sklearn_scores_are_the_predicted_class_probability(tmp_path: Path) -> None:
    """logreg: `scores` is predict_proba's max; linear_svc (no predict_proba): a softmax of its
    margins, in [0, 1], highest for the texts it is surest of."""
    from pepm_assets.core.families import build, load_estimator, save_estimator
    from pepm_assets.core.families.sklearn import MODEL_FILE, build_pipeline

    texts = ["pomme rouge mûre", "chat noir gris", "pomme verte", "chien noir", "pomme jaune", "chat blanc noir"] * 3
    labels = ["fruit", "animal"] * 9
    for estimator in ("logreg", "linear_svc"):
        family = build("sklearn", {"estimator": estimator, "min_df": 1})
        model_dir = tmp_path / estimator
        model_dir.mkdir()
        pipeline = build_pipeline(family.params, 0, None)
        pipeline.fit(texts, labels)
        save_estimator(pipeline, model_dir / MODEL_FILE)
        new = ["pomme", "chat noir", "rien du tout"]
        got = family.scores(model_dir, new)
        assert len(got) == len(new) and all(0 <= s <= 1 for s in got)
        if estimator == "logreg":
            assert got == pytest.approx(load_estimator(model_dir / MODEL_FILE).predict_proba(new).max(axis=1).tolist())
        else:
            assert min(got) >= 0.5 and got[2] < max(got[:2])


def test_linear_svc_fits_with_the_dual_solver_where_scikit_learn_would_take_the_primal(tmp_path: Path) -> None:
    """More documents than features (every large corpus: MPT x40 is 342,841 x 185,377) makes
    scikit-learn's dual="auto" take the primal solver, 13x slower on TF-IDF text for the same model.
    The family fits the dual one, says so in its fit facts, and the two solvers agree."""

    from sklearn.svm import LinearSVC

    from pepm_assets.core.config import HardwarePreset
    from pepm_assets.core.families import TrainData, build, load_estimator
    from pepm_assets.core.families.sklearn import MODEL_FILE

    rng = random.Random(0)
    left, right = ["égalité", "droits", "services", "public", "salaires"], ["ordre", "sécurité", "entreprise", "famille", "impôts"]
    texts, labels_ = [], []
    for i in range(400):
        words = left if i % 2 else right
        texts.append(" ".join(rng.choice(words + left[:2] + right[:2]) for _ in range(8)))
        labels_.append("left" if i % 2 else "right")
    family = build("sklearn", {"estimator": "linear_svc", "min_df": 1, "ngram_max": 1})
    data = TrainData(
        pd.DataFrame({"doc_id": range(400), "label": labels_, "text": texts}), ["left", "right"], 0, HardwarePreset(), tmp_path
    )
    facts = family.fit(data, tmp_path)
    fitted = load_estimator(tmp_path / MODEL_FILE)
    features = fitted.named_steps["tfidf"].transform(texts)
    assert features.shape[0] > features.shape[1]  # where "auto" means the primal solver
    assert fitted.named_steps["clf"].dual is True and facts["dual"] is True
    assert 0 < facts["n_iter"] < facts["max_iter"]
    primal = LinearSVC(C=1.0, dual=False, random_state=0).fit(features, labels_)
    assert (primal.predict(features) == fitted.named_steps["clf"].predict(features)).mean() >= 0.99
