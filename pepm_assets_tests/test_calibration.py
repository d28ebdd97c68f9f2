"""Calibration of predicted class scores (issue 17, item 8): every family that can score each class
returns the scores at predict time (`predict_scores`), evaluation writes them to predictions.tsv
(one `score_<class>` column per class) and measures their calibration (Brier, top-label ECE over
10 bins, a reliability diagram) into metrics.json, the index and MLflow. The formulas on synthetic
scores against scikit-learn and direct sums; the whole path on the tiny fixture project, through
the plain-Python core, with real sklearn, spaCy and transformers models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepm_assets.core import families, metrics, stages, training
from pepm_assets.core.config import ModelSpec, resolve_profile
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.families.check import CheckFamily
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import read_tsv_file
from pepm_assets_tests.fixtures import build_stamped_view, make_project

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NO_SCORES = "calibration_test_no_scores"


class NoScoresFamily(CheckFamily):
    """The check family with no class scores and no confidence: what an extension family that only
    implements `predict` looks like to evaluation."""

    def scores(self, model_dir: Path, texts: list[str]) -> list[float] | None:
        return None

    def predict_scores(self, model_dir, texts):  # the base class's: predict_scored, no class scores
        return families.Family.predict_scores(self, model_dir, texts)


if NO_SCORES not in families.REGISTRY:
    families.REGISTRY.register(NO_SCORES)(NoScoresFamily)


# ---------------------------------------------------------------- the formulas
def test_brier_equals_scikit_learn_on_two_classes() -> None:
    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(0)
    labels = ["left", "right"]
    p_right = rng.uniform(size=500)
    gold = ["right" if u < p else "left" for u, p in zip(rng.uniform(size=500), p_right)]
    proba = np.column_stack([1 - p_right, p_right])
    got = metrics.brier_scores(gold, proba, labels)
    expected = brier_score_loss([g == "right" for g in gold], p_right)
    assert got["brier"] == pytest.approx(expected, abs=1e-12)
    # each class's binary Brier is the same number for two classes; never the sum over classes (2x)
    assert got["per_class"]["right"] == pytest.approx(expected, abs=1e-12)
    assert got["per_class"]["left"] == pytest.approx(expected, abs=1e-12)
    assert got["brier"] != pytest.approx(2 * expected)


def test_brier_on_three_classes_is_the_mean_squared_error_on_one_hot() -> None:
    rng = np.random.default_rng(1)
    labels = ["centre", "left", "right"]
    proba = rng.dirichlet([1.0, 1.0, 1.0], size=300)
    gold = [labels[i] for i in rng.integers(0, 3, size=300)]
    direct = sum((proba[i, c] - (gold[i] == labels[c])) ** 2 for i in range(300) for c in range(3)) / (300 * 3)
    got = metrics.brier_scores(gold, proba, labels)
    assert got["brier"] == pytest.approx(direct, abs=1e-12)
    for c, label in enumerate(labels):
        assert got["per_class"][label] == pytest.approx(np.mean([(proba[i, c] - (gold[i] == label)) ** 2 for i in range(300)]))
    assert got["brier"] == pytest.approx(np.mean(list(got["per_class"].values())))
    # perfect one-hot forecasts score 0, the opposite certainty 2/K
    exact = metrics.one_hot(gold, labels)
    assert metrics.brier_scores(gold, exact, labels)["brier"] == 0.0


def test_ece_is_near_zero_when_calibrated_and_large_when_overconfident() -> None:
    rng = np.random.default_rng(2)
    n = 200_000
    confidence = rng.uniform(0.5, 1.0, size=n)
    calibrated = rng.uniform(size=n) < confidence  # right exactly as often as the score says
    assert metrics.expected_calibration_error(confidence, calibrated) < 0.01
    over = rng.uniform(0.9, 1.0, size=n)
    right_60 = rng.uniform(size=n) < 0.6  # says 95 %, is right 60 % of the time
    ece = metrics.expected_calibration_error(over, right_60)
    assert ece == pytest.approx(0.95 - 0.6, abs=0.01) and ece > 0.3


def test_reliability_bins_are_ten_equal_width_bins_with_counts() -> None:
    conf = np.array([0.0, 0.05, 0.1, 0.55, 0.55, 0.999, 1.0])
    correct = np.array([0, 0, 1, 1, 0, 1, 1])
    bins = metrics.reliability_bins(conf, correct)
    assert len(bins) == metrics.CALIBRATION_BINS == 10
    assert [b["lower"] for b in bins] == pytest.approx([i / 10 for i in range(10)])
    assert sum(b["n"] for b in bins) == len(conf)
    assert bins[0]["n"] == 2 and bins[1]["n"] == 1 and bins[5]["n"] == 2 and bins[9]["n"] == 2  # 1.0 in the last bin
    assert bins[5]["accuracy"] == 0.5 and bins[5]["confidence"] == pytest.approx(0.55)
    assert bins[3]["n"] == 0 and bins[3]["accuracy"] is None  # an empty bin has no accuracy, not 0
    # ECE by hand: bin shares x |accuracy - mean score|
    by_hand = 2 / 7 * abs(0 - 0.025) + 1 / 7 * abs(1 - 0.1) + 2 / 7 * abs(0.5 - 0.55) + 2 / 7 * abs(1 - 0.9995)
    assert metrics.expected_calibration_error(conf, correct) == pytest.approx(by_hand)


def test_margin_scores_are_reported_under_other_names() -> None:
    gold, pred = ["a", "b", "a"], ["a", "b", "b"]
    proba = np.array([[0.7, 0.3], [0.4, 0.6], [0.45, 0.55]])
    probability = metrics.calibration_metrics(gold, pred, proba, ["a", "b"])
    margins = metrics.calibration_metrics(gold, pred, proba, ["a", "b"], kind=families.MARGIN_SOFTMAX)
    assert "note" not in probability and "hinge" in margins["note"]
    assert set(metrics.calibration_summary(probability)) == {"brier", "ece"}
    assert set(metrics.calibration_summary(margins)) == {"brier_margin_softmax", "ece_margin_softmax"}
    assert metrics.calibration_summary({"available": False, "reason": "x"}) == {}
    # the predicted label's score, not the row max: the third document's predicted b at 0.55
    assert probability["mean_confidence"] == pytest.approx((0.7 + 0.6 + 0.55) / 3)


# ---------------------------------------------------------------- evaluation on the tiny project
MODELS = ["check_default", "tfidf_svm_quick", "tfidf_logreg"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("calibration") / "proj")
    params = resolve_profile(root, "tiny_quick")
    extract_corpus("mpt", params.corpora["mpt"], root, ProjectPaths(root).corpus_dir("mpt"))
    return root


@pytest.fixture(scope="module")
def evaluated(project: Path):
    """check, LinearSVC, logreg and the family without scores trained and evaluated on tiny_quick."""
    params, _ = build_stamped_view(project, "tiny_quick", ["families=[check,sklearn]", f"models=[{','.join(MODELS)}]"])
    stages.build_formats(params, project)
    specs = {**{m: params.model_specs[m] for m in MODELS}, "no_scores": ModelSpec(family=NO_SCORES)}
    results = {}
    for model_id, spec in specs.items():
        training.commit_model(project, training.train_model(params, model_id, spec, project))
        results[model_id] = training.evaluate_model(params, model_id, spec, project, n_boot=100)
        training.commit_evaluation(project, results[model_id])
    return params, results


def _report(result: dict) -> tuple[pd.DataFrame, dict]:
    """predictions.tsv as a reader outside pepm has it (pandas: the score columns as numbers), and metrics.json."""
    folder = Path(result["report_dir"])
    predictions = pd.read_csv(folder / "predictions.tsv", sep="\t", dtype={"doc_id": str, "label": str, "predicted": str})
    return predictions, json.loads((folder / "metrics.json").read_text(encoding="utf-8"))


def test_predictions_have_one_score_per_class_aligned_to_doc_ids(project: Path, evaluated) -> None:
    params, results = evaluated
    job = read_tsv_file(ProjectPaths(project).view_dir(params.dataset_id, params.view) / "job.tsv")
    for model_id in MODELS:
        predictions, scores = _report(results[model_id])
        labels = scores["labels"]
        columns = [f"score_{label}" for label in labels]
        # the existing columns first, unchanged, then one column per class
        assert list(predictions.columns[:4]) == ["doc_id", "label", "predicted", "score"]
        assert list(predictions.columns[-len(labels) :]) == columns
        assert predictions["doc_id"].tolist() == job["doc_id"].tolist()  # rows in job.tsv's order
        assert predictions["label"].tolist() == job["label"].tolist()
        matrix = predictions[columns].to_numpy(dtype=float)
        assert np.allclose(matrix.sum(axis=1), 1.0, atol=1e-5) and (matrix >= 0).all()
        # `score` is the predicted label's own column
        own = [float(row[f"score_{row['predicted']}"]) for _, row in predictions.iterrows()]
        assert predictions["score"].to_numpy() == pytest.approx(own, abs=1e-6)
        if model_id != "check_default":  # the check's prior is the same for every text
            assert [labels[i] for i in matrix.argmax(axis=1)] == predictions["predicted"].tolist()


def test_calibration_in_metrics_json_matches_the_predictions_file(evaluated) -> None:
    from sklearn.metrics import brier_score_loss

    _, results = evaluated
    for model_id, kind in (("tfidf_logreg", "probability"), ("tfidf_svm_quick", "margin_softmax"), ("check_default", "probability")):
        predictions, scores = _report(results[model_id])
        cal = scores["calibration"]
        assert cal["available"] and cal["scores"] == kind and cal["n"] == len(predictions) == scores["n"]
        assert cal["n_bins"] == 10 and sum(b["n"] for b in cal["bins"]) == cal["n"]
        assert ("note" in cal) == (kind == "margin_softmax")
        # recomputed from the file: binary Brier of the positive class, as scikit-learn has it
        positive = scores["labels"][1]
        expected = brier_score_loss((predictions["label"] == positive).to_numpy(), predictions[f"score_{positive}"].to_numpy())
        assert cal["brier"] == pytest.approx(expected, abs=1e-5)
        correct = (predictions["label"] == predictions["predicted"]).to_numpy()
        assert cal["ece"] == pytest.approx(metrics.expected_calibration_error(predictions["score"].to_numpy(), correct), abs=1e-5)
        summary = results[model_id]["metrics"]  # the index's and MLflow's headline
        suffix = "" if kind == "probability" else "_margin_softmax"
        assert summary[f"brier{suffix}"] == pytest.approx(cal["brier"]) and summary[f"ece{suffix}"] == pytest.approx(cal["ece"])
        assert not ({"brier", "ece"} & set(summary)) or kind == "probability"  # margins never under a probability's name
        report = (Path(results[model_id]["report_dir"]) / "classification_report.txt").read_text(encoding="utf-8")
        assert "Brier" in report and "ECE" in report
    # the base-rate forecast: the check's Brier is (about) the job set's no-skill reference
    check = _report(results["check_default"])[1]["calibration"]
    assert check["brier"] >= check["brier_base_rate"] - 1e-9
    assert _report(results["tfidf_logreg"])[1]["calibration"]["brier"] < check["brier"]


def test_reliability_diagram_is_drawn_beside_metrics(evaluated) -> None:
    _, results = evaluated
    for model_id in MODELS:
        png = Path(results[model_id]["report_dir"]) / training.RELIABILITY_PNG
        assert png.is_file() and png.read_bytes()[:8] == PNG_MAGIC
        assert training.RELIABILITY_PNG in results[model_id]["index_entry"]["files"]


def test_a_family_without_scores_writes_no_calibration_and_says_why(evaluated) -> None:
    _, results = evaluated
    predictions, scores = _report(results["no_scores"])
    assert set(scores["calibration"]) == {"available", "reason"} and scores["calibration"]["available"] is False
    assert "no class scores" in scores["calibration"]["reason"]
    assert not [c for c in predictions.columns if c.startswith("score")]  # neither `score` nor score_<class>
    assert not (Path(results["no_scores"]["report_dir"]) / training.RELIABILITY_PNG).exists()
    assert not {"brier", "ece", "brier_margin_softmax", "ece_margin_softmax"} & set(results["no_scores"]["metrics"])
    report = (Path(results["no_scores"]["report_dir"]) / "classification_report.txt").read_text(encoding="utf-8")
    assert "calibration: none" in report


def test_deferred_plots_then_journal_replay_log_calibration_to_mlflow(project: Path, evaluated, tmp_path: Path) -> None:
    """A sweep run: evaluation without plots, its MLflow calls journaled; the PNGs drawn after
    (draw_confusions), then the journal replayed: brier/ece are MLflow metrics and the reliability
    diagram an artifact of the evaluation's run."""
    import mlflow

    from pepm_assets.core.tracking import Journal, Tracker, replay

    params, _ = evaluated
    spec = params.model_specs["tfidf_logreg"]
    result = training.evaluate_model(params, "tfidf_logreg", spec, project, n_boot=100, plots=False)
    report = Path(result["report_dir"])
    assert not (report / training.RELIABILITY_PNG).exists()  # left to the sweep's parent
    journal = Journal(tmp_path / "journal.jsonl", fresh=True)
    journal.log_evaluation(result, result["metrics"], report, {"seed": str(params.seed)})
    drawn = training.draw_confusions(report)
    assert report / training.RELIABILITY_PNG in drawn and report / training.CONFUSION_PNG in drawn
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    replay(journal.path, Tracker(tmp_path, uri))
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.data.metrics["brier"] == pytest.approx(result["metrics"]["brier"])
    assert run.data.metrics["ece"] == pytest.approx(result["metrics"]["ece"])
    artifacts = [a.path for a in client.list_artifacts(run.info.run_id, "report")]
    assert f"report/{training.RELIABILITY_PNG}" in artifacts


# ---------------------------------------------------------------- spaCy and transformers
@pytest.mark.parametrize("model_id", ["spacy_bow", "hf_tiny"])
def test_spacy_and_hf_give_probabilities_for_every_class(project: Path, model_id: str) -> None:
    """doc.cats (spaCy's exclusive textcat) and a softmax of the logits (hf): one probability per
    class, summing to 1, the predicted label the most probable; calibration measured."""
    family = "spacy" if model_id.startswith("spacy") else "hf"
    params, _ = build_stamped_view(project, "tiny_quick", [f"families=[{family}]", f"models=[{model_id}]"])
    stages.build_formats(params, project)
    spec = params.model_specs[model_id]
    training.commit_model(project, training.train_model(params, model_id, spec, project))
    result = training.evaluate_model(params, model_id, spec, project, n_boot=100)
    predictions, scores = _report(result)
    columns = [f"score_{label}" for label in scores["labels"]]
    matrix = predictions[columns].to_numpy(dtype=float)
    assert np.allclose(matrix.sum(axis=1), 1.0, atol=1e-5), family
    assert [scores["labels"][i] for i in matrix.argmax(axis=1)] == predictions["predicted"].tolist()
    assert predictions["score"].to_numpy() == pytest.approx(matrix.max(axis=1), abs=1e-6)
    assert scores["calibration"]["available"] and scores["calibration"]["scores"] == "probability"
    assert 0 <= scores["calibration"]["brier"] <= 1 and 0 <= scores["calibration"]["ece"] <= 1
    assert (Path(result["report_dir"]) / training.RELIABILITY_PNG).is_file()


def test_corpus_models_scores_are_joined_row_by_row() -> None:
    """merge_mode separate: each corpus's model scores its own rows, over its own classes; the joined
    matrix puts every row's scores on that row (job order, not corpus order), 0 for a class a
    corpus's model never saw."""
    job = pd.DataFrame({"corpus_id": ["b", "a", "b", "a"]}, index=[10, 11, 12, 13])
    groups = {cid: idx for cid, idx in job.groupby("corpus_id").groups.items()}
    parts = {
        "a": families.ClassScores(["left", "right"], np.array([[0.9, 0.1], [0.2, 0.8]])),  # rows 11, 13
        "b": families.ClassScores(["centre", "left"], np.array([[0.6, 0.4], [0.3, 0.7]])),  # rows 10, 12
    }
    joined = training._join_class_scores(job, groups, parts)
    assert joined.classes == ["centre", "left", "right"] and joined.kind == families.PROBABILITY
    assert joined.matrix.tolist() == [[0.6, 0.4, 0.0], [0.0, 0.9, 0.1], [0.3, 0.7, 0.0], [0.0, 0.2, 0.8]]
    assert training._join_class_scores(job, groups, None) is None  # one corpus's model without scores: none at all
