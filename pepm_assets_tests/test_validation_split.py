"""split.validation_prop: a validation set carved out of the train side (valid.tsv), so that model
selection is never made on the job set; its scores in the evaluation (core/prepare.py, split.py,
training.py). On the tiny fixture project, through the plain-Python core (no Dagster)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from pepm_assets.core import lineage, split, stages, training
from pepm_assets.core.config import ResolvedParams, resolve_on_dataset, resolve_profile
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.families import load_estimator
from pepm_assets.core.families.sklearn import MODEL_FILE
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import ViewResult, build_view, read_tsv_file
from pepm_assets_tests.fixtures import build_stamped_view, make_project

# tiny_quick: tiny_mpt, grouped by speaker (the default), train_prop 0.75, seed 7; STRATIFIED: its
# split stratified by label instead; tiny_multi: grouped by speaker, oversampled train
STRATIFIED = "split.group_by=null"
MODELS = ["families=[sklearn,cluster]", "models=[tfidf_logreg,kmeans_tfidf]"]
# train.tsv / job.tsv of the fixture as the code before validation_prop wrote them (sha256, first 16
# hex digits), and the params hash of tiny_quick then: validation_prop 0 must change neither. (If the
# fixture data changes, recompute them from the code with validation_prop 0.) tiny_quick's split was
# stratified then: STRATIFIED gives the same parameters, so the same hash and files.
BEFORE = {
    ("tiny_quick", (STRATIFIED,)): ("1089211939a110e0", "15ef1c651a3f32f5", "e53edbc752ffad80"),
    ("tiny_multi", ()): ("145ab4ae076283b7", "a5eda05a672a686e", "7ff7967929c3b42b"),
    ("tiny_quick", (STRATIFIED, "balance_strategy=oversample", "balance_preset=parity")): (
        "5b8e0f1288ee0cab",
        "b5c6575246898482",
        "e53edbc752ffad80",
    ),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture project with both corpora parsed once (the tests rebuild views, never corpora)."""
    root = make_project(tmp_path_factory.mktemp("valid") / "proj")
    paths = ProjectPaths(root)
    params = resolve_profile(root, "tiny_multi")
    for cid in ("mpt", "an"):
        extract_corpus(cid, params.corpora[cid], root, paths.corpus_dir(cid))
    return root


_build = build_stamped_view


def _view_state(project: Path, params: ResolvedParams) -> lineage.Status:
    return next(s for s in lineage.Expected(project).statuses(params, {}) if s.asset == "view_split")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _sets(result: ViewResult) -> dict[str, pd.DataFrame]:
    folder = result.train_path.parent
    return {name: read_tsv_file(folder / f"{name}.tsv") for name in ("train", "valid", "job")}


@pytest.mark.parametrize(("profile", "overrides"), list(BEFORE))
def test_no_validation_leaves_the_split_byte_identical(project: Path, profile: str, overrides: tuple[str, ...]) -> None:
    params, result = _build(project, profile, list(overrides))
    assert (params.params_hash, _sha(result.train_path), _sha(result.job_path)) == BEFORE[(profile, overrides)]
    assert result.valid is None and result.valid_path is None and not (result.train_path.parent / "valid.tsv").exists()
    assert "validation_prop" not in result.meta["params"]["split"] and "n_valid" not in result.meta["split"]
    assert result.meta["lineage"]["files"] == ["train.tsv", "job.tsv"]


def test_validation_is_its_share_of_the_train_side_per_class(project: Path) -> None:
    _, before = _build(project, "tiny_quick", [STRATIFIED])
    pre_carve = before.train["label"].value_counts()
    job_bytes = before.job_path.read_bytes()
    _, result = _build(project, "tiny_quick", [STRATIFIED, "split.validation_prop=0.2"])
    sets = _sets(result)
    fit, valid = sets["train"]["label"].value_counts(), sets["valid"]["label"].value_counts()
    for label, n in pre_carve.items():
        assert abs(valid[label] - 0.2 * n) <= 1 and fit[label] + valid[label] == n
    assert result.job_path.read_bytes() == job_bytes  # carved from train: the job set does not move
    meta = result.meta
    assert meta["split"]["validation_prop"] == 0.2 and meta["split"]["n_valid"] == len(valid := sets["valid"])
    assert meta["split"]["valid_label_counts"] == valid["label"].value_counts().sort_index().to_dict()
    assert meta["paths"]["valid"].endswith("tiny_mpt/left_right/valid.tsv")
    assert meta["lineage"]["files"] == ["train.tsv", "job.tsv", "valid.tsv"]
    assert meta["label_counts_after_balance"] == before.meta["label_counts_after_balance"]  # no document lost or added


def test_every_class_with_documents_enough_is_in_validation(project: Path) -> None:
    _, result = _build(project, "tiny_quick", ["split.validation_prop=0.05"])
    sets = _sets(result)
    assert set(sets["valid"]["label"]) == set(sets["train"]["label"]) == set(sets["job"]["label"])


def test_no_document_text_or_speaker_in_two_of_train_valid_job(project: Path) -> None:
    """Grouped by speaker, with the train side over-sampled after the carve: duplicates in the fit
    set only, never of a validation document, and each speaker in one set of the three."""
    params, result = _build(project, "tiny_multi", ["split.validation_prop=0.3"])
    sets = _sets(result)
    assert params.split.group_by == "speaker" and not sets["valid"].empty
    pairs = [("train", "valid"), ("train", "job"), ("valid", "job")]
    for column in ("doc_id", "text_key", "speaker"):
        for a, b in pairs:
            assert not set(sets[a][column]) & set(sets[b][column]), (column, a, b)
    leaks = result.meta["leakage"]
    assert set(leaks) == {
        f"{k}{pair}" for k in ("shared_texts", "shared_doc_ids", "shared_speaker") for pair in ("", "_train_valid", "_valid_job")
    }
    assert not any(leaks.values())
    # the helper sees a leak in any pair
    valid, job = sets["valid"], sets["job"]
    leaked = split.leakage(sets["train"], job, "speaker", pd.concat([valid, job.iloc[:1]]))
    assert leaked["shared_doc_ids_valid_job"] == 1 and leaked["shared_speaker_valid_job"] == 1 and leaked["shared_doc_ids"] == 0


def test_over_sampling_comes_after_the_carve(project: Path) -> None:
    """Over-sampling duplicates fit documents only: the validation set keeps the class shares of the
    job set, one copy of each document, none of them in the fit set."""
    overrides = [STRATIFIED, "balance_strategy=oversample", "balance_preset=parity", "split.validation_prop=0.2"]
    _, result = _build(project, "tiny_quick", overrides)
    sets = _sets(result)
    fit, valid, job = sets["train"], sets["valid"], sets["job"]
    assert fit["doc_id"].duplicated().any() and fit["label"].value_counts().nunique() == 1  # parity, by copies
    assert not valid["doc_id"].duplicated().any() and not set(valid["doc_id"]) & set(fit["doc_id"])
    assert valid["label"].value_counts().nunique() > 1 and job["label"].value_counts().nunique() > 1  # not balanced, as job


def test_the_validation_draw_is_seeded(project: Path) -> None:
    _, first = _build(project, "tiny_quick", ["split.validation_prop=0.2"])
    ids = sorted(first.valid["doc_id"])
    _, again = _build(project, "tiny_quick", ["split.validation_prop=0.2"])
    _, other = _build(project, "tiny_quick", ["split.validation_prop=0.2", "seed=8"])
    assert sorted(again.valid["doc_id"]) == ids and sorted(other.valid["doc_id"]) != ids


def test_a_changed_validation_prop_makes_the_split_stale_and_a_deleted_valid_tsv_missing(project: Path) -> None:
    params, result = _build(project, "tiny_quick", ["split.validation_prop=0.2"])
    assert _view_state(project, params).state == "FRESH"
    changed = resolve_profile(project, "tiny_quick", ["split.validation_prop=0.3"])
    none = resolve_profile(project, "tiny_quick")
    assert len({params.params_hash, changed.params_hash, none.params_hash}) == 3
    for other in (changed, none):
        state = _view_state(project, other)
        assert state.state == "STALE" and state.why == ["parameters changed"]
    result.valid_path.unlink()
    assert _view_state(project, params).state == "MISSING"
    _build(project, "tiny_quick", ["split.validation_prop=0.2"])
    assert result.valid_path.exists()
    _build(project, "tiny_quick")  # no validation set: the earlier valid.tsv, which holds train documents now, goes
    assert not result.valid_path.exists()


def test_evaluation_reports_validation_scores_as_sklearn_computes_them(project: Path) -> None:
    params, result = _build(project, "tiny_quick", ["split.validation_prop=0.25", *MODELS])
    stages.build_formats(params, project)
    valid, fit = _sets(result)["valid"], _sets(result)["train"]
    results = {}
    for model_id in ("tfidf_logreg", "kmeans_tfidf"):
        spec = params.model_specs[model_id]
        meta_model = training.train_model(params, model_id, spec, project)
        training.commit_model(project, meta_model)
        assert meta_model["n_train_available"] == len(fit)  # the validation documents are not fitted on
        results[model_id] = training.evaluate_model(params, model_id, spec, project, n_boot=50)
    paths = ProjectPaths(project)
    model_dir = paths.model_dir("tiny_mpt", "left_right", "sklearn", "tfidf_logreg")
    pred = load_estimator(model_dir / MODEL_FILE).predict(valid["text"].tolist())
    gold = valid["label"].tolist()
    expected = {
        "accuracy": pytest.approx(accuracy_score(gold, pred)),
        "macro_f1": pytest.approx(f1_score(gold, pred, labels=sorted(set(gold)), average="macro")),
        "n": len(valid),
    }
    got = results["tfidf_logreg"]
    report_dir = Path(got["report_dir"])
    assert got["metrics"]["validation"] == expected and got["index_entry"]["metrics"]["validation"] == expected
    assert json.loads((report_dir / "metrics.json").read_text())["validation"] == expected
    assert json.loads((report_dir / "meta_eval.json").read_text())["validation"] == expected
    # job scores unchanged in kind: the headline is the job set's, with its own n
    assert json.loads((report_dir / "metrics.json").read_text())["n"] == len(_sets(result)["job"])
    # a clustering has no model selection by label: no validation scores
    assert "validation" not in results["kmeans_tfidf"]["metrics"] and "validation" not in results["kmeans_tfidf"]


def test_a_cross_dataset_evaluation_reports_no_validation(project: Path) -> None:
    params, _ = _build(project, "tiny_quick", ["split.validation_prop=0.25", "families=[sklearn]", "models=[tfidf_logreg]"])
    on_an = resolve_on_dataset(project, params, "tiny_an")
    version, inputs = lineage.Expected(project).view(on_an)
    docs = {"an": ProjectPaths(project).corpus_dir("an") / "docs.parquet"}
    build_view(on_an, project, docs, lineage.stamp(version, inputs, ["train.tsv", "job.tsv"]))
    assert (ProjectPaths(project).view_dir("tiny_an", "left_right") / "valid.tsv").exists()
    for p in (params, on_an):
        stages.build_formats(p, project)
    spec = params.model_specs["tfidf_logreg"]
    training.commit_model(project, training.train_model(params, "tfidf_logreg", spec, project))
    own = training.evaluate_model(params, "tfidf_logreg", spec, project, n_boot=20)
    cross = training.evaluate_model(params, "tfidf_logreg", spec, project, eval_params=on_an, n_boot=20)
    assert own["metrics"]["validation"]["n"] > 0
    assert cross["eval_dataset_id"] == "tiny_an" and "validation" not in cross["metrics"] and "validation" not in cross


def test_separate_corpora_each_hold_out_their_own_validation(project: Path) -> None:
    """merge_mode separate: each corpus split and carved on its own, its validation documents scored
    by its own corpus's model (the check family predicts its train set's majority class)."""
    profile = "dataset_id: tiny_sep\nview: left_right\ndata: {corpus_ids: [mpt, an], merge_mode: separate}\n"
    profile += "families: [check]\nmodels: [check_default]\nseed: 7\nsplit: {group_by: null, validation_prop: 0.25}\nquality: {min_docs_per_class: 3}\n"
    (project / "configs" / "profiles" / "tiny_sep.yml").write_text(profile, encoding="utf-8")
    params, result = _build(project, "tiny_sep")
    sets = _sets(result)
    for cid, facts in result.meta["by_corpus"].items():
        assert facts["n_valid"] == (sets["valid"]["corpus_id"] == cid).sum() > 0 and not any(facts["leakage"].values())
    stages.build_formats(params, project)
    spec = params.model_specs["check_default"]
    training.commit_model(project, training.train_model(params, "check_default", spec, project))
    got = training.evaluate_model(params, "check_default", spec, project, n_boot=20)["metrics"]["validation"]
    majority = {cid: rows["label"].value_counts().idxmax() for cid, rows in sets["train"].groupby("corpus_id")}
    pred = sets["valid"]["corpus_id"].map(majority)
    assert got == {
        "accuracy": pytest.approx(accuracy_score(sets["valid"]["label"], pred)),
        "macro_f1": pytest.approx(f1_score(sets["valid"]["label"], pred, labels=sorted(set(sets["valid"]["label"])), average="macro")),
        "n": len(sets["valid"]),
    }
