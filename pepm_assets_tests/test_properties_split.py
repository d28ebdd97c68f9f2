"""Property-based tests (hypothesis) of the leak-free split (core/split.py): on generated labelled
pools with exact duplicates, texts equal only after normalisation (case, ASCII punctuation, the
typographic marks of French parliamentary texts, spacing), duplicates that disagree on the label,
classes of 1, 2 and 3 documents and imbalanced classes.

The normalised form is computed here by a reading of its definition of our own (`_norm`), not by
`split.normalize_for_dedup`, so that a change to the dedup key is judged against the definition."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pepm_assets.core import split

# the typographic separators the dedup key makes spaces (split.py: `_TYPOGRAPHIC`), spelt out here
MARKS = ("\u00a0", "\u202f", "\u2009", "’", "‘", "«", "»", "“", "”", "„", "…", "–", "—", "•", "·", "°")
WORDS = ("loi", "mariage", "égalité", "République", "famille", "enfant", "débat", "vote", "article", "œuvre", "ça", "Élysée")
PUNCT = ("!", "?", ".", ",", ";", ":", "(", ")", "-", "'", '"', "/", "*")
SEPARATORS = (" ", "  ", "\t", "\n", " , ", "... ", " ! ", *MARKS, " « ", " » ", "’", " — ")
LABELS = ("a", "b", "c", "d")
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# a test run once per split mode (pytest parameters: hypothesis draws the simplest mode most often)
PER_MODE = settings(SETTINGS, max_examples=20)
MODES = {
    "stratified": {"stratify": True, "group_by": None},
    "unstratified": {"stratify": False, "group_by": None},
    "grouped": {"group_by": "speaker"},
}


def _norm(text: str) -> str:
    """Casefolded; ASCII punctuation and the typographic marks made spaces; spaces collapsed (every
    other non-ASCII character kept). Our texts hold ASCII whitespace only, so str.split is the
    ASCII split of the definition."""
    folded = text.casefold()
    spaced = "".join(" " if c in MARKS or (c.isascii() and not c.isalnum()) else c for c in folded)
    return " ".join(spaced.split())


@st.composite
def variants(draw: st.DrawFn, text: str) -> str:
    """`text` written otherwise: case, separators, punctuation around it; the same normalised text."""
    words = []
    for word in text.split(" "):
        case = draw(st.sampled_from(("keep", "upper", "lower", "title")))
        words.append(word if case == "keep" else getattr(word, case)())
    out = words[0]
    for word in words[1:]:
        out += draw(st.sampled_from(SEPARATORS)) + word
    before = draw(st.text(alphabet=st.sampled_from(PUNCT + MARKS + (" ",)), max_size=3))
    after = draw(st.text(alphabet=st.sampled_from(PUNCT + MARKS + (" ",)), max_size=3))
    return before + out + after


@st.composite
def pools(draw: st.DrawFn, max_per_class: int = 24) -> pd.DataFrame:
    """A labelled pool: doc_id (unique), text, label, speaker. Each document is a new text, an exact
    copy of an earlier one or a variant of it (same normalised text); a copy takes its own label, so
    some copies agree with their original and some conflict. Class sizes are 1, 2, 3 or larger."""
    labels = draw(st.lists(st.sampled_from(LABELS), min_size=1, max_size=4, unique=True))
    sizes = {label: draw(st.one_of(st.sampled_from((1, 2, 3)), st.integers(1, max_per_class))) for label in labels}
    speakers = [f"s{i}" for i in range(draw(st.integers(1, 9)))]
    rows: list[dict[str, str]] = []
    for label in labels:
        for _ in range(sizes[label]):
            kind = draw(st.sampled_from(("new", "new", "new", "copy", "variant"))) if rows else "new"
            if kind == "new":
                body = draw(st.lists(st.sampled_from(WORDS), min_size=0, max_size=4))
                text = " ".join([f"t{len(rows)}", *body])  # t<n>: distinct from every other new text
            else:
                source = draw(st.sampled_from(rows))["text"]
                text = source if kind == "copy" else draw(variants(_norm(source)))
            rows.append({"doc_id": f"d{len(rows)}", "text": text, "label": label, "speaker": draw(st.sampled_from(speakers))})
    order = draw(st.permutations(range(len(rows))))
    return pd.DataFrame([rows[i] for i in order], index=pd.RangeIndex(len(rows)) * 3 + 5)  # an index that is not 0..n-1


SEEDS = st.one_of(st.integers(0, 2**32 - 1), st.lists(st.integers(0, 2**16), min_size=1, max_size=3))
PROPS = st.floats(0.05, 0.95)


def _deduped(pool: pd.DataFrame) -> pd.DataFrame:
    return split.drop_duplicates(pool)[0]


def _assert_partition(whole: pd.DataFrame, *parts: pd.DataFrame) -> None:
    """The parts hold every row of `whole` once, unchanged."""
    index = pd.Index(np.concatenate([p.index.to_numpy() for p in parts]))
    assert index.is_unique and set(index) == set(whole.index) and len(index) == len(whole)
    for part in parts:
        pd.testing.assert_frame_equal(part, whole.loc[part.index])


def _assert_apart(a: pd.DataFrame, b: pd.DataFrame, group_by: str | None) -> None:
    assert not set(a["doc_id"]) & set(b["doc_id"])
    assert not {_norm(t) for t in a["text"]} & {_norm(t) for t in b["text"]}
    if group_by:
        assert not set(a[group_by]) & set(b[group_by])


def _same(a: tuple[pd.DataFrame, ...], b: tuple[pd.DataFrame, ...]) -> bool:
    return all(x.index.equals(y.index) for x, y in zip(a, b))


# ---------------------------------------------------------------- duplicates
@SETTINGS
@given(pools())
def test_drop_duplicates_keeps_one_copy_of_agreeing_texts_and_none_of_conflicting(pool: pd.DataFrame) -> None:
    kept, reasons = split.drop_duplicates(pool)
    labels_of: dict[str, set[str]] = defaultdict(set)
    rows_of: Counter = Counter()
    for text, label in zip(pool["text"], pool["label"]):
        labels_of[_norm(text)].add(label)
        rows_of[_norm(text)] += 1
    agreeing = {key for key, labels in labels_of.items() if len(labels) == 1}
    kept_norms = [_norm(t) for t in kept["text"]]
    assert sorted(kept_norms) == sorted(agreeing)  # one copy of each agreeing text, none of the others
    for key, label in zip(kept_norms, kept["label"]):
        assert labels_of[key] == {label}
    pd.testing.assert_frame_equal(kept.drop(columns="text_key"), pool.loc[kept.index])
    conflicting = sum(n for key, n in rows_of.items() if key not in agreeing)
    repeated = sum(rows_of[key] - 1 for key in agreeing)
    assert reasons == Counter({"conflicting_duplicate": conflicting, "duplicate_text": repeated}) - Counter()
    assert len(kept) + sum(reasons.values()) == len(pool)
    # text_key: one key per normalised text, whichever implementation computes it
    assert list(kept["text_key"]) == split.text_keys(kept["text"].tolist(), "python")
    keys = split.text_keys(pool["text"].tolist())
    assert len(set(zip(keys, map(_norm, pool["text"])))) == len(set(keys)) == len(labels_of)


# ---------------------------------------------------------------- train / job
@SETTINGS
@given(pools(), PROPS, SEEDS)
def test_stratified_split_is_leak_free_and_proportional_per_class(pool: pd.DataFrame, train_prop: float, seed) -> None:
    df = _deduped(pool)
    train, job = split.split_train_job(df, train_prop, seed)
    _assert_partition(df, train, job)
    _assert_apart(train, job, None)
    assert split.leakage(train, job) == {"shared_texts": 0, "shared_doc_ids": 0}
    n_train = train["label"].value_counts()
    for label, n in df["label"].value_counts().items():
        got = int(n_train.get(label, 0))
        assert abs(got - train_prop * n) < 1, (label, n, got)
        if n >= 2:  # every class with two documents or more is seen on both sides
            assert 1 <= got <= n - 1, (label, n, got)


@SETTINGS
@given(pools(), PROPS, SEEDS)
def test_unstratified_split_sizes(pool: pd.DataFrame, train_prop: float, seed) -> None:
    df = _deduped(pool)
    train, job = split.split_train_job(df, train_prop, seed, stratify=False)
    _assert_partition(df, train, job)
    _assert_apart(train, job, None)
    assert len(train) == round(len(df) * train_prop)
    assert split.leakage(train, job) == {"shared_texts": 0, "shared_doc_ids": 0}


def _main_label(df: pd.DataFrame, group_by: str) -> dict[str, str]:
    """Each group's most frequent label (ties: the first label in sorted order)."""
    out = {}
    for group, labels in df.groupby(group_by)["label"]:
        counts = Counter(labels)
        out[group] = min(counts, key=lambda label: (-counts[label], label))
    return out


@SETTINGS
@given(pools(), PROPS, SEEDS)
def test_grouped_split_keeps_every_speaker_on_one_side(pool: pd.DataFrame, train_prop: float, seed) -> None:
    df = _deduped(pool)
    train, job = split.split_train_job(df, train_prop, seed, group_by="speaker")
    _assert_partition(df, train, job)
    _assert_apart(train, job, "speaker")
    assert split.leakage(train, job, "speaker") == {"shared_texts": 0, "shared_doc_ids": 0, "shared_speaker": 0}
    # per main label, whole groups are taken until its train share: at least one group, and beyond
    # the first never more documents than the share
    main = _main_label(df, "speaker")
    size = df.groupby("speaker").size()
    for label in set(main.values()):
        members = [g for g, m in main.items() if m == label]
        taken = [g for g in members if g in set(train["speaker"])]
        assert taken
        assert len(taken) == 1 or size[taken].sum() <= train_prop * size[members].sum()


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize("mode", sorted(MODES))
@PER_MODE
@given(pools(), PROPS, st.floats(0.05, 0.6), SEEDS)
def test_validation_set_is_apart_from_fit_and_job(mode: str, pool: pd.DataFrame, train_prop: float, validation_prop: float, seed) -> None:
    stratify, group_by = MODES[mode].get("stratify", True), MODES[mode]["group_by"]
    df = _deduped(pool)
    train, job = split.split_train_job(df, train_prop, seed, stratify, group_by)
    fit, valid = split.split_validation(train, validation_prop, [7, 3, 0], stratify, group_by)
    _assert_partition(df, fit, valid, job)
    for a, b in ((fit, job), (fit, valid), (valid, job)):
        _assert_apart(a, b, group_by)
    names = ["shared_texts", "shared_doc_ids", *([f"shared_{group_by}"] if group_by else [])]
    assert split.leakage(fit, job, group_by, valid) == {f"{name}{pair}": 0 for pair in ("", "_train_valid", "_valid_job") for name in names}
    if mode == "stratified":  # the validation share of each class, as the job share
        n_valid = valid["label"].value_counts()
        for label, n in train["label"].value_counts().items():
            assert abs(int(n_valid.get(label, 0)) - validation_prop * n) < 1
    elif mode == "unstratified":
        assert len(valid) == len(train) - round(len(train) * (1 - validation_prop))
    same, none = split.split_validation(train, 0.0, 1, stratify, group_by)
    assert same is train and none.empty and list(none.columns) == list(train.columns)


# ---------------------------------------------------------------- seeds
@pytest.mark.parametrize("mode", sorted(MODES))
@PER_MODE
@given(pools(), PROPS, st.integers(0, 2**31))
def test_same_seed_same_split_and_another_seed_another_split(mode: str, pool: pd.DataFrame, train_prop: float, seed: int) -> None:
    df = _deduped(pool)
    kwargs = MODES[mode]
    first = split.split_train_job(df, train_prop, seed, **kwargs)
    again = split.split_train_job(df.copy(), train_prop, seed, **kwargs)
    for a, b in zip(first, again):
        pd.testing.assert_frame_equal(a, b)
    if mode == "grouped":
        return  # how many grouped splits there are depends on the greedy fill; the seed is checked above
    if mode == "stratified":
        several = bool((df["label"].value_counts() >= 2).any())  # such a class has 1 to n-1 train documents
    else:
        several = 0 < round(len(df) * train_prop) < len(df)
    others = [split.split_train_job(df, train_prop, seed + i, **kwargs) for i in range(1, 21)]
    # 20 other seeds: the chance that all of them draw the same split of >= 2 possible ones is < 1e-5
    assert any(not _same(first, o) for o in others) == several


# ---------------------------------------------------------------- leakage()
@SETTINGS
@given(pools(), PROPS, SEEDS, st.data())
def test_leakage_counts_what_is_moved_across(pool: pd.DataFrame, train_prop: float, seed, data: st.DataObject) -> None:
    df = _deduped(pool)
    train, job = split.split_train_job(df, train_prop, seed, group_by="speaker")
    zero = {"shared_texts": 0, "shared_doc_ids": 0, "shared_speaker": 0}
    assert split.leakage(train, job, "speaker") == zero
    if train.empty or job.empty:
        return
    # copies of m train rows in job: m shared doc_ids, m shared texts, their speakers shared
    moved = train.loc[data.draw(st.lists(st.sampled_from(list(train.index)), min_size=1, unique=True))]
    leaked = split.leakage(train, pd.concat([job, moved]), "speaker")
    assert leaked == {"shared_texts": len(moved), "shared_doc_ids": len(moved), "shared_speaker": moved["speaker"].nunique()}
    # a row moved out of train (not copied): both sides still apart, nothing shared
    row = moved.iloc[:1]
    assert split.leakage(train.drop(row.index), pd.concat([job, row]), None) == {"shared_texts": 0, "shared_doc_ids": 0}
    # another document (own doc_id, job speaker) whose text is a train text written otherwise
    variant = row.assign(doc_id="new", speaker=job["speaker"].iloc[0], text=data.draw(variants(_norm(row["text"].iloc[0]))))
    variant["text_key"] = split.text_keys(variant["text"].tolist())
    assert split.leakage(train, pd.concat([job, variant]), "speaker") == {**zero, "shared_texts": 1}
    # without the text_key column (recomputed from the texts): the same
    no_key = split.leakage(train.drop(columns="text_key"), pd.concat([job, variant]).drop(columns="text_key"), "speaker")
    assert no_key == {**zero, "shared_texts": 1}
    # with a validation set: a train row in valid is counted under _train_valid only
    fit, valid = split.split_validation(train, 0.3, [1, 3, 0])
    assert not any(split.leakage(fit, job, None, valid).values())
    if not fit.empty:
        leaked = split.leakage(fit, job, None, pd.concat([valid, fit.iloc[:1]]))
        assert {k: v for k, v in leaked.items() if v} == {"shared_texts_train_valid": 1, "shared_doc_ids_train_valid": 1}
    # and a job row in valid, under _valid_job only
    leaked = split.leakage(fit, job, None, pd.concat([valid, job.iloc[:1]]))
    assert {k: v for k, v in leaked.items() if v} == {"shared_texts_valid_job": 1, "shared_doc_ids_valid_job": 1}


@SETTINGS
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.one_of(st.none(), st.sampled_from(LABELS))),
        max_size=60,
    )
)
def test_the_duplicate_masks_are_those_of_a_groupby_over_the_keys(rows: list[tuple[int, str | None]]) -> None:
    """The masks computed on integer codes (split._duplicate_masks) against their definition in
    pandas: a key is conflicting when its copies carry more than one label (a missing label not
    counted), and every copy of a non-conflicting key after its first is repeated."""
    keys = pd.Series([f"k{k}" for k, _ in rows], dtype=object)
    labels = pd.Series([label for _, label in rows], dtype=object)
    conflicting = keys.map(pd.DataFrame({"label": labels}).groupby(keys)["label"].nunique()).gt(1).to_numpy(dtype=bool)
    repeated = (keys.duplicated(keep="first").to_numpy(dtype=bool)) & ~conflicting
    got = split._duplicate_masks(keys, labels)
    assert got[0].tolist() == conflicting.tolist() and got[1].tolist() == repeated.tolist()
