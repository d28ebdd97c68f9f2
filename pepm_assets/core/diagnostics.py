"""Label-validity diagnostics: is the label of a view what a classifier learns, or something that
goes with it? Plain Python (no Dagster); every evaluation report carries them, and
`pepm report label-validity` (core/label_validity.py) adds scores with names masked.

A classifier trained to tell "left" from "right" learns whatever tells the two classes apart in
the texts. When the label goes with other metadata, it may learn that instead: on MPT (2013) the
left/right label is almost the deputy's vote on the bill and the government/opposition role (the
top terms are "avis défavorable", "votre amendement"); in AN amendements, 39 % of the exposés name
the group that files them. Three diagnostics, computed on the view's labelled documents (train,
valid and job of the prepared split, each once), say so:

- **associations**: Cramér's V (bias-corrected, Bergsma 2013) and the normalised mutual
  information (arithmetic mean of the entropies, scikit-learn's default) between the label and
  every other categorical metadata column of the documents (the dialect's, e.g. MPT's `vote`; the
  corpus; year; and `majority`, government or opposition, derived from the group and the date with
  the table of configs/common/label_validity.yml), strongest first. A column at or above
  `association_warning` (0.5) is a WARNING that says what the classifier may learn instead.
  Columns the label is made from (`group`, `wing`, `category`, `cluster`, or the column of a
  `meta:` view) are listed as "label source", not as confounds: their association is the label
  map itself. `speaker` is treated apart: labels are given per speaker (their group), so the label
  is a function of the speaker by construction (V near 1 means nothing more); what matters is
  whether a speaker can be in train and job, which only a split not grouped by speaker allows (a
  WARNING then, with the share of job documents whose speaker is in train). Ids, texts, counts and
  columns with more than `max_levels` values are not tested (listed with the reason).
- **names**: the share of texts that name a party or group (the label map's group keys and the
  names of label_validity.yml, matched by the rules written there), overall, per label, and per
  label the share naming a group of its own side; a WARNING at or above `name_share_warning` (10 %).
- **terms**: the top terms per class (the model's own for linear models; else log-odds with an
  informative Dirichlet prior on the train texts, Monroe, Colaresi & Quinn 2008) flagged when they
  hold a procedural word (`procedural_terms`) or a name (group, party or speaker); a WARNING when
  the flagged share reaches `flagged_terms_warning` (30 %).

The view's diagnostics are cached in reports/<dataset>/<view>/diagnostics.json, keyed by the
split's version and the config's fingerprint (computed once per split: beside the fit of the first
model that ranks its own terms, `view_diagnostics_ahead`, else by the first evaluation);
each evaluation writes its own diagnostics.json (the view's, plus its model's top terms) and puts
the warnings at the top of classification_report.txt, in meta_eval.json and in Dagster.

Names are matched with RE2 (pyarrow.compute, linear time): the same patterns find names for the
diagnostics and replace them for `filters.mask_names` (core/prepare.py), so what the diagnostics
count is what masking removes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from .atomic import write_json, write_text
from .config import ConfigError, ResolvedParams, Strict, did_you_mean, load_yaml, validate
from .paths import ProjectPaths

if TYPE_CHECKING:  # annotations only; the functions that compute import them (CLI start-up, docs/internals.md)
    import numpy as np
    import pandas as pd

    from .side_worker import Pending

CONFIG_FILE = "configs/common/label_validity.yml"
CODE = "diagnostics-1"  # in the cache key: a change of what is computed recomputes every view's
FILE = "diagnostics.json"
GROUP_PLACEHOLDER = "NOM_GROUPE"
PERSON_PLACEHOLDER = "NOM_PERSONNE"
LABEL_SOURCES = ("group", "wing", "category", "cluster")  # what a group-based label is made from
SPEAKER = "speaker"
MAJORITY = "majority"
# never tested: ids, the text and its key, counts, a second spelling of the speaker
NOT_TESTED = {"_set", "doc_id", "label", "text", "text_key", "exclusion", "source_line", "n_tokens", "xml_id", "number", "speaker_name"}
ARTICLES = {"le", "la", "les", "l'", "l’"}
BOUNDARY = r"[^\p{L}\p{N}_]"  # RE2: anything but a letter, digit or underscore
EXPLAIN = {  # what a classifier may learn instead of the label, by column
    "vote": "the speaker's vote on the bill (for or against)",
    MAJORITY: "government vs opposition: the role in the debate (the majority defends the text, the opposition amends it)",
    "corpus_id": "the corpus a document comes from (its genre, period, transcription)",
    "year": "the year (the period and its topics)",
    "legislature": "the legislature (the period, its majority and topics)",
    "date": "the sitting date (the topics of the day)",
    "sitting": "the sitting (the topics of the day)",
    "source_file": "the source file (its debate or bill)",
    "section": "the debate or bill (its topic)",
    "debat": "the debate (its topic)",
    "subject": "the subject (its topic)",
    "gender": "the speaker's gender",
    "role": "the speaker's role",
    "interventiontype": "the kind of turn (speech or interruption)",
}


class DiagnosticsError(ValueError):
    """The diagnostics cannot be computed (no prepared split, a bad config)."""


# ---------------------------------------------------------------- configuration
class MajorityPeriod(Strict):
    """The groups of the governing majority from `start` to `end` (both inclusive; no end: today)."""

    start: date
    end: date | None = None
    groups: list[str] = Field(min_length=1)
    note: str = ""


class LabelValidityConfig(Strict):
    """configs/common/label_validity.yml (every key optional; its comments explain each)."""

    association_warning: float = Field(0.5, gt=0, le=1)
    name_share_warning: float = Field(0.10, gt=0, le=1)
    flagged_terms_warning: float = Field(0.30, gt=0, le=1)
    top_terms: int = Field(25, ge=1)
    max_levels: int = Field(50, ge=2)
    group_names: dict[str, list[str]] = {}
    procedural_terms: list[str] = []
    majority: list[MajorityPeriod] = []

    @property
    def fingerprint(self) -> str:
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def load_config(root: Path) -> tuple[LabelValidityConfig, bool]:
    """(config, whether the file exists): a project without the file gets the defaults (no extra
    names, no procedural terms, no majority table), which its reports say."""
    path = Path(root) / CONFIG_FILE
    if not path.is_file():
        return LabelValidityConfig(), False
    return validate(LabelValidityConfig, load_yaml(path, root), CONFIG_FILE), True


def group_names(config: LabelValidityConfig, label_map: Any) -> dict[str, list[str]]:
    """Every group of the label map (its `groups` and `corpus_groups`) -> its names in texts: the
    group key first, then the config's names for it; a config key that is no group of the map is
    an error naming it (a typo would silently mask nothing)."""
    known = dict.fromkeys([*label_map.groups, *(g for table in label_map.corpus_groups.values() for g in table)])
    for key in config.group_names:
        if key not in known:
            raise ConfigError(CONFIG_FILE, f"group_names.{key}", f"not a group of the label map{did_you_mean(key, known)}")
    return {g: list(dict.fromkeys([g, *config.group_names.get(g, [])])) for g in known}


# ---------------------------------------------------------------- association measures
def contingency(x: Iterable[Any], y: Iterable[Any]) -> tuple[np.ndarray, list[str], list[str]]:
    """(the table of counts of (x, y) pairs, the x values of its rows, the y values of its columns),
    values sorted (pd.crosstab's, without its cost on a dozen columns of 10^4 rows)."""
    import numpy as np
    import pandas as pd

    xc, xs = pd.factorize(_series(x).astype(str), sort=True)
    yc, ys = pd.factorize(_series(y).astype(str), sort=True)
    table = np.bincount(xc * len(ys) + yc, minlength=len(xs) * len(ys)).reshape(len(xs), len(ys)).astype(float)
    return table, [str(v) for v in xs], [str(v) for v in ys]


def _series(values: Iterable[Any]) -> pd.Series:
    import pandas as pd

    return values.reset_index(drop=True) if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)


def cramers_v(table: np.ndarray, corrected: bool = True) -> float:
    """Cramér's V of a contingency table: sqrt(chi² / (n · (min(r, k) - 1))), in [0, 1]. `corrected`:
    Bergsma's (2013) bias correction, which keeps many sparse levels (a column of 40 values against
    a label of 2) from reading as an association; scipy.stats.contingency.association gives the
    uncorrected one. A table with one row or column: 0 (nothing varies with the label)."""
    import numpy as np

    table = np.asarray(table, dtype=float)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    r, k = table.shape
    n = table.sum()
    if r < 2 or k < 2 or n < 2:
        return 0.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    chi2 = float(((table - expected) ** 2 / expected).sum())
    phi2 = chi2 / n
    if not corrected:
        return math.sqrt(min(1.0, phi2 / (min(r, k) - 1)))
    phi2c = max(0.0, phi2 - (k - 1) * (r - 1) / (n - 1))
    rc, kc = r - (r - 1) ** 2 / (n - 1), k - (k - 1) ** 2 / (n - 1)
    denominator = min(kc - 1, rc - 1)
    return math.sqrt(min(1.0, phi2c / denominator)) if denominator > 0 else 0.0


def normalized_mutual_information(table: np.ndarray) -> float:
    """Mutual information over the arithmetic mean of the two entropies (scikit-learn's
    normalized_mutual_info_score default), from a contingency table; 0 when either side is constant."""
    import numpy as np

    table = np.asarray(table, dtype=float)
    n = table.sum()
    if n == 0:
        return 0.0
    p = table / n
    px, py = p.sum(axis=1), p.sum(axis=0)
    nz = p > 0
    mi = float((p[nz] * np.log(p[nz] / np.outer(px, py)[nz])).sum())
    hx = -float((px[px > 0] * np.log(px[px > 0])).sum())
    hy = -float((py[py > 0] * np.log(py[py > 0])).sum())
    if hx == 0 or hy == 0:
        return 0.0
    return max(0.0, min(1.0, mi / ((hx + hy) / 2)))


def strength(v: float) -> str:
    return "strong" if v >= 0.5 else "moderate" if v >= 0.3 else "weak" if v >= 0.1 else "negligible"


# ---------------------------------------------------------------- derived columns
def add_majority(docs: pd.DataFrame, periods: list[MajorityPeriod]) -> pd.DataFrame:
    """docs with a `majority` column: "majority" when the document's group governs on its date,
    "opposition" when another group does, None outside every period (or without group or date)."""
    import numpy as np
    import pandas as pd

    if not periods or "group" not in docs.columns or "date" not in docs.columns:
        return docs
    when = pd.to_datetime(docs["date"].astype(str).str.slice(0, 10), errors="coerce", format="%Y-%m-%d")
    groups = docs["group"].fillna("").astype(str)
    out = pd.Series(None, index=docs.index, dtype=object)
    for period in periods:
        end = pd.Timestamp(period.end) if period.end else pd.Timestamp.max
        inside = when.between(pd.Timestamp(period.start), end) & groups.ne("")
        out[inside] = np.where(groups[inside].isin(period.groups), "majority", "opposition")
    return docs.assign(**{MAJORITY: out})


# ---------------------------------------------------------------- names in texts (RE2)
def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def _escape(ch: str) -> str:
    if ch in "'’":
        return "['’]"
    return "\\" + ch if ch in r"\.^$|?*+()[]{}-&/#" else ch


def _letter(ch: str) -> str:
    """One character, its unaccented form allowed too ("é" also "e", "É" also "E"); case per the caller."""
    base = _strip_accents(ch)
    if base and base != ch:
        return f"[{ch}{base}]"
    return _escape(ch)


def _is_abbreviation(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return bool(letters) and all(c.isupper() for c in letters)


def name_pattern(name: str) -> str:
    """The RE2 pattern of one name (without its word boundaries), by the rules of
    configs/common/label_validity.yml: a name in capitals matches only as written; in other names a
    word with a capital initial needs one in the text (not a leading article), the rest of its
    letters and every lower-case word match in any case; accented letters also match unaccented;
    spaces match any run of white space."""
    if _is_abbreviation(name):
        return "".join(_escape(c) for c in name)
    parts = []
    for i, word in enumerate(name.split()):
        if word[0].isupper() and not (i == 0 and word.lower() in ARTICLES):
            head, rest = _letter(word[0]), word[1:]
            parts.append(head + (f"(?i:{''.join(_letter(c) for c in rest)})" if rest else ""))
        else:
            parts.append(f"(?i:{''.join(_letter(c) for c in word)})")
    return r"\s+".join(parts)


def person_pattern(name: str) -> str:
    """A person's name as written (case kept: "Petit" the deputy, not "petit"), accents optional."""
    return r"\s+".join("".join(_letter(c) for c in word) for word in name.split())


def _arrow(texts: Any) -> Any:
    """Texts as an Arrow string array (a pandas column backed by Arrow: without a copy)."""
    import pandas as pd
    import pyarrow as pa

    if isinstance(texts, (pa.Array, pa.ChunkedArray)):
        return texts
    if isinstance(texts, pd.Series):
        return pa.array(texts.fillna(""), type=pa.string())
    return pa.array(list(texts), type=pa.string())


class NameFinder:
    """Finds and replaces a list of names in texts, whole words only, with RE2 (pyarrow.compute):
    the names are tried longest first, so "LFI-NFP" is one name, not "LFI" and "NFP"."""

    CHUNK = 400  # names per pattern: RE2 has a program size limit

    def __init__(self, names: Iterable[str], person: bool = False) -> None:
        self.names = sorted(set(n for n in names if n.strip()), key=lambda n: (-len(n), n))
        build = person_pattern if person else name_pattern
        self.patterns = ["|".join(build(n) for n in self.names[i : i + self.CHUNK]) for i in range(0, len(self.names), self.CHUNK)]

    def __bool__(self) -> bool:
        return bool(self.names)

    def contains(self, texts: Any) -> np.ndarray:
        """One boolean per text: does it name one of the names?"""
        import numpy as np
        import pyarrow.compute as pc

        array = _arrow(texts)
        found = np.zeros(len(array), dtype=bool)
        for alt in self.patterns:
            hit = pc.match_substring_regex(array, f"(?:^|{BOUNDARY})(?:{alt})(?:$|{BOUNDARY})")
            found |= hit.to_numpy(zero_copy_only=False).astype(bool)
        return found

    def first(self, texts: Any) -> list[str | None]:
        """The first name each text holds (as written in the text), None when it holds none."""
        import pyarrow.compute as pc

        array = _arrow(texts)
        out: list[str | None] = [None] * len(array)
        for alt in self.patterns:
            got = pc.extract_regex(array, f"(?:^|{BOUNDARY})(?P<name>{alt})(?:$|{BOUNDARY})").to_pylist()
            out = [o if o is not None else (g["name"] if g else None) for o, g in zip(out, got)]
        return out

    def mask(self, texts: Any, placeholder: str, arrow: bool = False) -> Any:
        """Each name replaced by `placeholder`. A boundary character is consumed by each match, so
        the replacement runs twice: "LR-UDI" becomes "NOM_GROUPE-NOM_GROUPE". A list of strings, or
        with `arrow` the Arrow array (a view's texts: never all Python strings at once)."""
        import pyarrow.compute as pc

        array = _arrow(texts)
        for alt in self.patterns:
            pattern = f"(^|{BOUNDARY})(?:{alt})($|{BOUNDARY})"
            for _ in range(2):
                array = pc.replace_substring_regex(array, pattern, rf"\1{placeholder}\2")
        return array if arrow else array.to_pylist()


TITLES = ("M.", "Mme", "Monsieur", "Madame", "monsieur", "madame")


def lowercase_words(texts: Any) -> set[str]:
    """The words that `texts` write with a lower-case initial (common words: "fait", "petit")."""
    import pyarrow.compute as pc

    words = pc.unique(pc.list_flatten(pc.split_pattern_regex(_arrow(texts), r"[^\p{L}'’-]+")))
    return {w for w in words.to_pylist() if w and w[0].islower()}


def person_names(docs: pd.DataFrame, common: set[str] | None = None) -> list[str]:
    """The names of the persons who speak in `docs`, as texts write them: the full name and the
    surname ("Christiane Taubira", "Taubira"; "Charles de Courson", "de Courson", "Courson"), from
    `speaker_name` (its part before a comma: "Michel Sapin, ministre du travail"), else the speaker
    id with spaces. Left out: names of one word or lower-case ones ("le président", "Plusieurs
    députés du groupe SRC"), surnames under 3 letters. A surname that `common` (lowercase_words of
    the texts) holds in lower case ("Philippe Fait", "Maud Petit") is kept only in the full name and
    after a title ("M. Fait", "madame Petit"): alone it would mask a sentence-initial "Fait"."""
    column = "speaker_name" if "speaker_name" in docs.columns else SPEAKER
    if column not in docs.columns:
        return []
    raw = docs[column].dropna().astype(str)
    if column == SPEAKER:
        raw = raw.str.replace("_", " ", regex=False)
    names: set[str] = set()
    for full in raw.unique():
        words = full.split(",")[0].split()
        if len(words) < 2 or not words[0][:1].isupper():
            continue
        surname = words[1:]
        if any(w[:1].islower() and w.lower() not in {"de", "du", "des", "d'", "d’", "le", "la"} for w in surname):
            continue  # "Plusieurs députés du groupe SRC", "Un député UMP"
        last = " ".join(surname)
        if not any(w[:1].isupper() for w in surname) or len(last) < 3:
            continue
        names.add(" ".join(words))
        bare = " ".join(w for w in surname if not w[:1].islower())
        for form in {last, bare} if len(bare) >= 4 else {last}:  # "Courson" of "de Courson"
            if common and form.lower() in common:
                names.update(f"{title} {form}" for title in TITLES)
            else:
                names.add(form)
    return sorted(names)


def group_finder(table: Mapping[str, list[str]]) -> NameFinder:
    return NameFinder(n for names in table.values() for n in names)


def mask_texts(texts: Any, groups: Mapping[str, list[str]], persons: list[str], arrow: bool = False) -> Any:
    """`filters.mask_names`: group and party names -> NOM_GROUPE, then persons' names -> NOM_PERSONNE
    (a list of strings, or with `arrow` an Arrow array: `NameFinder.mask`)."""
    out = group_finder(groups).mask(texts, GROUP_PLACEHOLDER, arrow=True)
    finder = NameFinder(persons, person=True)
    out = finder.mask(out, PERSON_PLACEHOLDER, arrow=True) if finder else out
    return out if arrow else out.to_pylist()


def _normal(name: str) -> str:
    return " ".join(_strip_accents(name).casefold().replace("’", "'").split())


def name_shares(texts: pd.Series, labels: pd.Series, table: Mapping[str, list[str]], side: Mapping[str, str | None]) -> dict[str, Any]:
    """The share of texts naming a group or party, overall and per label; per label also the share
    naming a group of its own side and of another side (`side`: group -> its label in the view,
    None outside the view); the names found first in most texts."""
    import numpy as np

    finder = group_finder(table)
    texts = texts.fillna("").astype(str).reset_index(drop=True)
    labels = labels.astype(str).reset_index(drop=True)
    hit = finder.contains(texts)
    firsts = finder.first(texts[hit])
    group_of = {_normal(n): g for g, names in table.items() for n in names}
    spelling = {}  # a normalised name -> the table's spelling of it
    for names in table.values():
        for n in names:
            spelling.setdefault(_normal(n), n)
    counts = Counter(_normal(n) for n in firsts if n)
    by_label: dict[str, Any] = {}
    finders = {}
    for label in sorted(set(side.values()) - {None}):
        finders[label] = group_finder({g: table[g] for g, lab in side.items() if lab == label and g in table})
    for label in sorted(labels.unique()):
        mine = labels.eq(label).to_numpy()
        row: dict[str, Any] = {"n": int(mine.sum()), "share": float(hit[mine].mean()) if mine.any() else 0.0}
        if finders:
            idx = np.flatnonzero(mine & hit)
            own = finders[label].contains(texts.iloc[idx]) if label in finders and len(idx) else np.zeros(len(idx), bool)
            others = [finders[o].contains(texts.iloc[idx]) for o in finders if o != label and len(idx)]
            other = np.logical_or.reduce(others) if others else np.zeros(len(idx), bool)
            row["own_side_share"] = float(own.sum() / mine.sum()) if mine.any() else 0.0
            row["other_side_share"] = float(other.sum() / mine.sum()) if mine.any() else 0.0
        by_label[label] = row
    return {
        "n": len(texts),
        "n_naming": int(hit.sum()),
        "share": float(hit.mean()) if len(texts) else 0.0,
        "by_label": by_label,
        "most_named": [{"name": spelling.get(n, n), "group": group_of.get(n), "texts": c} for n, c in counts.most_common(10)],
    }


# ---------------------------------------------------------------- terms
def log_odds_terms(texts: list[str], labels: list[str], k: int) -> dict[str, list[tuple[str, float]]]:
    """The k terms (words and word pairs, lower case, in ≥ 5 texts) most typical of each class
    against the others: z-scores of the log-odds ratio with an informative Dirichlet prior (the
    counts of all texts; Monroe, Colaresi & Quinn 2008, "Fightin' Words", Political Analysis 16(4))."""
    import numpy as np
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(ngram_range=(1, 2), min_df=5, lowercase=True)
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # no term in 5 texts
        return {}
    vocabulary = np.array(vectorizer.get_feature_names_out())
    y = np.asarray(labels)
    total = np.asarray(counts.sum(axis=0)).ravel().astype(float)
    alpha = total  # informative prior: the counts of the whole set
    a0 = alpha.sum()
    out = {}
    for label in sorted(set(labels)):
        yi = np.asarray(counts[y == label].sum(axis=0)).ravel().astype(float)
        yj = total - yi
        ni, nj = yi.sum(), yj.sum()
        delta = np.log((yi + alpha) / (ni + a0 - yi - alpha)) - np.log((yj + alpha) / (nj + a0 - yj - alpha))
        z = delta / np.sqrt(1 / (yi + alpha) + 1 / (yj + alpha))
        top = np.argsort(-z)[:k]
        out[label] = [(str(vocabulary[i]), round(float(z[i]), 3)) for i in top]
    return out


class TermJudge:
    """Flags a term as `procedural` (a word of procedural_terms) or `name` (a group or party name,
    a speaker's surname, a masking placeholder). Character n-gram features ("char_wb:...") are not
    words and are left out of the judgement."""

    def __init__(self, procedural: Iterable[str], groups: Mapping[str, list[str]], persons: Iterable[str], texts: Any = None) -> None:
        """`texts`: a function returning the texts the terms come from; a word that is a person's
        name ("Pierre", "Petit") is not a name where those texts write it in lower case more often
        than capitalised (the common word: "petit"); without texts, always a name."""
        self.procedural = {_normal(w) for w in procedural}
        names = [n for ns in groups.values() for n in ns]
        self.name_words = {_normal(n) for n in names if len(n.split()) == 1} | {_normal(GROUP_PLACEHOLDER), _normal(PERSON_PLACEHOLDER)}
        self.person_words: dict[str, str] = {}
        for person in persons:
            for part in re.split(r"[\s'’-]+", person):
                if len(part) >= 4 and part[:1].isupper() and part not in TITLES:
                    self.person_words.setdefault(_normal(part), part)
        self.phrases = [_normal(n) for n in names if len(n.split()) > 1]
        self._texts, self._text, self._capitalised = texts, None, {}

    def _is_person(self, word: str) -> bool:
        if word not in self.person_words:
            return False
        if self._texts is None:
            return True
        if word not in self._capitalised:
            if self._text is None:
                got = self._texts()
                self._text = got if isinstance(got, str) else "\n".join(map(str, got))
            name = self.person_words[word]
            # substrings, not words: "petit" counts "petite" too, which only makes a common word likelier
            self._capitalised[word] = self._text.count(name) >= self._text.count(name.lower())
        return self._capitalised[word]

    def flags(self, term: str) -> list[str] | None:
        """None for a feature that is not a word n-gram; else its flags (possibly none)."""
        if ":" in term:
            return None
        words = _normal(term).split()
        out = []
        if any(w in self.procedural for w in words):
            out.append("procedural")
        phrase = " ".join(words)
        if any(w in self.name_words or self._is_person(w) for w in words) or (
            len(words) > 1 and any(f" {phrase} " in f" {p} " for p in self.phrases)
        ):
            out.append("name")
        return out

    def judge(self, terms: Mapping[str, list[Any]], k: int) -> dict[str, Any]:
        """{by_label: [{term, weight, flags}], n_terms, n_flagged, flagged_share} of the first k per class."""
        by_label: dict[str, list[dict[str, Any]]] = {}
        n = flagged = 0
        for label, items in terms.items():
            rows = []
            for term, weight in list(items)[:k]:
                flags = self.flags(str(term))
                if flags is None:
                    continue
                rows.append({"term": str(term), "weight": weight, "flags": flags})
                n += 1
                flagged += bool(flags)
            by_label[str(label)] = rows
        return {"by_label": by_label, "n_terms": n, "n_flagged": flagged, "flagged_share": flagged / n if n else 0.0}


# ---------------------------------------------------------------- the view's diagnostics
def label_sources(view_field: str) -> set[str]:
    """The columns a label is made from: the group (and its category, wing, cluster, which some
    dialects carry as columns, e.g. MPT's `wing`), or the column of a `meta:<column>` view."""
    if view_field.startswith("meta:"):
        return {view_field.split(":", 1)[1]}
    return set(LABEL_SOURCES)


def _values(series: pd.Series) -> pd.Series:
    """The column as text, None where it is missing or blank."""
    text = series.astype(str).str.strip()
    return text.astype(object).where(series.notna() & text.ne(""), None)


def associations(
    docs: pd.DataFrame, view_field: str, config: LabelValidityConfig, meaning: str, group_by: str | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(one row per column, strongest first then the columns not tested; the speaker row)."""
    import numpy as np
    import pandas as pd

    sources = label_sources(view_field)
    rows, skipped, speaker = [], [], None
    labels = docs["label"].astype(str)
    for column in docs.columns:
        if column in NOT_TESTED:
            continue
        if column == SPEAKER:
            speaker = _speaker_row(docs, _values(docs[column]), group_by)
            continue
        codes, uniques = pd.factorize(docs[column])  # missing: -1
        blank = [i for i, u in enumerate(uniques) if str(u).strip() == ""]
        present = pd.Series((codes >= 0) & ~np.isin(codes, blank), index=docs.index)
        levels = len(uniques) - len(blank)
        row: dict[str, Any] = {"column": column, "n": int(present.sum()), "n_levels": int(levels)}
        if levels < 2:
            skipped.append({**row, "kind": "not tested", "reason": "one value" if levels else "no value"})
            continue
        if levels > config.max_levels:
            skipped.append({**row, "kind": "not tested", "reason": f"{levels} values (more than max_levels {config.max_levels})"})
            continue
        table, row_names, col_names = contingency(labels[present], docs.loc[present, column].astype(str).str.strip())
        v = cramers_v(table)
        row.update(
            cramers_v=round(v, 4),
            cramers_v_uncorrected=round(cramers_v(table, corrected=False), 4),
            nmi=round(normalized_mutual_information(table), 4),
            strength=strength(v),
            kind="label source" if column in sources else "confound",
            table={lab: _top_cells(counts, col_names) for lab, counts in zip(row_names, table)},
        )
        if column in sources:
            row["note"] = "the label is made from this column (the label map): its association is by construction, not a confound"
        elif v >= config.association_warning:
            row["message"] = _confound_message(column, v, row["table"], meaning)
        rows.append(row)
    rows.sort(key=lambda r: (r["kind"] != "confound", -r["cramers_v"]))
    return rows + skipped, speaker


def _top_cells(counts: np.ndarray, names: list[str], k: int = 6) -> dict[str, int]:
    """The k most frequent values of one label's row, most frequent first."""
    import numpy as np

    order = np.argsort(-counts, kind="stable")[:k]
    return {names[i]: int(counts[i]) for i in order if counts[i]}


def _confound_message(column: str, v: float, table: dict[str, dict[str, int]], meaning: str) -> str:
    what = EXPLAIN.get(column, f"the {column} column")
    cells = "; ".join(f"{label}: " + ", ".join(f"{k} {c}" for k, c in list(values.items())[:3]) for label, values in table.items())
    return f"the label goes with {column!r} (Cramér's V {v:.2f}, {strength(v)}; {cells}): a classifier may learn {what}, not {meaning}"


def _speaker_row(docs: pd.DataFrame, speakers: pd.Series, group_by: str | None) -> dict[str, Any]:
    """Labels per speaker: how many speakers have one label only (by construction, all of them when
    labels come from the speaker's group), and, without a split grouped by speaker, the share of job
    documents whose speaker is also in train."""
    present = speakers.notna()
    per = docs.loc[present].assign(_s=speakers[present]).groupby("_s")["label"].nunique()
    table, _, _ = contingency(docs.loc[present, "label"].astype(str), speakers[present])
    row: dict[str, Any] = {
        "column": SPEAKER,
        "kind": "speaker",
        "n": int(present.sum()),
        "n_levels": int(len(per)),
        "cramers_v": round(cramers_v(table), 4),
        "speakers_with_one_label": round(float((per == 1).mean()), 4) if len(per) else 0.0,
        "grouped_split": group_by == SPEAKER,
        "note": "labels are given per speaker (their group), so the label is a function of who speaks by construction; "
        + (
            "the split is grouped by speaker, so no speaker is in both train and job and recognising a speaker cannot raise the job score"
            if group_by == SPEAKER
            else "the split is not grouped by speaker"
        ),
    }
    if group_by != SPEAKER and "_set" in docs.columns:
        train_speakers = set(speakers[present & docs["_set"].eq("train")])
        job = present & docs["_set"].eq("job")
        shared = float(speakers[job].isin(train_speakers).mean()) if job.any() else 0.0
        row["job_docs_with_speaker_in_train"] = round(shared, 4)
        if shared > 0:
            row["message"] = (
                f"the split is not grouped by speaker: {shared:.0%} of the job documents have their speaker in train, and labels "
                "are given per speaker: a classifier may recognise who speaks, not what they say (use split.group_by: speaker)"
            )
    return row


def _meaning(view_field: str) -> str:
    return f"the {view_field.split(':', 1)[1]}" if view_field.startswith("meta:") else "ideology"


def diagnose(
    docs: pd.DataFrame,
    label_map: Any,
    view: str,
    config: LabelValidityConfig,
    group_by: str | None = SPEAKER,
    terms: Mapping[str, list[Any]] | None = None,
    terms_source: str = "",
    persons: list[str] | None = None,
) -> dict[str, Any]:
    """The diagnostics of labelled documents (columns `label`, `text`, metadata; `_set`: train / job,
    when known) as data: associations, names, terms (`terms`: label -> [(term, weight)], judged
    when given), and the warnings, strongest first."""
    spec = label_map.views[view]
    names = group_names(config, label_map)
    meaning = _meaning(spec.field)
    docs = add_majority(docs, config.majority)
    rows, speaker = associations(docs, spec.field, config, meaning, group_by)
    side = {} if spec.field.startswith("meta:") else {g: _group_label(label_map, view, g) for g in names}
    shares = name_shares(docs["text"], docs["label"], names, side)
    persons = person_names(docs) if persons is None else persons
    judged = (
        TermJudge(config.procedural_terms, names, persons, texts=lambda: docs["text"]).judge(terms, config.top_terms) if terms else None
    )
    out: dict[str, Any] = {
        "n_docs": len(docs),
        "labels": {str(k): int(v) for k, v in docs["label"].value_counts().sort_index().items()},
        "meaning": meaning,
        "associations": rows,
        "speaker": speaker,
        "names": shares,
        **({"terms": {"source": terms_source, **judged}} if judged else {}),
    }
    out["warnings"] = warnings(out, config)
    return out


def _group_label(label_map: Any, view: str, group: str) -> str | None:
    from .labels import actor_category, view_label

    category, cluster, _ = actor_category(label_map, "", "", group, "member")
    return view_label(label_map, view, category, cluster)[0] if category else None


def warnings(diag: Mapping[str, Any], config: LabelValidityConfig) -> list[dict[str, Any]]:
    """The WARNINGs of a diagnostics dict: confounded columns (strongest first), the speaker when
    the split lets one be on both sides, names in texts, flagged top terms."""
    out = [
        {"kind": "association", "subject": r["column"], "value": r["cramers_v"], "message": r["message"]}
        for r in diag["associations"]
        if r.get("message")
    ]
    speaker = diag.get("speaker") or {}
    if speaker.get("message"):
        out.append(
            {"kind": "speaker", "subject": SPEAKER, "value": speaker["job_docs_with_speaker_in_train"], "message": speaker["message"]}
        )
    names = diag["names"]
    if names["share"] >= config.name_share_warning:
        parts = []
        for label, row in names["by_label"].items():
            own = f", own side {row['own_side_share']:.0%}" if "own_side_share" in row else ""
            parts.append(f"{label} {row['share']:.0%}{own}")
        named = ", ".join(f"{m['name']} ({m['texts']})" for m in names["most_named"][:4])
        out.append(
            {
                "kind": "names",
                "subject": "group names",
                "value": round(names["share"], 4),
                "message": f"{names['share']:.0%} of the texts name a party or group ({'; '.join(parts)}; most named: {named}): "
                "a classifier may learn who signs or is named, not what is argued; compare with filters.mask_names "
                "(`pepm report label-validity`)",
            }
        )
    terms = diag.get("terms")
    if terms and terms["n_terms"] and terms["flagged_share"] >= config.flagged_terms_warning:
        examples = "; ".join(
            f"{label}: " + ", ".join(repr(t["term"]) for t in [t for t in rows if t["flags"]][:6])
            for label, rows in terms["by_label"].items()
            if any(t["flags"] for t in rows)
        )
        out.append(
            {
                "kind": "terms",
                "subject": terms["source"],
                "value": round(terms["flagged_share"], 4),
                "message": f"{terms['n_flagged']} of the {terms['n_terms']} top terms ({terms['source']}) are procedural words or names "
                f"({examples}): the classifier tells the sides apart by their role in the debate or by names, not by positions",
            }
        )
    return out


# ---------------------------------------------------------------- a prepared view, cached
def view_documents(params: ResolvedParams, root: Path) -> pd.DataFrame:
    """The view's labelled documents (train, valid, job, each once; `_set` says which), with every
    metadata column of their parsed corpora joined by doc_id (the split's TSVs keep only some)."""
    import pandas as pd
    import pyarrow.parquet as pq

    from .prepare import read_tsv_file

    paths = ProjectPaths(root)
    view_dir = paths.view_dir(params.dataset_id, params.view)
    parts = []
    for name in ("train", "valid", "job"):
        path = view_dir / f"{name}.tsv"
        if path.is_file():
            parts.append(read_tsv_file(path).assign(_set=name))
    if not parts:
        raise DiagnosticsError(f"{params.dataset_id}/{params.view}: no prepared split (run `pepm prepare -p {params.profile}`)")
    docs = pd.concat(parts, ignore_index=True).drop_duplicates("doc_id")  # over-sampling repeats train rows
    metadata = []
    for cid in params.dataset.corpus_ids:
        path = corpora_paths(root).corpus_dir(cid) / "docs.parquet"
        if path.is_file():
            names = [c for c in pq.read_schema(path).names if c not in docs.columns or c == "doc_id"]
            metadata.append(pq.read_table(path, columns=[c for c in names if c != "text"]).to_pandas())
    if metadata:
        docs = docs.merge(pd.concat(metadata, ignore_index=True).drop_duplicates("doc_id"), on="doc_id", how="left")
    return docs.reset_index(drop=True)


def corpora_paths(root: Path) -> ProjectPaths:
    """Where the parsed corpora are: the project's. A sweep run's folder (superior/<exp>/runs/<id>/)
    has its own data/ but reads the project's corpora; its `configs` links to the project's."""
    return ProjectPaths(Path(root, "configs").resolve().parent)


def cache_path(params: ResolvedParams, root: Path) -> Path:
    return ProjectPaths(root).reports / params.dataset_id / params.view / FILE


def view_diagnostics(
    params: ResolvedParams, root: Path, with_terms: bool = False, config: tuple[LabelValidityConfig, bool] | None = None
) -> dict[str, Any]:
    """The diagnostics of the prepared view (associations, names; with `with_terms`, also log-odds
    top terms of its train texts), from reports/<dataset>/<view>/diagnostics.json when that file
    was computed for the split on disk and this config, else computed and written there. Waits for
    a computation of that file that `view_diagnostics_ahead` started."""
    ahead = _AHEAD.pop(cache_path(params, root), None)
    if isinstance(ahead, threading.Thread):
        ahead.join()
    elif ahead is not None:
        ahead.result()  # the side worker's call
    return _view_diagnostics(params, root, with_terms, config)


_AHEAD: dict[Path, threading.Thread | Pending] = {}  # cache file -> the thread (or side worker call) computing it


AHEAD_IN_WORKER_MAX_DOCS = 20_000  # train documents; above, the worker's copy of the view would add to the fit's peak memory


def view_diagnostics_ahead(params: ResolvedParams, root: Path, n_train: int) -> None:
    """Start `view_diagnostics` (without terms) for the evaluation to find in its cache. Training
    calls it as a fit that ranks its own terms starts, on `n_train` documents. Under `pepm run`,
    for a small view, in its side worker (core/side_worker.py): on the other core for the whole
    fit (MPT 1x: a thread shared the GIL with the fit's 0.8 s). Else in a thread, which keeps one
    copy of the view in memory (MPT x40 through the worker: peak memory of the command 2.7 -> 3.5
    GB): scikit-learn's solvers release the GIL, so it runs on another core meanwhile (MPT x10:
    1.3 s of the evaluation, during LinearSVC's 3.5 s). An error is left for the evaluation's own
    call to raise."""
    from . import side_worker

    target = cache_path(params, root)
    running = _AHEAD.get(target)
    if isinstance(running, threading.Thread) and running.is_alive():
        return
    if side_worker.running() and n_train <= AHEAD_IN_WORKER_MAX_DOCS:
        _AHEAD[target] = side_worker.call(_ahead, params, root)
        return
    _AHEAD[target] = thread = threading.Thread(target=_ahead, args=(params, root), name=f"pepm diagnostics {target.parent}")
    thread.start()


def _ahead(params: ResolvedParams, root: Path) -> None:
    with contextlib.suppress(Exception):
        _view_diagnostics(params, root)


def _view_diagnostics(
    params: ResolvedParams, root: Path, with_terms: bool = False, config: tuple[LabelValidityConfig, bool] | None = None
) -> dict[str, Any]:
    from . import labels, lineage

    paths = ProjectPaths(root)
    stamp = lineage.read_stamp(paths.view_dir(params.dataset_id, params.view) / "meta_view.json")
    if stamp is None:
        raise DiagnosticsError(f"{params.dataset_id}/{params.view}: no prepared split (run `pepm prepare -p {params.profile}`)")
    config, present = config or load_config(root)
    key = {"code": CODE, "split_version": stamp["version"], "config": config.fingerprint}
    target = cache_path(params, root)
    cached = _read(target)
    if cached and cached.get("key") == key and (not with_terms or "terms" in cached):
        return cached
    label_map = labels.load_label_map(root / "configs" / "label_maps" / params.label_map, root)
    docs = view_documents(params, root)
    terms = None
    if with_terms:
        train = docs[docs["_set"].eq("train")]
        terms = log_odds_terms(train["text"].tolist(), train["label"].astype(str).tolist(), config.top_terms)
    persons = _all_persons(params, root)
    diag = diagnose(docs, label_map, params.view, config, params.split.group_by, terms, "log-odds of the train texts", persons)
    result = {
        "diagnostics": "label validity",
        "key": key,
        "dataset_id": params.dataset_id,
        "view": params.view,
        "split": {"version": stamp["version"], "group_by": params.split.group_by, "mask_names": bool(params.filters.mask_names)},
        "config": {"file": CONFIG_FILE if present else f"{CONFIG_FILE} (missing: defaults)", **_thresholds(config)},
        **diag,
        "persons": persons,  # the speakers' names a top term is checked against
    }
    write_json(target, result)
    return result


def masking_persons(docs: pd.DataFrame) -> list[str]:
    """The persons' names mask_names replaces: those of every speaker of `docs` (all the documents
    of the dataset's corpora, ministers and chairs too), a surname that is also a common word of
    their texts only in its full or titled forms."""
    return person_names(docs, lowercase_words(docs["text"].fillna("")))


def _all_persons(params: ResolvedParams, root: Path) -> list[str]:
    """Persons' names of every document of the dataset's corpora (ministers and chairs too, not only
    the labelled speakers), to judge top terms by."""
    import pandas as pd
    import pyarrow.parquet as pq

    frames = []
    for cid in params.dataset.corpus_ids:
        path = corpora_paths(root).corpus_dir(cid) / "docs.parquet"
        if path.is_file():
            columns = [c for c in ("speaker", "speaker_name") if c in pq.read_schema(path).names]
            frames.append(pq.read_table(path, columns=columns).to_pandas().drop_duplicates())
    return person_names(pd.concat(frames, ignore_index=True)) if frames else []


def _split_texts(params: ResolvedParams, root: Path) -> str:
    """The texts of the split's train and job sets, one per line (read by Arrow, joined without Python strings)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    view_dir = ProjectPaths(root).view_dir(params.dataset_id, params.view)
    parts = []
    for name in ("train", "job"):
        path = view_dir / f"{name}.tsv"
        options = pcsv.ParseOptions(delimiter="\t", newlines_in_values=True)
        convert = pcsv.ConvertOptions(include_columns=["text"], column_types={"text": pa.string()}, strings_can_be_null=False)
        parts.append(pcsv.read_csv(path, parse_options=options, convert_options=convert)["text"].combine_chunks())
    texts = pa.concat_arrays(parts)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array([0, len(texts)], pa.int32()), texts), "\n")
    return joined[0].as_py() or ""


def _thresholds(config: LabelValidityConfig) -> dict[str, Any]:
    return {
        k: getattr(config, k) for k in ("association_warning", "name_share_warning", "flagged_terms_warning", "top_terms", "max_levels")
    }


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------- an evaluation's diagnostics
SECTION = "Label validity"


def evaluation_diagnostics(report_dir: Path, params: ResolvedParams, root: Path) -> dict[str, Any]:
    """The diagnostics of an evaluation being written in `report_dir`: the view's (of the split the
    model was fitted on), and the model's top terms judged (its top_terms.json when the family
    ranks terms; else the view's log-odds terms). Writes diagnostics.json and puts the section, its
    WARNING lines first, under the title and protocol of classification_report.txt; returns the
    dict (its `warnings` go into meta_eval.json and the Dagster metadata)."""
    loaded = load_config(root)
    config = loaded[0]
    model_terms = _read(report_dir / "top_terms.json")
    view = view_diagnostics(params, root, with_terms=not model_terms, config=loaded)
    diag = {k: v for k, v in view.items() if k not in ("warnings", "terms", "persons")}
    if model_terms:
        from . import labels

        label_map = labels.load_label_map(root / "configs" / "label_maps" / params.label_map, root)
        judge = TermJudge(
            config.procedural_terms, group_names(config, label_map), view["persons"], texts=lambda: _split_texts(params, root)
        )
        judged = judge.judge(model_terms, config.top_terms)
        diag["terms"] = {"source": "the model's top terms", **judged}
    else:
        diag["terms"] = view.get("terms")
    diag["warnings"] = warnings(diag, config)
    write_json(report_dir / FILE, diag)
    report = report_dir / "classification_report.txt"
    if report.is_file():
        lines = report.read_text(encoding="utf-8").split("\n")
        write_text(report, "\n".join([*lines[:2], "", *section_lines(diag), *lines[2:]]))
    return diag


def warning_lines(diag: Mapping[str, Any]) -> list[str]:
    return [f"WARNING: {w['message']}" for w in diag.get("warnings", [])]


def section_lines(diag: Mapping[str, Any], markdown: bool = False) -> list[str]:
    """The "Label validity" section: its WARNING lines (or that there is none), then the strongest
    associations, the name share and the flagged share of the top terms, one line each."""
    head = f"## {SECTION}" if markdown else f"{SECTION} ({len(diag.get('warnings', []))} warnings; diagnostics.json)"
    bullet = "- " if markdown else "  "
    lines = [head, ""] if markdown else [head]
    warned = warning_lines(diag)
    lines += [f"{bullet}**{w.split(':', 1)[0]}**:{w.split(':', 1)[1]}" if markdown else f"{bullet}{w}" for w in warned] or [
        f"{bullet}no warning"
    ]
    tested = [r for r in diag["associations"] if "cramers_v" in r]
    if tested:
        lines.append(
            f"{bullet}association with the label (Cramér's V, strongest first): "
            + ", ".join(f"{r['column']} {r['cramers_v']:.2f}{' (label source)' if r['kind'] == 'label source' else ''}" for r in tested[:6])
        )
    speaker = diag.get("speaker")
    if speaker:
        lines.append(
            f"{bullet}speaker: {speaker['n_levels']} speakers, {speaker['speakers_with_one_label']:.0%} with one label "
            f"(by construction); split {'grouped by speaker' if speaker['grouped_split'] else 'not grouped by speaker'}"
        )
    names = diag["names"]
    lines.append(
        f"{bullet}texts naming a party or group: {names['share']:.1%} ("
        + ", ".join(f"{label} {row['share']:.1%}" for label, row in names["by_label"].items())
        + ")"
    )
    terms = diag.get("terms")
    if terms:
        lines.append(f"{bullet}top terms ({terms['source']}): {terms['n_flagged']} of {terms['n_terms']} procedural or names")
    lines.append("")
    return lines


def leaderboard_lines(paths: ProjectPaths, dataset_id: str, view: str) -> list[str]:
    """The view's WARNINGs (its cached diagnostics.json; none if no evaluation computed it) for the
    leaderboard, under the view's heading: a ranking is read with what its label may stand for."""
    diag = _read(paths.reports / dataset_id / view / FILE)
    if not diag or not diag.get("warnings"):
        return []
    rel = paths.rel(paths.reports / dataset_id / view / FILE)
    lines = [f"**Label validity** ({rel}; each model's top terms: its report's diagnostics.json):", ""]
    lines += [f"- **WARNING**: {w['message']}" for w in diag["warnings"] if w["kind"] != "terms"]
    return [*lines, ""]
