"""Leak-free train/job split.

- Duplicates first: texts equal after normalisation are one unit. If all copies agree on the label
  one copy is kept, if they disagree all are dropped ("Très bien !" from both sides teaches nothing);
  either way the same normalised text can never sit in both train and job.
- Grouped (`group_by: speaker`, the default of a profile's `split`): each speaker's documents stay
  on one side, so a classifier cannot score by recognising who speaks rather than which side they
  are on. Every document needs a value (prepare refuses a view where one has none).
- Else (`group_by: null`) stratified by label with `train_prop`, seeded (or plain random with
  `stratify: false`).
- Optionally a validation set (`validation_prop`) carved out of the train side by the same rules,
  for model selection: the job set then scores only the model chosen, never the choice.
- `repeats` N > 1: N splits of the same view, the first with the profile's seed (train.tsv /
  job.tsv), repeat r >= 1 with the seed `repeat_seeds` derives from it (repeats/r<r>/): each is
  drawn (balance, split, validation, shuffle) exactly as the profile would draw it with that seed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import compiled, settings

if TYPE_CHECKING:
    from .config.schema import SplitConfig

LABEL = "label"
# separators outside ASCII that French parliamentary texts use; every other non-ASCII character is kept
_TYPOGRAPHIC = ("\u00a0", "\u202f", "\u2009", "’", "‘", "«", "»", "“", "”", "„", "…", "–", "—", "•", "·", "°")
_MARKS = "".join(_TYPOGRAPHIC)
_textkey, IMPLEMENTATION = compiled.load(f"{__package__}._textkey", settings.TEXT_KEY, "dedup keys take twice as long")
_ASCII_ALNUM = bytes(c if (48 <= c <= 57 or 97 <= c <= 122 or c >= 128) else 32 for c in range(256))


def normalize_for_dedup(text: str) -> bytes:
    """The case-, punctuation- and spacing-insensitive form of a text, as UTF-8: casefolded, ASCII
    punctuation and the usual typographic marks made spaces, spaces collapsed. Bytes because it is
    only hashed, and bytes.translate is twice as fast as a Unicode regex (it runs on every text)."""
    folded = text.casefold()
    for mark in _TYPOGRAPHIC:
        if mark in folded:
            folded = folded.replace(mark, " ")
    return b" ".join(folded.encode("utf-8").translate(_ASCII_ALNUM).split())


def text_keys(texts: list[str], implementation: str | None = None) -> list[str]:
    """The dedup key of each text: BLAKE2b (12 bytes, hex) of `normalize_for_dedup`. Computed by
    the compiled `_textkey` when built (one C pass per text instead of ~20 Python operations: the
    key is computed for every labelled document of a view), else by the function above, which is
    the reference (`PEPM_TEXT_KEY=python` forces it)."""
    if (implementation or IMPLEMENTATION) == "compiled":
        return _textkey.keys(texts, _MARKS)
    return [hashlib.blake2b(normalize_for_dedup(t), digest_size=12).hexdigest() for t in texts]


TEXT_KEY_CHUNK = 8_192  # texts made Python strings at a time by `text_key` (a whole view's at once: ~2x their size in memory)


def text_key(texts: pd.Series) -> pd.Series:
    """`text_keys` of a column, TEXT_KEY_CHUNK texts at a time."""
    keys: list[str] = []
    for start in range(0, len(texts), TEXT_KEY_CHUNK):
        keys += text_keys(texts.iloc[start : start + TEXT_KEY_CHUNK].tolist())
    return pd.Series(keys, index=texts.index, dtype=object)


def drop_duplicates(df: pd.DataFrame) -> tuple[pd.DataFrame, Counter]:
    """Keep one copy of texts whose copies agree on the label, none of those that disagree."""
    keys = text_key(df["text"])
    conflicting, repeated = _duplicate_masks(keys, df[LABEL])
    reasons: Counter = Counter()
    if conflicting.any():
        reasons["conflicting_duplicate"] = int(conflicting.sum())
    if repeated.any():
        reasons["duplicate_text"] = int(repeated.sum())
    keep = ~(conflicting | repeated)
    kept = df[keep]  # a new frame already (copy-on-write): no second copy of the texts
    kept["text_key"] = keys.to_numpy()[keep]
    return kept, reasons


def _duplicate_masks(keys: pd.Series, labels: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(conflicting, repeated): the rows whose key has more than one label (missing labels not
    counted), and the later copies of a key that has one. On integer codes rather than a groupby and
    map over the keys: 0.37 -> 0.05 s for the 107,151 labelled documents of MPT x10."""
    codes, _ = pd.factorize(keys)
    label_codes, label_values = pd.factorize(labels)
    if not len(codes):
        return np.zeros(0, dtype=bool), np.zeros(0, dtype=bool)
    labelled, n_labels = label_codes >= 0, max(1, len(label_values))
    pairs = np.unique(codes[labelled].astype(np.int64) * n_labels + label_codes[labelled])  # distinct (key, label)
    conflicting = np.bincount(pairs // n_labels, minlength=codes.max() + 1)[codes] > 1
    first = np.zeros(len(codes), dtype=bool)
    first[np.unique(codes, return_index=True)[1]] = True
    return conflicting, ~first & ~conflicting


def split_kind(config: SplitConfig) -> str:
    """How a split was drawn, in the words every report, leaderboard row and MLflow run uses:
    "grouped by <field>", "stratified" (by label) or "random". A score is read with it: a stratified
    split lets the same speaker sit in train and job, which flatters the score."""
    if config.group_by:
        return f"grouped by {config.group_by}"
    return "stratified" if config.stratify else "random"


def repeat_seeds(seed: int, repeats: int) -> list[int]:
    """The seed of each repeat of a split: the profile's seed for repeat 0 (the canonical split,
    train.tsv / job.tsv), and for repeat r >= 1 the first 32-bit word of numpy's
    `SeedSequence(seed, spawn_key=(r,))`, i.e. of the r-th child of `SeedSequence(seed).spawn(...)`:
    independent streams, in numpy's seed range, and not `seed + r` (which would make repeat 1 of
    seed 42 the canonical split of seed 43, and two profile seeds share repeats)."""
    return [seed] + [int(np.random.SeedSequence(seed, spawn_key=(r,)).generate_state(1)[0]) for r in range(1, repeats)]


def missing_groups(df: pd.DataFrame, group_by: str) -> pd.Series:
    """The rows whose `group_by` value is empty (null or blank): a grouped split cannot place them."""
    values = df[group_by]
    return values.isna() | values.astype(str).str.strip().eq("")


def _stratified(df: pd.DataFrame, train_prop: float, rng: np.random.Generator) -> np.ndarray:
    in_train = np.zeros(len(df), dtype=bool)
    positions = np.arange(len(df))
    for _, idx in df.groupby(LABEL, sort=True).indices.items():
        idx = positions[idx]
        n_train = int(round(len(idx) * train_prop))
        if len(idx) >= 2:
            n_train = min(max(n_train, 1), len(idx) - 1)  # both sides see every class
        in_train[rng.permutation(idx)[:n_train]] = True
    return in_train


def _grouped(df: pd.DataFrame, train_prop: float, rng: np.random.Generator, group_by: str) -> np.ndarray:
    """Assign whole groups (e.g. speakers) to train until each label reaches its train share."""
    groups = df[group_by].fillna("").astype(str).to_numpy()
    sizes = df.groupby([group_by, LABEL]).size()
    main_label = sizes.groupby(level=0).idxmax().map(lambda pair: pair[1])
    per_group = df.groupby(group_by).size()
    train_groups: set[str] = set()
    for label in sorted(main_label.unique()):
        members = np.array(sorted(main_label[main_label == label].index))
        target = train_prop * per_group[members].sum()
        taken = 0
        for g in rng.permutation(members):
            if taken == 0 or taken + per_group[g] <= target:  # a speaker that would overshoot goes to job
                train_groups.add(g)
                taken += per_group[g]
    # compared as text, like `groups` (year: integers); a hash lookup per row: np.isin on strings
    # compares every row with every train group (1 s for 125,000 documents and 300 speakers)
    train_keys = {str(g) for g in train_groups}
    return np.fromiter((g in train_keys for g in groups), dtype=bool, count=len(groups))


def split_train_job(
    df: pd.DataFrame, train_prop: float, seed: int | Sequence[int], stratify: bool = True, group_by: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    if group_by:
        if group_by not in df.columns:
            raise KeyError(f"split.group_by: no column {group_by!r} (columns: {sorted(df.columns)})")
        in_train = _grouped(df, train_prop, rng, group_by)
    elif stratify:
        in_train = _stratified(df, train_prop, rng)
    else:
        in_train = np.zeros(len(df), dtype=bool)
        in_train[rng.permutation(len(df))[: int(round(len(df) * train_prop))]] = True
    return df[in_train], df[~in_train]


def split_validation(
    train: pd.DataFrame, validation_prop: float, seed: int | Sequence[int], stratify: bool = True, group_by: str | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit, valid): `validation_prop` of the train side held out, by the rules of the train/job
    split (whole groups with `group_by`, else per label with `stratify`), so that the validation set
    is drawn the way the job set was; its documents are then in neither the fit set nor the job
    set. `seed` is the run seed with a salt of its own (another draw than the train/job split's).
    0 holds nothing out and returns `train` itself."""
    if validation_prop <= 0:
        return train, train.take([])  # not train.iloc[:0]: a slice of train's columns would hold all of train's texts
    return split_train_job(train, 1.0 - validation_prop, seed, stratify, group_by)


def _values(column: pd.Series) -> set[str]:
    return set(column.to_numpy(dtype=object))  # not set(series): iterating an Arrow-backed column is slow


def _keys(df: pd.DataFrame) -> set[str]:
    return _values(df["text_key"] if "text_key" in df.columns else text_key(df["text"]))


def _shared(a: pd.DataFrame, b: pd.DataFrame, group_by: str | None) -> dict[str, int]:
    shared = {"shared_texts": len(_keys(a) & _keys(b)), "shared_doc_ids": len(_values(a["doc_id"]) & _values(b["doc_id"]))}
    if group_by:
        shared[f"shared_{group_by}"] = len(_values(a[group_by]) & _values(b[group_by]))
    return shared


def leakage(train: pd.DataFrame, job: pd.DataFrame, group_by: str | None = None, valid: pd.DataFrame | None = None) -> dict[str, int]:
    """Counts of what is shared between train and job (all zero when the split is clean). With a
    validation set, also between train and valid and between valid and job, under the same names
    suffixed `_train_valid` and `_valid_job`: a validation document in the fit set would flatter the
    model selection, one in the job set would make the job score part of the selection."""
    shared = _shared(train, job, group_by)
    if valid is not None:
        for pair, a, b in (("train_valid", train, valid), ("valid_job", valid, job)):
            shared.update({f"{name}_{pair}": n for name, n in _shared(a, b, group_by).items()})
    return shared
