"""Time (issue 17, item 4): `year` and `legislature` derived from each document's date, usable in
compare_by and split.group_by and checked by `pepm validate`; and the polarization_over_time report
(Peterson & Spirling 2018: held-out accuracy per period, speaker-grouped splits, chance level)."""

from __future__ import annotations

import itertools
import json
import random
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from pepm_assets.cli import app
from pepm_assets.core import periods, polarization, split
from pepm_assets.core.config import ConfigError, Legislature, load_common, resolve_profile
from pepm_assets.core.corpus import extract_corpus
from pepm_assets.core.paths import ProjectPaths
from pepm_assets.core.prepare import ViewError, build_view, read_tsv_file
from pepm_assets_tests.fixtures import LEFT_WORDS, REPO, RIGHT_WORDS

LEGISLATURES = "configs/common/legislatures.yml"
LEFT = [(f"Gauche_{i}", "SOC") for i in range(4)]
RIGHT = [(f"Droite_{i}", "LR") for i in range(4)]
# (file, date, speakers): the date's year and legislature are what the tests expect
SITTINGS = [
    ("an_2017a", "2017-06-20", LEFT + RIGHT),  # last day of the 14th legislature
    ("an_2017b", "2017-06-21", LEFT + RIGHT),  # first day of the 15th
    ("an_2019", "2019-03-01", LEFT + RIGHT),  # 15th
    ("an_2021", "2021-05-05", LEFT),  # one side only: no polarization to measure
    ("an_2022", "2022-06-22", LEFT + RIGHT),  # first day of the 16th
    ("an_2024", "2024-06-20", LEFT + RIGHT),  # between the dissolution and the 17th: no legislature
    ("an_nodate", "", LEFT + RIGHT),  # no date at all
]
N_PER_SPEAKER = 3
YEARS_PROFILE = """dataset_id: tiny_an
view: left_right
families: [sklearn]
models: [tfidf_svm_quick]
quality: {min_docs_per_class: 3}
split: {group_by: speaker}
analysis: {compare_by: [year, legislature]}
"""


def _sitting(date: str, speakers: list[tuple[str, str]], seed: int) -> str:
    """Standard TEI of one day (no date note when `date` is empty); texts mostly of their side's words."""
    rng = random.Random(seed)
    persons = "".join(
        f'<person xml:id="{pid}"><persName>{pid}</persName><affiliation role="member" ref="#grp.{grp}"/></person>' for pid, grp in speakers
    )
    orgs = "".join(
        f'<org xml:id="grp.{g}" role="parliamentaryGroup"><orgName>{g}</orgName></org>' for g in sorted({g for _, g in speakers})
    )
    us = []
    for k in range(N_PER_SPEAKER):
        for pid, grp in speakers:
            own = LEFT_WORDS if grp == "SOC" else RIGHT_WORDS
            words = [rng.choice(own if rng.random() < 0.8 else LEFT_WORDS + RIGHT_WORDS) for _ in range(12)]
            us.append(f'<u who="#{pid}" xml:id="u{seed}_{k}_{pid}"><seg>Intervention {seed} {k} {pid} : {" ".join(words)}.</seg></u>')
    note = f'<note type="date"><date when="{date}"/></note>' if date else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<TEI xmlns="http://www.tei-c.org/ns/1.0" xml:lang="fr"><teiHeader>'
        "<fileDesc><titleStmt><title>AN</title></titleStmt></fileDesc><profileDesc><particDesc>"
        f"<listPerson>{persons}</listPerson><listOrg>{orgs}</listOrg></particDesc></profileDesc></teiHeader>\n"
        f'<text><body><div type="debateSection" xml:id="d{seed}"><head>Débat</head>{note}\n'
        + "\n".join(us)
        + "\n</div></body></text></TEI>\n"
    )


@pytest.fixture()
def years(project: Path) -> Path:
    """The tiny project whose AN corpus spans several years and legislatures (and a sitting with
    no date), with the shipped legislature table and a profile comparing by year and legislature."""
    raw = project / "data" / "raw" / "an"
    shutil.rmtree(raw)
    raw.mkdir()
    for seed, (name, date, speakers) in enumerate(SITTINGS):
        (raw / f"{name}.xml").write_text(_sitting(date, speakers, seed), encoding="utf-8")
    shutil.copy(REPO / LEGISLATURES, project / LEGISLATURES)
    (project / "configs" / "profiles" / "tiny_years.yml").write_text(YEARS_PROFILE, encoding="utf-8")
    return project


def _table() -> dict[int, Legislature]:
    return load_common(REPO).legislatures


# ---------------------------------------------------------------- deriving year and legislature
@pytest.mark.parametrize(
    ("date", "year", "legislature"),
    [
        ("2012-06-19", 2012, 13),
        ("2012-06-20", 2012, 14),
        ("2013-01-29", 2013, 14),  # MPT
        ("2017-06-20", 2017, 14),
        ("2017-06-21", 2017, 15),
        ("2022-06-21", 2022, 15),
        ("2022-06-22", 2022, 16),
        ("2024-06-09", 2024, 16),  # the day of the dissolution
        ("2024-06-10", 2024, None),  # no Assembly until the 17th first sat
        ("2024-07-17", 2024, None),
        ("2024-07-18", 2024, 17),
        ("2026-03-04", 2026, 17),  # the 17th has no end yet
        ("2019-03-01T15:00:00", 2019, 15),  # a date with a time
        ("2019-03", 2019, 15),  # a month inside one legislature
        ("2017-06", 2017, None),  # a month across two: no legislature, still a year
        ("2017", 2017, None),
        ("2019", 2019, 15),
        ("", None, None),  # no date
        (None, None, None),
        ("29/01/2013", None, None),  # not ISO
        ("2017-02-30", None, None),  # no such day
    ],
)
def test_year_and_legislature_from_the_date(date: str | None, year: int | None, legislature: int | None) -> None:
    docs = periods.add_period_columns(pd.DataFrame({"date": [date, "2013-01-29"]}), _table())
    assert str(docs["year"].dtype) == "Int64" and str(docs["legislature"].dtype) == "Int64"
    got = docs.iloc[0]
    assert (None if pd.isna(got["year"]) else int(got["year"])) == year
    assert (None if pd.isna(got["legislature"]) else int(got["legislature"])) == legislature


def test_missing_dates_are_counted() -> None:
    docs = pd.DataFrame({"date": ["2019-03-01", "", None, "bad", "2024-06-20", "2019-05-01"]})
    periods.add_period_columns(docs, _table())
    assert periods.describe(docs) == {
        "n_docs": 6,
        "no_date": 2,
        "unreadable_date": 1,
        "outside_legislatures": 1,
        "docs_per_year": {"2019": 2, "2024": 1},
    }
    plain = periods.add_period_columns(pd.DataFrame({"date": ["2019-03-01"], "year": ["own"]}), None)
    assert list(plain.columns) == ["date", "year"] and plain["year"].tolist() == ["own"]  # a corpus's own column is kept


def test_the_shipped_legislature_table() -> None:
    table = _table()
    assert list(table) == [13, 14, 15, 16, 17] and table[17].end is None
    numbers = list(table)
    for before, after in itertools.pairwise(numbers):
        assert table[before].end < table[after].start


# ---------------------------------------------------------------- pepm validate
def _validate(project: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str, profile: str = "tiny_quick"):
    monkeypatch.setenv("PEPM_ROOT", str(project))
    args = [a for o in overrides for a in ("-o", o)]
    return CliRunner().invoke(app, ["validate", "-p", profile, *args])


def test_validate_accepts_year_and_legislature_and_refuses_an_unknown_column(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for good in ("analysis.compare_by=[year]", "split.group_by=year", "analysis.compare_by=[gender,year]"):
        result = _validate(project, monkeypatch, good)
        assert result.exit_code == 0, result.output
    result = _validate(project, monkeypatch, "analysis.compare_by=[year,no_such_column]")
    assert result.exit_code == 2 and "configs/profiles/tiny_quick.yml" in result.output, result.output
    assert "key 'analysis.compare_by.1'" in result.output and "no column 'no_such_column'" in result.output
    result = _validate(project, monkeypatch, "analysis.compare_by=[yeer]")
    assert result.exit_code == 2 and "did you mean 'year'" in result.output, result.output
    # legislature needs the table: without it, refused where it is named; with it, accepted
    for override, key in (("analysis.compare_by=[legislature]", "analysis.compare_by.0"), ("split.group_by=legislature", "split.group_by")):
        result = _validate(project, monkeypatch, override)
        assert result.exit_code == 2 and f"key '{key}'" in result.output and LEGISLATURES in result.output, result.output
    shutil.copy(REPO / LEGISLATURES, project / LEGISLATURES)
    assert _validate(project, monkeypatch, "analysis.compare_by=[legislature]").exit_code == 0


def test_a_broken_legislature_table_names_file_and_key(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = project / LEGISLATURES
    table.write_text("legislatures:\n  15: {start: 2017-06-21, end: 2022-06-21}\n  16: {start: 2022-06-01}\n", encoding="utf-8")
    result = _validate(project, monkeypatch)
    assert result.exit_code == 2 and LEGISLATURES in result.output and "key 'legislatures.16.start'" in result.output, result.output
    table.write_text("legislatures:\n  16: {start: 2022-06-22, end: 2022-01-01}\n", encoding="utf-8")
    result = _validate(project, monkeypatch)
    assert result.exit_code == 2 and LEGISLATURES in result.output and "key 'legislatures.16'" in result.output, result.output
    table.write_text("legislatures:\n  16: {start: 2022-06-22, ends: 2024-06-09}\n", encoding="utf-8")
    result = _validate(project, monkeypatch)
    assert result.exit_code == 2 and "key 'legislatures.16.ends'" in result.output and "did you mean 'end'" in result.output


def test_the_table_is_in_the_params_hash_only_where_a_view_uses_it(project: Path) -> None:
    """Adding the table changes no existing view's version; editing it changes those with a
    legislature column (their content depends on it), and only those."""
    before = resolve_profile(project, "tiny_quick").params_hash
    shutil.copy(REPO / LEGISLATURES, project / LEGISLATURES)
    assert resolve_profile(project, "tiny_quick").params_hash == before
    by_year = resolve_profile(project, "tiny_quick", ["analysis.compare_by=[year]"])
    by_leg = resolve_profile(project, "tiny_quick", ["analysis.compare_by=[legislature]"])
    assert by_year.legislatures is None and by_leg.legislatures is not None
    table = project / LEGISLATURES
    table.write_text(table.read_text(encoding="utf-8").replace("2024-07-18", "2024-07-19"), encoding="utf-8")
    assert resolve_profile(project, "tiny_quick", ["analysis.compare_by=[year]"]).params_hash == by_year.params_hash
    assert resolve_profile(project, "tiny_quick", ["analysis.compare_by=[legislature]"]).params_hash != by_leg.params_hash


# ---------------------------------------------------------------- in a view
def _parse(project: Path, params) -> dict[str, Path]:
    paths = ProjectPaths(project)
    for cid in params.dataset.corpus_ids:
        extract_corpus(cid, params.corpora[cid], project, paths.corpus_dir(cid))
    return {cid: paths.corpus_dir(cid) / "docs.parquet" for cid in params.dataset.corpus_ids}


def test_a_view_compared_by_year_and_legislature(years: Path) -> None:
    params = resolve_profile(years, "tiny_years")
    result = build_view(params, years, _parse(years, params))
    both = pd.concat([read_tsv_file(result.train_path), read_tsv_file(result.job_path)])
    assert {"year", "legislature"} <= set(both.columns)
    got = both.groupby("date")[["year", "legislature"]].first().to_dict("index")
    assert got == {
        "": {"year": "", "legislature": ""},
        "2017-06-20": {"year": "2017", "legislature": "14"},
        "2017-06-21": {"year": "2017", "legislature": "15"},
        "2019-03-01": {"year": "2019", "legislature": "15"},
        "2021-05-05": {"year": "2021", "legislature": "15"},
        "2022-06-22": {"year": "2022", "legislature": "16"},
        "2024-06-20": {"year": "2024", "legislature": ""},
    }
    per_sitting = 8 * N_PER_SPEAKER
    dates = result.meta["dates"]
    assert dates["no_date"] == per_sitting and dates["outside_legislatures"] == per_sitting and dates["unreadable_date"] == 0
    assert dates["docs_per_year"] == {
        "2017": 2 * per_sitting,
        "2019": per_sitting,
        "2021": 4 * N_PER_SPEAKER,
        "2022": per_sitting,
        "2024": per_sitting,
    }


def test_split_grouped_by_year_keeps_each_year_on_one_side(years: Path) -> None:
    df = pd.DataFrame(
        {
            "doc_id": [str(i) for i in range(60)],
            "label": ["a", "b"] * 30,
            "year": pd.array([2017 + i // 12 for i in range(60)], dtype="Int64"),
        }
    )
    train, job = split.split_train_job(df, 0.6, seed=3, group_by="year")
    assert len(train) and len(job) and not set(train["year"]) & set(job["year"])
    # in a view: documents without a date cannot be placed, and say so; without them, years never cross
    params = resolve_profile(years, "tiny_years", ["split.group_by=year"])
    with pytest.raises(ViewError, match=r"have no 'year'"):
        build_view(params, years, _parse(years, params))
    (years / "data" / "raw" / "an" / "an_nodate.xml").unlink()
    result = build_view(params, years, _parse(years, params))
    train, job = read_tsv_file(result.train_path), read_tsv_file(result.job_path)
    assert len(train) and len(job) and not set(train["year"]) & set(job["year"])
    assert result.meta["leakage"]["shared_year"] == 0 and result.meta["split"]["group_by"] == "year"


# ---------------------------------------------------------------- polarization over time
def _docs(spec: dict[int, dict[str, tuple[int, int]]]) -> pd.DataFrame:
    """Labelled documents: {year: {label: (speakers, documents per speaker)}}, texts of the label's words."""
    rng = random.Random(0)
    rows = []
    for year, classes in spec.items():
        for label, (n_speakers, per_speaker) in classes.items():
            own = LEFT_WORDS if label == "left" else RIGHT_WORDS
            for s in range(n_speakers):
                for d in range(per_speaker):
                    words = " ".join(rng.choice(own if rng.random() < 0.75 else LEFT_WORDS + RIGHT_WORDS) for _ in range(10))
                    rows.append(
                        {
                            "doc_id": f"{year}-{label}-{s}-{d}",
                            "label": label,
                            "speaker": f"{label}_{year}_{s}",
                            "date": f"{year}-03-0{1 + d % 9}",
                            "text": f"{year} {s} {d} {words}",
                        }
                    )
    return pd.DataFrame(rows)


def test_polarization_one_row_per_period_skips_and_chance(years: Path) -> None:
    params = resolve_profile(years, "tiny_years")
    docs = _docs(
        {
            2019: {"left": (5, 4), "right": (5, 4)},
            2020: {"left": (6, 3)},  # one class
            2021: {"left": (6, 5), "right": (3, 3)},  # imbalanced: chance well above one half
            2022: {"left": (5, 3), "right": (2, 4)},  # two right-wing speakers only
        }
    )
    docs.loc[len(docs)] = {"doc_id": "undated", "label": "left", "speaker": "x", "date": "", "text": "sans date"}
    settings = polarization.Settings(repeats=3, n_boot=200)
    result = polarization.polarization_over_time(params, years, settings, docs=docs)
    rows = {r["period"]: r for r in result["periods"]}
    assert list(rows) == [2019, 2020, 2021, 2022] and result["excluded"] == {"no_date": 1}
    assert rows[2020]["status"] == "skipped" and rows[2020]["reason"].startswith("one class only")
    assert rows[2022]["status"] == "skipped" and "too few speakers (right: 2" in rows[2022]["reason"]
    assert result["model_id"] == "tfidf_svm_quick" and result["n_periods_measured"] == 2
    for year in (2019, 2021):
        row = rows[year]
        period = docs[docs["date"].str.startswith(str(year))]
        assert row["status"] == "ok" and row["n_docs"] == len(period) and row["n_speakers"] == period["speaker"].nunique()
        # chance, computed directly: the majority share of each speaker-grouped split's job set
        expected = []
        seeds = split.repeat_seeds(params.seed, settings.repeats)  # the view's repeated splits' seeds, not seed + r
        assert result["protocol"]["seeds"] == seeds and seeds[0] == params.seed and len(set(seeds)) == settings.repeats
        for seed in seeds:
            train, job = split.split_train_job(period, params.train_prop, seed, True, "speaker")
            assert not set(train["speaker"]) & set(job["speaker"])
            if set(train["label"]) == set(job["label"]) == {"left", "right"}:
                expected.append(job["label"].value_counts().max() / len(job))
        assert [s["chance"] for s in row["splits"]] == pytest.approx(expected)
        assert row["chance"] == pytest.approx(np.mean(expected)) and row["n_splits"] == len(expected)
        assert 0 <= row["accuracy_ci95"][0] <= row["accuracy_ci95"][1] <= 1
        assert row["accuracy"] == pytest.approx(np.mean([s["accuracy"] for s in row["splits"]]))
    assert rows[2021]["chance"] > 0.6


def test_speaker_bootstrap_resamples_speakers() -> None:
    docs = pd.DataFrame({"speaker": ["a", "a", "b", "c"], "label": ["x", "x", "y", "y"]})
    job = docs.copy()
    perfect = polarization.speaker_bootstrap(docs, [(job, ["x", "x", "y", "y"])], ["x", "y"], 300, seed=1)
    assert perfect == {"accuracy": [1.0, 1.0], "macro_f1": [1.0, 1.0]}
    # speaker a (two documents) always wrong: a draw's accuracy is 0 to 1 by speaker, never by document
    wrong = polarization.speaker_bootstrap(docs, [(job, ["y", "y", "y", "y"])], ["x", "y"], 300, seed=1)
    assert wrong["accuracy"][0] == 0.0 and wrong["accuracy"][1] == 1.0


def test_polarization_refuses_what_it_cannot_measure(years: Path) -> None:
    params = resolve_profile(years, "tiny_years")
    common = load_common(years)
    with pytest.raises(polarization.PolarizationError, match="not a classifier"):
        polarization.model_spec(params, "kmeans_tfidf", common)
    with pytest.raises(polarization.PolarizationError, match="pre-built 'spacy_docbin' files"):
        polarization.model_spec(params, "spacy_bow", common)
    with pytest.raises(polarization.PolarizationError, match="did you mean 'tfidf_svm_quick'"):
        polarization.model_spec(params, "tfidf_svm_quik", common)
    with pytest.raises(polarization.PolarizationError, match="periods are one of"):
        polarization.Settings(by="month")
    with pytest.raises(polarization.PolarizationError, match="no prepared split"):
        polarization.write_report(params, years, polarization.Settings())
    with pytest.raises(ConfigError):
        resolve_profile(years, "tiny_years", ["analysis.compare_by=[decade]"])


def test_compare_by_year_end_to_end_and_the_report(years: Path, dagster_instance, monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile with compare_by [year, legislature] prepares, trains and evaluates through Dagster
    (per-year and per-legislature metrics); then `pepm report polarization` writes its three files,
    and so does the polarization_over_time asset."""
    import dagster as dg

    from pepm_assets.core.selection import PROFILE_TAG
    from pepm_assets.definitions import build_definitions
    from pepm_assets.defs import runner

    monkeypatch.setenv("PEPM_MLFLOW_URI", f"sqlite:///{years / 'mlflow.db'}")
    defs = build_definitions(years)
    report = runner.run_stage(years, "pipeline", "tiny_years", [], dagster_instance, defs)
    assert all(report.checks.values()), report.checks
    out = ProjectPaths(years).report_dir("tiny_an", "left_right", "sklearn", "tfidf_svm_quick")
    by_year = json.loads((out / "metrics_by_year.json").read_text(encoding="utf-8"))
    by_leg = json.loads((out / "metrics_by_legislature.json").read_text(encoding="utf-8"))
    assert set(by_year) <= {"", "2017", "2019", "2021", "2022", "2024"} and set(by_leg) <= {"", "14", "15", "16"}
    assert sum(m["n"] for m in by_year.values()) == sum(m["n"] for m in by_leg.values()) == report_n_job(years)

    monkeypatch.setenv("PEPM_ROOT", str(years))
    for by, expected in (("year", [2017, 2019, 2021, 2022, 2024]), ("legislature", [14, 15, 16])):
        result = CliRunner().invoke(app, ["report", "polarization", "-p", "tiny_years", "--by", by, "--repeats", "3"])
        assert result.exit_code == 0, result.output
        stem = polarization.report_stem(by)
        files = [years / "reports" / "tiny_an" / "left_right" / f"{stem}.{ext}" for ext in ("json", "md", "png")]
        assert all(f.is_file() for f in files), result.output
        data = json.loads(files[0].read_text(encoding="utf-8"))
        assert [r["period"] for r in data["periods"]] == expected and data["split_version"]
        assert files[2].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        per_sitting = 8 * N_PER_SPEAKER
        if by == "year":
            assert data["excluded"] == {"no_date": per_sitting}
            assert next(r for r in data["periods"] if r["period"] == 2021)["reason"].startswith("one class only")
        else:
            assert data["excluded"] == {"no_date": per_sitting, "outside_legislatures": per_sitting}
            assert data["legislatures"]["16"] == {"start": "2022-06-22", "end": "2024-06-09"}
    bad = CliRunner().invoke(app, ["report", "polarization", "-p", "tiny_years", "--model", "kmeans_tfidf"])
    assert bad.exit_code == 1 and "not a classifier" in bad.output

    (years / "reports" / "tiny_an" / "left_right" / "polarization_over_time.json").unlink()
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dagster_instance,
        partition_key="tiny_an|left_right",
        asset_selection=[dg.AssetKey("polarization_over_time")],
        tags={PROFILE_TAG: "tiny_years"},
    )
    assert result.success
    event = result.asset_materializations_for_node("polarization_over_time")[0]
    assert event.metadata["periods_measured"].value == 4 and event.metadata["model_id"].text == "tfidf_svm_quick"
    assert (years / "reports" / "tiny_an" / "left_right" / "polarization_over_time.json").is_file()


def report_n_job(project: Path) -> int:
    return len(read_tsv_file(ProjectPaths(project).view_dir("tiny_an", "left_right") / "job.tsv"))
