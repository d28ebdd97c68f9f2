"""Formats on demand (core/formats/__init__.py): a run writes only the formats its models read, each
holding the train rows its capped families use (the first rows of the seeded train.tsv) plus the
whole job set (hf; spaCy's models score job.tsv) and validation set (spaCy); a later run that needs another format, or more rows, writes it then
and keeps the others; a model's version follows the rows it reads of its format. On the tiny
fixture project (tiny_quick: 60 train, 24 job documents; `small` caps hf at 50), real components."""

from __future__ import annotations

import json
import os
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from pepm_assets.core import families, formats, lineage, prepare, stages, training
from pepm_assets.core.config import resolve_profile
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.formats import spacy as spacy_format
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import read_tsv_file
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets_tests.fixtures import build_stamped_view

KEY = "tiny_mpt|left_right"
SK = ["models=[tfidf_svm_quick]"]  # families: the profile's five; the run's model is one scikit-learn model


def _meta(project: Path) -> dict:
    return json.loads((ProjectPaths(project).processed_dir("tiny_mpt", "left_right") / "meta_formats.json").read_text(encoding="utf-8"))


def _model_meta(project: Path, family: str, model_id: str) -> dict:
    path = ProjectPaths(project).model_dir("tiny_mpt", "left_right", family, model_id) / "meta_model.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _states(project: Path, overrides: list[str]) -> dict[str, lineage.Status]:
    params = resolve_profile(project, "tiny_quick", overrides)
    return {st.asset: st for st in lineage.Expected(project).statuses(params, params.model_specs)}


def _shard_texts(project: Path, rels: list[str]) -> list[str]:
    import spacy
    from spacy.tokens import DocBin

    vocab = spacy.blank("fr").vocab
    return [doc.text for rel in rels for doc in DocBin().from_disk(project / rel).get_docs(vocab)]


def test_a_scikit_learn_run_writes_no_spacy_or_hf_format_and_a_spacy_run_writes_its_capped_format_then(
    project: Path, dagster_instance: dg.DagsterInstance
) -> None:
    defs = build_definitions(project)
    processed = ProjectPaths(project).processed_dir("tiny_mpt", "left_right")
    runner.run_stage(project, "pipeline", "tiny_quick", SK, dagster_instance, defs)
    meta = _meta(project)
    assert list(meta["formats"]) == ["tsv"] and meta["families"] == {"sklearn": "tsv"}
    assert not (processed / "spacy").exists() and not (processed / "hf").exists()  # never written, not even in part
    svm = _model_meta(project, "sklearn", "tfidf_svm_quick")

    # a later run adds spacy_bow, capped at 20 train documents: the spaCy format is written then, with those 20
    with_spacy = ["models=[tfidf_svm_quick,spacy_bow]", "hardware.max_train_docs_spacy=20"]
    states = _states(project, with_spacy)
    assert (states["model_formats"].state, states["model_formats"].why) == ("STALE", ["formats missing: spacy_docbin"])
    assert states["model/tfidf_svm_quick"].state == "FRESH"  # another format is not what it reads
    report = runner.run_stage(project, "pipeline", "tiny_quick", with_spacy, dagster_instance, defs)
    assert f"model/tfidf_svm_quick[{KEY}]" in report.skipped
    assert _model_meta(project, "sklearn", "tfidf_svm_quick")["training_id"] == svm["training_id"]  # not fitted again
    meta = _meta(project)
    assert set(meta["formats"]) == {"tsv", "spacy_docbin"} and not (processed / "hf").exists()
    entry = meta["formats"]["spacy_docbin"]
    assert entry["holds"]["train_rows"] == entry["holds"]["n_train"] == 20 and entry["holds"]["max_train_docs"] == {"spacy": 20}
    view_dir = ProjectPaths(project).view_dir("tiny_mpt", "left_right")
    train, job = read_tsv_file(view_dir / "train.tsv"), read_tsv_file(view_dir / "job.tsv")
    assert len(train) == 60
    # the first 20 rows of the seeded train.tsv, in order; no job shards: the entry names job.tsv
    assert _shard_texts(project, entry["train"]) == train["text"][:20].tolist()
    assert entry["job"] == ProjectPaths(project).rel(view_dir / "job.tsv") and not (processed / "spacy" / "job").exists()
    view_version = json.loads((view_dir / "meta_view.json").read_text(encoding="utf-8"))["lineage"]["version"]
    assert entry["version"] == lineage.format_version(view_version, "spacy_docbin", 20)
    spacy_model = _model_meta(project, "spacy", "spacy_bow")
    assert spacy_model["n_train_used"] == 20 and spacy_model["truncated"]  # trained on it
    assert spacy_model["lineage"]["inputs"]["formats"] == entry["version"]
    spacy_report = ProjectPaths(project).report_dir("tiny_mpt", "left_right", "spacy", "spacy_bow") / "metrics.json"
    assert json.loads(spacy_report.read_text(encoding="utf-8"))["n"] == len(job) == 24  # scored on job.tsv, every row
    assert {st.asset: st.state for st in _states(project, with_spacy).values()} == {a: "FRESH" for a in _states(project, with_spacy)}

    # a bigger cap: the format is stale (it lacks documents the model reads), written again with 40, a new version
    bigger = ["models=[tfidf_svm_quick,spacy_bow]", "hardware.max_train_docs_spacy=40"]
    states = _states(project, bigger)
    assert states["model_formats"].why == ["spacy_docbin holds 20 train docs, the run's spacy models read 40"]
    assert states["model/spacy_bow"].state == "STALE" and states["model/tfidf_svm_quick"].state == "FRESH"
    runner.run_stage(project, "pipeline", "tiny_quick", bigger, dagster_instance, defs)
    grown = _meta(project)["formats"]["spacy_docbin"]
    assert grown["holds"]["n_train"] == 40 and len(_shard_texts(project, grown["train"])) == 40
    assert grown["version"] == lineage.format_version(view_version, "spacy_docbin", 40) != entry["version"]
    assert _model_meta(project, "spacy", "spacy_bow")["n_train_used"] == 40
    assert _model_meta(project, "sklearn", "tfidf_svm_quick")["training_id"] == svm["training_id"]

    # back to 20: the 40 it holds serve (the first 20 are the same documents): nothing written
    assert _states(project, with_spacy)["model_formats"].state == "FRESH"
    shards = {p: p.stat().st_mtime_ns for p in (processed / "spacy").rglob("*.spacy")}
    runner.run_stage(project, "prepare", "tiny_quick", with_spacy, dagster_instance, defs)
    assert {p: p.stat().st_mtime_ns for p in (processed / "spacy").rglob("*.spacy")} == shards


def test_a_ui_launch_of_the_view_job_writes_every_format_the_profiles_models_read(
    project: Path, dagster_instance: dg.DagsterInstance
) -> None:
    """No overrides (the UI's launch): every model of tiny_quick, so tsv, spacy (uncapped: all 60) and hf (capped at 50)."""
    defs = build_definitions(project)
    runner.prepare(project, "tiny_quick", SK, dagster_instance, defs)  # parse + split, tsv only
    runner._execute(
        defs, runner.VIEW_PIPELINE, dagster_instance, KEY, assets=["view_split", "model_formats"], tags={"pepm/profile": "tiny_quick"}
    )
    meta = _meta(project)
    assert set(meta["formats"]) == {"tsv", "spacy_docbin", "hf_jsonl"}
    assert meta["formats"]["spacy_docbin"]["holds"]["train_rows"] is None and meta["formats"]["spacy_docbin"]["holds"]["n_train"] == 60
    assert meta["formats"]["hf_jsonl"]["holds"]["n_train"] == 50
    hf_rows = (project / meta["formats"]["hf_jsonl"]["train"]).read_text(encoding="utf-8").splitlines()
    train = read_tsv_file(ProjectPaths(project).view_dir("tiny_mpt", "left_right") / "train.tsv")
    assert [json.loads(r)["doc_id"] for r in hf_rows] == [str(d) for d in train["doc_id"][:50]]
    labels = json.loads((project / meta["formats"]["hf_jsonl"]["label2id"]).read_text(encoding="utf-8"))["label2id"]
    assert sorted(labels) == meta["labels"] == ["left", "right"]
    assert _states(project, [])["model_formats"].state == "FRESH"


@pytest.fixture()
def parsed(project: Path) -> Path:
    params = resolve_profile(project, "tiny_quick")
    extract_corpus("mpt", params.corpora["mpt"], project, ProjectPaths(project).corpus_dir("mpt"))
    return project


def test_a_model_never_trains_on_a_format_that_lacks_its_documents(parsed: Path) -> None:
    small = ["models=[spacy_bow]", "hardware.max_train_docs_spacy=20"]
    params, _ = build_stamped_view(parsed, "tiny_quick", small)
    meta7, _, _ = stages.build_formats(params, parsed)
    more = resolve_profile(parsed, "tiny_quick", ["models=[spacy_bow]", "hardware.max_train_docs_spacy=30"])
    with pytest.raises(lineage.LineageError, match="spacy_docbin format on disk holds 20 train docs, spacy_bow reads 30"):
        training.train_model(more, "spacy_bow", more.model_specs["spacy_bow"], parsed)
    # a split built again (another seed) never keeps the formats of the old one
    params8, _ = build_stamped_view(parsed, "tiny_quick", [*small, "seed=8"])
    meta8, _, _ = stages.build_formats(params8, parsed)
    train8 = read_tsv_file(ProjectPaths(parsed).view_dir("tiny_mpt", "left_right") / "train.tsv")
    assert _shard_texts(parsed, meta8["formats"]["spacy_docbin"]["train"]) == train8["text"][:20].tolist()
    assert meta8["formats"]["spacy_docbin"]["version"] != meta7["formats"]["spacy_docbin"]["version"]


def test_a_capped_format_trains_the_same_spacy_model_as_the_whole_one(parsed: Path) -> None:
    """What the leaderboard scores rest on: spaCy capped at 30 fits the same model on the 30-row format
    as on a format of all 60 rows (what prepare wrote before formats on demand), same predictions."""
    capped = ["models=[spacy_bow]", "hardware.max_train_docs_spacy=30"]
    params, _ = build_stamped_view(parsed, "tiny_quick", capped)
    whole = resolve_profile(parsed, "tiny_quick", ["models=[spacy_bow]"])  # no spacy cap: all rows written
    paths = ProjectPaths(parsed)
    job = read_tsv_file(paths.view_dir("tiny_mpt", "left_right") / "job.tsv")["text"].tolist()
    spec = params.model_specs["spacy_bow"]
    family = families.build("spacy", spec.params)
    model_dir = paths.model_dir("tiny_mpt", "left_right", "spacy", "spacy_bow")
    predictions = {}
    for name, written_with in (("whole", whole), ("capped", params)):
        (paths.processed_dir("tiny_mpt", "left_right") / "meta_formats.json").unlink(missing_ok=True)
        meta, _, _ = stages.build_formats(written_with, parsed)
        assert meta["formats"]["spacy_docbin"]["holds"]["n_train"] == (60 if name == "whole" else 30)
        fitted = training.train_model(params, "spacy_bow", spec, parsed)
        assert fitted["n_train_used"] == 30
        labels, scores, _ = family.predict_scores(model_dir, job)
        predictions[name] = (labels, [round(s, 6) for s in scores], fitted["lineage"]["version"])
    assert predictions["capped"] == predictions["whole"]  # same fit, same version (the 30 rows it reads)


def test_valid_shards_hold_the_whole_validation_set_when_train_is_capped(parsed: Path) -> None:
    params, _ = build_stamped_view(
        parsed, "tiny_quick", ["models=[spacy_bow]", "hardware.max_train_docs_spacy=10", "split.validation_prop=0.3"]
    )
    meta, _, _ = stages.build_formats(params, parsed)
    entry = meta["formats"]["spacy_docbin"]
    valid = read_tsv_file(ProjectPaths(parsed).view_dir("tiny_mpt", "left_right") / "valid.tsv")
    assert len(valid) > 0 and entry["n_valid"] == len(valid) == len(_shard_texts(parsed, entry["valid"]))
    assert len(_shard_texts(parsed, entry["train"])) == 10


def test_the_spacy_format_holds_no_job_shards_and_a_spacy_model_still_scores_the_whole_job_set(parsed: Path) -> None:
    """Job shards were read by nothing: the spacy family scores job.tsv's texts with the model's own
    pipeline. The entry names job.tsv (the files the lineage checks exist), shards of an earlier
    version are removed, and spacy_bow trains on the train shards and is scored on every job row."""
    params, _ = build_stamped_view(parsed, "tiny_quick", ["models=[spacy_bow]", "hardware.max_train_docs_spacy=30"])
    paths = ProjectPaths(parsed)
    processed, view_dir = paths.processed_dir("tiny_mpt", "left_right"), paths.view_dir("tiny_mpt", "left_right")
    (processed / "spacy" / "job").mkdir(parents=True)  # what formats-5 wrote
    (processed / "spacy" / "job" / "part-0001.spacy").write_bytes(b"old")
    meta, _, _ = stages.build_formats(params, parsed)
    entry = meta["formats"]["spacy_docbin"]
    assert entry["job"] == paths.rel(view_dir / "job.tsv")
    assert entry["job_note"] == spacy_format.JOB_NOTE
    assert sorted(p.name for p in (processed / "spacy").iterdir()) == ["train"]  # no job (nor valid) shards
    assert formats._files_exist(entry, parsed)
    spec = params.model_specs["spacy_bow"]
    fitted = training.train_model(params, "spacy_bow", spec, parsed)
    assert fitted["n_train_used"] == 30
    training.commit_model(parsed, fitted)
    result = training.evaluate_model(params, "spacy_bow", spec, parsed, n_boot=20, plots=False)
    job = read_tsv_file(view_dir / "job.tsv")
    predictions = pd.read_csv(result["report_dir"] / "predictions.tsv", sep="\t", dtype=str, keep_default_na=False)
    metrics = json.loads((result["report_dir"] / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["n"] == len(job) == 24 and predictions["doc_id"].tolist() == job["doc_id"].astype(str).tolist()


def test_worker_processes_write_the_same_shards_as_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above PARALLEL_MIN_DOCS (lowered here) forked workers write the shards: same docs (ORTH tokens,
    cats), same order, same shard files as the calling process alone."""
    import spacy
    from spacy.tokens import DocBin

    texts = [f"M. le député n°{i}, l'amendement {i * 7} : « rejeté » ! Aujourd'hui c'est-à-dire {i}…" for i in range(23)]
    df = pd.DataFrame({"text": texts + [""], "label": ["left", "right", "centre"] * 8})
    labels = ["centre", "left", "right"]
    nlp = spacy.blank("fr")
    vocab = spacy.blank("fr").vocab

    def read(folder: Path) -> list[list[tuple[list[str], dict]]]:
        return [[([t.orth_ for t in d], d.cats) for d in DocBin().from_disk(p).get_docs(vocab)] for p in sorted(folder.iterdir())]

    pools = []
    real_pool = spacy_format.ProcessPoolExecutor
    monkeypatch.setattr(spacy_format, "ProcessPoolExecutor", lambda *a, **k: pools.append(a) or real_pool(*a, **k))
    (tmp_path / "one").mkdir()
    one = spacy_format.write_shards(df, tmp_path / "one", nlp, 5, labels, threads=2)
    assert not pools  # 24 docs: below the threshold, one process
    monkeypatch.setattr(spacy_format, "PARALLEL_MIN_DOCS", 10)
    (tmp_path / "many").mkdir()
    many = spacy_format.write_shards(df, tmp_path / "many", nlp, 5, labels, threads=2)
    assert pools and pools[0][0] == min(2, len(os.sched_getaffinity(0)))  # the preset's threads, at most the cores
    assert [p.name for p in one] == [p.name for p in many] == [f"part-000{i}.spacy" for i in range(1, 6)]
    docs = read(tmp_path / "one")
    assert read(tmp_path / "many") == docs and [len(s) for s in docs] == [5, 5, 5, 5, 4]
    assert [d[1] for s in docs for d in s][:3] == [
        {"centre": 0.0, "left": 1.0, "right": 0.0},
        {"centre": 0.0, "left": 0.0, "right": 1.0},
        {"centre": 1.0, "left": 0.0, "right": 0.0},
    ]
    assert docs[0][0][0][:4] == ["M.", "le", "député", "n°"] and docs[-1][-1] == ([], {"centre": 1.0, "left": 0.0, "right": 0.0})


@pytest.mark.parametrize("block", [64, 1 << 22])
def test_the_first_rows_of_a_split_read_as_the_whole_file_would(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    """A capped format reads only train.tsv's first rows (prepare.read_tsv_head): the same frame as
    the whole file's first rows, also when a text holds a tab, a quote or a newline and the rows
    span several of the blocks Arrow parses (64 bytes: dozens of blocks)."""
    from pepm_assets.core import prepare

    texts = ["plain text", 'a "quoted" word', "tab\there", "new\nline", "", "été, œuvre ; naïve"] * 7
    df = pd.DataFrame(
        {"doc_id": [f"d{i}" for i in range(len(texts))], "label": ["left", "right"] * 21, "text": texts, "n_tokens": range(42)}
    )
    path = prepare.write_tsv(df, tmp_path / "train.tsv")
    monkeypatch.setattr(prepare, "HEAD_BLOCK", block)
    whole = read_tsv_file(path)
    for n in (0, 1, 5, 17, 41, 42, 100, None):
        got = prepare.read_tsv_head(path, n)
        pd.testing.assert_frame_equal(got, whole if n is None else whole.iloc[:n])
    assert whole["text"].tolist() == texts


class _RecordedSplit(prepare.SplitOnDisk):
    """The split on disk, recording which of its files are read and how far (the real reads)."""

    def __init__(self, split: prepare.SplitOnDisk) -> None:
        super().__init__(split.train_path, split.job_path, split.n_train, split.n_job, split.labels)
        self.read: list[tuple[str, int | None]] = []

    def train(self, n: int | None = None) -> pd.DataFrame:
        self.read.append(("train", n))
        return super().train(n)

    def job(self) -> pd.DataFrame:
        self.read.append(("job", None))
        return super().job()


@pytest.mark.parametrize(
    ("overrides", "reads", "written"),
    [
        (["models=[tfidf_svm_quick]"], [], {"tsv"}),  # a reference to the TSVs: neither is read for it
        (["models=[spacy_bow]", "hardware.max_train_docs_spacy=10"], [("train", 10)], {"spacy_docbin"}),  # no job set
        (["models=[hf_tiny]"], [("train", 50), ("job", None)], {"hf_jsonl"}),  # small caps hf at 50; its job.jsonl
        (["models=[tfidf_svm_quick,spacy_bow]"], [("train", None)], {"tsv", "spacy_docbin"}),
    ],
)
def test_the_split_is_read_only_for_the_formats_whose_writers_read_it(
    parsed: Path, overrides: list[str], reads: list, written: set[str]
) -> None:
    """A writer declares the sets it reads (`formats.reads`); write_formats reads job.tsv only for a
    writer that reads it and train.tsv only as far as the writers that read it need (at 40x MPT, the
    job set read for nothing cost the spaCy format 0.2 s)."""
    params, _ = build_stamped_view(parsed, "tiny_quick", overrides)
    split = _RecordedSplit(prepare.SplitOnDisk.of(params, parsed))
    meta = formats.write_formats(params, ProjectPaths(parsed), split)
    assert split.read == reads
    assert set(meta["formats"]) == written
    for name in written:  # what each entry holds is the split's, read or not
        held_rows = meta["formats"][name]["holds"]["n_train"]
        cap = dict(reads).get("train", "all")
        assert held_rows == (split.n_train if name == "tsv" or cap is None else min(cap, split.n_train))


def test_a_writer_that_does_not_say_what_it_reads_is_given_both_sets(parsed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    given: list = []

    def plain_writer(train, job, out_dir, params, paths, labels):  # a format of a package of one's own, no `reads`
        given.append((len(train), len(job)))
        return {"format": "tsv", "train": paths.rel(paths.view_dir(params.dataset_id, params.view) / "train.tsv")}

    monkeypatch.setattr(formats.REGISTRY, "get", lambda name: plain_writer)
    params, _ = build_stamped_view(parsed, "tiny_quick", ["models=[tfidf_svm_quick]"])
    formats.write_formats(params, ProjectPaths(parsed), prepare.SplitOnDisk.of(params, parsed))
    assert given == [(60, 24)]
    with pytest.raises(ValueError, match="not \\['dev'\\]"):
        formats.reads("dev")
