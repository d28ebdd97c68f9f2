"""spaCy's dev corpus (the documents `model-best`, i.e. the best epoch, is picked on) is never the job
set: with `split.validation_prop` > 0 it is the view's validation set (valid.tsv, written as `valid`
shards by formats/spacy.py) and the fit uses all of train; without one it is a slice of train carved
like the split (whole speakers on a split grouped by speaker). On the tiny fixture project, through
the plain-Python core, with the fast spacy_bow model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pepm_assets.core import families, stages, training
from pepm_assets.core.config import ResolvedParams, resolve_profile
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.families.spacy import dev_plan
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import read_tsv_file
from pepm_assets_tests.fixtures import build_stamped_view, make_project

SPACY = ["families=[spacy]", "models=[spacy_bow]"]  # tiny_quick: tiny_mpt, split grouped by speaker, seed 7
VALID = "split.validation_prop=0.3"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("spacy_dev") / "proj")
    params = resolve_profile(root, "tiny_quick")
    extract_corpus("mpt", params.corpora["mpt"], root, ProjectPaths(root).corpus_dir("mpt"))
    return root


def _prepare(root: Path, overrides: list[str]) -> tuple[ResolvedParams, dict[str, pd.DataFrame], dict]:
    """The view and its formats: (params, {train, job[, valid]} as on disk, the spacy_docbin entry)."""
    params, result = build_stamped_view(root, "tiny_quick", [*SPACY, *overrides])
    meta, _, _ = stages.build_formats(params, root)
    folder = result.train_path.parent
    sets = {name: read_tsv_file(folder / f"{name}.tsv") for name in ("train", "job", "valid") if (folder / f"{name}.tsv").exists()}
    return params, sets, meta["formats"]["spacy_docbin"]


def _data(root: Path, params: ResolvedParams, train: pd.DataFrame, fmt: dict, seed: int | None = None) -> families.TrainData:
    return families.TrainData(
        train=train, labels=["left", "right"], seed=params.seed if seed is None else seed, hardware=params.hardware, root=root, formats=fmt
    )


def _texts(folder: Path) -> list[str]:
    """The texts spaCy's Corpus reads from a corpus folder, in its order."""
    import spacy
    from spacy.training import Corpus

    return [eg.reference.text for eg in Corpus(folder)(spacy.blank("fr"))]


def _corpora(root: Path, params: ResolvedParams, train: pd.DataFrame, fmt: dict, work: Path) -> tuple[dict, list[str], list[str]]:
    family = families.build("spacy", params.model_specs["spacy_bow"].params)
    got = family.corpora(_data(root, params, train, fmt), work)
    return got, _texts(work / "train"), _texts(work / "dev")


def test_grouped_split_dev_slice_holds_whole_speakers_and_no_job_document(project: Path, tmp_path: Path) -> None:
    params, sets, fmt = _prepare(project, [])
    assert params.split.group_by == "speaker" and fmt["valid"] == [] and fmt["split"]["group_by"] == "speaker"
    train, job = sets["train"], sets["job"]
    got, fit_texts, dev_texts = _corpora(project, params, train, fmt, tmp_path)
    assert got["dev_source"] == "train slice grouped by speaker"
    speaker = dict(zip(train["text"], train["speaker"]))
    fit_speakers, dev_speakers = {speaker[t] for t in fit_texts}, {speaker[t] for t in dev_texts}
    assert dev_texts and fit_texts and not fit_speakers & dev_speakers  # whole speakers
    assert got["n_dev_groups"] == len(dev_speakers) and len(dev_texts) == got["n_dev_docs"]
    assert sorted(fit_texts + dev_texts) == sorted(train["text"])  # every train document on one side
    assert not set(dev_texts) & set(job["text"]) and not set(fit_texts) & set(job["text"])
    # seeded: the same slice again; spaCy reads the rows in train.tsv's order
    again, _, dev_again = _corpora(project, params, train, fmt, tmp_path / "again")
    assert dev_again == dev_texts and (again["dev_mask"] == got["dev_mask"]).all()
    assert dev_texts == train["text"][got["dev_mask"]].tolist()


def test_validation_set_is_the_dev_corpus_and_the_fit_uses_all_train(project: Path, tmp_path: Path) -> None:
    params, sets, fmt = _prepare(project, [VALID])
    train, valid, job = sets["train"], sets["valid"], sets["job"]
    assert not valid.empty and fmt["n_valid"] == len(valid) and all((project / p).is_file() for p in fmt["valid"])
    got, fit_texts, dev_texts = _corpora(project, params, train, fmt, tmp_path)
    assert got["dev_source"] == "validation split" and got["dev_mask"] is None
    doc_of = {t: d for frame in (train, valid, job) for t, d in zip(frame["text"], frame["doc_id"])}
    assert [doc_of[t] for t in dev_texts] == valid["doc_id"].tolist()  # exactly valid.tsv, in its order
    assert [doc_of[t] for t in fit_texts] == train["doc_id"].tolist()  # all of train.tsv
    assert not set(dev_texts) & set(job["text"])
    assert (got["n_fit_docs"], got["n_dev_docs"]) == (len(train), len(valid))


def test_meta_model_states_the_dev_source_and_the_version_follows_it(project: Path) -> None:
    versions = {}
    for name, overrides, source in (("slice", [], "train slice grouped by speaker"), ("valid", [VALID], "validation split")):
        params, sets, _ = _prepare(project, overrides)
        spec = params.model_specs["spacy_bow"]
        meta = training.train_model(params, "spacy_bow", spec, project)
        on_disk = json.loads(
            (ProjectPaths(project).model_dir("tiny_mpt", "left_right", "spacy", "spacy_bow") / "meta_model.json").read_text()
        )
        for fit in (meta["fit"], on_disk["fit"]):
            assert fit["dev_source"] == source and fit["dev"].startswith(("the view's validation set", source))
            assert fit["n_dev_docs"] + fit["n_train_docs"] == (len(sets["train"]) + (len(sets["valid"]) if name == "valid" else 0))
        if name == "valid":
            assert meta["fit"]["n_dev_docs"] == len(sets["valid"]) and meta["fit"]["n_train_docs"] == len(sets["train"])
            assert meta["fit"]["dev_fraction"] is None
        else:
            assert meta["fit"]["n_dev_groups"] >= 1 and meta["fit"]["dev_fraction"] == 0.1
        versions[name] = meta["lineage"]["version"]
    assert versions["slice"] != versions["valid"]  # another dev source, another model version
    assert families.REGISTRY.get("spacy").code_version == "2"  # models fitted with the old random slice read stale


def test_a_split_without_validation_drops_the_valid_shards(project: Path) -> None:
    _, _, with_valid = _prepare(project, [VALID])
    folder = (project / with_valid["valid"][0]).parent
    assert folder.is_dir()
    _, _, without = _prepare(project, [])
    assert without["valid"] == [] and without["n_valid"] == 0 and not folder.exists()


def test_ungrouped_over_sampled_train_keeps_the_copies_of_a_document_together(project: Path) -> None:
    overrides = ["split.group_by=null", "balance_strategy=oversample", "balance_preset=parity"]
    params, sets, fmt = _prepare(project, overrides)
    train = sets["train"]
    assert train["doc_id"].duplicated().any()
    mask, facts = dev_plan(_data(project, params, train, fmt), 0.1)
    assert facts["dev_source"] == "train slice stratified by label, copies of a document together"
    assert mask.any() and not set(train["doc_id"][mask]) & set(train["doc_id"][~mask])
    assert not set(train["text"][mask]) & set(sets["job"]["text"])


def test_formats_written_before_the_dev_source_was_recorded_are_refused(project: Path) -> None:
    params, sets, fmt = _prepare(project, [])
    old = {k: v for k, v in fmt.items() if k not in ("valid", "split", "n_valid")}
    with pytest.raises(ValueError, match="run the prepare stage again"):
        dev_plan(_data(project, params, sets["train"], old), 0.1)


def test_an_empty_validation_set_falls_back_to_the_grouped_slice_and_says_so(project: Path) -> None:
    params, sets, fmt = _prepare(project, [])
    empty = {**fmt, "split": {**fmt["split"], "validation_prop": 0.3}, "valid": [], "n_valid": 0}
    mask, facts = dev_plan(_data(project, params, sets["train"], empty), 0.1)
    assert facts["dev_source"] == "train slice grouped by speaker (the validation split is empty)" and mask.any()
