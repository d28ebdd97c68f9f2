"""The command line (help, validation exit codes) and atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from pepm_assets.cli import app
from pepm_assets.core.atomic import atomic_dir, atomic_path, write_text


def test_help_lists_every_command() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("prepare", "run", "validate", "status", "observe", "data", "dev", "bench", "demo"):
        assert command in result.output


def test_validate_reports_config_errors_with_file_and_key(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEPM_ROOT", str(project))
    ok = CliRunner().invoke(app, ["validate", "-p", "tiny_quick"])
    assert ok.exit_code == 0 and "tiny_mpt" in ok.output
    bad = CliRunner().invoke(app, ["validate", "-p", "tiny_quick", "-o", "balance_strategy=smote"])
    assert bad.exit_code == 2
    assert "configs/profiles/tiny_quick.yml" in bad.output and "balance_strategy" in bad.output


def test_run_rejects_unknown_stage_before_work(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEPM_ROOT", str(project))
    result = CliRunner().invoke(app, ["run", "--stage", "dance", "-p", "tiny_quick"])
    assert result.exit_code == 2 and "dance" in result.output
    assert not (project / "data" / "interim").exists()


def test_atomic_writes_keep_the_old_file_when_interrupted(tmp_path: Path) -> None:
    target = tmp_path / "out" / "train.tsv"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half a fi")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n" and list(target.parent.iterdir()) == [target]

    folder = tmp_path / "shards"
    with atomic_dir(folder) as tmp:
        (tmp / "part-0001.spacy").write_text("a")
    with pytest.raises(RuntimeError), atomic_dir(folder) as tmp:
        (tmp / "part-0001.spacy").write_text("b")
        raise RuntimeError("killed")
    assert (folder / "part-0001.spacy").read_text() == "a" and sorted(p.name for p in tmp_path.iterdir()) == ["out", "shards"]


def test_atomic_outputs_get_the_modes_of_a_plain_open_and_mkdir(tmp_path: Path) -> None:
    """Not tempfile's private 0600 / 0700: a shared project's outputs stay readable by the team."""
    import os
    import stat

    mask = os.umask(0o022)
    try:
        write_text(tmp_path / "meta.json", "{}")
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "model.pkl").write_bytes(b"")
    finally:
        os.umask(mask)
    assert stat.S_IMODE((tmp_path / "meta.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755


def test_importing_pepm_turns_mlflow_telemetry_off() -> None:
    """No network at run time: MLflow 3's telemetry is on by default outside CI; pepm turns it off."""
    import os
    import subprocess
    import sys

    ci_markers = (
        "PYTEST_CURRENT_TEST",
        "GITHUB_ACTIONS",
        "CI",
        "CIRCLECI",
        "GITLAB_CI",
        "JENKINS_URL",
        "TRAVIS",
        "TF_BUILD",
        "BITBUCKET_BUILD_NUMBER",
        "CODEBUILD_BUILD_ARN",
        "BUILDKITE",
        "TEAMCITY_VERSION",
        "CLOUD_RUN_EXECUTION",
        "RUNBOT_HOST_URL",
        "RUNBOT_BUILD_NAME",
        "RUNBOT_WORKER_ID",
        "MLFLOW_DISABLE_TELEMETRY",
        "DO_NOT_TRACK",
    )
    env = {k: v for k, v in os.environ.items() if k not in ci_markers}
    probe = "from mlflow.telemetry.utils import is_telemetry_disabled; print(is_telemetry_disabled())"
    without = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    with_pepm = subprocess.run([sys.executable, "-c", "import pepm_assets; " + probe], env=env, capture_output=True, text=True, check=True)
    assert (without.stdout.strip(), with_pepm.stdout.strip()) == ("False", "True")


def test_tsv_round_trip_keeps_every_value_as_written(tmp_path: Path) -> None:
    """Texts with tabs, newlines and quotes, labels that look like NA, empty fields and dates come
    back exactly; only the counts are numbers."""
    import pandas as pd

    from pepm_assets.core.prepare import read_tsv_file, write_tsv

    df = pd.DataFrame(
        {
            "doc_id": ["mpt:1", "mpt:2", "mpt:3"],
            "label": ["NA", "null", "left"],
            "group": ["", "SRC", "UMP"],
            "date": ["2013-01-29", "", "2013-02-02"],
            "n_tokens": [3, 4, 1],
            "text": ['a\tb "quoted"', "line\nbreak", "1234"],
        }
    )
    back = read_tsv_file(write_tsv(df, tmp_path / "train.tsv"))
    assert back.to_dict("records") == df.to_dict("records")
    assert back["n_tokens"].dtype.kind == "i" and all(isinstance(v, str) for v in back["text"])
    header_only = read_tsv_file(write_tsv(df.iloc[:0], tmp_path / "job.tsv"))
    assert list(header_only.columns) == list(df.columns) and len(header_only) == 0


def test_a_tsv_read_of_some_columns_gives_them_as_the_whole_read_does(tmp_path: Path) -> None:
    """Only the asked columns the file has, in the file's order, with the values of a whole read."""
    import pandas as pd

    from pepm_assets.core.prepare import read_tsv_file, write_tsv

    df = pd.DataFrame({"doc_id": ["a", "b"], "speaker": ["X", "Y"], "n_tokens": [2, 3], "text": ["un\tdeux", "trois"]})
    path = write_tsv(df, tmp_path / "train.tsv")
    some = read_tsv_file(path, {"text", "n_tokens", "doc_id", "not_a_column"})
    assert list(some.columns) == ["doc_id", "n_tokens", "text"]
    assert some.to_dict("records") == read_tsv_file(path)[["doc_id", "n_tokens", "text"]].to_dict("records")


def test_tsv_round_trip_of_texts_longer_than_a_read_block(tmp_path: Path) -> None:
    """Several MB, quoted newlines everywhere, one text longer than Arrow's default 1 MiB block."""
    import pandas as pd

    from pepm_assets.core.prepare import read_tsv_file, write_tsv

    big = pd.DataFrame(
        {
            "doc_id": [f"d{i}" for i in range(4000)],
            "n_tokens": range(4000),
            "text": [f"ligne {i}\nsuite « {i} »\t" * 40 for i in range(3999)] + ["x\ny " * 400_000],
        }
    )
    back = read_tsv_file(write_tsv(big, tmp_path / "big.tsv"))
    assert (tmp_path / "big.tsv").stat().st_size > 5_000_000 and back.to_dict("records") == big.to_dict("records")


def test_status_names_the_profiles_of_each_partition(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A partition that several profiles read is one row naming them all; an invalid profile is a row, not a crash."""
    import re

    from pepm_assets import cli

    monkeypatch.setenv("PEPM_ROOT", str(project))
    monkeypatch.setenv("DAGSTER_HOME", str(project / ".dagster"))
    monkeypatch.setattr(cli.console, "width", 400)
    (project / "configs" / "profiles" / "broken.yml").write_text("dataset_id: no_such_dataset\nview: left_right\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    rows = {tuple(c.strip() for c in line.strip("│ ").split("│")[:3]): line for line in result.output.splitlines() if "│" in line}
    corpus = next(v for k, v in rows.items() if k[:2] == ("corpus_docs", "mpt"))
    assert re.search(r"tiny_multi, tiny_quick", corpus), corpus  # both read the corpus mpt
    assert next(v for k, v in rows.items() if k[:2] == ("view_split", "tiny_mpt|left_right")).count("tiny_quick") == 1
    assert any(k[0] == "profile" and k[2] == "broken" and "INVALID" in v for k, v in rows.items())
