"""Labels that depend on the date: a TEI affiliation that changes group mid-corpus, actor overrides
with `from`/`to`, the coalition rule (one per corpus, the same for every partner), the exclusions by
group that meta_view.json, the leaderboard and the Dagster metadata show, and the keys the YAML
errors name."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pepm_assets.core import labels
from pepm_assets.core.config import ConfigError, resolve_profile
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import build_view
from pepm_assets.core.tei.dialects import build
from pepm_assets.core.tei.dialects.standard import group_at
from pepm_assets_tests.fixtures import REPO

VIEWS = ("ideology_global", "left_right", "left_intra", "right_intra")


@pytest.fixture(scope="module")
def label_map() -> labels.LabelMap:
    return labels.load_label_map(REPO / "configs" / "label_maps" / "ideology.yml", REPO)


def _tei(persons: str, days: list[tuple[str, list[str]]]) -> str:
    """A standard-TEI file: `persons` in listPerson, then per (date, speakers) one dated note and
    one <u> per speaker ("" as date: speeches before any dated note)."""
    body = []
    for i, (day, speakers) in enumerate(days):
        if day:
            body.append(f'<note type="date"><date when="{day}"/></note>')
        body += [f'<u who="#{who}" xml:id="u{i}_{k}"><seg>Discours {i} {k} de {who}.</seg></u>' for k, who in enumerate(speakers)]
    orgs = "".join(f'<org xml:id="grp.{g}" role="parliamentaryGroup"><orgName>{g}</orgName></org>' for g in ("SOC", "LR", "RN"))
    return (
        '<?xml version="1.0" encoding="UTF-8"?><TEI xmlns="http://www.tei-c.org/ns/1.0"><teiHeader><profileDesc><particDesc>'
        f"<listPerson>{persons}</listPerson><listOrg>{orgs}</listOrg></particDesc></profileDesc></teiHeader>"
        f'<text><body><div type="debateSection">{"".join(body)}</div></body></text></TEI>'
    )


def _parse(tmp_path: Path, xml: str) -> pd.DataFrame:
    path = tmp_path / "month.xml"
    path.write_text(xml, encoding="utf-8")
    dialect = build("t", tmp_path, "tei", {"element": "u", "text_element": "seg"})
    return dialect.table(list(dialect.iter_file(path))).to_pandas()


# ---------------------------------------------------------------- TEI affiliations with from / to
def test_an_affiliation_that_changes_group_mid_corpus_labels_each_document_by_its_date(tmp_path: Path, label_map: labels.LabelMap) -> None:
    """Ana sits with SOC until 15 March 2019, then with LR: her speeches before get SOC and `left`,
    those after LR and `right`; the speech on the last SOC day is still SOC (bounds inclusive). Bob,
    whose one affiliation has no date, is in his group whatever the date."""
    persons = (
        '<person xml:id="Ana"><persName>Ana</persName>'
        '<affiliation role="member" ref="#grp.SOC" from="2017-06-21" to="2019-03-15"/>'
        '<affiliation role="member" ref="#grp.LR" from="2019-03-16"/></person>'
        '<person xml:id="Bob"><persName>Bob</persName><affiliation role="member" ref="#grp.RN"/></person>'
    )
    days = [("2019-03-01", ["Ana", "Bob"]), ("2019-03-15", ["Ana"]), ("2019-03-16", ["Ana"]), ("2019-04-02", ["Ana", "Bob"])]
    docs = _parse(tmp_path, _tei(persons, days))
    ana = docs[docs["speaker"] == "Ana"]
    assert list(zip(ana["date"], ana["group"])) == [
        ("2019-03-01", "SOC"),
        ("2019-03-15", "SOC"),
        ("2019-03-16", "LR"),
        ("2019-04-02", "LR"),
    ]
    assert set(docs.loc[docs["speaker"] == "Bob", "group"]) == {"RN"}
    out = labels.assign_labels(docs, label_map, "left_right")
    got = list(zip(out["speaker"], out["date"], out["label"]))
    assert got == [
        ("Ana", "2019-03-01", "left"),
        ("Bob", "2019-03-01", "right"),
        ("Ana", "2019-03-15", "left"),
        ("Ana", "2019-03-16", "right"),
        ("Ana", "2019-04-02", "right"),
        ("Bob", "2019-04-02", "right"),
    ]


def test_a_speech_no_affiliation_covers_gets_no_group_not_a_guess(tmp_path: Path, label_map: labels.LabelMap) -> None:
    """Before her first affiliation, or with no date while her affiliations disagree, Ana has no
    group: the view excludes those speeches as `no_group` (counted), it never picks one."""
    persons = (
        '<person xml:id="Ana"><persName>Ana</persName>'
        '<affiliation ref="#grp.SOC" from="2018-01-01" to="2018-12-31"/><affiliation ref="#grp.LR" from="2019-01-01"/></person>'
    )
    docs = _parse(tmp_path, _tei(persons, [("", ["Ana"]), ("2017-05-01", ["Ana"]), ("2018-06", ["Ana"]), ("2019", ["Ana"])]))
    assert docs["group"].tolist() == ["", "", "SOC", "LR"]  # a month inside a range counts, so does a year
    out = labels.assign_labels(docs, label_map, "left_right")
    assert out["exclusion"].tolist()[:2] == ["no_group", "no_group"] and out["label"].tolist()[2:] == ["left", "right"]


def test_group_at_without_any_date_keeps_the_first_affiliation() -> None:
    """What every affiliation of the shipped corpora is (no from / to): the first one, as before."""
    assert group_at((("SOC", "", ""), ("LR", "", "")), "2020-01-01") == "SOC"
    assert group_at((("SOC", "", ""), ("LR", "2020-01-01", "")), "2020-06-01") == "LR"  # a dated one in force beats the undated one
    assert group_at((("SOC", "", ""), ("LR", "2020-01-01", "")), "2019-06-01") == "SOC"
    assert group_at((("SOC", "2019-01-01", ""), ("SOC", "", "2018-12-31")), "") == "SOC"  # undated speech, one group: no doubt
    assert group_at((), "2020-01-01") == ""


# ---------------------------------------------------------------- dated actor overrides
def _map(**extra: object) -> labels.LabelMap:
    raw = {
        "categories": ["left", "center", "right"],
        "wings": {"left": ["left"], "center": ["center"], "right": ["right"]},
        "groups": {
            "G": {"category": "right", "cluster": "g"},
            "A": {"category": "center", "cluster": "a"},
            "B": {"category": "right", "cluster": "b"},
            "L": {"category": "left", "cluster": "l"},
        },
        "views": {"global": {"field": "category"}, "lr": {"field": "wing", "values": ["left", "right"]}},
        **extra,
    }
    return labels.LabelMap.model_validate(raw)


def _docs(rows: list[tuple[str, str, str]], corpus: str = "c") -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["speaker", "group", "date"])
    return frame.assign(corpus_id=corpus, role="member", doc_id=[f"d{i}" for i in range(len(frame))])


def test_an_actor_override_with_a_date_range_applies_only_inside_it() -> None:
    """X is `left` until 31 January 2020 and excluded from 1 March 2020; in between (and for a month
    wholly in between) his group G places him (`right`). A document without a date, or dated to a
    year that straddles a bound, is `no_date`: never the override's label, never the group's."""
    label_map = _map(
        actors={"c": {"X": [{"to": "2020-01-31", "category": "left", "cluster": "x"}, {"from": "2020-03-01", "exclude": "moved_out"}]}}
    )
    rows = [
        ("X", "G", "2020-01-15"),
        ("X", "G", "2020-01-31"),
        ("X", "G", "2020-02-01"),
        ("X", "G", "2020-02"),
        ("X", "G", "2020-03-01"),
        ("X", "G", ""),
        ("X", "G", "2020"),
        ("Y", "G", ""),  # no dated rule concerns Y: no date is no problem
    ]
    out = labels.assign_labels(_docs(rows), label_map, "lr")
    got = out["label"].fillna("(" + out["exclusion"] + ")").tolist()
    assert got == ["left", "left", "right", "right", "(moved_out)", "(no_date)", "(no_date)", "right"]
    assert (out["label"].isna() != out["exclusion"].isna()).all()
    # the same override in another corpus, or without a date range, changes nothing of the above
    assert labels.assign_labels(_docs(rows, corpus="other"), label_map, "lr")["label"].tolist() == ["right"] * 8


def test_the_actor_table_shows_a_dated_override_as_a_change(label_map: labels.LabelMap) -> None:
    """actors_counts_<corpus>.tsv reads a dated actor at its first and last date: Sacha Houlié, in
    the presidential bloc as LREM in March 2024 and non-attached (placed centre-left) from the 17th
    legislature, is one row per group, each with its own label."""
    actors = pd.DataFrame(
        [("Sacha_Houlie", "LREM", "member", "2024-03-26", "2024-03-26"), ("Sacha_Houlie", "NI", "member", "2024-10-30", "2025-03-24")],
        columns=["speaker", "group", "role", "first_date", "last_date"],
    )
    table = labels.views_table(label_map, "an_debats", actors)
    assert table["view:left_right"].tolist() == ["(label_not_in_view)", "left"]
    across = actors.iloc[[1]].assign(first_date="2024-03-26")  # one row across the override's start: "a -> b"
    assert labels.views_table(label_map, "an_debats", across)["view:ideology_global"].tolist() == ["(non_attached) -> center_left"]


# ---------------------------------------------------------------- the coalition rule
PARTNERS = ("LREM", "MODEM", "RE", "DEM", "EPR", "HOR", "UDI")


@pytest.mark.parametrize("corpus", ["an_debats", "an_amendements"])
def test_the_coalition_rule_treats_every_partner_alike(label_map: labels.LabelMap, corpus: str) -> None:
    """Every member of the presidential bloc gets the same label (or exclusion) in every view:
    HOR and UDI-Agir are never `right` while LREM and MODEM are excluded from left_right. UDI is a
    partner in the 15th legislature only: a UDI speech of 2013 keeps its own category."""
    rows = [(f"s_{g}", g, "2019-06-01" if g == "UDI" else "2023-01-10") for g in PARTNERS] + [("s_udi13", "UDI", "2013-01-29")]
    docs = _docs(rows, corpus=corpus)
    for view in VIEWS:
        out = labels.assign_labels(docs, label_map, view)
        cells = out["label"].fillna("(" + out["exclusion"] + ")").tolist()
        assert len(set(cells[: len(PARTNERS)])) == 1, (view, dict(zip(PARTNERS, cells)))
        assert "right" not in cells[: len(PARTNERS)] and "left" not in cells[: len(PARTNERS)]
    ideo = labels.assign_labels(docs, label_map, "ideology_global")["label"].tolist()
    assert ideo == ["center"] * len(PARTNERS) + ["center_right"]
    assert labels.assign_labels(docs, label_map, "left_right")["label"].tolist()[-1] == "right"


def test_the_coalition_rule_exclude_and_none(label_map: labels.LabelMap) -> None:
    """`exclude` gives every partner the rule's reason in every view; `none` gives each its own
    group's category back (HOR centre-right again), for all partners at once."""
    docs = _docs([(f"s_{g}", g, "2019-06-01" if g == "UDI" else "2023-01-10") for g in PARTNERS], corpus="an_debats")
    raw = label_map.model_dump(by_alias=True)
    raw["coalitions"]["an_debats"]["rule"] = "exclude"
    excluding = labels.LabelMap.model_validate(raw)
    for view in VIEWS:
        out = labels.assign_labels(docs, excluding, view)
        assert out["label"].isna().all() and set(out["exclusion"]) == {"government_coalition"}, view
    raw["coalitions"]["an_debats"]["rule"] = "none"
    own = labels.assign_labels(docs, labels.LabelMap.model_validate(raw), "ideology_global")["label"].tolist()
    assert own == ["center", "center", "center", "center", "center", "center_right", "center_right"]


def test_an_mpt_group_is_never_a_partner_of_the_an_bloc(label_map: labels.LabelMap) -> None:
    """The rule is per corpus: MPT's UDI (opposition in 2013) stays centre-right and right; MPT's
    own majority (SRC, ECOLO, RRDP) is recorded with rule none and keeps its categories."""
    docs = _docs([("a", "UDI", "2013-01-29"), ("b", "SRC", "2013-01-29"), ("c", "RRDP", "2013-01-29")], corpus="mpt")
    assert labels.assign_labels(docs, label_map, "left_right")["label"].tolist() == ["right", "left", "left"]
    assert label_map.coalitions["mpt"].rule == "none"


# ---------------------------------------------------------------- exclusions by group
def test_exclusions_by_group_sum_to_exclusions_by_reason(project: Path) -> None:
    """meta_view.json's `excluded_by_group` holds every excluded document once: for each reason its
    groups sum to `excluded_by_reason` (the label map's reasons, too_short and the duplicates alike);
    the leaderboard's note and the Dagster table are read from it."""
    paths = ProjectPaths(project)
    persons = (
        '<person xml:id="Boris_Vallaud"><persName>Boris Vallaud</persName><affiliation ref="#grp.SOC"/></person>'
        '<person xml:id="Eric_Ciotti"><persName>Eric Ciotti</persName><affiliation ref="#grp.LR"/></person>'
    )
    said = [
        ("Boris_Vallaud", "Bravo."),  # too short
        ("Boris_Vallaud", "Nous voterons contre ce texte injuste et brutal."),
        ("Boris_Vallaud", "Nous voterons contre ce texte injuste et brutal."),  # a duplicate, same label
        ("Boris_Vallaud", "Ce texte est une honte pour la République."),
        ("Eric_Ciotti", "Ce texte est une honte pour la République."),  # the same text on the other side
    ]
    us = "".join(f'<u who="#{who}" xml:id="x{i}"><seg>{text}</seg></u>' for i, (who, text) in enumerate(said))
    orgs = '<org xml:id="grp.SOC"><orgName>SOC</orgName></org><org xml:id="grp.LR"><orgName>LR</orgName></org>'
    (project / "data" / "raw" / "an" / "an_2019-04.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?><TEI xmlns="http://www.tei-c.org/ns/1.0"><teiHeader><profileDesc><particDesc>'
        f"<listPerson>{persons}</listPerson><listOrg>{orgs}</listOrg></particDesc></profileDesc></teiHeader>"
        f'<text><body><div><note type="date"><date when="2019-04-02"/></note>{us}</div></body></text></TEI>',
        encoding="utf-8",
    )
    params = resolve_profile(project, "tiny_multi", ["filters.min_tokens=3"])
    for cid in params.dataset.corpus_ids:
        extract_corpus(cid, params.corpora[cid], project, paths.corpus_dir(cid))
    meta = build_view(params, project, {c: paths.corpus_dir(c) / "docs.parquet" for c in params.dataset.corpus_ids}).meta
    by_reason, by_group = meta["excluded_by_reason"], meta["excluded_by_group"]
    assert {"too_short", "duplicate_text", "conflicting_duplicate", "chair_speaker", "government_speaker"} <= set(by_reason)
    assert (by_group["too_short"], by_group["duplicate_text"], by_group["conflicting_duplicate"]) == (
        {"SOC": 1},
        {"SOC": 1},
        {"SOC": 1, "LR": 1},
    )
    assert list(by_group) == list(by_reason)
    assert {reason: sum(groups.values()) for reason, groups in by_group.items()} == by_reason
    assert by_group["government_speaker"] == {"GVT": 12, "(none)": 6}  # MPT's GVT group, AN's minister without one
    assert meta["label_map"]["coalitions"]["mpt"]["rule"] == "none"
    rows = labels.exclusion_rows(by_group)
    assert sum(n for _, _, n in rows) == sum(by_reason.values())
    [note] = labels.exclusion_notes(paths.view_dir(params.dataset_id, params.view) / "meta_view.json")
    top = next(iter(by_reason))
    assert f"{top} {by_reason[top]}" in note and note.startswith(
        f"excluded before the split ({meta['n_docs_labelled']} of {meta['n_docs_in']}"
    )


# ---------------------------------------------------------------- YAML errors
def _write_maps(tmp_path: Path, actors: str = "actors: {}\n", coalitions: dict | None = None) -> Path:
    raw = yaml.safe_load((REPO / "configs" / "label_maps" / "ideology.yml").read_text(encoding="utf-8"))
    if coalitions is not None:
        raw["coalitions"] = coalitions
    folder = tmp_path / "configs" / "label_maps"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ideology.yml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    (folder / "ideology_actors.yml").write_text(actors, encoding="utf-8")
    return folder / "ideology.yml"


@pytest.mark.parametrize(
    ("actors", "key", "message"),
    [
        ("actors:\n  an_debats:\n    X: {from: '2020-02-30', category: left}\n", "actors.an_debats.X.from", "date"),
        ("actors:\n  an_debats:\n    X: {form: 2020-02-01, category: left}\n", "actors.an_debats.X.form", "unknown key"),
        ("actors:\n  an_debats:\n    X: {from: 2020-03-01, to: 2020-02-01, category: left}\n", "actors.an_debats.X", "after"),
        (
            "actors:\n  an_debats:\n    X:\n      - {to: 2020-03-01, category: left}\n      - {from: 2020-02-01, to: 2020-01-01, category: right}\n",
            "actors.an_debats.X.1",
            "after",
        ),
        (
            "actors:\n  an_debats:\n    X:\n      - {to: 2020-03-01, category: left}\n      - {from: 2020-03-01, category: right}\n",
            "actors.an_debats.X",
            "overlap",
        ),
        ("actors:\n  an_debats:\n    X: []\n", "actors.an_debats.X", "empty list"),
    ],
)
def test_an_actor_error_names_the_file_and_the_key(tmp_path: Path, actors: str, key: str, message: str) -> None:
    path = _write_maps(tmp_path, actors)
    with pytest.raises(ConfigError) as err:
        labels.load_label_map(path, tmp_path)
    assert err.value.source == "configs/label_maps/ideology_actors.yml"
    assert err.value.key == key and message in err.value.message, str(err.value)


@pytest.mark.parametrize(
    ("coalition", "key", "message"),
    [
        ({"rule": "own_clas"}, "coalitions.c.rule", "own_class"),
        ({"rule": "own_class", "members": {"HOR": None}}, "coalitions.c.category", "own_class needs"),
        ({"rule": "own_class", "category": "centre"}, "coalitions.c.category", "unknown category"),
        ({"rule": "exclude", "members": {"NI": None}}, "coalitions.c.members.NI", "excluded_groups"),
        ({"rule": "exclude", "members": {"HOR": [{"to": "2020-01-01"}, {"from": "2019-01-01"}]}}, "coalitions.c.members.HOR", "overlap"),
        (
            {"rule": "exclude", "members": {"HOR": {"from": "2020-01-01", "unto": "2021-01-01"}}},
            "coalitions.c.members.HOR.0.unto",
            "unknown key",
        ),
    ],
)
def test_a_coalition_error_names_the_key(tmp_path: Path, coalition: dict, key: str, message: str) -> None:
    path = _write_maps(tmp_path, coalitions={"c": coalition})
    with pytest.raises(ConfigError) as err:
        labels.load_label_map(path, tmp_path)
    assert err.value.source == "configs/label_maps/ideology.yml"
    assert err.value.key == key and message in err.value.message, str(err.value)


def test_the_shipped_maps_load_and_date_what_changed(label_map: labels.LabelMap) -> None:
    """The shipped rule: one own class (center) for the whole bloc in both AN corpora, UDI dated to
    the 15th legislature; the AN overrides of deputies who changed sides are dated."""
    for corpus in ("an_debats", "an_amendements"):
        bloc = label_map.coalitions[corpus]
        assert (bloc.rule, bloc.category) == ("own_class", "center") and set(bloc.members) == set(PARTNERS)
        [udi] = bloc.members["UDI"]
        assert (udi.from_.isoformat(), udi.to.isoformat()) == ("2017-06-21", "2022-06-21")
    [houlie] = label_map.actors["an_debats"]["Sacha_Houlie"]
    assert houlie.from_.isoformat() == "2024-07-18"
    json.dumps(labels.coalition_summary(label_map, ["mpt", "an_debats", "unknown"]))  # meta_view.json-ready


def test_the_view_asset_shows_the_exclusions_by_group_in_dagster(project: Path, dagster_instance) -> None:
    """The view_split materialization's metadata (the Dagster UI) has the reason x group table and
    the coalition rule the view was labelled with, both read from meta_view.json."""
    import dagster as dg

    from pepm_assets.definitions import build_definitions
    from pepm_assets.defs import runner
    from pepm_assets.defs.jobs import PREPARE_CORPUS, PREPARE_VIEW

    defs = build_definitions(project)
    runner._execute(defs, PREPARE_CORPUS, dagster_instance, "an", assets=["corpus_docs"])
    runner._execute(defs, PREPARE_VIEW, dagster_instance, "tiny_an|left_right", assets=["view_split"])
    mat = dagster_instance.get_latest_materialization_event(dg.AssetKey("view_split")).asset_materialization
    meta = json.loads((ProjectPaths(project).view_dir("tiny_an", "left_right") / "meta_view.json").read_text(encoding="utf-8"))
    table = mat.metadata["excluded_by_group"].value
    assert table.splitlines()[:2] == ["| reason | group | docs |", "|---|---|---|"]
    assert {line for line in table.splitlines()[2:]} == {
        f"| {r} | {g} | {n} |" for r, g, n in labels.exclusion_rows(meta["excluded_by_group"])
    }
    assert "| non_attached | NI | 6 |" in table and "| label_not_in_view | LREM | 6 |" in table
    assert mat.metadata["coalition_rules"].value == meta["label_map"]["coalitions"] == {"an": {"rule": "none", "members": {}}}
