"""Labels, balance strategies and the split: the core of a view, on small frames."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepm_assets.core import balance, labels, split
from pepm_assets.core.config import resolve_profile
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import ViewError, build_view
from pepm_assets_tests.fixtures import REPO


@pytest.fixture(scope="module")
def label_map() -> labels.LabelMap:
    return labels.load_label_map(REPO / "configs" / "label_maps" / "ideology.yml", REPO)


def _docs(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["corpus_id", "speaker", "group", "role", "vote"]).assign(
        doc_id=lambda d: [f"d{i}" for i in range(len(d))]
    )


def test_every_document_gets_a_label_or_a_reason(label_map: labels.LabelMap) -> None:
    docs = _docs(
        [
            ("mpt", "A", "SRC", "member", "pour"),
            ("mpt", "B", "UMP", "member", "contre"),
            ("mpt", "le_président", "", "chair", ""),
            ("mpt", "Taubira", "GVT", "government", ""),
            ("mpt", "Jacques_Bompard", "NI", "member", "contre"),  # actor override: far right
            ("mpt", "Jean_Lassalle", "NI", "member", "contre"),  # actor override: centre
            ("mpt", "Other", "NI", "member", "contre"),  # non-attached, no override
            ("mpt", "C", "XYZ", "member", ""),  # group missing from the map
            ("an_debats", "D", "LREM", "member", ""),  # centre: not in the binary view
            ("an_debats", "E", "", "member", ""),
        ]
    )
    out = labels.assign_labels(docs, label_map, "left_right")
    assert (out["label"].notna() ^ out["exclusion"].notna()).all()
    got = dict(zip(out["speaker"], out["label"].fillna(out["exclusion"])))
    assert got == {
        "A": "left",
        "B": "right",
        "le_président": "chair_speaker",
        "Taubira": "government_speaker",
        "Jacques_Bompard": "right",
        "Jean_Lassalle": "label_not_in_view",
        "Other": "non_attached",
        "C": "unmapped_group",
        "D": "label_not_in_view",
        "E": "no_group",
    }
    intra = labels.assign_labels(docs, label_map, "right_intra")
    got = dict(zip(intra["speaker"], intra["label"].fillna(intra["exclusion"])))
    assert got["Jacques_Bompard"] == "national_right" and got["B"] == "gaullist_right" and got["A"] == "outside_view_wing"
    vote = labels.assign_labels(docs, label_map, "vote")
    got = dict(zip(vote["speaker"], vote["label"].fillna(vote["exclusion"])))
    assert got["A"] == "pour" and got["B"] == "contre" and got["le_président"] == "chair_speaker" and got["D"] == "no_vote"


def _labelled(counts: dict[str, int]) -> pd.DataFrame:
    rows = [(f"{lab}{i}", lab, f"texte {lab} {i}", 10 + i % 5, f"s{lab}{i % 7}") for lab, n in counts.items() for i in range(n)]
    return pd.DataFrame(rows, columns=["doc_id", "label", "text", "n_tokens", "speaker"])


@pytest.mark.parametrize(
    ("strategy", "params", "expected"),
    [
        ("none", {}, {"a": 100, "b": 30}),
        ("cap_docs", {"max_docs": 50}, {"a": 50, "b": 30}),
        ("cap_docs", {"max_docs": "min"}, {"a": 30, "b": 30}),
        ("alpha_total", {"alpha": 0.0, "total": 40}, {"a": 20, "b": 20}),
        ("alpha_total", {"alpha": 1.0, "total": 65}, {"a": 50, "b": 15}),
        ("oversample", {"target": "max"}, {"a": 100, "b": 100}),
    ],
)
def test_balance_strategies(strategy: str, params: dict, expected: dict) -> None:
    out = balance.build(strategy, params).resample(_labelled({"a": 100, "b": 30}), np.random.default_rng(0))
    assert out["label"].value_counts().to_dict() == expected


def test_cap_tokens_and_class_weights() -> None:
    df = _labelled({"a": 100, "b": 30})
    out = balance.build("cap_tokens", {"max_tokens": 120}).resample(df, np.random.default_rng(0))
    assert out.groupby("label")["n_tokens"].sum().max() <= 120
    weights = balance.build("class_weights", {"scheme": "balanced"}).class_weights(df)
    assert weights == {"a": pytest.approx(130 / 200), "b": pytest.approx(130 / 60)}


def test_stratified_split_is_seeded_and_proportional() -> None:
    df = _labelled({"a": 100, "b": 40})
    train, job = split.split_train_job(df, 0.75, seed=3)
    assert train["label"].value_counts().to_dict() == {"a": 75, "b": 30}
    again, _ = split.split_train_job(df, 0.75, seed=3)
    other, _ = split.split_train_job(df, 0.75, seed=4)
    assert list(again["doc_id"]) == list(train["doc_id"]) and list(other["doc_id"]) != list(train["doc_id"])
    assert split.leakage(train, job) == {"shared_texts": 0, "shared_doc_ids": 0}


def test_grouped_split_keeps_each_speaker_on_one_side() -> None:
    df = _labelled({"a": 100, "b": 40})
    train, job = split.split_train_job(df, 0.8, seed=1, group_by="speaker")
    assert not set(train["speaker"]) & set(job["speaker"])
    assert 0.6 < len(train) / len(df) < 0.95 and set(job["label"]) == {"a", "b"}


def test_duplicates_never_cross_the_split() -> None:
    df = pd.DataFrame(
        {
            "doc_id": ["1", "2", "3", "4", "5"],
            "label": ["a", "a", "b", "a", "b"],
            "text": ["Très bien !", "très   BIEN", "Très bien.", "Un texte", "un texte !"],
        }
    )
    kept, reasons = split.drop_duplicates(df)
    # "très bien" has both labels: all copies dropped; "un texte" too; nothing left to leak
    assert reasons == {"conflicting_duplicate": 5} and kept.empty
    df.loc[2, "label"] = "a"
    kept, reasons = split.drop_duplicates(df)
    assert reasons == {"duplicate_text": 2, "conflicting_duplicate": 2} and list(kept["doc_id"]) == ["1"]


def test_build_view_writes_split_and_meta(project: Path) -> None:
    paths = ProjectPaths(project)
    for cid in ("mpt", "an"):
        extract_corpus(cid, resolve_profile(project, "tiny_multi").corpora[cid], project, paths.corpus_dir(cid))
    params = resolve_profile(project, "tiny_multi")
    started = time.perf_counter()
    result = build_view(params, project, {c: paths.corpus_dir(c) / "docs.parquet" for c in ("mpt", "an")})
    took = time.perf_counter() - started
    meta = result.meta
    assert 0 < meta["seconds"] <= took + 0.001, f"meta_view.json says the view took {meta['seconds']} s; it took {took:.3f} s"
    assert meta["source_corpora"] == ["mpt", "an"] and meta["compare_by"] == ["corpus_id"]
    assert meta["excluded_by_reason"]["chair_speaker"] == 2 and meta["excluded_by_reason"]["government_speaker"] == 18
    # oversample parity: train classes equal, job untouched and disjoint by speaker
    assert len(set(meta["split"]["train_label_counts"].values())) == 1
    assert meta["leakage"] == {"shared_texts": 0, "shared_doc_ids": 0, "shared_speaker": 0}
    assert set(pd.read_csv(result.train_path, sep="\t")["corpus_id"]) == {"mpt", "an"}
    bad = resolve_profile(project, "tiny_multi", ["view=vote", "dataset_id=tiny_an", "data.merge_mode=single"])
    with pytest.raises(ViewError, match="no labelled document"):
        build_view(bad, project, {"an": paths.corpus_dir("an") / "docs.parquet"})
