"""Every merge mode, cap, filter and view kind of a view, end to end (TEI -> parsed corpus ->
build_view -> train.tsv / job.tsv / meta_view.json -> evaluation), each test asserting exact counts
that it computes itself from the documents it wrote, never with the code under test.

Most tests read one purpose-built MPT sitting, `opts`, whose every document is listed in DOCS: who
says it, their vote, its text (so its length), and which documents say the same text (`family`):
left and right speakers of unequal length (12 and 50 words), 3-word interjections, abstentions and
missing votes, non-attached deputies placed (or not) by ideology_actors.yml, a chair, and texts
said twice or thrice by one side (duplicates) or by both (conflicting duplicates), one of them
differing only in case and punctuation. Merge modes and the per-corpus cap use the fixture's two
corpora (mpt, an). The last test checks that the test modules collect when a config is broken.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, adjusted_rand_score, f1_score

from pepm_assets.core import lineage, stages, training
from pepm_assets.core.config import ResolvedParams, resolve_profile
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import ViewError, ViewResult, build_view, read_tsv_file
from pepm_assets_tests.fixtures import REPO, build_stamped_view, make_project

# ---------------------------------------------------------------- the `opts` corpus
# speaker -> (politicalgroup, category, cluster), as configs/label_maps/ideology.yml and
# ideology_actors.yml place them (category None: non-attached and not placed -> non_attached)
ACTORS = {
    "Erwann_Binet": ("SRC", "left", "socialist"),
    "Marie_George_Buffet": ("GDR", "far_left", "radical_left"),
    "Sergio_Coronado": ("ECOLO", "left", "ecologist"),
    "Hervé_Mariton": ("UMP", "right", "gaullist_right"),
    "Philippe_Gosselin": ("UMP", "right", "gaullist_right"),
    "Jean_Christophe_Fromantin": ("UDI", "center_right", "liberal_right"),
    "Jacques_Bompard": ("NI", "far_right", "national_right"),  # placed by ideology_actors.yml (OPTS_ACTORS)
    "Jean_Lassalle": ("NI", "center", "democrat_center"),  # idem
    "Gilbert_Collard": ("NI", None, None),
}
WING = {
    **dict.fromkeys(["far_left", "left", "center_left"], "left"),
    "center": "center",
    **dict.fromkeys(["center_right", "right", "far_right"], "right"),
}
LEFT = ["Erwann_Binet", "Marie_George_Buffet", "Sergio_Coronado"]
RIGHT = ["Hervé_Mariton", "Philippe_Gosselin", "Jean_Christophe_Fromantin", "Jacques_Bompard"]
WORDS = ["égalité", "droits", "familles", "progrès", "filiation", "enfant", "nature", "tradition", "société", "liberté"]
CHAIR = "le_président"


@dataclass(frozen=True)
class Doc:
    speaker: str
    vote: str  # "" -> no vote attribute
    text: str
    family: str | None = None  # documents of one family say the same text (up to case and punctuation)

    @property
    def n_tokens(self) -> int:
        return len(self.text.split())


def _docs() -> list[Doc]:
    n = iter(range(1, 10_000))

    def text(length: int) -> str:  # "texte <unique number>" + words: unique after normalisation
        i = next(n)
        return f"texte {i} " + " ".join(WORDS[(i + j) % len(WORDS)] for j in range(length - 2))

    docs = [Doc(CHAIR, "", "La séance est ouverte")]
    for s in LEFT:
        docs += [Doc(s, vote, text(12)) for vote in ("pour", "pour", "pour", "pour", "abstention", "")]
        docs += [Doc(s, "pour", f"court {next(n)} gauche") for _ in range(2)]  # 3 words
    for s in RIGHT:
        docs += [Doc(s, vote, text(50)) for vote in ("contre", "contre", "contre", "abstention")]
        docs.append(Doc(s, "contre", f"court {next(n)} droite"))
    docs += [Doc("Jean_Lassalle", "pour", text(12)) for _ in range(3)]
    docs += [Doc("Gilbert_Collard", "contre", text(12)) for _ in range(2)]
    d1, d2, d3, c1, c3 = text(12), text(12), text(50), text(12), text(12)
    docs += [
        Doc("Erwann_Binet", "pour", d1, "D1"),  # same side twice: one copy kept
        Doc("Sergio_Coronado", "pour", d1, "D1"),
        *[Doc("Marie_George_Buffet", v, d2, "D2") for v in ("pour", "pour", "abstention")],  # one speaker thrice
        Doc("Hervé_Mariton", "contre", d3, "D3"),
        Doc("Philippe_Gosselin", "contre", d3, "D3"),
        Doc("Erwann_Binet", "pour", c1, "C1"),  # left and right: no copy kept
        Doc("Jean_Christophe_Fromantin", "contre", c1, "C1"),
        # the same text up to case and punctuation; socialist vs ecologist: a conflict in left_intra only
        Doc("Sergio_Coronado", "pour", "Nous voterons ce texte avec fierté pour toutes les familles de France", "C2"),
        Doc("Erwann_Binet", "pour", "nous voterons ce texte, avec fierté, pour toutes les familles de France!", "C2"),
        Doc("Sergio_Coronado", "pour", c3, "C3"),  # the other copy's speaker is excluded: no conflict
        Doc("Gilbert_Collard", "contre", c3, "C3"),
        Doc("Erwann_Binet", "pour", "court commun gauche", "S1"),  # a short duplicate (far_left vs left in ideology_global)
        Doc("Marie_George_Buffet", "pour", "court commun gauche", "S1"),
    ]
    return docs


DOCS = _docs()


def sitting_xml(docs: list[Doc]) -> str:
    sps = []
    for d in docs:
        if d.speaker == CHAIR:
            meta = f'auteur="{CHAIR}" interventiontype="régulation"'
        else:
            group = ACTORS[d.speaker][0]
            meta = f'auteur={quoteattr(d.speaker)} interventiontype="intervention" politicalgroup="{group}"'
            meta += f' vote="{d.vote}"' if d.vote else ""
        sps.append(
            f"<sp who={quoteattr(d.speaker)}><speaker>{escape(d.speaker.replace('_', ' '))}</speaker>"
            f"<mpt:metadata {meta}><p>{escape(d.text)}</p></mpt:metadata></sp>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<TEI xmlns="http://www.tei-c.org/ns/1.0" xmlns:mpt="http://mpt.ethelred.fr/ns/0.0/">\n'
        "<teiHeader><fileDesc><titleStmt><title>Séance opts</title></titleStmt></fileDesc></teiHeader>\n"
        "<text><body><div><head>Options</head>\n" + "\n".join(sps) + "\n</div></body></text></TEI>\n"
    )


def expected_label(d: Doc, view: str) -> tuple[str | None, str | None]:
    """(label, exclusion reason) of a document in `view`, from ACTORS and the views of ideology.yml."""
    if d.speaker == CHAIR:
        return None, "chair_speaker"
    _, category, cluster = ACTORS[d.speaker]
    if category is None:
        return None, "non_attached"
    if view == "vote":  # meta:vote, values [pour, contre]
        if d.vote in ("pour", "contre"):
            return d.vote, None
        return None, "label_not_in_view" if d.vote else "no_vote"
    wing = WING[category]
    if view == "ideology_global":
        return category, None
    if view == "left_right":  # values [left, right]
        return (wing, None) if wing in ("left", "right") else (None, "label_not_in_view")
    side = {"left_intra": "left", "right_intra": "right"}[view]
    return (cluster, None) if wing == side else (None, "outside_view_wing")


def expected_pool(view: str, min_tokens: int = 1, dedup: bool = True) -> tuple[list[tuple[Doc, str]], Counter]:
    """The (document, label) pairs a view keeps, in document order, and the exclusions by reason:
    labels, then the length filter, then duplicates (a family whose kept documents have one label
    keeps its first; one with two labels keeps none)."""
    excluded: Counter = Counter()
    pool = []
    for d in DOCS:
        label, reason = expected_label(d, view)
        if reason:
            excluded[reason] += 1
        elif d.n_tokens < min_tokens:
            excluded["too_short"] += 1
        else:
            pool.append((d, label))
    if not dedup:
        return pool, excluded
    families: dict[str, list[int]] = defaultdict(list)
    for i, (d, _) in enumerate(pool):
        if d.family:
            families[d.family].append(i)
    drop = set()
    for members in families.values():
        if len({pool[i][1] for i in members}) > 1:
            excluded["conflicting_duplicate"] += len(members)
            drop.update(members)
        elif len(members) > 1:
            excluded["duplicate_text"] += len(members) - 1
            drop.update(members[1:])
    return [p for i, p in enumerate(pool) if i not in drop], excluded


def n_train_of(n: int, train_prop: float) -> int:
    """Documents of a class of n that a stratified split puts in train (both sides see a class of 2+)."""
    k = int(round(n * train_prop))
    return min(max(k, 1), n - 1) if n >= 2 else k


OPTS_PROFILE = """dataset_id: tiny_opts
view: left_right
train_prop: 0.75
seed: 11
split: {group_by: null}  # the counts below are those of a split stratified by label (n_train_of)
families: [check, sklearn, cluster]
models: [check_default, tfidf_logreg, kmeans_tfidf, hdbscan_tfidf]
quality: {min_docs_per_class: 1}
"""
# ideology_actors.yml places actors per corpus: the test project places these two in corpus opts as in mpt
OPTS_ACTORS = """  opts:
    Jacques_Bompard: {category: far_right, cluster: national_right}
    Jean_Lassalle: {category: center, cluster: democrat_center}
"""
SEP_PROFILE = """dataset_id: tiny_sep
view: left_right
data: {corpus_ids: [mpt, an], merge_mode: separate}
families: [check]
models: [check_default]
train_prop: 0.75
seed: 5
split: {group_by: null}  # stratified within each corpus (corpus an has one right-wing speaker)
quality: {min_docs_per_class: 3}
"""
# the fixture corpora: speaker -> label in left_right (None: excluded), by corpus; Marine_Le_Pen is
# placed by ideology_actors.yml in an_debats only, so in corpus `an` she is non_attached
FIXTURE_LEFT_RIGHT = {
    "mpt": {
        "Erwann_Binet": "left",
        "Marie_George_Buffet": "left",
        "Sergio_Coronado": "left",
        "Hervé_Mariton": "right",
        "Philippe_Gosselin": "right",
        "Jean_Christophe_Fromantin": "right",
        "Jacques_Bompard": "right",
    },
    "an": {"Boris_Vallaud": "left", "Ugo_Bernalicis": "left", "Eric_Ciotti": "right"},
}


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture project plus corpus `opts` (dataset tiny_opts), every corpus parsed once."""
    root = make_project(tmp_path_factory.mktemp("opts") / "proj")
    common = root / "configs" / "common"
    with open(common / "corpora.yml", "a", encoding="utf-8") as fh:
        fh.write("  opts:\n    path: data/raw/opts\n    dialect: mpt\n")
    with open(common / "datasets.yml", "a", encoding="utf-8") as fh:
        fh.write("  tiny_opts:\n    corpus_ids: [opts]\n")
    with open(root / "configs" / "label_maps" / "ideology_actors.yml", "a", encoding="utf-8") as fh:
        fh.write(OPTS_ACTORS)
    (root / "configs" / "profiles" / "opts.yml").write_text(OPTS_PROFILE, encoding="utf-8")
    (root / "configs" / "profiles" / "tiny_sep.yml").write_text(SEP_PROFILE, encoding="utf-8")
    raw = root / "data" / "raw" / "opts"
    raw.mkdir(parents=True)
    (raw / "20140101.xml").write_text(sitting_xml(DOCS), encoding="utf-8")
    paths = ProjectPaths(root)
    params = resolve_profile(root, "opts")
    corpora = {**resolve_profile(root, "tiny_multi").corpora, **params.corpora}
    for cid, cfg in corpora.items():
        extract_corpus(cid, cfg, root, paths.corpus_dir(cid))
    return root


_build = build_stamped_view


def _written(result: ViewResult) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """train.tsv, job.tsv and meta_view.json as they are on disk."""
    return read_tsv_file(result.train_path), read_tsv_file(result.job_path), json.loads(result.meta_path.read_text(encoding="utf-8"))


def _rows(df: pd.DataFrame) -> Counter:
    return Counter(zip(df["speaker"], df["text"], df["label"]))


def _label_counts(df: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in sorted(Counter(df["label"]).items())}


def _check_view(
    root: Path, view: str, overrides: list[str], min_tokens: int = 1, dedup: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Build `view` of tiny_opts (no balancing) and check every count against expected_pool."""
    params, result = _build(root, "opts", [f"view={view}", *overrides])
    train, job, meta = _written(result)
    kept, excluded = expected_pool(view, min_tokens, dedup)
    labels = Counter(label for _, label in kept)
    assert meta["n_docs_in"] == len(DOCS)
    assert meta["excluded_by_reason"] == dict(excluded)
    assert meta["n_docs_labelled"] == len(kept) == len(DOCS) - sum(excluded.values())
    assert meta["label_counts_before_balance"] == meta["label_counts_after_balance"] == dict(sorted(labels.items()))
    # the documents themselves: the first copy of a family, never one of a conflict or a short text
    assert _rows(train) + _rows(job) == Counter((d.speaker, d.text, label) for d, label in kept)
    both = pd.concat([train, job])
    assert (both["n_tokens"] == both["text"].str.split().str.len()).all()
    assert both["text"].map(lambda t: len(t.split())).min() >= min_tokens
    expected_train = {label: n_train_of(n, params.train_prop) for label, n in sorted(labels.items())}
    assert _label_counts(train) == {k: v for k, v in expected_train.items() if v}
    assert meta["split"]["train_label_counts"] == _label_counts(train) and meta["split"]["job_label_counts"] == _label_counts(job)
    n_train = sum(expected_train.values())
    assert (meta["split"]["n_train"], meta["split"]["n_job"]) == (len(train), len(job)) == (n_train, len(kept) - n_train)
    assert ("text_key" in train.columns) is dedup
    return train, job, meta


# ---------------------------------------------------------------- view kinds, filters, duplicates
@pytest.mark.parametrize("view", ["ideology_global", "left_right", "left_intra", "right_intra", "vote"])
def test_each_view_kind_labels_and_counts_every_document(proj: Path, view: str) -> None:
    """category, wing (with values), cluster within a wing (both wings), meta:<column> (with values)."""
    _check_view(proj, view, [])


def test_min_tokens_drops_short_texts_before_duplicates_are_counted(proj: Path) -> None:
    short = [d for d in DOCS if d.n_tokens < 10 and expected_label(d, "left_right")[1] is None]
    assert len(short) == 3 * 2 + 4 + 2  # the fixture: 2 interjections per left speaker, 1 per right one, family S1
    _, _, meta = _check_view(proj, "left_right", ["filters.min_tokens=10"], min_tokens=10)
    assert meta["excluded_by_reason"]["too_short"] == len(short)
    _, _, default = _check_view(proj, "left_right", [])  # min_tokens 1: the interjections are in, S1 is a duplicate
    assert "too_short" not in default["excluded_by_reason"] and default["n_docs_labelled"] == meta["n_docs_labelled"] + len(short) - 1
    # the threshold is inclusive: a 12-word text stays at min_tokens 12 and goes at 13
    _check_view(proj, "left_right", ["filters.min_tokens=12"], min_tokens=12)
    _check_view(proj, "left_right", ["filters.min_tokens=13"], min_tokens=13)  # right documents only


def test_duplicates_are_counted_by_kind_in_meta_view(proj: Path) -> None:
    """left_right: D1 (2 left copies) 1, D2 (3) 2, D3 (2 right) 1, C2 (case and punctuation, both
    left) 1, S1 (both left) 1 duplicate_text; C1 (left and right) 2 conflicting; C3 none (its
    other copy is non-attached)."""
    _, _, meta = _check_view(proj, "left_right", [])
    assert (meta["excluded_by_reason"]["duplicate_text"], meta["excluded_by_reason"]["conflicting_duplicate"]) == (6, 2)
    # left_intra: D1 and C2 are socialist vs ecologist, S1 socialist vs radical_left (conflicts); D2
    # is radical_left thrice; C1's right copy is outside the wing, so its left copy stays
    _, _, intra = _check_view(proj, "left_intra", [])
    assert (intra["excluded_by_reason"]["duplicate_text"], intra["excluded_by_reason"]["conflicting_duplicate"]) == (2, 6)
    # without dedup every copy is in, and no text_key column is written
    _, _, raw = _check_view(proj, "left_right", ["filters.dedup=false"], dedup=False)
    assert "duplicate_text" not in raw["excluded_by_reason"] and raw["n_docs_labelled"] == meta["n_docs_labelled"] + 6 + 2


def test_a_meta_view_keeps_only_its_values(proj: Path) -> None:
    """vote = meta:vote with values [pour, contre]: an abstention is excluded (label_not_in_view),
    never a third class; a document without a vote is no_vote."""
    train, job, meta = _check_view(proj, "vote", [])
    assert set(meta["label_counts_before_balance"]) == set(train["label"]) | set(job["label"]) == {"pour", "contre"}
    abstentions = [d for d in DOCS if d.vote == "abstention" and ACTORS[d.speaker][1] is not None]
    assert meta["excluded_by_reason"]["label_not_in_view"] == len(abstentions) == 3 + 4 + 1
    assert meta["excluded_by_reason"]["no_vote"] == 3
    assert meta["label_map"]["view"]["values"] == ["pour", "contre"]


# ---------------------------------------------------------------- balancing
def test_pool_strategies_balance_before_the_split_and_train_strategies_after(proj: Path) -> None:
    kept, _ = expected_pool("left_right")
    natural = Counter(label for _, label in kept)
    assert natural["left"] != natural["right"]
    # cap_docs parity (pool): every class cut to the smallest, then split: the job set is balanced too
    _, result = _build(proj, "opts", ["balance_strategy=cap_docs", "balance_preset=parity"])
    train, job, meta = _written(result)
    m = min(natural.values())
    assert meta["balance"]["stage"] == "pool" and meta["label_counts_before_balance"] == dict(sorted(natural.items()))
    assert meta["label_counts_after_balance"] == {"left": m, "right": m}
    assert _label_counts(train) == {"left": n_train_of(m, 0.75), "right": n_train_of(m, 0.75)}
    assert _label_counts(job) == {"left": m - n_train_of(m, 0.75), "right": m - n_train_of(m, 0.75)}
    assert not pd.concat([train, job])["doc_id"].duplicated().any()
    # oversample (train): the split of the natural pool, then copies in train only; job as without balancing
    _, result = _build(proj, "opts", ["balance_strategy=oversample", "balance_preset=parity"])
    train, job, meta = _written(result)
    fit = {label: n_train_of(n, 0.75) for label, n in natural.items()}
    top = max(fit.values())
    assert meta["balance"]["stage"] == "train"
    assert _label_counts(train) == {"left": top, "right": top} and train["doc_id"].nunique() == sum(fit.values())
    assert _label_counts(job) == {label: n - fit[label] for label, n in sorted(natural.items())}
    assert not job["doc_id"].duplicated().any() and not set(job["doc_id"]) & set(train["doc_id"])
    assert meta["label_counts_after_balance"] == {label: top + n - fit[label] for label, n in sorted(natural.items())}
    # class_weights (none): nothing resampled, weights n / (k * n_c) of the train set reported
    _, result = _build(proj, "opts", ["balance_strategy=class_weights"])
    train, job, meta = _written(result)
    assert meta["balance"]["stage"] == "none" and _label_counts(train) == dict(sorted(fit.items()))
    assert meta["balance"]["class_weights"] == {label: pytest.approx(len(train) / (2 * n)) for label, n in fit.items()}


def test_cap_tokens_keeps_each_class_within_its_tokens_and_never_empties_one(proj: Path) -> None:
    """min_tokens 10 leaves left texts of 12 words and right texts of 50: max_tokens 40 takes 3 left
    documents and would take no right one but for the rule that keeps one; 120 takes 10 and 2."""
    kept, _ = expected_pool("left_right", min_tokens=10)
    assert {(label, d.n_tokens) for d, label in kept} == {("left", 12), ("right", 50)}
    for max_tokens, expected in ((40, {"left": 3, "right": 1}), (120, {"left": 10, "right": 2})):
        overrides = ["filters.min_tokens=10", "balance_strategy=cap_tokens", f"balance_params.max_tokens={max_tokens}"]
        _, result = _build(proj, "opts", overrides)
        train, job, meta = _written(result)
        both = pd.concat([train, job])
        assert meta["balance"] == {**meta["balance"], "stage": "pool", "params": {"max_tokens": max_tokens}}
        assert meta["label_counts_after_balance"] == _label_counts(both) == expected
        assert meta["split"]["n_train"] + meta["split"]["n_job"] == sum(expected.values())
        tokens = both.groupby("label")["n_tokens"].sum()
        assert all(tokens[c] <= max_tokens or expected[c] == 1 for c in expected)


def test_alpha_total_never_empties_a_class(proj: Path) -> None:
    """ideology_global has six classes here; alpha 1 and total 8 give the smallest a share under half
    a document, yet each class keeps min(n_c, max(1, round(total * n_c / n))) documents."""
    kept, _ = expected_pool("ideology_global")
    natural = Counter(label for _, label in kept)
    total, n = 8, sum(natural.values())
    raw = {label: total * c / n for label, c in natural.items()}
    assert len(natural) == 6 and min(raw.values()) < 0.5 and all(abs(v % 1 - 0.5) > 1e-9 for v in raw.values())
    expected = {label: min(c, max(1, round(raw[label]))) for label, c in sorted(natural.items())}
    balanced = ["balance_strategy=alpha_total", "balance_params.alpha=1", f"balance_params.total={total}"]
    _, result = _build(proj, "opts", ["view=ideology_global", *balanced])
    train, job, meta = _written(result)
    assert meta["label_counts_before_balance"] == dict(sorted(natural.items()))
    assert meta["label_counts_after_balance"] == _label_counts(pd.concat([train, job])) == expected
    assert meta["balance"]["stage"] == "pool"


# ---------------------------------------------------------------- label map lineage
def test_the_actors_file_is_part_of_the_label_map_fingerprint(proj: Path, tmp_path: Path) -> None:
    """Placing Jacques_Bompard otherwise in ideology_actors.yml (ideology.yml untouched) changes the
    label map's fingerprint, so the params hash: the view on disk reads stale, the old params are
    refused, and the view built again excludes his documents."""
    root = tmp_path / "p"
    shutil.copytree(proj / "configs", root / "configs")
    shutil.copytree(proj / "data" / "raw" / "opts", root / "data" / "raw" / "opts")
    before = resolve_profile(root, "opts")
    docs = {"opts": ProjectPaths(root).corpus_dir("opts") / "docs.parquet"}
    extract_corpus("opts", before.corpora["opts"], root, docs["opts"].parent)
    before, result = _build(root, "opts")
    assert json.loads(result.meta_path.read_text())["label_map"]["fingerprint"] == before.label_map_sha256
    state = lambda p: next(s for s in lineage.Expected(root).statuses(p, {}) if s.asset == "view_split")  # noqa: E731
    assert state(before).state == "FRESH"

    ideology = (root / "configs" / "label_maps" / "ideology.yml").read_bytes()
    actors = root / "configs" / "label_maps" / "ideology_actors.yml"
    placed = "    Jacques_Bompard: {category: far_right, cluster: national_right}\n"
    assert actors.read_text(encoding="utf-8").endswith(OPTS_ACTORS) and placed in OPTS_ACTORS
    actors.write_text(actors.read_text(encoding="utf-8").replace(placed, "    Jacques_Bompard: {exclude: moved_out}\n"), encoding="utf-8")
    assert (root / "configs" / "label_maps" / "ideology.yml").read_bytes() == ideology
    after = resolve_profile(root, "opts")
    assert after.label_map_sha256 != before.label_map_sha256 and after.params_hash != before.params_hash
    assert state(after).state == "STALE" and state(after).why == ["parameters changed"]
    with pytest.raises(ViewError, match="label map ideology.yml changed since the parameters were resolved"):
        build_view(before, root, docs)
    _, result = _build(root, "opts")
    meta = json.loads(result.meta_path.read_text())
    bompard = [d for d in DOCS if d.speaker == "Jacques_Bompard"]
    assert meta["label_map"]["fingerprint"] == after.label_map_sha256 and state(after).state == "FRESH"
    assert meta["excluded_by_reason"]["moved_out"] == len(bompard) == 5
    kept, _ = expected_pool("left_right")
    right = sum(label == "right" for _, label in kept)
    assert meta["label_counts_before_balance"]["right"] == right - len(bompard)


# ---------------------------------------------------------------- caps, merge modes
def _fixture_docs(root: Path) -> dict[str, pd.DataFrame]:
    return {cid: pd.read_parquet(ProjectPaths(root).corpus_dir(cid) / "docs.parquet") for cid in ("mpt", "an")}


def test_max_docs_per_corpus_caps_each_corpus_before_labelling(proj: Path) -> None:
    docs = _fixture_docs(proj)
    sizes = {cid: len(df) for cid, df in docs.items()}
    labelled = {cid: df[df["speaker"].isin(FIXTURE_LEFT_RIGHT[cid])] for cid, df in docs.items()}
    assert sizes == {"mpt": 110, "an": 36}
    plain = ["balance_strategy=none", "balance_preset=default", "split.group_by=null"]
    _, whole = _build(proj, "tiny_multi", plain)
    whole_train, whole_job = whole.train_path.read_bytes(), whole.job_path.read_bytes()
    assert whole.meta["n_docs_in"] == 146
    for cap in (30, 36):
        _, result = _build(proj, "tiny_multi", [*plain, f"filters.max_docs_per_corpus={cap}"])
        train, job, meta = _written(result)
        both = pd.concat([train, job])
        assert meta["params"]["filters"]["max_docs_per_corpus"] == cap
        assert meta["n_docs_in"] == sum(min(cap, n) for n in sizes.values())  # per corpus, not in all
        assert meta["n_docs_labelled"] + sum(meta["excluded_by_reason"].values()) == meta["n_docs_in"]
        for cid in ("mpt", "an"):
            rows = both[both["corpus_id"] == cid]
            assert set(rows["doc_id"]) <= set(labelled[cid]["doc_id"])
            assert (rows["label"] == rows["speaker"].map(FIXTURE_LEFT_RIGHT[cid])).all()
            assert meta["split"]["by_source"][cid] == len(rows) <= min(cap, len(labelled[cid]))
        if cap == 36:  # an has 36 documents: all its labelled ones stay
            assert meta["split"]["by_source"]["an"] == len(labelled["an"]) == 18
        assert meta["split"]["by_source"]["mpt"] < len(labelled["mpt"])
    _, result = _build(proj, "tiny_multi", [*plain, "filters.max_docs_per_corpus=1000"])  # above every corpus: no change
    assert (result.train_path.read_bytes(), result.job_path.read_bytes(), result.meta["n_docs_in"]) == (whole_train, whole_job, 146)


def test_merge_modes_pool_or_split_each_corpus(proj: Path) -> None:
    """merged and juxtaposed: one pooled split (the same one), juxtaposed also compared by corpus;
    separate: each corpus balanced and split on its own, so cap_docs parity cuts each corpus to its
    own smallest class, not the pool's."""
    docs = _fixture_docs(proj)
    natural = {cid: Counter(df["speaker"].map(FIXTURE_LEFT_RIGHT[cid]).dropna()) for cid, df in docs.items()}
    assert natural == {"mpt": {"left": 36, "right": 48}, "an": {"left": 12, "right": 6}}
    pooled = natural["mpt"] + natural["an"]
    balanced = ["balance_strategy=cap_docs", "balance_preset=parity", "split.group_by=null", "analysis.compare_by=[]"]
    by_mode = {}
    for mode in ("merged", "juxtaposed"):
        _, result = _build(proj, "tiny_multi", [*balanced, f"data.merge_mode={mode}"])
        train, job, meta = _written(result)
        m = min(pooled.values())
        assert meta["merge_mode"] == mode and "by_corpus" not in meta
        assert meta["label_counts_before_balance"] == dict(sorted(pooled.items()))
        assert meta["label_counts_after_balance"] == {"left": m, "right": m}
        assert _label_counts(train) == {"left": n_train_of(m, 0.8), "right": n_train_of(m, 0.8)}
        by_mode[mode] = (result.train_path.read_bytes(), result.job_path.read_bytes(), meta["compare_by"])
    assert by_mode["merged"][:2] == by_mode["juxtaposed"][:2]
    assert (by_mode["merged"][2], by_mode["juxtaposed"][2]) == ([], ["corpus_id"])

    _, result = _build(proj, "tiny_sep", ["balance_strategy=cap_docs", "balance_preset=parity"])
    train, job, meta = _written(result)
    assert meta["merge_mode"] == "separate" and meta["compare_by"] == ["corpus_id"]
    assert meta["label_counts_before_balance"] == dict(sorted(pooled.items()))
    after = Counter()
    for cid, counts in natural.items():
        m = min(counts.values())
        tr, jb = train[train["corpus_id"] == cid], job[job["corpus_id"] == cid]
        expected_train = {"left": n_train_of(m, 0.75), "right": n_train_of(m, 0.75)}
        assert _label_counts(tr) == meta["by_corpus"][cid]["train_label_counts"] == expected_train
        assert _label_counts(jb) == meta["by_corpus"][cid]["job_label_counts"] == {k: m - v for k, v in expected_train.items()}
        assert meta["split"]["by_source"][cid] == 2 * m
        after.update({"left": m, "right": m})
    assert meta["label_counts_after_balance"] == dict(sorted(after.items())) == {"left": 6 + 36, "right": 6 + 36}
    # a corpus with no labelled document can have no model of its own: corpus an has no vote
    with pytest.raises(ViewError, match=r"merge_mode separate: corpus \['an'\] has no labelled document in view 'vote'"):
        _build(proj, "tiny_sep", ["view=vote"])
    # the cap under separate: per corpus too
    _, result = _build(proj, "tiny_sep", ["filters.max_docs_per_corpus=36"])
    train, job, meta = _written(result)
    assert meta["n_docs_in"] == 72 and meta["by_corpus"]["an"]["n_train"] + meta["by_corpus"]["an"]["n_job"] == 18


# ---------------------------------------------------------------- through an evaluation
def _evaluate(root: Path, profile: str, overrides: list[str]) -> tuple[ResolvedParams, pd.DataFrame, dict[str, Path]]:
    params, result = _build(root, profile, overrides)
    stages.build_formats(params, root)
    reports = {}
    for model_id in params.models:
        spec = params.model_specs[model_id]
        training.commit_model(root, training.train_model(params, model_id, spec, root))
        reports[model_id] = Path(training.evaluate_model(params, model_id, spec, root, n_boot=20)["report_dir"])
    return params, read_tsv_file(result.job_path), reports


def _predictions(report: Path, job: pd.DataFrame) -> pd.DataFrame:
    pred = read_tsv_file(report / "predictions.tsv")
    assert pred["doc_id"].tolist() == job["doc_id"].tolist()
    return job.assign(predicted=pred["predicted"].tolist())


def test_metrics_by_group_are_each_groups_own_scores(proj: Path) -> None:
    """compare_by [corpus_id, speaker] (juxtaposed): metrics_by_<field>.json holds, for each value of
    the field in the job set, the scores of that value's documents alone."""
    models = ["families=[check,sklearn]", "models=[check_default,tfidf_logreg]", "analysis.compare_by=[corpus_id,speaker]"]
    _, job, reports = _evaluate(proj, "tiny_multi", [*models, "split.group_by=null", "balance_strategy=none", "balance_preset=default"])
    assert job["corpus_id"].nunique() == 2 and job["speaker"].nunique() > 2
    for model_id, report in reports.items():
        rows = _predictions(report, job)
        for field in ("corpus_id", "speaker"):
            got = json.loads((report / f"metrics_by_{field}.json").read_text())
            assert sorted(got) == sorted(rows[field].unique())
            for value, group in rows.groupby(field):
                gold, pred = group["label"].tolist(), group["predicted"].tolist()
                present = sorted(set(gold))
                m = got[value]
                assert m["n"] == len(group), (model_id, field, value)
                assert m["accuracy"] == pytest.approx(accuracy_score(gold, pred))
                assert m["macro_f1"] == pytest.approx(f1_score(gold, pred, labels=present, average="macro", zero_division=0))
                assert m["weighted_f1"] == pytest.approx(f1_score(gold, pred, labels=present, average="weighted", zero_division=0))
                assert {k: v["support"] for k, v in m["per_class"].items()} == {k: gold.count(k) for k in m["per_class"]}
        whole = json.loads((report / "metrics.json").read_text())
        assert whole["n"] == len(job) and whole["accuracy"] == pytest.approx(accuracy_score(rows["label"], rows["predicted"]))
    # the constant control makes groups differ: an's job set is mostly left, mpt's mostly right
    by_corpus = json.loads((reports["check_default"] / "metrics_by_corpus_id.json").read_text())
    assert by_corpus["an"]["accuracy"] != by_corpus["mpt"]["accuracy"]


def test_clustering_reports_its_noise_fraction(proj: Path) -> None:
    """HDBSCAN leaves some job documents in no cluster ("noise"): metrics.json counts them, apart from
    the clusters; KMeans puts every document in one of its k clusters. No per-group file: unsupervised."""
    overrides = ["families=[cluster]", "models=[hdbscan_tfidf,kmeans_tfidf]", "models.hdbscan_tfidf.params.min_cluster_size=4"]
    _, job, reports = _evaluate(proj, "opts", overrides)
    for model_id, report in reports.items():
        rows = _predictions(report, job)
        got = json.loads((report / "metrics.json").read_text())
        pred = rows["predicted"].tolist()
        noise = sum(p == "noise" for p in pred)
        assert got["n"] == len(rows)
        assert got["noise_fraction"] == pytest.approx(noise / len(rows))
        assert got["n_clusters"] == len(set(pred) - {"noise"})
        assert got["ari"] == pytest.approx(adjusted_rand_score(rows["label"], pred))
        assert not list(report.glob("metrics_by_*.json"))
        if model_id == "hdbscan_tfidf":
            assert 0 < noise < len(rows) and got["n_clusters"] >= 1
        else:
            assert noise == 0 and got["n_clusters"] <= 2


# ---------------------------------------------------------------- collection with a broken config
def test_the_tests_collect_when_every_config_is_broken(tmp_path: Path) -> None:
    """Config loading happens in tests and fixtures, never at import: with every YAML file of
    configs/ made invalid, `pytest --collect-only` still collects every test module."""
    copy = tmp_path / "repo"
    copy.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", ".pytest_cache", ".hypothesis")
    shutil.copytree(REPO / "pepm_assets_tests", copy / "pepm_assets_tests", ignore=ignore)
    shutil.copytree(REPO / "configs", copy / "configs", ignore=ignore)
    for entry in REPO.iterdir():  # the rest, read-only (package sources, scripts/ that tests import, pyproject.toml)
        if entry.name not in ("configs", "pepm_assets_tests", ".git") and not entry.name.startswith((".venv", ".pytest", ".hypothesis")):
            (copy / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    broken = sorted(p for p in (copy / "configs").rglob("*") if p.suffix in (".yml", ".yaml"))
    assert {"models.yml", "corpora.yml", "ideology.yml", "balance.yml"} <= {p.name for p in broken}
    for path in broken:
        path.write_text("broken: [this is not YAML\n", encoding="utf-8")
    env = {**os.environ, "PEPM_ROOT": str(copy), "DAGSTER_HOME": str(tmp_path / "dagster_home")}
    env.pop("PYTEST_ADDOPTS", None)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "pepm_assets_tests"],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors = [line for line in out.stdout.splitlines() if line.startswith("ERROR")]
    assert out.returncode == 0 and not errors, "\n".join(errors) or out.stdout[-3000:] + out.stderr[-3000:]
    assert f"pepm_assets_tests/{Path(__file__).name}::test_the_tests_collect_when_every_config_is_broken" in out.stdout


def test_a_dataset_with_its_own_source_field_names_each_documents_corpus(proj: Path, tmp_path: Path) -> None:
    """`source_field: corpus` (not the default corpus_id): every row of the split says its corpus
    under that name, which a per-corpus comparison then reads; meta_view.json's timing is in ms."""
    root = tmp_path / "proj"
    shutil.copytree(proj, root)
    with open(root / "configs" / "common" / "datasets.yml", "a", encoding="utf-8") as fh:
        fh.write("  tiny_src:\n    corpus_ids: [opts]\n    source_field: corpus\n")
    _, result = _build(root, "opts", ["dataset_id=tiny_src"])
    train, job, meta = _written(result)
    both = pd.concat([train, job])
    assert len(both) > 0 and set(both["corpus"]) == {"opts"}
    assert meta["seconds"] == round(meta["seconds"], 3)
