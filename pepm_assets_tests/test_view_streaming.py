"""The view reads the texts of the documents it labels only (core/prepare.py `read_docs`, `Docs`):
labels and exclusions are assigned on the metadata, then the labelled rows' texts are read from
docs.parquet batch by batch. What must never change with it: any byte of what the view writes
(train/job/valid.tsv, the repeats, meta_view.json but for its timings) for any profile.

The golden hashes below were computed by `view_hashes` on the code before the change (commit
8722376, which read every text into the frame first) and are compared here with the present code's:
a change in the split, a text, a column, a count or the lineage stamp fails the test. Regenerate them
(only for a change that is meant to change outputs) with `python -m pepm_assets_tests.test_view_streaming`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest

from pepm_assets.core import diagnostics, labels, prepare
from pepm_assets.core.config import resolve_profile
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.paths import ProjectPaths
from pepm_assets_tests.fixtures import build_stamped_view, make_project
from pepm_assets_tests.test_data_quality import CHAIR, FRENCH_SENTENCE, Doc, add_dq_corpus, sitting_xml
from pepm_assets_tests.test_data_quality import DOCS as DQ_DOCS
from pepm_assets_tests.test_data_quality import PROFILE as DQ_PROFILE
from pepm_assets_tests.test_view_options import SEP_PROFILE

# SEP_PROFILE: test_view_options's merge_mode separate profile
# name -> (profile, overrides): every option that touches the rows or the texts of a view
CASES: dict[str, tuple[str, list[str]]] = {
    "quick": ("tiny_quick", []),
    "quick_mask": ("tiny_quick", ["filters.mask_names=true"]),
    "quick_repeats_valid": ("tiny_quick", ["split.repeats=3", "split.validation_prop=0.2"]),
    "an": ("tiny_an", []),
    "multi_juxtaposed": ("tiny_multi", []),
    "multi_cap_mask": ("tiny_multi", ["filters.max_docs_per_corpus=30", "filters.mask_names=true", "split.repeats=2"]),
    "sep_repeats": ("tiny_sep", ["split.repeats=2", "split.validation_prop=0.2"]),
    "sep_cap": ("tiny_sep", ["filters.max_docs_per_corpus=36"]),
    "dq_dedup": ("dq", []),
    "dq_quality": ("dq", ["filters.near_duplicates=true", "filters.procedural=true", "filters.min_tokens=4"]),
    "dq_mask_repeats": ("dq", ["filters.mask_names=true", "filters.near_duplicates=true", "split.repeats=2"]),
    "common_mask": ("common", ["filters.mask_names=true"]),
}
# mask_names masks a surname alone ("Mariton") unless the texts use it as a common word: here only
# the chair's (excluded) text does, so the masking depends on the texts of documents the view excludes
COMMON_DOCS = [
    *DQ_DOCS[:25],
    Doc(CHAIR, "Le mariton est ici un mot commun."),
    Doc("Erwann_Binet", "Mariton a dit que " + FRENCH_SENTENCE),
]
# view_hashes of each case on commit 8722376 (every text read before labelling)
GOLDEN: dict[str, dict[str, str]] = {
    "common_mask": {
        "job.tsv": "3b8c8d429e7d711f756df5647acd4a0b06432fcbe45a4283afe10ad5deabc659",
        "train.tsv": "3b7f8cfd76454af5ed15eab3d60da5ee5ffcf2b4efcf1a4dc42822d416ae8b0b",
        "meta_view.json": "c135192fcb8d01b0fc14d758ae5b3885ee677094473d8202480f064671081905",
    },
    "an": {
        "job.tsv": "379779a2f657cea6ac570f8360143cc7707719c4cbf7e13fb50ec125eda3805d",
        "train.tsv": "05fb11bd2c0cf5ffa14a951b21a2545407231adf02ac75b48c4fa214e0bf2a78",
        "meta_view.json": "836c81d008b8f11f1dc0d8fbc938e8eaada04a98963c953e99a7d5539094b5a1",
    },
    "dq_dedup": {
        "job.tsv": "a23cb33afb959ea5344197cd7a5632b5ab4c9fd8257114a9389fe998122bd02d",
        "train.tsv": "255c940abcde93ec881f858c8d6070482fd70aaaf7218b8f4623c1df8c374190",
        "meta_view.json": "a63b3a2b948e5e1e33ee7c56a08ec73ee3be402b28ca5584cf29a2847aad3e21",
    },
    "dq_mask_repeats": {
        "job.tsv": "114a5aabdddb92dd414b12c7b0291d13ac3e34908522a1295710677df9f23cf6",
        "repeats/r1/job.tsv": "9c912630ab191a81c8061c486dc24686985e57070e241720d88d527a08b07063",
        "repeats/r1/train.tsv": "e2a157f767ac458cf4e3850090d64d65bba0f9d033bd6aa81aa45fbedec9a6e6",
        "train.tsv": "d601b4bc5835f2fb8fb69162dcd68e991a5225bd81131b79f8314403f9f47ba9",
        "meta_view.json": "0ae5d0be6f4cb2cfabcca68d427d8a476d9e2b071e1c2c4e46c0c86262d7cb15",
    },
    "dq_quality": {
        "job.tsv": "e582fd05833bb234f64f42ca2ce1c356e01451485fcedb883e98f3fcae040ffa",
        "train.tsv": "7a0f60f227e62a0051be03be99dd87e56a9723de9911fb5d70fb66fb7314b438",
        "meta_view.json": "34aa072d7addb1c7bd2a256ade5c3da69bb96c7c205c060b2114b8afefd4912c",
    },
    "multi_cap_mask": {
        "job.tsv": "cea47fd11da98fdf71995c7d6d0f3841c7a0e98a918deb1e138482ccf640557f",
        "repeats/r1/job.tsv": "ef1b56f1d4dab1bcc6652e56aa2254ec35ce9948ca61918403b65fc0547c48dc",
        "repeats/r1/train.tsv": "f77b3149720553fe0c9792c8633fe2f02907ff20ff9f8cde775b72637031c607",
        "train.tsv": "a576aa938e901c8de68f17bf62f8407ed45c66b5f0f67431ecc170ec5e3e6ebb",
        "meta_view.json": "436e693d3590ca3bf1cc34da1f6414c511b061300d3ce90806c16c815ba5b7ae",
    },
    "multi_juxtaposed": {
        "job.tsv": "7ff7967929c3b42bfd9e79d82faa859628e1882cd9f6a4b55fd3111bb153dd4e",
        "train.tsv": "a5eda05a672a686e5d561571ea927438d03976d24f8aa7194edef14104134f07",
        "meta_view.json": "0b67370dbd08e6be6d80c715256c89f2b446d75ce57299cab55ed257c0f48fe0",
    },
    "quick": {
        "job.tsv": "0d5b29cb168a8cc72ae4d1dbadaf50aebbb3c5b1c75d0a587f0fe29825d32e13",
        "train.tsv": "feddae934a9f03c0d9aafd98aa9e636d7d123ffa47583b8990742dc22b3a38ff",
        "meta_view.json": "4c7a5ebbd2c36fc11e536b5f4afe36d898451d9e3133e8ac3e30f1580749ca87",
    },
    "quick_mask": {
        "job.tsv": "0d5b29cb168a8cc72ae4d1dbadaf50aebbb3c5b1c75d0a587f0fe29825d32e13",
        "train.tsv": "feddae934a9f03c0d9aafd98aa9e636d7d123ffa47583b8990742dc22b3a38ff",
        "meta_view.json": "bafdbb0141093b7e7328f2b339ca7607a0e04e728004fa23484feb2797d46021",
    },
    "quick_repeats_valid": {
        "job.tsv": "0d5b29cb168a8cc72ae4d1dbadaf50aebbb3c5b1c75d0a587f0fe29825d32e13",
        "repeats/r1/job.tsv": "2a8bc2720896cad8b487d371cfbac0b6db70b36d83872a5c402b35ba68b65c63",
        "repeats/r1/train.tsv": "5ff326b9194ee4625e542e2d2602024b039bb3305c2d2bdb7d5d352acfb8b2c1",
        "repeats/r1/valid.tsv": "1d44f595d3c7e8901174b4cd168070dfaef94d3f75d9954bcea257d61100bc2e",
        "repeats/r2/job.tsv": "a3c75feb840cebb32328ea5a8827d1d3c92816d0e71536dfad77ee86f1bf55fb",
        "repeats/r2/train.tsv": "a87b40375b7d15a741a47b3e8271401d114ba1cac3aac653a6bf51273435866b",
        "repeats/r2/valid.tsv": "7d6eff7c3ae8592ff5c5519cb3345d47d3f77decfb47560922413729dcda3746",
        "train.tsv": "29f04a75927eac896aa26bd9437cda8e6df8b9273a3fd3ddce62c8f5884136cd",
        "valid.tsv": "2f30550c55d6ab08bae926b600557da643e95132a062d29bb72620a262de1d23",
        "meta_view.json": "8dcaa38aa731f8da0e335d181ce3f7eeac8ccd527fde396245e50f20eed8f599",
    },
    "sep_cap": {
        "job.tsv": "76d63aebbe659d93a08cd14980fc8c458100ab08b21a1a0f04638a5cc03c9590",
        "train.tsv": "5fafdccd05f721b32c03510cd3f490055980d95ab020e2b27fe19f51e890c635",
        "meta_view.json": "74ede996926dd1cbf806b257cc7c4d7f8b7008d3b8c1fe8319e8d7c998d3107b",
    },
    "sep_repeats": {
        "job.tsv": "51f4fcc7f80ae14782a8b00ef1de839923966e8288bd1e60240ef4e11a3ab04f",
        "repeats/r1/job.tsv": "57d5802311ff582e191f1ae0350d6c43a89ebf6b47cd0decac2768651d78bdec",
        "repeats/r1/train.tsv": "8fc872ec969a78f367e52956f1915942b190b2d0ce7a7390c168daa350d07be7",
        "repeats/r1/valid.tsv": "53e7ea9fb8bd923b22c07be4934a5f7fb9d3daede5eb338b2056fa7f2bdbb7cb",
        "train.tsv": "7030eb88ba050ded2cc28c5bddf135460fe7620281155746f3d44c5295d93a22",
        "valid.tsv": "44ca167cb62c78858ed717921b83be3f1b65dcace905e2376642e7d9efe0e527",
        "meta_view.json": "39a35dd0569016337d419f4483ed6f4e9b5a03bb98857c9f3c03ee852a63da0f",
    },
}


def make_streaming_project(dest: Path) -> Path:
    """The fixture project, the data-quality sitting (`dq`: duplicates, near-duplicates, procedural
    texts) and a merge_mode separate profile, every corpus parsed."""
    root = make_project(dest)
    common = root / "configs" / "common"
    add_dq_corpus(root)
    (root / "configs" / "profiles" / "tiny_sep.yml").write_text(SEP_PROFILE, encoding="utf-8")
    with open(common / "corpora.yml", "a", encoding="utf-8") as fh:
        fh.write("  common:\n    path: data/raw/common\n    dialect: mpt\n")
    with open(common / "datasets.yml", "a", encoding="utf-8") as fh:
        fh.write("  tiny_common:\n    corpus_ids: [common]\n")
    (root / "configs" / "profiles" / "common.yml").write_text(DQ_PROFILE.replace("tiny_dq", "tiny_common"), encoding="utf-8")
    (root / "data" / "raw" / "common").mkdir(parents=True)
    (root / "data" / "raw" / "common" / "20130202.xml").write_text(sitting_xml(COMMON_DOCS), encoding="utf-8")
    corpora = {
        **resolve_profile(root, "tiny_multi").corpora,
        **resolve_profile(root, "dq").corpora,
        **resolve_profile(root, "common").corpora,
    }
    for cid, cfg in corpora.items():
        extract_corpus(cid, cfg, root, ProjectPaths(root).corpus_dir(cid))
    return root


def _no_timings(value: Any) -> Any:
    """meta_view.json without its `seconds` (the view's, and each quality filter's): they vary."""
    if isinstance(value, dict):
        return {k: _no_timings(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_no_timings(v) for v in value]
    return value


def view_hashes(root: Path, profile: str, overrides: list[str]) -> dict[str, str]:
    """sha256 of every file the view writes (meta_view.json without timings, and with the
    project's folder made relative), by path in the view folder."""
    params, result = build_stamped_view(root, profile, overrides)
    view_dir = ProjectPaths(root).view_dir(params.dataset_id, params.view)
    out = {}
    for path in sorted(view_dir.rglob("*")):
        if path.is_file() and path.name != "meta_view.json":
            out[path.relative_to(view_dir).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    meta = json.dumps(_no_timings(json.loads(result.meta_path.read_text(encoding="utf-8"))), sort_keys=True, ensure_ascii=False)
    out["meta_view.json"] = hashlib.sha256(meta.replace(str(root), "<root>").encode("utf-8")).hexdigest()
    return out


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_streaming_project(tmp_path_factory.mktemp("stream") / "proj")


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_view_writes_what_it_wrote_when_it_read_every_text(proj: Path, case: str) -> None:
    profile, overrides = CASES[case]
    assert view_hashes(proj, profile, overrides) == GOLDEN[case]


def test_mask_names_judges_surnames_by_every_documents_words(proj: Path) -> None:
    """ "Mariton" alone stays: a text the view excludes (the chair's) writes "mariton" in lower
    case, and the words of every document, not only those read for the pool, decide it."""
    _, result = build_stamped_view(proj, "common", ["filters.mask_names=true"])
    texts = [*result.train["text"], *result.job["text"]]
    assert any(t.startswith("Mariton a dit que") for t in texts)
    assert not any("Erwann Binet" in t or "Hervé Mariton" in t for t in texts)


def test_only_the_labelled_documents_texts_are_read(proj: Path) -> None:
    """Labels on a frame without texts; then exactly the labelled rows' texts, none of the chair's,
    the government's or the collective speakers' (the fixture has all three)."""
    params = resolve_profile(proj, "tiny_multi")
    files = {cid: ProjectPaths(proj).corpus_dir(cid) / "docs.parquet" for cid in params.dataset.corpus_ids}
    docs = prepare.read_docs(params, files)
    assert "text" not in docs.frame.columns and "text" in docs.columns
    label_map = labels.load_label_map(proj / "configs" / "label_maps" / params.label_map, proj)
    labelled = labels.assign_labels(docs.frame, label_map, params.view)
    has_label = labelled["label"].notna().to_numpy()
    assert 0 < has_label.sum() < len(has_label)  # some documents are excluded
    texts = docs.texts(np.flatnonzero(has_label))
    assert len(texts) == has_label.sum()
    full = prepare.load_docs(params, files)
    assert texts.to_pylist() == full.loc[has_label, "text"].tolist()
    read = set(texts.to_pylist())
    for excluded in full.loc[~has_label, "text"]:  # "Le gouvernement répond ...", "Très bien ... !", the chair's
        assert excluded not in read
    pool, _, _, n_in = prepare._labelled_pool(params, files, label_map)
    assert n_in == len(docs.frame)
    assert set(pool["text"]) <= read


@pytest.mark.parametrize("batch_rows", [1, 7, 16_384])
def test_texts_read_in_batches_are_those_of_the_rows_asked(proj: Path, batch_rows: int) -> None:
    """Whatever the batch size (a text at a time, batches that straddle corpora's row groups, one
    batch): the texts of any rows, and the common words mask_names decides surnames by, are those
    of the documents read whole (the latter of every document, excluded ones included)."""
    params = resolve_profile(proj, "tiny_multi", ["filters.max_docs_per_corpus=30"])
    files = {cid: ProjectPaths(proj).corpus_dir(cid) / "docs.parquet" for cid in params.dataset.corpus_ids}
    docs = prepare.read_docs(params, files, batch_rows=batch_rows)
    full = prepare.load_docs(params, files)
    assert len(docs.frame) == len(full) == 60  # 30 of each corpus
    for positions in (np.arange(60), np.arange(0, 60, 3), np.array([0, 29, 30, 59]), np.array([], dtype=np.int64)):
        assert docs.texts(positions).to_pylist() == full["text"].iloc[positions].tolist()
    assert docs.lowercase_words() == diagnostics.lowercase_words(full["text"].fillna(""))
    assert docs.lowercase_words() != diagnostics.lowercase_words(full["text"].iloc[:30].fillna(""))  # both corpora's words


def test_load_docs_is_the_frame_of_every_column_as_read_at_once(proj: Path) -> None:
    """load_docs (every text) is the frame the Parquet files give read whole, columns in their
    order, the corpus id and the periods after them (two corpora with different columns, capped)."""
    params = resolve_profile(proj, "tiny_multi", ["filters.max_docs_per_corpus=30"])
    files = {cid: ProjectPaths(proj).corpus_dir(cid) / "docs.parquet" for cid in params.dataset.corpus_ids}
    full = prepare.load_docs(params, files)
    import pandas as pd

    from pepm_assets.core import periods

    frames = []
    for i, cid in enumerate(params.dataset.corpus_ids):  # the loader before read_docs
        df = pq.read_table(files[cid]).combine_chunks().to_pandas()
        rng = np.random.default_rng([params.seed, 7, i])
        df = df.iloc[np.sort(rng.choice(len(df), size=30, replace=False))] if len(df) > 30 else df
        df[params.dataset.source_field] = cid
        frames.append(df)
    expected = periods.add_period_columns(pd.concat(frames, ignore_index=True), params.legislatures)
    pd.testing.assert_frame_equal(full, expected)


if __name__ == "__main__":  # print GOLDEN for the code on PYTHONPATH
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = make_streaming_project(Path(tmp) / "proj")
        print(json.dumps({case: view_hashes(root, *CASES[case]) for case in sorted(CASES)}, indent=4), file=sys.stdout)
