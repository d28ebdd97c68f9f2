"""Data-quality filters of a view (core/quality.py, spec V4.1 §3), end to end on a purpose-built
MPT sitting (`dq`) whose every document is listed in DOCS with what it is: plain French speeches of
both sides, one English and one German speech, a short French interjection, pairs of near-duplicate
texts (one word changed) of one side or of both, exact duplicates, procedural-only documents (a
chair's formula said by a deputy, a stage direction alone) and speeches holding a stage direction
or an acronym in parentheses. Every count is computed here from DOCS, never by the code under test;
near-duplicates are judged with the test's own shingles. The last test runs the view asset through
Dagster and reads what its metadata shows.

What must never happen: a foreign speech in train or job; two near-duplicate texts one in train and
one in job (whatever the seed); a stage direction in a written text, or "(APL)" taken for one; and,
filters off, any change to the params hash or to the written split.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import dagster as dg
import pandas as pd
import pytest

from pepm_assets.core import labels, prepare, quality, split
from pepm_assets.core.config import ConfigError, resolve_profile
from pepm_assets.core.config.schema import FilterConfig
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import read_tsv_file
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner
from pepm_assets_tests.fixtures import REPO, build_stamped_view, make_project

GROUPS = {  # speaker -> (MPT politicalgroup, left_right label of configs/label_maps/ideology.yml)
    "Erwann_Binet": ("SRC", "left"),
    "Marie_George_Buffet": ("GDR", "left"),
    "Sergio_Coronado": ("ECOLO", "left"),
    "Hervé_Mariton": ("UMP", "right"),
    "Philippe_Gosselin": ("UMP", "right"),
    "Jean_Christophe_Fromantin": ("UDI", "right"),
}
CHAIR = "le_président"
FRENCH_SENTENCE = (
    "nous devons protéger les familles de notre pays avec justice et courage car la loi doit garantir "
    "les mêmes droits à chaque enfant comme à chaque parent dans toutes les communes de la république "
    "sans oublier la liberté de conscience des maires ni le respect des convictions de chacun face au "
    "débat qui traverse la société française depuis des mois entiers"
)
FRENCH = FRENCH_SENTENCE.split(" ")
ENGLISH = (
    "We are convinced that this reform will protect every family and every child, and we will vote for it with pride tomorrow morning."
)
GERMAN = "Wir sind überzeugt, dass diese Reform jede Familie und jedes Kind schützen wird, und wir werden morgen mit Stolz dafür stimmen."
STAGE = "(Applaudissements sur les bancs du groupe SRC.)"


@dataclass(frozen=True)
class Doc:
    speaker: str
    text: str
    kind: str = "plain"  # plain | foreign | short | near | near_conflict | exact | exact_conflict | procedural | staged | acronym
    family: str | None = None  # documents of one family are (near-)copies of one text

    @property
    def label(self) -> str | None:
        return GROUPS[self.speaker][1] if self.speaker in GROUPS else None


def _docs() -> list[Doc]:
    rng = random.Random(2013)

    def speech(n: int) -> str:  # French words in a random order: unique, and French to any detector
        return " ".join(rng.choice(FRENCH) for _ in range(n)).capitalize() + "."

    def variant(text: str) -> str:  # one word (the middle one) changed
        words = text.split()
        words[len(words) // 2] = "absolument"
        return " ".join(words)

    left, right = [s for s in GROUPS if GROUPS[s][1] == "left"], [s for s in GROUPS if GROUPS[s][1] == "right"]
    docs = [Doc(CHAIR, "La séance est ouverte.")]
    docs += [Doc(s, speech(25)) for s in GROUPS for _ in range(6)]
    docs += [Doc("Erwann_Binet", ENGLISH, "foreign"), Doc("Hervé_Mariton", GERMAN, "foreign")]
    docs.append(Doc("Marie_George_Buffet", "Très bien !", "short"))  # too short to judge: kept, whatever its language
    # near-duplicates: 120 words, one changed (Jaccard of 5-word shingles 111/121 = 0.917 >= 0.9)
    for k, (a, b) in enumerate([(left[0], left[2]), (right[0], right[1]), (left[1], left[1]), (right[2], right[0])]):
        base = speech(120)
        docs += [Doc(a, base, "near", f"N{k}"), Doc(b, variant(base), "near", f"N{k}")]
    base = speech(120)
    docs += [Doc(left[0], base, "near_conflict", "NC"), Doc(right[0], variant(base), "near_conflict", "NC")]
    same, conflict = speech(30), speech(30)
    docs += [Doc(left[2], same, "exact", "E"), Doc(left[0], same, "exact", "E")]
    docs += [Doc(right[1], conflict, "exact_conflict", "EC"), Doc(left[1], conflict, "exact_conflict", "EC")]
    docs += [
        Doc("Erwann_Binet", "Je mets aux voix l'amendement n° 12.", "procedural"),
        Doc("Sergio_Coronado", STAGE, "procedural"),
        Doc("Jean_Christophe_Fromantin", "Avis défavorable.", "procedural"),
        Doc("Philippe_Gosselin", f"{speech(20)} {STAGE} {speech(10)}", "staged"),
        Doc("Hervé_Mariton", f"{speech(12)[:-1]} les aides au logement (APL) {speech(12)}", "acronym"),
    ]
    return docs


DOCS = _docs()
PROFILE = """dataset_id: tiny_dq
view: left_right
train_prop: 0.75
seed: 3
split: {group_by: null}  # stratified: near-duplicates of one speaker could straddle it too
families: [check]
models: [check_default]
quality: {min_docs_per_class: 1}
"""


def sitting_xml(docs: list[Doc]) -> str:
    sps = []
    for d in docs:
        if d.speaker == CHAIR:
            meta = f'auteur="{CHAIR}" interventiontype="régulation"'
        else:
            meta = f'auteur={quoteattr(d.speaker)} interventiontype="intervention" politicalgroup="{GROUPS[d.speaker][0]}"'
        sps.append(
            f"<sp who={quoteattr(d.speaker)}><speaker>{escape(d.speaker.replace('_', ' '))}</speaker>"
            f"<mpt:metadata {meta}><p>{escape(d.text)}</p></mpt:metadata></sp>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<TEI xmlns="http://www.tei-c.org/ns/1.0" xmlns:mpt="http://mpt.ethelred.fr/ns/0.0/">\n'
        "<teiHeader><fileDesc><titleStmt><title>Séance dq</title></titleStmt></fileDesc></teiHeader>\n"
        "<text><body><div><head>Qualité</head>\n" + "\n".join(sps) + "\n</div></body></text></TEI>\n"
    )


def add_dq_corpus(root: Path) -> Path:
    """The fixture project plus the data-quality sitting `dq` (duplicates, near-duplicates,
    procedural texts), its dataset tiny_dq and profile dq, not parsed yet: its raw folder."""
    common = root / "configs" / "common"
    shutil.copy(REPO / "configs" / "common" / "procedural.yml", common / "procedural.yml")
    with open(common / "corpora.yml", "a", encoding="utf-8") as fh:
        fh.write("  dq:\n    path: data/raw/dq\n    dialect: mpt\n")
    with open(common / "datasets.yml", "a", encoding="utf-8") as fh:
        fh.write("  tiny_dq:\n    corpus_ids: [dq]\n")
    (root / "configs" / "profiles" / "dq.yml").write_text(PROFILE, encoding="utf-8")
    raw = root / "data" / "raw" / "dq"
    raw.mkdir(parents=True)
    (raw / "20130201.xml").write_text(sitting_xml(DOCS), encoding="utf-8")
    return raw


@pytest.fixture(scope="module")
def proj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("dq") / "proj")
    add_dq_corpus(root)
    params = resolve_profile(root, "dq")
    extract_corpus("dq", params.corpora["dq"], root, ProjectPaths(root).corpus_dir("dq"))
    return root


def _written(result: prepare.ViewResult) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    return read_tsv_file(result.train_path), read_tsv_file(result.job_path), json.loads(result.meta_path.read_text(encoding="utf-8"))


def _shingles(text: str, size: int = 5) -> set[tuple[str, ...]]:
    """The test's own shingles: lower-cased words (letters and digits), `size` at a time."""
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + size]) for i in range(max(1, len(words) - size + 1))}


def _near_pairs_across(train: pd.DataFrame, job: pd.DataFrame, threshold: float = 0.9) -> list[tuple[str, str]]:
    job_sets = [(d, _shingles(t)) for d, t in zip(job["doc_id"], job["text"])]
    out = []
    for d, t in zip(train["doc_id"], train["text"]):
        a = _shingles(t)
        out += [(d, e) for e, b in job_sets if len(a & b) / len(a | b) >= threshold]
    return out


def _kinds(df: pd.DataFrame) -> Counter:
    by_text = {d.text: d.kind for d in DOCS}
    return Counter(by_text.get(t, "changed") for t in df["text"])


# ---------------------------------------------------------------- language
def test_foreign_documents_are_excluded_counted_and_their_languages_reported(proj: Path) -> None:
    _, result = build_stamped_view(proj, "dq", ["filters.languages=[fr]"])
    train, job, meta = _written(result)
    both = pd.concat([train, job])
    foreign = [d for d in DOCS if d.kind == "foreign"]
    assert meta["excluded_by_reason"]["language"] == len(foreign) == 2
    assert not set(both["text"]) & {d.text for d in foreign}  # never in train or job
    assert meta["quality"]["language"]["detected"]["en"] == 1 and meta["quality"]["language"]["detected"]["de"] == 1
    assert meta["quality"]["language"]["documents_dropped"] == 2 and meta["quality"]["language"]["keep"] == ["fr"]
    # "Très bien !" (2 words) is not judged: kept, counted as undetermined
    assert "Très bien !" in set(both["text"]) and meta["quality"]["language"]["detected"]["und"] >= 1
    # the excluded documents are counted by group too (SRC's English, UMP's German)
    assert meta["excluded_by_group"]["language"] == {"SRC": 1, "UMP": 1}
    # without the filter they are in the view
    _, plain = build_stamped_view(proj, "dq")
    assert {d.text for d in foreign} <= set(pd.concat(_written(plain)[:2])["text"])


# ---------------------------------------------------------------- near duplicates
def test_near_duplicates_never_straddle_the_split_and_are_counted(proj: Path) -> None:
    near = [d for d in DOCS if d.kind == "near"]
    conflicting = [d for d in DOCS if d.kind == "near_conflict"]
    for seed in (3, 4, 5, 6):
        _, result = build_stamped_view(proj, "dq", ["filters.near_duplicates=true", f"seed={seed}"])
        train, job, meta = _written(result)
        assert _near_pairs_across(train, job) == []  # never one copy in train and one in job
        assert meta["excluded_by_reason"]["near_duplicate"] == len(near) // 2 == 4  # one copy of each pair kept
        assert meta["excluded_by_reason"]["near_duplicate_conflicting"] == len(conflicting) == 2  # left vs right: none
        assert meta["leakage"]["near_duplicate_pairs_across_split"] == 0
        nd = meta["quality"]["near_duplicates"]
        assert (nd["threshold"], nd["num_perm"], nd["shingle"], nd["clusters"], nd["largest_cluster"]) == (0.9, 128, 5, 5, 2)
        kept = Counter(_kinds(pd.concat([train, job])))
        assert kept["near"] == 4 and kept["near_conflict"] == 0
        # the first copy of each pair (corpus order) is the one kept
        firsts = {d.text for d in near[::2]}
        assert firsts <= set(pd.concat([train, job])["text"])
    # the filter is what prevents it: without it, some seed puts a pair on both sides
    straddled = 0
    for seed in (3, 4, 5, 6):
        _, result = build_stamped_view(proj, "dq", [f"seed={seed}"])
        train, job, _ = _written(result)
        straddled += len(_near_pairs_across(train, job))
    assert straddled > 0


def test_exact_duplicates_are_counted_as_before_when_near_duplicates_are_on(proj: Path) -> None:
    _, off = build_stamped_view(proj, "dq")
    m_off = _written(off)[2]  # read before the next build writes the same view folder
    _, on = build_stamped_view(proj, "dq", ["filters.near_duplicates=true"])
    m_on = _written(on)[2]
    assert m_off["excluded_by_reason"]["duplicate_text"] == m_on["excluded_by_reason"]["duplicate_text"] == 1
    assert m_off["excluded_by_reason"]["conflicting_duplicate"] == m_on["excluded_by_reason"]["conflicting_duplicate"] == 2
    assert "near_duplicate" not in m_off["excluded_by_reason"] and "quality" not in m_off


def test_pairs_across_counts_a_pair_split_between_sides() -> None:
    train, job = pd.DataFrame({"doc_id": ["a", "b"]}), pd.DataFrame({"doc_id": ["c"]})
    assert quality.pairs_across([("a", "c"), ("a", "b"), ("c", "z")], train, job) == 1


def test_near_duplicate_pairs_are_found_exactly_at_the_threshold() -> None:
    words = [f"mot{i}" for i in range(120)]
    changed = [*words[:60], "autre", *words[61:]]
    texts = [" ".join(words), " ".join(changed), " ".join(reversed(words))]
    config = FilterConfig(near_duplicates=True).near_duplicates
    assert quality.near_duplicate_pairs(texts, config) == [(0, 1)]
    stricter = config.model_copy(update={"threshold": 0.95})  # 111/121 = 0.917 < 0.95
    assert quality.near_duplicate_pairs(texts, stricter) == []


# ---------------------------------------------------------------- procedural text
def test_procedural_documents_are_dropped_and_stage_directions_stripped(proj: Path) -> None:
    _, result = build_stamped_view(proj, "dq", ["filters.procedural=true"])
    train, job, meta = _written(result)
    both = pd.concat([train, job])
    procedural = [d for d in DOCS if d.kind == "procedural"]
    assert meta["excluded_by_reason"]["procedural"] == len(procedural) == 3
    assert not set(both["text"]) & {d.text for d in procedural}
    assert not both["text"].str.contains(r"\(Applaudissements", regex=True).any()  # never a stage direction in a written text
    (staged,) = [d for d in DOCS if d.kind == "staged"]
    stripped = re.sub(" +", " ", staged.text.replace(STAGE, ""))
    row = both[both["text"] == stripped]
    assert len(row) == 1 and int(row["n_tokens"].iloc[0]) == len(stripped.split())  # counted again after stripping
    (acronym,) = [d for d in DOCS if d.kind == "acronym"]
    assert acronym.text in set(both["text"])  # "(APL)" is no stage direction
    proc = meta["quality"]["procedural"]
    assert proc["stage_directions_stripped"] == 2 and proc["documents_stripped"] == 2 and proc["documents_dropped"] == 3
    assert proc["documents_dropped_after_stripping"] == 1
    # off: the stage direction stays, and so do the procedural documents
    _, plain = build_stamped_view(proj, "dq")
    assert {d.text for d in procedural} | {staged.text} <= set(pd.concat(_written(plain)[:2])["text"])


def test_sentences_that_are_all_formulas_make_a_procedural_document() -> None:
    patterns = quality.load_patterns(REPO)
    stage, formula = quality._compiled(tuple(patterns.stage_directions), tuple(patterns.formulas))
    for text in [
        "La séance est ouverte.",
        "La séance est levée à vingt heures trente.",
        "Je mets aux voix l'amendement n° 4858. (L'amendement n° 4858 n'est pas adopté.)",
        "La parole est à M. Hervé Mariton.",
        "L'amendement n° 12 n'est pas adopté.",
        "Adopté !",
    ]:
        assert quality.is_procedural(quality.strip_stage_directions(text, stage)[0], formula), text
    for text in [
        "La séance est ouverte, mais je veux dire mon indignation.",
        "Je mets aux voix l'amendement. Je regrette que la majorité refuse tout débat sur la filiation.",
        "Nous voterons contre ce texte.",
    ]:
        assert not quality.is_procedural(quality.strip_stage_directions(text, stage)[0], formula), text


# ---------------------------------------------------------------- filters off: nothing changes
def test_filters_off_leave_the_params_hash_and_the_split_unchanged(proj: Path) -> None:
    params = resolve_profile(proj, "dq")
    explicit = resolve_profile(proj, "dq", ["filters.languages=null", "filters.near_duplicates=false", "filters.procedural=false"])
    assert params.params_hash == explicit.params_hash
    assert set(params.hashed_part()["filters"]) == {"min_tokens", "max_docs_per_corpus", "dedup"}
    assert "procedural_patterns" not in params.hashed_part()
    for on in (["filters.languages=[fr]"], ["filters.near_duplicates=true"], ["filters.procedural=true"]):
        assert resolve_profile(proj, "dq", on).params_hash != params.params_hash, on
    # the split is the one the path before these filters wrote: labels, length, exact dedup, split
    _, result = build_stamped_view(proj, "dq")
    docs_files = {"dq": ProjectPaths(proj).corpus_dir("dq") / "docs.parquet"}
    docs = prepare.load_docs(params, docs_files)
    label_map = labels.load_label_map(proj / "configs" / "label_maps" / params.label_map, proj)
    labelled = labels.assign_labels(docs, label_map, params.view)
    pool = labelled[labelled["label"].notna()].drop(columns=["exclusion"])
    pool, _ = split.drop_duplicates(pool[pool["n_tokens"] >= params.filters.min_tokens])
    train, _, job = prepare._split_pool(pool, params, Counter())
    cols = prepare.tsv_columns(params)
    out = proj / "expected"
    out.mkdir(exist_ok=True)
    prepare.write_tsv(train[cols], out / "train.tsv")
    prepare.write_tsv(job[cols], out / "job.tsv")
    assert result.train_path.read_bytes() == (out / "train.tsv").read_bytes()
    assert result.job_path.read_bytes() == (out / "job.tsv").read_bytes()
    assert "quality" not in result.meta and "near_duplicate_pairs_across_split" not in result.meta["leakage"]


def test_the_procedural_patterns_are_in_the_hash_of_the_views_that_use_them(proj: Path, tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj")
    shutil.copy(REPO / "configs" / "common" / "procedural.yml", root / "configs" / "common" / "procedural.yml")
    plain, on = resolve_profile(root, "tiny_quick"), resolve_profile(root, "tiny_quick", ["filters.procedural=true"])
    cfg = root / "configs" / "common" / "procedural.yml"
    cfg.write_text(cfg.read_text(encoding="utf-8") + '  - "merci"\n', encoding="utf-8")
    assert resolve_profile(root, "tiny_quick", ["filters.procedural=true"]).params_hash != on.params_hash
    assert resolve_profile(root, "tiny_quick").params_hash == plain.params_hash


# ---------------------------------------------------------------- configuration errors name the key
def test_configuration_errors_name_the_key(project: Path) -> None:
    cases = [
        (["filters.near_duplicates.threshold=1.5"], "filters.near_duplicates.threshold"),
        (["filters.near_duplicates.shingles=3"], "filters.near_duplicates.shingles"),
        (["filters.languages.keep=[xx]"], "filters.languages"),
        (["filters.languaes=[fr]"], "filters.languaes"),
    ]
    for overrides, key in cases:
        with pytest.raises(ConfigError) as err:
            resolve_profile(project, "tiny_quick", overrides)
        assert err.value.key == key, (overrides, str(err.value))
    assert "did you mean 'languages'" in _message(project, ["filters.languaes=[fr]"])
    # procedural.yml: missing, or a pattern that is no regular expression
    assert "procedural.yml" in _message(project, ["filters.procedural=true"])
    (project / "configs" / "common" / "procedural.yml").write_text(
        'stage_directions: ["rires"]\nformulas: ["adopté", "(oui"]\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as err:
        resolve_profile(project, "tiny_quick", ["filters.procedural=true"])
    assert err.value.source == quality.PROCEDURAL_FILE and err.value.key == "formulas" and "entry 1" in str(err.value)
    # an unknown language code fails the view, naming the key
    with pytest.raises(ValueError, match="filters.languages.candidates"):
        quality.detect_languages(["un texte"], FilterConfig(languages={"keep": ["fr"], "candidates": ["fr", "qq"]}).languages)


def _message(root: Path, overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as err:
        resolve_profile(root, "tiny_quick", overrides)
    return str(err.value)


# ---------------------------------------------------------------- the view asset's metadata (the UI)
def test_the_view_asset_shows_what_the_filters_did(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    shutil.copy(REPO / "configs" / "common" / "procedural.yml", project / "configs" / "common" / "procedural.yml")
    on = ["filters.languages=[fr]", "filters.near_duplicates=true", "filters.procedural=true"]
    report = runner.prepare(project, "tiny_quick", on, dagster_instance, build_definitions(project))
    assert all(report.checks.values())
    event = dagster_instance.get_latest_materialization_event(dg.AssetKey("view_split"))
    metadata = event.asset_materialization.metadata
    shown = metadata["data_quality"].value
    meta = json.loads((ProjectPaths(project).view_dir("tiny_mpt", "left_right") / "meta_view.json").read_text(encoding="utf-8"))
    assert shown == meta["quality"] and set(shown) == {"procedural", "language", "near_duplicates"}
    assert metadata["near_duplicate_pairs_across_split"].value == meta["leakage"]["near_duplicate_pairs_across_split"] == 0
    # the fixture's speeches are French words: none left out for its language
    assert meta["quality"]["language"]["documents_dropped"] == 0 and "language" not in meta["excluded_by_reason"]
