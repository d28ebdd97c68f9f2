"""The specification's interface (issue 14, Why 1): a dataset defined in a profile file (§2.4.2)
gets its Dagster partitions and runs; `eval_dataset_id` (§2.7.3) scores the models on another
dataset's job set, prepared with the same parameters, at the spec's paths, with its own version."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from pepm_assets.core import lineage, training
from pepm_assets.core.config import ConfigError, load_common, resolve_on_dataset, resolve_profile
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner

SVM = ["models=[tfidf_svm_quick]"]
INLINE = """profile: tiny_inline
dataset_id: tiny_both
data:
  corpus_ids: [an, mpt]
  merge_mode: juxtaposed
  source_field: corpus_id
view: left_right
analysis:
  compare_by: [corpus_id]
families: [check, sklearn]
models_sklearn: [tfidf_svm_quick]
quality: {min_docs_per_class: 3}
"""


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_a_dataset_defined_in_a_profile_gets_partitions_and_runs(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    (project / "configs" / "profiles" / "tiny_inline.yml").write_text(INLINE, encoding="utf-8")
    common = load_common(project)
    assert common.datasets["tiny_both"].corpus_ids == ["an", "mpt"]
    defs = build_definitions(project)
    views = defs.resolve_assets_def("view_split").partitions_def.get_partition_keys()
    assert "tiny_both|left_right" in views
    # lineage at partition level: each corpus feeds the new dataset's partitions
    mapping = defs.resolve_assets_def("view_split").get_partition_mapping(dg.AssetKey("corpus_docs"))
    assert "tiny_both|left_right" in mapping.downstream_partition_keys_by_upstream_partition_key["an"]

    report = runner.run_stage(project, "pipeline", "tiny_inline", [], dagster_instance, defs)
    assert report.params.models == ["check_default", "tfidf_svm_quick"]
    paths = ProjectPaths(project)
    meta = _read(paths.view_dir("tiny_both", "left_right") / "meta_view.json")
    assert meta["source_corpora"] == ["an", "mpt"] and meta["compare_by"] == ["corpus_id"]
    report_dir = paths.report_dir("tiny_both", "left_right", "sklearn", "tfidf_svm_quick")
    assert (report_dir / "metrics_by_corpus_id.json").is_file()


def test_a_dataset_keeps_its_corpora_wherever_it_is_named(project: Path) -> None:
    profiles = project / "configs" / "profiles"
    (profiles / "tiny_inline.yml").write_text(INLINE, encoding="utf-8")
    (profiles / "tiny_other.yml").write_text(INLINE.replace("tiny_inline", "tiny_other").replace("[an, mpt]", "[mpt]"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tiny_other.yml: key 'data.corpus_ids': dataset 'tiny_both' is made of \['an', 'mpt'\]"):
        load_common(project)
    (profiles / "tiny_other.yml").write_text(INLINE.replace("tiny_inline", "tiny_other").replace("tiny_both", "tiny_mpt"), encoding="utf-8")
    with pytest.raises(ConfigError, match="dataset 'tiny_mpt' is made of \\['mpt'\\] in configs/common/datasets.yml"):
        load_common(project)


def test_eval_dataset_id_scores_on_the_other_datasets_job_set(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    defs = build_definitions(project)
    overrides = [*SVM, "eval_dataset_id=tiny_mpt"]
    report = runner.run_stage(project, "pipeline", "tiny_an", overrides, dagster_instance, defs)
    params = report.params
    eval_params = resolve_on_dataset(project, params, "tiny_mpt")
    assert (eval_params.seed, eval_params.train_prop, eval_params.dataset.corpus_ids) == (params.seed, params.train_prop, ["mpt"])

    paths = ProjectPaths(project)
    # the split scored on was prepared with the model's parameters, in its own partition
    assert _read(paths.view_dir("tiny_mpt", "left_right") / "meta_view.json")["lineage"]["inputs"]["params_hash"] == eval_params.params_hash
    # the spec's paths: model from models/<dataset>/..., job set from data/interim/<eval dataset>/..., report <model>@<eval>
    cross_dir = paths.report_dir("tiny_an", "left_right", "sklearn", "tfidf_svm_quick", "tiny_mpt")
    assert cross_dir.name == "tfidf_svm_quick@tiny_mpt"
    meta = _read(cross_dir / "meta_eval.json")
    assert (meta["dataset_id"], meta["eval_dataset_id"]) == ("tiny_an", "tiny_mpt")
    job = pd.read_csv(paths.view_dir("tiny_mpt", "left_right") / "job.tsv", sep="\t", dtype=str, keep_default_na=False)
    pred = pd.read_csv(cross_dir / "predictions.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert pred["doc_id"].tolist() == job["doc_id"].tolist()
    scores = _read(cross_dir / "metrics.json")
    assert scores["accuracy"] == pytest.approx(accuracy_score(job["label"], pred["predicted"]))
    labels = sorted(set(job["label"]))
    assert scores["macro_f1"] == pytest.approx(f1_score(job["label"], pred["predicted"], labels=labels, average="macro"))
    # ... never a document the model was trained on
    train = pd.read_csv(paths.view_dir("tiny_an", "left_right") / "train.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert not set(train["doc_id"]) & set(job["doc_id"])
    # in the index beside the in-domain score
    slots = {(e["model_id"], e["eval_dataset_id"]) for e in training.read_index(paths)}
    assert {("tfidf_svm_quick", "tiny_an"), ("tfidf_svm_quick", "tiny_mpt")} <= slots

    # fresh: nothing re-runs; without its cross report, the evaluation is stale and runs again
    again = runner.run_stage(project, "pipeline", "tiny_an", overrides, dagster_instance, defs)
    assert again.runs == []
    (cross_dir / "metrics.json").unlink()
    states = {st.asset: st for st in lineage.Expected(project).statuses(params, params.model_specs, eval_params)}
    assert states["evaluation/tfidf_svm_quick"].state == "MISSING"
    assert "tiny_mpt's job set" in states["evaluation/tfidf_svm_quick"].why[0]
    runner.run_stage(project, "evaluate", "tiny_an", overrides, dagster_instance, defs)
    assert (cross_dir / "metrics.json").is_file()


def test_evaluate_never_prepares_the_eval_split(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    defs = build_definitions(project)
    runner.run_stage(project, "pipeline", "tiny_an", SVM, dagster_instance, defs)
    with pytest.raises(runner.StageFailed, match=r"view_split\[tiny_mpt\|left_right\] is missing.*prepare it first"):
        runner.run_stage(project, "evaluate", "tiny_an", [*SVM, "eval_dataset_id=tiny_mpt"], dagster_instance, defs)


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["eval_dataset_id=tiny_multi"], "shares corpus \\['an'\\]"),
        (["eval_dataset_id=tiny_mtp"], "did you mean 'tiny_mpt'"),
        (["cross_dataset.train_on=tiny_mpt"], "dataset_id 'tiny_an' and cross_dataset.train_on 'tiny_mpt' differ"),
    ],
)
def test_bad_eval_dataset_fails_before_any_work(project: Path, overrides: list[str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        resolve_profile(project, "tiny_an", overrides)


def test_cross_dataset_spelling_of_the_spec(project: Path) -> None:
    params = resolve_profile(project, "tiny_an", ["cross_dataset.train_on=tiny_an", "cross_dataset.eval_on=tiny_mpt"])
    assert (params.dataset_id, params.eval_dataset_id) == ("tiny_an", "tiny_mpt")
    # the evaluation dataset is not part of the split's parameters: the same split either way
    assert params.params_hash == resolve_profile(project, "tiny_an").params_hash
