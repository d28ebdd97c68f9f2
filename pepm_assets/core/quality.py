"""Data-quality filters of a view (spec V4.1 §3), each off unless the profile's `filters` asks:

- `procedural: true`: stage directions ("(Applaudissements sur les bancs du groupe UMP.)") removed
  from the texts, and documents made only of procedural formulas ("La séance est ouverte.", "Je
  mets aux voix l'amendement n° 12.", "Adopté.") left out, counted as `procedural`; the patterns
  are configs/common/procedural.yml (in the params hash of the views that use it).
- `languages: [fr]`: documents detected (py3langid, whose model ships in its wheel: no network) in
  another language left out, counted as `language`, the detected languages counted.
- `near_duplicates: {threshold, num_perm, shingle}`: texts whose word shingles overlap by Jaccard
  >= threshold are one text, like exact duplicates (core/split.py): one copy kept (the first, in
  corpus order) when all agree on the label (`near_duplicate`), none when they disagree
  (`near_duplicate_conflicting`). Dropped before the split, so that no near-duplicate can sit on
  both sides of it: a classifier would score by recognising a text it was fitted on.

prepare.py's `_labelled_pool` calls `clean` (before masking, the length filter and exact dedup:
a stripped text is counted, masked and deduplicated as it will be written) and
`drop_near_duplicates` (after exact dedup, which keeps its own counts). What each did goes into
meta_view.json's `quality` block and `excluded_by_reason`.

What the real corpora hold (measured on the parsed corpora, Dec. 2026, the profiles ideo_quick,
an_debats_lr and an_amendements_lr with all three filters on, defaults): MPT keeps most applause as
<mpt:interruption> attributes, outside the texts, yet 152 stage directions remain inline in 150
labelled speeches (vote results, "(Interruptions sur les bancs du groupe SRC.)"), and 141
labelled documents are procedural only (mostly a rapporteur's "Défavorable." / "Avis
défavorable."); AN débats: no stage direction in a labelled speech, 16 procedural documents; AN
amendements: neither, but 53 near-duplicate pairs at 0.9 (identical amendments re-worded: 39 of
1206 labelled documents dropped, 6 of them in clusters whose labels disagree). No document of the
three corpora is detected in another language than French (py3langid; 2 546 short MPT
interjections undetermined, kept).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .config import ConfigError, load_yaml, validate
from .config.schema import FilterConfig, LanguageFilter, NearDuplicateFilter
from .split import normalize_for_dedup

if TYPE_CHECKING:  # annotations only; the functions that compute import them (CLI start-up, docs/internals.md)
    import pandas as pd

PROCEDURAL_FILE = "configs/common/procedural.yml"
MINHASH_SEED = 1  # datasketch's permutations: fixed, so the same texts always give the same clusters
LSH_RECALL = 0.999  # least chance that a pair at the threshold becomes a candidate (see `lsh_bands`)
UNDETERMINED = "und"  # a text too short or too uncertain to be judged (kept)
# a sentence ends after . ! ? …, but not after an initial or "M." / "MM." ("La parole est à M. Mariton.")
_SENTENCE_END = re.compile(r"(?<=[.!?…])(?<!\b[A-ZÀ-Ý]\.)(?<!\bMM\.)\s+")
_WORD = re.compile(r"\w")


class ProceduralPatterns(BaseModel):
    """configs/common/procedural.yml: regular expressions (case-insensitive) for the start of a
    stage direction's parenthesis and for a whole procedural sentence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage_directions: list[str] = Field(min_length=1)
    formulas: list[str] = Field(min_length=1)

    @field_validator("stage_directions", "formulas")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"entry {i} ({pattern!r}) is not a regular expression: {exc}") from None
        return patterns


def load_patterns(root: Path) -> ProceduralPatterns:
    """The procedural patterns of the project, or a ConfigError naming the file and key."""
    path = Path(root) / PROCEDURAL_FILE
    if not path.is_file():
        raise ConfigError(PROCEDURAL_FILE, None, "file not found (filters.procedural: true reads its patterns there)")
    return validate(ProceduralPatterns, load_yaml(path, root), PROCEDURAL_FILE)


@dataclass
class QualityReport:
    """What the filters did, for meta_view.json (`quality`) and the view asset's metadata.
    `near_pairs`: the doc ids of every near-duplicate pair found, to count those the split would
    put on two sides (`pairs_across`: 0 by construction, checked all the same)."""

    procedural: dict[str, Any] | None = None
    language: dict[str, Any] | None = None
    near_duplicates: dict[str, Any] | None = None
    near_pairs: list[tuple[str, str]] = field(default_factory=list)

    def meta(self) -> dict[str, Any]:
        parts = {"procedural": self.procedural, "language": self.language, "near_duplicates": self.near_duplicates}
        return {name: part for name, part in parts.items() if part is not None}


# ---------------------------------------------------------------- procedural text + language
def clean(
    pool: pd.DataFrame, filters: FilterConfig, patterns: dict[str, list[str]] | None, excluded: Counter
) -> tuple[pd.DataFrame, QualityReport]:
    """filters.procedural then filters.languages on a labelled pool (either off: nothing done)."""
    report = QualityReport()
    if filters.procedural:
        if patterns is None:
            raise ValueError("filters.procedural: the parameters hold no patterns (resolve them with resolve_profile)")
        pool, report.procedural = _procedural(pool, ProceduralPatterns(**patterns), excluded)
    if filters.languages is not None:
        pool, report.language = _languages(pool, filters.languages, excluded)
    return pool, report


@lru_cache(maxsize=8)
def _compiled(stage_directions: tuple[str, ...], formulas: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    stage = re.compile(r"\(\s*(?:" + "|".join(f"(?:{p})" for p in stage_directions) + r")[^()]*\)", re.IGNORECASE)
    formula = re.compile("(?:" + "|".join(f"(?:{p})" for p in formulas) + ")", re.IGNORECASE)
    return stage, formula


def strip_stage_directions(text: str, stage: re.Pattern[str]) -> tuple[str, int]:
    """(the text without its stage directions, how many there were). Only the spaces the removal
    leaves doubled are collapsed: the text is otherwise as parsed (no-break spaces kept)."""
    stripped, n = stage.subn("", text)
    if n:
        stripped = re.sub(" {2,}", " ", stripped).strip(" ")
    return stripped, n


def is_procedural(text: str, formula: re.Pattern[str]) -> bool:
    """True when the text has no word, or every sentence of it is a formula."""
    for sentence in _SENTENCE_END.split(text.strip()):
        sentence = sentence.strip().rstrip(".!?… ").lstrip(".-–— ")
        if sentence and _WORD.search(sentence) and not formula.fullmatch(sentence):
            return False
    return True


def _procedural(pool: pd.DataFrame, patterns: ProceduralPatterns, excluded: Counter) -> tuple[pd.DataFrame, dict[str, Any]]:
    import numpy as np

    started = time.perf_counter()
    stage, formula = _compiled(tuple(patterns.stage_directions), tuple(patterns.formulas))
    texts = pool["text"].tolist()
    stripped, counts = zip(*(strip_stage_directions(t, stage) for t in texts)) if texts else ((), ())
    changed = np.fromiter((n > 0 for n in counts), dtype=bool, count=len(texts))
    drop = np.fromiter((is_procedural(t, formula) for t in stripped), dtype=bool, count=len(texts))
    if changed.any():
        pool = pool.copy()
        pool["text"] = list(stripped)
        # n_tokens as the parser counts them (core/tei/reader.count_tokens: spaces + 1)
        pool.loc[changed, "n_tokens"] = [t.count(" ") + 1 if t else 0 for t, c in zip(stripped, changed) if c]
    if drop.any():
        _exclude(excluded, "procedural", pool[drop])
        pool = pool[~drop]
    return pool, {
        "patterns": PROCEDURAL_FILE,
        "patterns_sha256": _fingerprint(patterns.model_dump()),
        "documents_stripped": int(changed.sum()),
        "stage_directions_stripped": int(sum(counts)),
        "documents_dropped": int(drop.sum()),
        "documents_dropped_after_stripping": int((drop & changed).sum()),
        "seconds": round(time.perf_counter() - started, 3),
    }


@lru_cache(maxsize=4)
def _identifier(candidates: tuple[str, ...]) -> Any:
    """py3langid's model (in its wheel), restricted to `candidates`; loaded once per process."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    try:
        identifier.set_languages(list(candidates))
    except ValueError as exc:
        raise ValueError(f"filters.languages.candidates: {exc} (py3langid knows {sorted(identifier.labels)})") from None
    return identifier


def detect_languages(texts: list[str], config: LanguageFilter) -> list[str]:
    """Each text's language among `config.candidates`, or "und" when it has fewer than
    `min_tokens` words or its most likely language is below `min_probability`."""
    identifier = _identifier(tuple(config.candidates))
    out = []
    for text in texts:
        if text.count(" ") + 1 < config.min_tokens:
            out.append(UNDETERMINED)
            continue
        language, probability = identifier.classify(text)
        out.append(language if probability >= config.min_probability else UNDETERMINED)
    return out


def _languages(pool: pd.DataFrame, config: LanguageFilter, excluded: Counter) -> tuple[pd.DataFrame, dict[str, Any]]:
    import numpy as np
    import py3langid

    started = time.perf_counter()
    detected = detect_languages(pool["text"].tolist(), config)
    foreign = np.array([lang not in config.keep and lang != UNDETERMINED for lang in detected], dtype=bool)
    if foreign.any():
        _exclude(excluded, "language", pool[foreign])
        pool = pool[~foreign]
    return pool, {
        "detector": f"py3langid {getattr(py3langid, '__version__', '')}".strip(),
        **config.model_dump(),
        "detected": dict(Counter(detected).most_common()),
        "documents_dropped": int(foreign.sum()),
        "seconds": round(time.perf_counter() - started, 3),
    }


# ---------------------------------------------------------------- near duplicates
def shingles(text: str, size: int) -> set[bytes]:
    """The word `size`-grams of the text's dedup normalisation (a shorter text: its words as one)."""
    words = normalize_for_dedup(text).split()
    if len(words) <= size:
        return {b" ".join(words)} if words else set()
    return {b" ".join(words[i : i + size]) for i in range(len(words) - size + 1)}


def jaccard(a: set[bytes], b: set[bytes]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def lsh_bands(threshold: float, num_perm: int, recall: float = LSH_RECALL) -> tuple[int, int]:
    """(bands, rows) of the LSH index: the most rows per band (fewest false candidates) with which
    a pair of Jaccard `threshold` shares a band with probability >= `recall`, 1 - (1 - t^r)^b.
    Not datasketch's default, which balances false positives against false negatives and so
    misses 69% of the pairs at 0.9 (threshold 0.9, 128 permutations): candidates are checked on
    the exact sets here, so a false positive costs a set intersection, a false negative a leak."""
    for rows in range(num_perm, 0, -1):
        bands = num_perm // rows
        if 1 - (1 - threshold**rows) ** bands >= recall:
            return bands, rows
    return num_perm, 1


def near_duplicate_pairs(texts: list[str], config: NearDuplicateFilter) -> list[tuple[int, int]]:
    """(i, j), i < j, of the texts whose shingle sets have Jaccard >= threshold: candidates from
    MinHash LSH (seeded; `lsh_bands`), each then checked on the exact sets (no false positive; a
    pair at the threshold is missed with probability < 1 - LSH_RECALL, one above it less often)."""
    from datasketch import MinHash, MinHashLSH

    sets = [shingles(t, config.shingle) for t in texts]
    present = [i for i, s in enumerate(sets) if s]
    hashes = MinHash.bulk([list(sets[i]) for i in present], num_perm=config.num_perm, seed=MINHASH_SEED)
    lsh = MinHashLSH(num_perm=config.num_perm, params=lsh_bands(config.threshold, config.num_perm))
    pairs = []
    for i, mh in zip(present, hashes):
        for j in lsh.query(mh):  # the texts before i that share a band with it
            if jaccard(sets[i], sets[j]) >= config.threshold:
                pairs.append((j, i))
        lsh.insert(i, mh, check_duplication=False)
    return sorted(pairs)


def drop_near_duplicates(pool: pd.DataFrame, config: NearDuplicateFilter | None, excluded: Counter, report: QualityReport) -> pd.DataFrame:
    """Near-duplicate clusters (pairs joined transitively) as one text: the first document of a
    cluster whose labels agree kept, every document of one whose labels disagree dropped."""
    import numpy as np
    import pandas as pd

    if config is None:
        return pool
    started = time.perf_counter()
    pairs = near_duplicate_pairs(pool["text"].tolist(), config)
    parent = list(range(len(pool)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in pairs:
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)  # the root is the cluster's first document
    roots = np.array([root(i) for i in range(len(pool))])
    labels = pool["label"].to_numpy(dtype=object)
    clusters = pd.Series(labels).groupby(roots)
    sizes, n_labels = clusters.size(), clusters.nunique()
    in_cluster = pd.Series(roots).map(sizes).to_numpy() > 1
    conflicting = in_cluster & (pd.Series(roots).map(n_labels).to_numpy() > 1)
    repeated = in_cluster & ~conflicting & (roots != np.arange(len(pool)))
    _exclude(excluded, "near_duplicate_conflicting", pool[conflicting])
    _exclude(excluded, "near_duplicate", pool[repeated])
    ids = pool["doc_id"].astype(str).to_numpy()
    report.near_pairs = [(ids[i], ids[j]) for i, j in pairs]
    multi = sizes[sizes > 1]
    report.near_duplicates = {
        **config.model_dump(),
        "minhash_seed": MINHASH_SEED,
        "lsh_bands_rows": list(lsh_bands(config.threshold, config.num_perm)),
        "lsh_recall_at_threshold": LSH_RECALL,
        "pairs": len(pairs),
        "clusters": int(len(multi)),
        "largest_cluster": int(multi.max()) if len(multi) else 0,
        "documents_dropped": int(repeated.sum() + conflicting.sum()),
        "conflicting_dropped": int(conflicting.sum()),
        "seconds": round(time.perf_counter() - started, 3),
    }
    return pool[~(conflicting | repeated)]


def pairs_across(pairs: list[tuple[str, str]], *sides: pd.DataFrame | None) -> int:
    """Near-duplicate pairs whose two documents sit in two different sides of the split (train,
    job, valid): the leakage this filter exists to prevent."""
    side: dict[str, int] = {}
    for k, df in enumerate(s for s in sides if s is not None):
        side.update(dict.fromkeys(df["doc_id"].astype(str).tolist(), k))
    return sum(1 for a, b in pairs if a in side and b in side and side[a] != side[b])


def _exclude(excluded: Counter, reason: str, rows: pd.DataFrame) -> None:
    """Count `rows` under `reason`: through `labels.Exclusions.add` (by group too) where the
    counter is one, else as a plain count."""
    if rows.empty:
        return
    if hasattr(excluded, "add"):
        excluded.add(reason, rows)
    else:
        excluded[reason] += len(rows)


def _fingerprint(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]
