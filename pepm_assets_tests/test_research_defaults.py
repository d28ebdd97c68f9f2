"""Honest by default (issue 17, item 1): a profile's split is grouped by speaker unless it says
`split: {group_by: null}`; the linear models weight classes when the training set is imbalanced
(`class_weight: auto`); and every score is stated with its protocol (split kind, seed, class
weighting) in metrics.json, meta_eval.json, the report, the index, the leaderboard and MLflow.
On the tiny fixture project, through the plain-Python core (no Dagster)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pepm_assets.core import families, reports, split, stages, training
from pepm_assets.core.config import resolve_profile
from pepm_assets.core.config.schema import HardwarePreset, SplitConfig
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.families import load_estimator
from pepm_assets.core.families.sklearn import IMBALANCE_RATIO, MODEL_FILE
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import ViewError, build_view, read_tsv_file
from pepm_assets_tests.fixtures import build_stamped_view, make_project

SKLEARN = ["families=[sklearn]", "models=[tfidf_svm_quick,tfidf_logreg,tfidf_nb]"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture project with both corpora parsed once."""
    root = make_project(tmp_path_factory.mktemp("defaults") / "proj")
    paths = ProjectPaths(root)
    params = resolve_profile(root, "tiny_multi")
    for cid in ("mpt", "an"):
        extract_corpus(cid, params.corpora[cid], root, paths.corpus_dir(cid))
    return root


# ---------------------------------------------------------------- the split
def test_a_profile_without_split_keeps_each_speaker_on_one_side(project: Path) -> None:
    """tiny_quick says nothing of its split: grouped by speaker, no speaker in both train and job."""
    params, result = build_stamped_view(project, "tiny_quick")
    assert params.split.group_by == "speaker"
    train, job = read_tsv_file(result.train_path), read_tsv_file(result.job_path)
    assert set(train["label"]) == set(job["label"]) == {"left", "right"}
    assert not set(train["speaker"]) & set(job["speaker"])
    assert result.meta["split"]["kind"] == "grouped by speaker" and result.meta["split"]["group_by"] == "speaker"
    assert result.meta["leakage"]["shared_speaker"] == 0
    # the default is the explicit `group_by: speaker`: the same parameters, the same split
    explicit, _ = build_stamped_view(project, "tiny_quick", ["split.group_by=speaker"])
    assert explicit.params_hash == params.params_hash


def test_group_by_null_gives_the_split_stratified_by_label(project: Path) -> None:
    grouped, _ = build_stamped_view(project, "tiny_quick")
    params, result = build_stamped_view(project, "tiny_quick", ["split.group_by=null"])
    assert params.split.group_by is None and params.params_hash != grouped.params_hash  # another split, another version
    train, job = read_tsv_file(result.train_path), read_tsv_file(result.job_path)
    pool = pd.concat([train, job])
    for label, n in pool["label"].value_counts().items():  # train_prop 0.75 of each class
        assert (train["label"] == label).sum() == round(0.75 * n), label
    assert set(train["speaker"]) & set(job["speaker"])  # what grouping prevents
    assert result.meta["split"]["kind"] == "stratified"
    assert "shared_speaker" not in result.meta["leakage"]


def test_split_kind_names_the_split() -> None:
    assert split.split_kind(SplitConfig()) == "grouped by speaker"
    assert split.split_kind(SplitConfig(group_by="sitting")) == "grouped by sitting"
    assert split.split_kind(SplitConfig(group_by=None)) == "stratified"
    assert split.split_kind(SplitConfig(group_by=None, stratify=False)) == "random"


def test_a_labelled_document_without_speaker_is_refused_by_a_grouped_split(project: Path, tmp_path: Path) -> None:
    """Not guessed into a group: the error names the column, the documents and the way out."""
    params = resolve_profile(project, "tiny_quick")
    docs = pq.read_table(ProjectPaths(project).corpus_dir("mpt") / "docs.parquet").to_pandas()
    blank = docs.index[docs["speaker"] == "Erwann_Binet"][:2]
    docs.loc[blank, "speaker"] = ["", None]
    edited = tmp_path / "docs.parquet"
    docs.to_parquet(edited)
    with pytest.raises(ViewError, match=r"2 of the \d+ labelled documents .* have no 'speaker' .*group_by: null"):
        build_view(params, project, {"mpt": edited})
    stratified = resolve_profile(project, "tiny_quick", ["split.group_by=null"])
    assert build_view(stratified, project, {"mpt": edited}).meta["split"]["kind"] == "stratified"


# ---------------------------------------------------------------- class weighting
def _train_data(tmp_path: Path, n_left: int, n_right: int, class_weights: dict[str, float] | None = None) -> families.TrainData:
    rows = [(f"l{i}", "left", f"égalité droits couples {i}") for i in range(n_left)]
    rows += [(f"r{i}", "right", f"filiation enfant nature {i}") for i in range(n_right)]
    train = pd.DataFrame(rows, columns=["doc_id", "label", "text"])
    return families.TrainData(
        train=train, labels=["left", "right"], seed=0, hardware=HardwarePreset(), root=tmp_path, class_weights=class_weights
    )


def _fitted_class_weight(tmp_path: Path, params: dict, data: families.TrainData) -> tuple[object, dict]:
    model_dir = tmp_path / f"m{len(list(tmp_path.glob('m*')))}"
    model_dir.mkdir()
    facts = families.build("sklearn", {"min_df": 1, **params}).fit(data, model_dir)
    return load_estimator(model_dir / MODEL_FILE).named_steps["clf"].class_weight, facts


@pytest.mark.parametrize("estimator", ["linear_svc", "logreg"])
def test_auto_class_weight_is_balanced_on_an_imbalanced_train_set_only(tmp_path: Path, estimator: str) -> None:
    params = {"estimator": estimator}  # class_weight left to its default, auto
    weight, facts = _fitted_class_weight(tmp_path, params, _train_data(tmp_path, 30, 10))
    assert weight == "balanced" and facts["class_weight"] == "balanced" and facts["train_class_ratio"] == 3.0
    weight, facts = _fitted_class_weight(tmp_path, params, _train_data(tmp_path, 20, 20))
    assert weight is None and facts["class_weight"] == "none"
    # the threshold: largest / smallest above IMBALANCE_RATIO (1.2), not at it
    assert IMBALANCE_RATIO == 1.2
    assert _fitted_class_weight(tmp_path, params, _train_data(tmp_path, 12, 10))[0] is None
    assert _fitted_class_weight(tmp_path, params, _train_data(tmp_path, 13, 10))[0] == "balanced"
    assert _fitted_class_weight(tmp_path, {**params, "imbalance_ratio": 2.0}, _train_data(tmp_path, 13, 10))[0] is None
    # the balance strategy class_weights still asks for weights, whatever the counts
    assert _fitted_class_weight(tmp_path, params, _train_data(tmp_path, 10, 10, {"left": 1.0, "right": 1.0}))[0] == "balanced"


def test_explicit_class_weight_overrides_auto(tmp_path: Path) -> None:
    weight, facts = _fitted_class_weight(tmp_path, {"class_weight": "none"}, _train_data(tmp_path, 30, 10))
    assert weight is None and facts["class_weight"] == "none"
    weight, facts = _fitted_class_weight(tmp_path, {"class_weight": "balanced"}, _train_data(tmp_path, 20, 20))
    assert weight == "balanced" and facts["class_weight"] == "balanced"
    model_dir = tmp_path / "nb"
    model_dir.mkdir()
    nb = families.build("sklearn", {"min_df": 1, "estimator": "complement_nb"}).fit(_train_data(tmp_path, 30, 10), model_dir)
    assert nb["class_weight"] == "none"  # ComplementNB has no class weights: never recorded as weighted


# ---------------------------------------------------------------- the protocol, stated with every score
@pytest.fixture(scope="module")
def evaluated(project: Path) -> tuple[Path, dict[str, dict]]:
    """tiny_quick's three sklearn models trained and evaluated, the leaderboard written."""
    params, result = build_stamped_view(project, "tiny_quick", SKLEARN)
    stages.build_formats(params, project)
    results = {}
    for model_id in params.models:
        spec = params.model_specs[model_id]
        training.commit_model(project, training.train_model(params, model_id, spec, project))
        results[model_id] = training.evaluate_model(params, model_id, spec, project, n_boot=20)
        training.commit_evaluation(project, results[model_id])
    reports.write_leaderboard(ProjectPaths(project))
    counts = read_tsv_file(result.train_path)["label"].value_counts()
    assert counts.max() / counts.min() > IMBALANCE_RATIO  # tiny_quick's train set is imbalanced (24 left, 36 right)
    return project, results


EXPECTED = {
    "tfidf_svm_quick": {"split": "grouped by speaker", "seed": 7, "class_weight": "balanced", "splits": 1},
    "tfidf_logreg": {"split": "grouped by speaker", "seed": 7, "class_weight": "balanced", "splits": 1},
    "tfidf_nb": {"split": "grouped by speaker", "seed": 7, "class_weight": "none", "splits": 1},
}


def test_metrics_meta_eval_and_report_state_the_protocol(evaluated) -> None:
    project, results = evaluated
    for model_id, expected in EXPECTED.items():
        report_dir = Path(results[model_id]["report_dir"])
        assert json.loads((report_dir / "metrics.json").read_text())["protocol"] == expected
        meta_eval = json.loads((report_dir / "meta_eval.json").read_text())
        assert {k: meta_eval[k] for k in expected} == expected
        meta_model = json.loads(
            (ProjectPaths(project).model_dir("tiny_mpt", "left_right", "sklearn", model_id) / "meta_model.json").read_text()
        )
        assert (meta_model["split"], meta_model["class_weight"]) == (expected["split"], expected["class_weight"])
        report = (report_dir / "classification_report.txt").read_text().splitlines()
        assert report[1] == f"split grouped by speaker · seed 7 · class weights {expected['class_weight']}"


def test_leaderboard_rows_state_the_protocol(evaluated) -> None:
    project, _ = evaluated
    out = ProjectPaths(project).reports
    table = pd.read_csv(out / "leaderboard.tsv", sep="\t", dtype={"seed": int, "seeds": str}).set_index("model_id")
    for model_id, expected in EXPECTED.items():
        row = table.loc[model_id]
        assert (row["split"], row["seed"], row["class_weight"], row["seeds"]) == (
            expected["split"],
            expected["seed"],
            expected["class_weight"],
            "7",
        )
    board = (out / "leaderboard.md").read_text()
    for model_id, expected in EXPECTED.items():
        line = next(line for line in board.splitlines() if line.startswith("| ") and f"| {model_id} |" in line)
        assert line.endswith(f"| split grouped by speaker · seed 7 · class weights {expected['class_weight']} |")


def test_mlflow_runs_state_the_protocol(evaluated, tmp_path: Path) -> None:
    import mlflow

    from pepm_assets.core.tracking import Tracker

    project, results = evaluated
    tracker = Tracker(project, uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    paths = ProjectPaths(project)
    model_dir = paths.model_dir("tiny_mpt", "left_right", "sklearn", "tfidf_svm_quick")
    meta_model = json.loads((model_dir / "meta_model.json").read_text())
    train_id = tracker.log_training(meta_model, {"seed": 7}, model_dir, {"stage_test": "1"}, register=False)["run_id"]
    result = results["tfidf_svm_quick"]
    eval_id = tracker.log_evaluation(result, result["metrics"], Path(result["report_dir"]), {})
    client = mlflow.MlflowClient(tracker.uri)
    for run_id in (train_id, eval_id):
        logged = client.get_run(run_id).data.params
        assert (logged["split"], logged["class_weight"]) == ("grouped by speaker", "balanced"), run_id
    assert client.get_run(eval_id).data.params["seed"] == "7"
