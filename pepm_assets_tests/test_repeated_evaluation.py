"""Repeated evaluation (issue 17, item 2): `split.repeats: N` gives N train/job splits of the same
view (repeat 0 the canonical one, the others with seeds derived from the profile's and stored),
every model that fits from train.tsv is fitted and scored on each, and metrics.json, the index, the
leaderboard and MLflow state the mean, sd and each split's score. Intervals resample whole speakers
when the split is grouped, and pool the splits' bootstrap replicates (within- and between-split
variance); models are compared paired on the same splits, Holm-adjusted. On the tiny fixture
project, through the plain-Python core (no Dagster), and on synthetic predictions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepm_assets.core import families, lineage, metrics, reports, split, stages, training
from pepm_assets.core.config import resolve_profile
from pepm_assets.core.config.schema import SplitConfig
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import read_tsv_file, repeat_dir
from pepm_assets_tests.fixtures import build_stamped_view, make_project

REPEATS = 3
MODELS = ["families=[check,sklearn]", "models=[check_default,tfidf_svm_quick,tfidf_logreg]"]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("repeats") / "proj")
    paths = ProjectPaths(root)
    params = resolve_profile(root, "tiny_quick")
    extract_corpus("mpt", params.corpora["mpt"], root, paths.corpus_dir("mpt"))
    return root


# ---------------------------------------------------------------- the seeds
def test_repeat_seeds_start_with_the_profile_seed_and_are_derived_from_it() -> None:
    seeds = split.repeat_seeds(42, 5)
    assert seeds[0] == 42 and len(set(seeds)) == 5
    assert seeds == split.repeat_seeds(42, 5) and split.repeat_seeds(42, 3) == seeds[:3]  # a prefix: more repeats add splits
    # the documented derivation: the r-th child of numpy's SeedSequence(seed).spawn, first 32-bit word
    children = np.random.SeedSequence(42).spawn(5)
    assert seeds[1:] == [int(c.generate_state(1)[0]) for c in children[1:]]
    assert all(0 <= s < 2**32 for s in seeds)
    assert not set(split.repeat_seeds(43, 5)) & set(seeds[1:])  # not seed + r: another profile seed shares no repeat


def test_repeats_1_hashes_as_before_the_key_existed(project: Path) -> None:
    """Existing splits stay fresh: repeats 1 is left out of the params hash, any other value is in it."""
    plain = resolve_profile(project, "tiny_quick")
    assert plain.split.repeats == 1 and "repeats" not in SplitConfig().model_dump()
    assert resolve_profile(project, "tiny_quick", ["split.repeats=1"]).params_hash == plain.params_hash
    assert resolve_profile(project, "tiny_quick", [f"split.repeats={REPEATS}"]).params_hash != plain.params_hash
    with pytest.raises(ValueError, match="split.repeats"):
        resolve_profile(project, "tiny_quick", ["split.repeats=0"])


# ---------------------------------------------------------------- the splits
@pytest.fixture(scope="module")
def repeated(project: Path):
    """tiny_quick with 3 repeats: split, check + two sklearn models trained and evaluated, leaderboard."""
    params, result = build_stamped_view(project, "tiny_quick", [*MODELS, f"split.repeats={REPEATS}"])
    stages.build_formats(params, project)
    results = {}
    for model_id in params.models:
        spec = params.model_specs[model_id]
        training.commit_model(project, training.train_model(params, model_id, spec, project))
        results[model_id] = training.evaluate_model(params, model_id, spec, project, n_boot=200)
        training.commit_evaluation(project, results[model_id])
    reports.write_leaderboard(ProjectPaths(project))
    return params, result, results


def test_no_speaker_is_on_both_sides_of_any_repeat(project: Path, repeated) -> None:
    params, result, _ = repeated
    view_dir = ProjectPaths(project).view_dir(params.dataset_id, params.view)
    info = result.meta["split"]["repeats"]
    assert info["n"] == REPEATS and info["seeds"] == split.repeat_seeds(params.seed, REPEATS)
    sides = [(read_tsv_file(result.train_path), read_tsv_file(result.job_path))]
    sides += [(read_tsv_file(repeat_dir(view_dir, r) / "train.tsv"), read_tsv_file(repeat_dir(view_dir, r) / "job.tsv")) for r in (1, 2)]
    for r, (train, job) in enumerate(sides):
        assert not set(train["speaker"]) & set(job["speaker"]), r
        assert not set(train["doc_id"]) & set(job["doc_id"]), r
        assert set(train["label"]) == set(job["label"]) == {"left", "right"}, r
    for entry in info["splits"]:
        assert entry["leakage"] == {"shared_texts": 0, "shared_doc_ids": 0, "shared_speaker": 0}
    # the same view: every repeat splits the same labelled documents, and they are other splits
    pool = {frozenset(pd.concat(s)["doc_id"]) for s in sides}
    assert len(pool) == 1
    assert len({frozenset(job["speaker"]) for _, job in sides}) > 1
    # the lineage stamp lists the repeat files: a deleted one makes the split missing
    stamp = lineage.read_stamp(result.meta_path)
    assert "repeats/r2/job.tsv" in stamp["files"]


def test_a_repeat_is_the_split_the_profile_gives_with_its_seed(project: Path, repeated, tmp_path: Path) -> None:
    params, result, _ = repeated
    seed = result.meta["split"]["repeats"]["seeds"][2]
    view_dir = ProjectPaths(project).view_dir(params.dataset_id, params.view)
    repeat_train = read_tsv_file(repeat_dir(view_dir, 2) / "train.tsv")
    repeat_job = read_tsv_file(repeat_dir(view_dir, 2) / "job.tsv")
    other = make_project(tmp_path / "other")
    shutil.copytree(ProjectPaths(project).corpus_dir("mpt"), ProjectPaths(other).corpus_dir("mpt"))
    _, alone = build_stamped_view(other, "tiny_quick", [*MODELS, f"seed={seed}"])
    assert read_tsv_file(alone.train_path)["doc_id"].tolist() == repeat_train["doc_id"].tolist()
    assert read_tsv_file(alone.job_path)["doc_id"].tolist() == repeat_job["doc_id"].tolist()


def test_fewer_repeats_remove_the_files_of_the_old_ones(project: Path, tmp_path: Path) -> None:
    other = make_project(tmp_path / "proj")
    shutil.copytree(ProjectPaths(project).corpus_dir("mpt"), ProjectPaths(other).corpus_dir("mpt"))
    params, _ = build_stamped_view(other, "tiny_quick", [*MODELS, "split.repeats=4"])
    view_dir = ProjectPaths(other).view_dir(params.dataset_id, params.view)
    assert (repeat_dir(view_dir, 3) / "job.tsv").is_file()
    build_stamped_view(other, "tiny_quick", [*MODELS, "split.repeats=2"])
    assert (repeat_dir(view_dir, 1) / "job.tsv").is_file() and not repeat_dir(view_dir, 2).exists()
    build_stamped_view(other, "tiny_quick", MODELS)
    assert not (view_dir / "repeats").exists()


# ---------------------------------------------------------------- fits and scores
def test_each_repeat_gets_its_own_fit_with_its_seed(project: Path, repeated) -> None:
    params, result, _ = repeated
    model_dir = ProjectPaths(project).model_dir(params.dataset_id, params.view, "sklearn", "tfidf_svm_quick")
    meta = json.loads((model_dir / "meta_model.json").read_text())
    seeds = result.meta["split"]["repeats"]["seeds"]
    assert meta["repeats"]["requested"] == REPEATS and meta["repeats"]["seeds"] == seeds
    assert [(f["repeat"], f["seed"]) for f in meta["repeats"]["fitted"]] == [(1, seeds[1]), (2, seeds[2])]
    for fit in meta["repeats"]["fitted"]:
        assert (model_dir / fit["model_dir"] / "model.pkl").is_file() and fit["n_train_used"] == fit["n_train_available"]
    stamp = lineage.read_stamp(model_dir / "meta_model.json")
    assert "repeats/r1" in stamp["files"]


def test_metrics_json_holds_mean_sd_and_each_splits_score(project: Path, repeated) -> None:
    params, _, results = repeated
    for result in results.values():
        out = Path(result["report_dir"])
        scores = json.loads((out / "metrics.json").read_text())
        rep = scores["repeats"]
        assert rep["n"] == REPEATS and rep["seeds"] == split.repeat_seeds(params.seed, REPEATS)
        assert [e["repeat"] for e in rep["per_split"]] == [0, 1, 2]
        # each split's score is the score of its predictions (predictions_by_split.tsv)
        by_split = pd.read_csv(out / training.BY_SPLIT, sep="\t", dtype={"doc_id": str, "label": str, "predicted": str})
        assert set(by_split.columns) >= {"repeat", "seed", "doc_id", "label", "predicted", "speaker"}
        for entry in rep["per_split"]:
            rows = by_split[by_split["repeat"] == entry["repeat"]]
            assert (rows["seed"] == entry["seed"]).all()
            m = metrics.classification_metrics(rows["label"].tolist(), rows["predicted"].tolist(), ["left", "right"])
            assert entry["macro_f1"] == pytest.approx(m["macro_f1"]) and entry["accuracy"] == pytest.approx(m["accuracy"])
            assert entry["n"] == len(rows)
        f1 = np.array([e["macro_f1"] for e in rep["per_split"]])
        acc = np.array([e["accuracy"] for e in rep["per_split"]])
        assert scores["macro_f1"] == pytest.approx(f1.mean()) == rep["mean"]["macro_f1"]
        assert scores["accuracy"] == pytest.approx(acc.mean())
        assert rep["sd"]["macro_f1"] == pytest.approx(f1.std(ddof=1)) and rep["sd"]["accuracy"] == pytest.approx(acc.std(ddof=1))
        assert scores["protocol"]["splits"] == REPEATS and scores["ci95"]["resampled"] == "speaker"
        # the index entry (leaderboard, MLflow) carries the same
        summary = result["metrics"]
        assert summary["n_splits"] == REPEATS and summary["macro_f1"] == scores["macro_f1"]
        assert summary["macro_f1_sd"] == rep["sd"]["macro_f1"]
        assert [(s["repeat"], s["seed"]) for s in summary["split_scores"]] == [(e["repeat"], e["seed"]) for e in rep["per_split"]]
    report = (Path(results["tfidf_svm_quick"]["report_dir"]) / "classification_report.txt").read_text().splitlines()
    assert report[1] == f"split grouped by speaker · seed 7 · mean of {REPEATS} splits · class weights balanced"
    assert any(line.startswith(f"mean ± sd over {REPEATS} splits (seeds 7, ") for line in report)


def test_the_leaderboard_shows_mean_sd_and_the_number_of_splits(project: Path, repeated) -> None:
    out = ProjectPaths(project).reports
    table = pd.read_csv(out / "leaderboard.tsv", sep="\t").set_index("model_id")
    for model_id in ("check_default", "tfidf_svm_quick", "tfidf_logreg"):
        row = table.loc[model_id]
        assert row["n_splits"] == REPEATS and row["macro_f1_split_sd"] == row["macro_f1_split_sd"]  # not NaN
        assert len(str(row["split_seeds"]).split(",")) == REPEATS
    board = (out / "leaderboard.md").read_text()
    assert f"({REPEATS} splits) [" in board and f"mean of {REPEATS} splits" in board
    assert "Holm-adjusted over the 3" in board  # svm vs check, logreg vs svm, logreg vs check
    comparisons = pd.read_csv(out / "comparisons.tsv", sep="\t")
    assert len(comparisons) == 3 and (comparisons["m"] == 3).all() and (comparisons["n_splits"] == REPEATS).all()
    assert set(zip(comparisons["model_id"], comparisons["vs"])) == {
        ("check_default", "tfidf_svm_quick"),
        ("tfidf_logreg", "tfidf_svm_quick"),
        ("tfidf_logreg", "check_default"),
    }
    assert (comparisons["p_holm"] >= comparisons["p_value"]).all()
    stated = json.loads((out / "comparisons.json").read_text())
    assert stated["correction"] == "holm" and stated["tables"]["tiny_mpt/left_right"]["m"] == 3


def test_mlflow_logs_the_mean_sd_and_each_split_at_its_step(repeated, tmp_path: Path) -> None:
    import mlflow

    from pepm_assets.core.tracking import Tracker

    _, _, results = repeated
    tracker = Tracker(tmp_path, uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = results["tfidf_logreg"]
    run_id = tracker.log_evaluation(result, result["metrics"], Path(result["report_dir"]), {})
    client = mlflow.MlflowClient(tracker.uri)
    logged = client.get_run(run_id).data
    assert logged.metrics["macro_f1"] == pytest.approx(result["metrics"]["macro_f1"])
    assert logged.metrics["macro_f1_sd"] == pytest.approx(result["metrics"]["macro_f1_sd"]) and logged.metrics["n_splits"] == REPEATS
    assert logged.params["splits"] == str(REPEATS)
    history = client.get_metric_history(run_id, "split_macro_f1")
    assert sorted(m.step for m in history) == [0, 1, 2]
    by_step = {m.step: m.value for m in history}
    assert [by_step[s["repeat"]] for s in result["metrics"]["split_scores"]] == pytest.approx(
        [s["macro_f1"] for s in result["metrics"]["split_scores"]]
    )


def test_families_fitted_from_prebuilt_files_say_they_score_one_split() -> None:
    """spaCy and transformers fit from the canonical split's pre-built files, a clustering is not
    compared: they are scored on the canonical split, and their reports say so."""
    sklearn, check = families.REGISTRY.get("sklearn"), families.REGISTRY.get("check")
    spacy, hf, cluster = families.REGISTRY.get("spacy"), families.REGISTRY.get("hf"), families.REGISTRY.get("cluster")
    assert training.repeatable(sklearn) and training.repeatable(check)
    assert not training.repeatable(spacy) and not training.repeatable(hf) and not training.repeatable(cluster)
    spec = training.ModelSpec(family="spacy")
    note = training._single_split_note(spec, spacy, 5)
    assert note.startswith("1 of 5 splits: spacy fits from the 'spacy_docbin' files pre-built for the canonical split")
    assert training._single_split_note(spec, spacy, 1) is None
    assert training._single_split_note(training.ModelSpec(family="sklearn"), sklearn, 5) is None


# ---------------------------------------------------------------- intervals
def _clustered(n_speakers: int = 40, docs: int = 25, seed: int = 0) -> tuple[list[str], list[str], list[str]]:
    """Speakers whose documents are all right or all wrong (the model knows some speakers' style,
    not others'): documents of one speaker are anything but independent."""
    rng = np.random.default_rng(seed)
    gold, pred, clusters = [], [], []
    for s in range(n_speakers):
        label = "left" if s % 2 else "right"
        right = rng.random() < 0.7
        for _ in range(docs):
            gold.append(label)
            pred.append(label if right else ("right" if label == "left" else "left"))
            clusters.append(f"speaker{s}")
    return gold, pred, clusters


def _width(ci: dict, name: str = "macro_f1") -> float:
    return ci[name][1] - ci[name][0]


def test_the_speaker_bootstrap_is_wider_than_the_document_bootstrap_on_clustered_errors() -> None:
    gold, pred, clusters = _clustered()
    labels = ["left", "right"]
    documents = metrics.bootstrap_intervals(gold, pred, labels, seed=1, n_boot=2000)
    speakers = metrics.bootstrap_intervals(gold, pred, labels, seed=1, n_boot=2000, clusters=clusters)
    assert speakers["n_clusters"] == 40 and speakers["method"] == metrics.CLUSTER_METHOD
    for name in ("accuracy", "macro_f1"):
        assert _width(speakers, name) > 3 * _width(documents, name), name
        point = metrics.classification_metrics(gold, pred, labels)[name]
        assert speakers[name][0] < point < speakers[name][1]


def test_with_one_document_per_speaker_the_speaker_bootstrap_is_the_document_bootstrap() -> None:
    """The degenerate case: resampling clusters of one document is resampling documents (the same
    distribution, drawn another way): the intervals agree up to Monte Carlo error."""
    rng = np.random.default_rng(5)
    gold = list(rng.choice(["a", "b", "c"], size=600))
    pred = [g if rng.random() < 0.7 else "a" for g in gold]
    labels = ["a", "b", "c"]
    documents = metrics.bootstrap_replicates(gold, pred, labels, seed=3, n_boot=20000)
    singletons = metrics.bootstrap_replicates(gold, pred, labels, seed=4, n_boot=20000, clusters=[f"d{i}" for i in range(600)])
    for name in ("accuracy", "macro_f1"):
        assert singletons[name].std() == pytest.approx(documents[name].std(), rel=0.05)
        assert metrics._percentile_interval(singletons[name], 0.95) == pytest.approx(
            metrics._percentile_interval(documents[name], 0.95), abs=0.006
        )
    # and every replicate resamples as many documents as there are (one per drawn cluster)
    assert metrics.bootstrap_replicates(gold, gold, labels, seed=0, n_boot=50, clusters=list(range(600)))["accuracy"].tolist() == [1.0] * 50


def test_the_pooled_interval_adds_the_between_split_variance() -> None:
    rng = np.random.default_rng(0)
    splits = [
        {"macro_f1": c, "accuracy": c, "replicates": {"macro_f1": rng.normal(c, 0.01, 4000), "accuracy": rng.normal(c, 0.01, 4000)}}
        for c in (0.60, 0.65, 0.70)
    ]
    out = metrics.repeated_scores(splits)
    assert out["mean"]["macro_f1"] == pytest.approx(0.65) and out["sd"]["macro_f1"] == pytest.approx(0.05)
    var = out["variance"]["macro_f1"]
    assert var["within_split"] == pytest.approx(1e-4, rel=0.1) and var["between_split"] == pytest.approx(0.0025)
    assert var["between_share"] == pytest.approx(0.0025 / (0.0025 + 1e-4), rel=0.01)
    pooled = np.concatenate([s["replicates"]["macro_f1"] for s in splits])
    assert out["interval"]["macro_f1"] == metrics._percentile_interval(pooled, 0.95)
    low, high = out["interval"]["macro_f1"]
    assert low < 0.60 and high > 0.70  # one split's interval (±0.02) would not hold the others' scores
    # one split: its own bootstrap interval, no between part
    gold, pred, clusters = _clustered()
    one = metrics.bootstrap_replicates(gold, pred, ["left", "right"], seed=2, n_boot=300, clusters=clusters)
    alone = metrics.repeated_scores([{"macro_f1": 0.5, "accuracy": 0.5, "replicates": one}])
    assert (
        alone["interval"]["macro_f1"]
        == metrics.bootstrap_intervals(gold, pred, ["left", "right"], seed=2, n_boot=300, clusters=clusters)["macro_f1"]
    )
    assert alone["variance"]["macro_f1"]["between_split"] == 0.0 and alone["sd"]["macro_f1"] == 0.0


def test_an_ungrouped_single_split_keeps_the_document_bootstrap() -> None:
    """A stratified split (or an old evaluation's numbers): the same interval as before clusters existed."""
    rng = np.random.default_rng(1)
    gold = list(rng.choice(["a", "b"], size=300))
    pred = [g if rng.random() < 0.8 else "a" for g in gold]
    ci = metrics.bootstrap_intervals(gold, pred, ["a", "b"], seed=7, n_boot=500)
    reps = metrics.bootstrap_replicates(gold, pred, ["a", "b"], seed=7, n_boot=500)
    assert ci["method"] == metrics.DOCUMENT_METHOD and ci["macro_f1"] == metrics._percentile_interval(reps["macro_f1"], 0.95)


# ---------------------------------------------------------------- paired comparisons, Holm
def test_holm_matches_statsmodels_and_a_hand_computation() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.2, 0.04]
    # by hand: sorted 0.005, 0.01, 0.03, 0.04, 0.04, 0.2 times 6, 5, 4, 3, 2, 1 = 0.03, 0.05, 0.12, 0.12, 0.08, 0.2,
    # made non-decreasing: 0.03, 0.05, 0.12, 0.12, 0.12, 0.2
    assert metrics.holm(p) == pytest.approx([0.05, 0.12, 0.12, 0.03, 0.2, 0.12])
    assert metrics.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0]) and metrics.holm([]) == []
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(0)
    for m in (1, 2, 7, 13):
        values = rng.uniform(0, 0.2, m).tolist()
        assert metrics.holm(values) == pytest.approx(list(multitest.multipletests(values, method="holm")[1]))


def test_paired_comparison_on_several_splits() -> None:
    rng = np.random.default_rng(2)
    splits = []
    for r in range(4):
        gold, _, clusters = _clustered(seed=r)
        good = [g if rng.random() < 0.9 else "left" for g in gold]
        poor = [g if rng.random() < 0.6 else "left" for g in gold]
        splits.append({"gold": gold, "pred_a": good, "pred_b": poor, "seed": r, "clusters": clusters})
    labels = ["left", "right"]
    out = metrics.paired_comparison(splits, labels, n_boot=500)
    each = [
        metrics.classification_metrics(s["gold"], s["pred_a"], labels)["macro_f1"]
        - metrics.classification_metrics(s["gold"], s["pred_b"], labels)["macro_f1"]
        for s in splits
    ]
    assert out["per_split"] == pytest.approx(each) and out["delta_macro_f1"] == pytest.approx(np.mean(each))
    assert out["n_splits"] == 4 and out["resampled"] == "clusters" and out["ci95"][0] > 0
    assert out["p_value"] == pytest.approx(2 / (4 * 500 + 1))  # no replicate at or below 0: the smallest p there is
    same = metrics.paired_comparison([{**s, "pred_b": s["pred_a"]} for s in splits], labels, n_boot=100)
    assert same["delta_macro_f1"] == 0.0 and same["p_value"] == 1.0
    reverse = metrics.paired_comparison([{**s, "pred_a": s["pred_b"], "pred_b": s["pred_a"]} for s in splits], labels, n_boot=500)
    assert reverse["delta_macro_f1"] == pytest.approx(-out["delta_macro_f1"]) and reverse["ci95"][1] < 0


# ---------------------------------------------------------------- merge_mode separate, cross-dataset, Dagster
SEPARATE = """dataset_id: tiny_sep
view: left_right
data: {corpus_ids: [mpt, an], merge_mode: separate}
families: [check, sklearn]
models: [check_default, tfidf_logreg]
seed: 7
split: {group_by: null, repeats: 2}
quality: {min_docs_per_class: 3}
"""


@pytest.fixture(scope="module")
def two_corpora(project: Path) -> Path:
    (project / "configs" / "profiles" / "tiny_sep_repeats.yml").write_text(SEPARATE, encoding="utf-8")
    params = resolve_profile(project, "tiny_sep_repeats")
    extract_corpus("an", params.corpora["an"], project, ProjectPaths(project).corpus_dir("an"))
    return project


def test_separate_mode_fits_one_model_per_corpus_on_every_repeat(two_corpora: Path) -> None:
    project = two_corpora
    params, result = build_stamped_view(project, "tiny_sep_repeats")
    stages.build_formats(params, project)
    spec = params.model_specs["tfidf_logreg"]
    meta = training.train_model(params, "tfidf_logreg", spec, project)
    training.commit_model(project, meta)
    (fit,) = meta["repeats"]["fitted"]
    model_dir = ProjectPaths(project).model_dir("tiny_sep", "left_right", "sklearn", "tfidf_logreg")
    assert sorted(fit["by_corpus"]) == ["an", "mpt"]
    assert all((model_dir / "repeats" / "r1" / "by_corpus" / cid / "model.pkl").is_file() for cid in ("an", "mpt"))
    scored = training.evaluate_model(params, "tfidf_logreg", spec, project, n_boot=50)
    out = Path(scored["report_dir"])
    pooled = json.loads((out / "metrics.json").read_text())
    assert pooled["repeats"]["n"] == 2 and pooled["ci95"]["resampled"] == "document"  # stratified: documents
    by_split = pd.read_csv(out / training.BY_SPLIT, sep="\t", dtype=str)
    for cid in ("an", "mpt"):
        own = json.loads((out / "by_corpus" / cid / "metrics.json").read_text())
        assert own["repeats"]["n"] == 2 and [e["seed"] for e in own["repeats"]["per_split"]] == result.meta["split"]["repeats"]["seeds"]
        job = read_tsv_file(repeat_dir(ProjectPaths(project).view_dir("tiny_sep", "left_right"), 1) / "job.tsv")
        assert own["repeats"]["per_split"][1]["n"] == int((job["corpus_id"] == cid).sum())
    assert len(by_split) == pooled["repeats"]["per_split"][0]["n"] + pooled["repeats"]["per_split"][1]["n"]


def test_a_cross_dataset_evaluation_scores_each_repeat_on_the_other_datasets_repeat(two_corpora: Path) -> None:
    from pepm_assets.core.config import resolve_on_dataset

    project = two_corpora
    overrides = ["families=[sklearn]", "models=[tfidf_svm_quick]", "split.group_by=null", "split.repeats=2"]
    params, _ = build_stamped_view(project, "tiny_quick", overrides)
    eval_params = resolve_on_dataset(project, params, "tiny_an")
    version, inputs = lineage.Expected(project).view(eval_params)
    docs = {cid: ProjectPaths(project).corpus_dir(cid) / "docs.parquet" for cid in eval_params.dataset.corpus_ids}
    from pepm_assets.core.prepare import build_view

    other = build_view(eval_params, project, docs, lineage.stamp(version, inputs, ["train.tsv", "job.tsv"]))
    stages.build_formats(params, project)
    stages.build_formats(eval_params, project)
    spec = params.model_specs["tfidf_svm_quick"]
    training.commit_model(project, training.train_model(params, "tfidf_svm_quick", spec, project))
    scored = training.evaluate_model(params, "tfidf_svm_quick", spec, project, eval_params=eval_params, n_boot=50)
    rep = json.loads((Path(scored["report_dir"]) / "metrics.json").read_text())["repeats"]
    assert rep["seeds"] == other.meta["split"]["repeats"]["seeds"] == split.repeat_seeds(params.seed, 2)
    job = read_tsv_file(repeat_dir(ProjectPaths(project).view_dir("tiny_an", "left_right"), 1) / "job.tsv")
    assert rep["per_split"][1]["n"] == len(job)


def test_the_dagster_split_gates_check_every_repeat(project: Path, tmp_path: Path) -> None:
    """Through Dagster: each repeat passes the split's gates, the assets state the splits."""
    import dagster as dg

    from pepm_assets.definitions import build_definitions
    from pepm_assets.defs import runner
    from pepm_assets_tests.conftest import temporary_instance

    other = make_project(tmp_path / "proj")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PEPM_MLFLOW_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
        with temporary_instance(tmp_path / "dagster_home", mp) as instance:
            overrides = ["families=[sklearn]", "models=[tfidf_svm_quick]", "split.repeats=2"]
            report = runner.run_stage(other, "pipeline", "tiny_quick", overrides, instance, build_definitions(other))
            gates = {k: v for k, v in report.checks.items() if k.startswith("view_split")}
            assert gates and all(gates.values()), gates
            event = instance.get_latest_materialization_event(dg.AssetKey(["evaluation", "tfidf_svm_quick"]))
            metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
            assert metadata["splits"] == 2 and metadata["n_splits"] == 2.0 and "macro_f1_sd" in metadata
    # a repeat that leaks fails the leakage gate (checked on the files as written)
    from pepm_assets.defs.assets.prepare import view_checks

    view_dir = ProjectPaths(other).view_dir("tiny_mpt", "left_right")
    train, job = read_tsv_file(view_dir / "train.tsv"), read_tsv_file(view_dir / "job.tsv")
    r_train, r_job = read_tsv_file(repeat_dir(view_dir, 1) / "train.tsv"), read_tsv_file(repeat_dir(view_dir, 1) / "job.tsv")
    leaky = pd.concat([r_job, r_train.head(1)])
    results = {c.check_name: c for c in view_checks(train, job, 5, "speaker", repeats=[(r_train, leaky, None)])}
    assert not results["no_train_job_leakage"].passed and results["enough_docs_per_class"].passed
