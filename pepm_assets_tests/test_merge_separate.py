"""merge_mode separate (spec §2.4): per-corpus split, one model per corpus, per-corpus reports and
one comparison table, run end to end through Dagster on the two tiny corpora (mpt, an).

The corpora are chosen so that a pooled model cannot pass: the majority class of mpt's train set
is `right` and an's is `left` (the check family predicts its train set's majority), and each text
carries a number unique to its document (the TF-IDF vocabulary of a model names the documents it
was fitted on)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from pepm_assets.core import training
from pepm_assets.core.config import resolve_profile
from pepm_assets.core.families import load_estimator
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import read_tsv_file
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets_tests.conftest import temporary_instance
from pepm_assets_tests.fixtures import make_project

CORPORA = ["mpt", "an"]
SKLEARN_CAP = 20  # per corpus: mpt has more train documents than this, an fewer
PROFILE = f"""dataset_id: tiny_sep
view: left_right
data: {{corpus_ids: [{", ".join(CORPORA)}], merge_mode: separate}}
families: [check, sklearn, cluster, hf]
models: [check_default, tfidf_logreg, kmeans_tfidf]
hardware_preset: capped
seed: 7
split: {{group_by: null}}  # stratified within each corpus: the fixture's an has one right-wing speaker
quality: {{min_docs_per_class: 3}}
"""
ONE_CORPUS = """dataset_id: tiny_sep_an
view: left_right
data: {corpus_ids: [an], merge_mode: separate}
families: [check]
models: [check_default]
hardware_preset: capped
seed: 7
split: {group_by: null}
quality: {min_docs_per_class: 3}
"""
HARDWARE = f"""hardware:
  small: {{threads: 1, batch_size: 8, max_length: 32, max_train_docs_hf: 50}}
  capped: {{threads: 1, batch_size: 8, max_length: 32, max_train_docs_sklearn: {SKLEARN_CAP}}}
"""


@pytest.fixture(scope="module")
def separate(tmp_path_factory: pytest.TempPathFactory):
    """One pipeline run of a separate dataset of two corpora (and of a one-corpus one), shared by the tests."""
    tmp = tmp_path_factory.mktemp("separate")
    project = make_project(tmp / "proj")
    (project / "configs" / "profiles" / "tiny_sep.yml").write_text(PROFILE, encoding="utf-8")
    (project / "configs" / "profiles" / "tiny_sep_an.yml").write_text(ONE_CORPUS, encoding="utf-8")
    (project / "configs" / "common" / "hardware.yml").write_text(HARDWARE, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PEPM_MLFLOW_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        with temporary_instance(tmp / "dagster_home", mp) as instance:
            defs = build_definitions(project)
            runner.run_stage(project, "pipeline", "tiny_sep", [], instance, defs)
            runner.run_stage(project, "pipeline", "tiny_sep_an", [], instance, defs)
            yield project


def _view(project: Path, dataset: str = "tiny_sep") -> tuple[pd.DataFrame, pd.DataFrame]:
    view_dir = ProjectPaths(project).view_dir(dataset, "left_right")
    return read_tsv_file(view_dir / "train.tsv"), read_tsv_file(view_dir / "job.tsv")


def _model_dir(project: Path, family: str, model_id: str) -> Path:
    return ProjectPaths(project).model_dir("tiny_sep", "left_right", family, model_id)


def _report_dir(project: Path, family: str, model_id: str, eval_dataset: str | None = None) -> Path:
    return ProjectPaths(project).report_dir("tiny_sep", "left_right", family, model_id, eval_dataset)


def _predictions(project: Path, family: str, model_id: str) -> pd.DataFrame:
    pred = read_tsv_file(_report_dir(project, family, model_id) / "predictions.tsv")
    _, job = _view(project)
    return pred.merge(job[["doc_id", "corpus_id", "text"]], on="doc_id", validate="one_to_one")


def _numbers(texts: pd.Series) -> set[str]:
    """The document numbers the fixture writes into each text ("Intervention 1017 : ...")."""
    return {n for t in texts for n in re.findall(r"\b\d{2,}\b", t)}


def test_each_corpus_is_split_on_its_own_without_leakage(separate: Path) -> None:
    train, job = _view(separate)
    meta = json.loads((ProjectPaths(separate).view_dir("tiny_sep", "left_right") / "meta_view.json").read_text())
    assert meta["merge_mode"] == "separate" and sorted(meta["by_corpus"]) == sorted(CORPORA)
    for cid in CORPORA:
        tr, jb = train[train["corpus_id"] == cid], job[job["corpus_id"] == cid]
        assert len(tr) and len(jb)
        assert not set(tr["doc_id"]) & set(jb["doc_id"]) and not set(tr["text_key"]) & set(jb["text_key"])
        assert set(tr["label"]) == set(jb["label"]) == {"left", "right"}  # stratified within the corpus
        facts = meta["by_corpus"][cid]
        assert (facts["n_train"], facts["n_job"]) == (len(tr), len(jb))
        assert facts["train_label_counts"] == tr["label"].value_counts().sort_index().to_dict()
        assert facts["leakage"] == {"shared_texts": 0, "shared_doc_ids": 0}
        assert 0.65 < len(tr) / (len(tr) + len(jb)) < 0.9  # train_prop (0.8) of this corpus, not of the pool


def test_each_corpus_model_saw_only_its_corpus_train_documents(separate: Path) -> None:
    train, _ = _view(separate)
    for family, model_id in (("check", "check_default"), ("sklearn", "tfidf_logreg")):
        meta = json.loads((_model_dir(separate, family, model_id) / "meta_model.json").read_text())
        assert meta["merge_mode"] == "separate" and meta["seed"] == 7 and sorted(meta["by_corpus"]) == sorted(CORPORA)
        assert meta["n_train_used"] == sum(f["n_train_used"] for f in meta["by_corpus"].values())
        assert meta["lineage"]["files"] == [f"by_corpus/{c}" for c in CORPORA]
        for cid in CORPORA:
            rows = train[train["corpus_id"] == cid]  # train.tsv order: a cap takes the first rows of the corpus
            facts = meta["by_corpus"][cid]
            cap = SKLEARN_CAP if family == "sklearn" else None
            seen = rows.iloc[:cap] if cap else rows
            assert (facts["n_train_available"], facts["n_train_used"], facts["truncated"]) == (len(rows), len(seen), len(seen) < len(rows))
            assert facts["labels"] == sorted(set(seen["label"]))
            fitted = _model_dir(separate, family, model_id) / "by_corpus" / cid
            if family == "check":  # what the control counted is its corpus's train set, all of it
                stats = json.loads((fitted / "check.json").read_text())
                assert stats["n_docs"] == len(rows) and stats["label_counts"] == rows["label"].value_counts().sort_index().to_dict()
            else:  # the numbers in the vocabulary are exactly those of the documents it was fitted on
                pipeline = load_estimator(fitted / "model.pkl")
                vocabulary = {w for name in pipeline.named_steps["tfidf"].get_feature_names_out() for w in name.split("__")[-1].split()}
                assert {w for w in vocabulary if w.isdigit()} == _numbers(seen["text"])
    sklearn_meta = json.loads((_model_dir(separate, "sklearn", "tfidf_logreg") / "meta_model.json").read_text())
    assert sklearn_meta["by_corpus"]["mpt"]["truncated"] and not sklearn_meta["by_corpus"]["an"]["truncated"]  # the cap is per corpus


def test_each_job_document_is_predicted_by_its_own_corpus_model(separate: Path) -> None:
    pred = _predictions(separate, "check", "check_default")
    assert (pred["predicted_by"] == "by_corpus/" + pred["corpus_id"]).all()
    majority = {
        cid: json.loads((_model_dir(separate, "check", "check_default") / "by_corpus" / cid / "check.json").read_text())["majority_label"]
        for cid in CORPORA
    }
    assert majority == {"mpt": "right", "an": "left"}  # the fixture's premise: one pooled model could not give both
    assert (pred["predicted"] == pred["corpus_id"].map(majority)).all()
    pred = _predictions(separate, "sklearn", "tfidf_logreg")
    for cid in CORPORA:
        rows = pred[pred["corpus_id"] == cid]
        own = load_estimator(_model_dir(separate, "sklearn", "tfidf_logreg") / "by_corpus" / cid / "model.pkl")
        assert list(rows["predicted"]) == [str(y) for y in own.predict(rows["text"].tolist())]
    clusters = _predictions(separate, "cluster", "kmeans_tfidf")
    assert all(p.startswith(f"{c}:") or p == "noise" for p, c in zip(clusters["predicted"], clusters["corpus_id"]))


@pytest.mark.parametrize(("family", "model_id"), [("check", "check_default"), ("sklearn", "tfidf_logreg")])
def test_per_corpus_and_pooled_metrics_equal_scikit_learn(separate: Path, family: str, model_id: str) -> None:
    pred = _predictions(separate, family, model_id)
    out = _report_dir(separate, family, model_id)
    table = pd.read_csv(out / "comparison_by_corpus.tsv", sep="\t").set_index("corpus_id")
    markdown = (out / "comparison_by_corpus.md").read_text()
    train, _ = _view(separate)
    meta_model = json.loads((_model_dir(separate, family, model_id) / "meta_model.json").read_text())
    assert sorted(table.index) == sorted(CORPORA)
    for cid in CORPORA:
        rows = pred[pred["corpus_id"] == cid]
        gold, got = rows["label"].tolist(), rows["predicted"].tolist()
        m = json.loads((out / "by_corpus" / cid / "metrics.json").read_text())
        # pepm's macro-F1 averages over the classes of the gold labels
        assert m["n"] == len(rows) and m["accuracy"] == pytest.approx(accuracy_score(gold, got))
        assert m["macro_f1"] == pytest.approx(f1_score(gold, got, average="macro", labels=sorted(set(gold))))
        per_class = f1_score(gold, got, average=None, labels=m["labels"], zero_division=0)
        assert [m["per_class"][lab]["f1"] for lab in m["labels"]] == pytest.approx(list(per_class))
        assert (out / "by_corpus" / cid / "classification_report.txt").is_file()
        row = table.loc[cid]
        assert row["n_job"] == len(rows) and row["n_train_used"] == meta_model["by_corpus"][cid]["n_train_used"]
        assert row["n_train_used"] <= (train["corpus_id"] == cid).sum()
        assert row["accuracy"] == pytest.approx(m["accuracy"]) and row["macro_f1"] == pytest.approx(m["macro_f1"])
        assert [row["macro_f1_low"], row["macro_f1_high"]] == pytest.approx(m["ci95"]["macro_f1"])
        assert f"| {cid} | {row['n_train_used']}" in markdown and f"{m['macro_f1']:.4f} [{m['ci95']['macro_f1'][0]:.4f}" in markdown
    pooled = json.loads((out / "metrics.json").read_text())
    gold, got = pred["label"].tolist(), pred["predicted"].tolist()
    assert pooled["n"] == len(pred) and pooled["accuracy"] == pytest.approx(accuracy_score(gold, got))
    assert pooled["macro_f1"] == pytest.approx(f1_score(gold, got, average="macro", labels=sorted(set(gold))))
    entry = next(e for e in training.read_index(ProjectPaths(separate)) if e["dataset_id"] == "tiny_sep" and e["model_id"] == model_id)
    assert entry["metrics"]["macro_f1"] == pooled["macro_f1"] and entry["merge_mode"] == "separate"
    assert {c: r["metrics"]["macro_f1"] for c, r in entry["by_corpus"].items()} == pytest.approx(table["macro_f1"].to_dict())


def test_leaderboard_shows_the_pooled_score_and_the_per_corpus_rows(separate: Path) -> None:
    reports = ProjectPaths(separate).reports
    board = pd.read_csv(reports / "leaderboard.tsv", sep="\t")
    row = board[(board["dataset_id"] == "tiny_sep") & (board["model_id"] == "tfidf_logreg")].iloc[0]
    pooled = json.loads((_report_dir(separate, "sklearn", "tfidf_logreg") / "metrics.json").read_text())
    assert row["macro_f1"] == pytest.approx(pooled["macro_f1"], abs=1e-4) and row["per_corpus"].endswith("comparison_by_corpus.md")
    per_corpus = pd.read_csv(reports / "leaderboard_by_corpus.tsv", sep="\t")
    mine = per_corpus[(per_corpus["dataset_id"] == "tiny_sep") & (per_corpus["model_id"] == "check_default")]
    assert sorted(mine["corpus_id"]) == sorted(CORPORA)
    assert "| check_default | an |" in (reports / "leaderboard.md").read_text()


def test_cross_dataset_uses_the_model_of_each_document_corpus(separate: Path) -> None:
    """The rule: a document of corpus c is scored by the model of c; a corpus without a model is an error."""
    params = resolve_profile(separate, "tiny_sep")
    only_an = resolve_profile(separate, "tiny_sep_an")
    spec = params.model_specs["check_default"]
    result = training.evaluate_model(params, "check_default", spec, separate, eval_params=only_an, n_boot=50)
    pred = read_tsv_file(Path(result["report_dir"]) / "predictions.tsv")
    _, job_an = _view(separate, "tiny_sep_an")
    assert len(pred) == len(job_an) and set(pred["predicted_by"]) == {"by_corpus/an"} and set(pred["predicted"]) == {"left"}
    assert result["eval_dataset_id"] == "tiny_sep_an" and list(result["by_corpus"]) == ["an"]
    with pytest.raises(ValueError, match=r"documents of \['mpt'\]"):
        training.evaluate_model(only_an, "check_default", only_an.model_specs["check_default"], separate, eval_params=params, n_boot=50)


def test_families_that_read_pooled_formats_are_refused(separate: Path) -> None:
    """hf reads hf/train.jsonl, written in the pooled train order: it cannot fit one corpus alone."""
    params = resolve_profile(separate, "tiny_sep", ["models=[hf_tiny]"])
    before = sorted(p.name for p in (separate / "models" / "tiny_sep" / "left_right").iterdir())
    with pytest.raises(ValueError, match="merge_mode separate: family 'hf'"):
        training.train_model(params, "hf_tiny", params.model_specs["hf_tiny"], separate)
    assert sorted(p.name for p in (separate / "models" / "tiny_sep" / "left_right").iterdir()) == before


def test_a_separate_split_does_not_depend_on_the_other_corpora(separate: Path) -> None:
    """Balancing and splitting within each corpus: the an part of the two-corpus view is the view
    of an alone (same seed, same salt: an is first of the sorted corpus ids in both)."""
    train, job = _view(separate)
    train_an, job_an = _view(separate, "tiny_sep_an")
    assert sorted(train[train["corpus_id"] == "an"]["doc_id"]) == sorted(train_an["doc_id"])
    assert sorted(job[job["corpus_id"] == "an"]["doc_id"]) == sorted(job_an["doc_id"])
    assert np.isclose(len(train_an) / (len(train_an) + len(job_an)), 0.8, atol=0.1)
