"""The cross-corpus matrix scores a model trained on A on the whole of B (A != B), minus B's texts
that A's model was fitted on; A = A stays A's held-out job set; each cell has its interval (seeded)
and the majority / stratified-chance baselines of A's train set.

The tiny fixture's tiny_mpt (MPT corpus) and tiny_an (AN corpus), with two changes that give the
cross-corpus code real work: some AN utterances say word for word what an MPT speaker of the same
wing said (two distinct corpora can share a text: the guard must leave it out of the score where
A's model was fitted on it), and tiny_an's train set is over-sampled (its copies are one document)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepm_assets.core import cross_corpus, metrics
from pepm_assets.core.config import load_common
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import read_tsv_file
from pepm_assets.core.selection import resolve_partition
from pepm_assets.core.split import text_keys
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets_tests.conftest import temporary_instance
from pepm_assets_tests.fixtures import LEFT_WORDS, make_project

DATASETS = ["tiny_mpt", "tiny_an"]
MODEL = "tfidf_svm_quick"
ONLY_SVM = ["models=[tfidf_svm_quick]", "families=[sklearn]"]
SHARED_PER_SPEAKER = 3  # AN utterances per labelled AN speaker replaced by an MPT text of the same wing


def _share_texts(project: Path) -> int:
    """Replace the first utterances of each labelled AN speaker by MPT texts of the same wing; the
    number of texts now in both corpora."""
    mpt = "".join(p.read_text(encoding="utf-8") for p in sorted((project / "data" / "raw" / "mpt").glob("*.xml")))
    texts = re.findall(r"<p>(Intervention \d+ : [^<]*)</p>", mpt)
    by_wing = {
        "left": [t for t in texts if any(w in t for w in LEFT_WORDS)],
        "right": [t for t in texts if not any(w in t for w in LEFT_WORDS)],
    }
    an_file = project / "data" / "raw" / "an" / "an_2019-03.xml"
    an = an_file.read_text(encoding="utf-8")
    used: dict[str, int] = {}
    shared = 0
    for pid, wing in (("Boris_Vallaud", "left"), ("Ugo_Bernalicis", "left"), ("Eric_Ciotti", "right")):
        for _ in range(SHARED_PER_SPEAKER):
            text = by_wing[wing][used.get(wing, 0)]
            used[wing] = used.get(wing, 0) + 1
            an, n = re.subn(rf'(<u who="#{pid}" xml:id="u\d+"><seg>)Intervention 5\d+ : [^<]*(</seg>)', rf"\g<1>{text}\g<2>", an, count=1)
            shared += n
    an_file.write_text(an, encoding="utf-8")
    return shared


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory):
    """Each dataset prepared, trained and evaluated (SVM only), then the matrix through Dagster."""
    tmp = tmp_path_factory.mktemp("cross_whole")
    project = make_project(tmp / "proj")
    assert _share_texts(project) == 3 * SHARED_PER_SPEAKER
    with open(project / "configs" / "profiles" / "tiny_an.yml", "a", encoding="utf-8") as fh:
        fh.write("balance_strategy: oversample\nbalance_preset: parity\n")
    (project / "configs" / "common" / "cross_corpus.yml").write_text(
        f"cross_corpus: {{view: left_right, model_id: {MODEL}, datasets: [{', '.join(DATASETS)}], n_boot: 300}}\n", encoding="utf-8"
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PEPM_MLFLOW_URI", f"sqlite:///{tmp / 'mlflow.db'}")
        with temporary_instance(tmp / "dagster_home", mp) as instance:
            defs = build_definitions(project)
            for profile in ("tiny_quick", "tiny_an"):
                runner.run_stage(project, "pipeline", profile, ONLY_SVM, instance, defs)
            runner.cross_corpus(project, instance, defs)
            out = project / "reports" / "cross_corpus" / "left_right" / MODEL
            data = json.loads((out / "matrix.json").read_text(encoding="utf-8"))
            yield project, data, out, tmp / "mlflow.db"


def _cells(data: dict) -> dict[tuple[str, str], dict]:
    return {(c["trained_on"], c["evaluated_on"]): c for c in data["cells"]}


def _view(project: Path, dataset: str, name: str) -> pd.DataFrame:
    path = ProjectPaths(project).view_dir(dataset, "left_right") / f"{name}.tsv"
    return read_tsv_file(path) if path.is_file() else pd.DataFrame(columns=["doc_id", "label", "text"])


def test_other_corpus_is_scored_whole_minus_texts_seen_in_training(matrix) -> None:
    project, data, _, _ = matrix
    cells = _cells(data)
    for (a, b), cell in cells.items():
        if a == b:
            continue
        whole = pd.concat([_view(project, b, n) for n in ("train", "valid", "job")]).drop_duplicates("doc_id")
        seen = set(text_keys(pd.concat([_view(project, a, "train"), _view(project, a, "valid")])["text"].tolist()))
        is_seen = pd.Series(text_keys(whole["text"].tolist()), index=whole.index).isin(seen)
        assert cell["documents"] == cross_corpus.WHOLE
        assert cell["n"] == len(whole) - int(is_seen.sum()), (a, b)
        assert cell["n_dropped_seen_in_training"] == int(is_seen.sum()), (a, b)
        assert cell["n"] > len(_view(project, b, "job")), (a, b)  # more than B's job set
        predictions = read_tsv_file(project / cell["report_dir"] / "predictions.tsv")
        assert len(predictions) == cell["n"] and predictions["doc_id"].is_unique
        # never: a scored document whose text A's model was fitted on
        scored = whole.set_index("doc_id").loc[predictions["doc_id"], "text"].tolist()
        assert not set(text_keys(scored)) & seen, (a, b)
    # texts in both corpora: those in one side's train set are left out of the other side's score
    assert cells[("tiny_mpt", "tiny_an")]["n_dropped_seen_in_training"] > 0
    assert cells[("tiny_an", "tiny_mpt")]["n_dropped_seen_in_training"] > 0
    # tiny_an's over-sampled train.tsv: its copies are scored once, as the documents they are
    target = cells[("tiny_mpt", "tiny_an")]["target"]
    an_rows = sum(len(_view(project, "tiny_an", n)) for n in ("train", "valid", "job"))
    assert (
        target["n_rows_read"]
        == an_rows
        > target["n_documents"]
        == cells[("tiny_mpt", "tiny_an")]["n"] + cells[("tiny_mpt", "tiny_an")]["n_dropped_seen_in_training"]
    )
    assert target["whole_pool"] is True and target["balance_strategy"] == "oversample"


def test_own_corpus_is_its_held_out_job_set(matrix) -> None:
    project, data, _, _ = matrix
    paths = ProjectPaths(project)
    for a, cell in ((a, c) for (a, b), c in _cells(data).items() if a == b):
        scores = json.loads((paths.report_dir(a, "left_right", "sklearn", MODEL) / "metrics.json").read_text())
        assert cell["documents"] == cross_corpus.HELD_OUT and cell["from_disk"] is True
        assert cell["n"] == len(_view(project, a, "job")) == scores["n"]
        assert cell["macro_f1"] == scores["macro_f1"] and cell["macro_f1_ci95"] == scores["ci95"]["macro_f1"]


def test_baselines_are_those_of_a_train_set_on_the_scored_documents(matrix) -> None:
    project, data, _, _ = matrix
    for (a, b), cell in _cells(data).items():
        counts = _view(project, a, "train")["label"].value_counts().sort_index()
        majority = cell["baselines"]["majority"]
        assert majority["label"] == counts.idxmax()
        report = project / cell["report_dir"]
        gold = (read_tsv_file(report / "predictions.tsv") if a != b else _view(project, a, "job"))["label"].tolist()
        direct = metrics.classification_metrics(gold, [counts.idxmax()] * len(gold), sorted(set(gold) | set(counts.index)))
        assert majority["accuracy"] == pytest.approx(gold.count(counts.idxmax()) / len(gold))
        assert majority["macro_f1"] == pytest.approx(direct["macro_f1"])
        assert majority["macro_f1_ci95"][0] <= majority["macro_f1"] <= majority["macro_f1_ci95"][1]
        # stratified chance: the closed form against a simulation of labels drawn with A's train shares
        chance = cell["baselines"]["stratified_chance"]
        labels, shares = list(counts.index), (counts / counts.sum()).to_numpy()
        assert chance["shares"] == pytest.approx(dict(zip(labels, shares)))
        rng = np.random.default_rng(0)
        sims = [metrics.classification_metrics(gold, list(rng.choice(labels, size=len(gold), p=shares)), labels) for _ in range(3000)]
        assert chance["accuracy"] == pytest.approx(np.mean([s["accuracy"] for s in sims]), abs=0.01)
        assert chance["macro_f1"] == pytest.approx(np.mean([s["macro_f1"] for s in sims]), abs=0.01)
        assert data["chance_macro_f1"][DATASETS.index(a)][DATASETS.index(b)] == round(chance["macro_f1"], 4)


def test_chance_is_the_exact_expectation() -> None:
    """Against every prediction of a 4-document set enumerated with its probability."""
    from itertools import product

    gold, shares, labels = ["left", "left", "left", "right"], {"left": 0.7, "right": 0.3}, ["left", "right"]
    expected = {"accuracy": 0.0, "macro_f1": 0.0}
    for pred in product(labels, repeat=len(gold)):
        weight = float(np.prod([shares[p] for p in pred]))
        scores = metrics.classification_metrics(gold, list(pred), labels)
        expected = {k: expected[k] + weight * scores[k] for k in expected}
    got = cross_corpus.stratified_chance(gold, shares, labels)
    assert got == pytest.approx(expected, abs=1e-12)
    assert got["accuracy"] == pytest.approx(0.75 * 0.7 + 0.25 * 0.3)
    # a class of A's train that B lacks is not averaged; one of B that A never saw scores 0
    assert cross_corpus.stratified_chance(["left"] * 4, {"left": 1.0}, labels) == pytest.approx({"accuracy": 1.0, "macro_f1": 1.0})
    assert cross_corpus.stratified_chance(["right"] * 4, {"left": 1.0}, labels)["macro_f1"] == 0.0


def test_intervals_contain_the_score_and_are_seeded(matrix) -> None:
    project, data, _, _ = matrix
    seeds = {d: resolve_partition(project, d, "left_right").seed for d in DATASETS}
    for (a, _b), cell in _cells(data).items():
        low, high = cell["macro_f1_ci95"]
        assert low <= cell["macro_f1"] <= high and cell["accuracy_ci95"][0] <= cell["accuracy"] <= cell["accuracy_ci95"][1]
        assert cell["interval"]["seed"] == seeds[a] and cell["interval"]["n_boot"] in (300, 1000)
    # off the diagonal the documents have speakers: whole speakers are resampled, even where B's split was not grouped
    assert _cells(data)[("tiny_mpt", "tiny_an")]["interval"]["resampled"] == "speaker"
    common = load_common(project)
    spec = common.models[MODEL]
    a, b = (resolve_partition(project, d, "left_right") for d in ("tiny_mpt", "tiny_an"))
    again = cross_corpus.whole_cell(a, b, MODEL, spec, project, n_boot=300)["cell"]
    assert again["macro_f1_ci95"] == _cells(data)[("tiny_mpt", "tiny_an")]["macro_f1_ci95"]  # same seed, same interval
    # the stored seed reproduces the intervals from predictions.tsv (whole speakers resampled); another seed gives
    # another (shown on the majority baseline: the model is right on every tiny_an document, its interval is [1, 1])
    cell = _cells(data)[("tiny_mpt", "tiny_an")]
    predictions = read_tsv_file(project / cell["report_dir"] / "predictions.tsv")
    gold, speakers, seed = predictions["label"].tolist(), predictions["speaker"].tolist(), cell["interval"]["seed"]
    majority = [cell["baselines"]["majority"]["label"]] * len(gold)

    def interval(pred: list[str], seed: int) -> list[float]:
        return metrics.bootstrap_intervals(gold, pred, ["left", "right"], seed, 300, clusters=speakers)["macro_f1"]

    assert interval(predictions["predicted"].tolist(), seed) == cell["macro_f1_ci95"]
    assert interval(majority, seed) == cell["baselines"]["majority"]["macro_f1_ci95"]
    assert interval(majority, seed + 1) != cell["baselines"]["majority"]["macro_f1_ci95"]


def test_matrix_files_and_mlflow_runs(matrix) -> None:
    import mlflow

    _, data, out, db = matrix
    table = pd.read_csv(out / "matrix.tsv", sep="\t")
    assert len(table) == len(DATASETS) ** 2
    for column in ("macro_f1", "macro_f1_low", "macro_f1_high", "majority_macro_f1", "chance_macro_f1", "n_dropped_seen_in_training"):
        assert column in table.columns
    assert (table["macro_f1_low"] <= table["macro_f1"]).all() and (table["macro_f1"] <= table["macro_f1_high"]).all()
    assert (out / "matrix.png").stat().st_size > 1000
    assert len(data["macro_f1"]) == len(DATASETS) and data["macro_f1"][0][1] >= 0.9  # the same vocabulary: it transfers
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("pepm").experiment_id], max_results=200)
    evaluations = [r.data.tags for r in runs if r.data.tags.get("stage") == "evaluate"]
    cross = [t for t in evaluations if t.get("cross_corpus") == "true"]
    assert len(cross) == len(DATASETS) * (len(DATASETS) - 1)  # the diagonal is the evaluation's own run, not logged again
    assert all(t["partition"] == f"{t['dataset']}|left_right" for t in cross)
    assert all(t.get("partition") for t in evaluations)  # never an empty partition tag
    # both datasets named: trained on the row's, scored on the column's
    assert sorted((t["train_dataset_id"], t["eval_dataset_id"]) for t in cross) == sorted(
        (a, b) for a in DATASETS for b in DATASETS if a != b
    )
    assert all((t["train_dataset_id"], t["eval_dataset_id"]) == (t["dataset"], t["eval_dataset"]) for t in evaluations)
    for d in DATASETS:
        assert sum(1 for t in evaluations if (t["dataset"], t["eval_dataset"]) == (d, d)) == 1
