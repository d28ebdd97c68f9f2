"""`pepm validate` refuses a broken config the way every command does before any work: exit code 2,
a message naming the file and the key, in under 2 s, nothing written. Each case below once passed
validation and failed (or hung) only after work had started."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pepm_assets.cli import app

PROFILE = "configs/profiles/tiny_quick.yml"
CORPORA = "configs/common/corpora.yml"
OUTPUTS = ("data/interim", "data/processed", "models", "reports")


def _pepm(project: Path, monkeypatch: pytest.MonkeyPatch, *args: str, command: str = "validate", profile: str = "tiny_quick"):
    monkeypatch.setenv("PEPM_ROOT", str(project))
    started = time.perf_counter()
    result = CliRunner().invoke(app, [command, "-p", profile, *args])
    return result, time.perf_counter() - started


def _refused(project: Path, monkeypatch: pytest.MonkeyPatch, *args: str, file: str, key: str | None, **kw: str) -> str:
    result, seconds = _pepm(project, monkeypatch, *args, **kw)
    assert result.exit_code == 2, result.output
    assert file in result.output and (key is None or f"key '{key}'" in result.output), result.output
    assert seconds < 2, seconds
    written = [p for d in OUTPUTS for p in (project / d).rglob("*") if p.is_file()]
    assert not written, written
    return result.output


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
@pytest.mark.parametrize("command", ["validate", "prepare", "run"])
def test_seed_outside_numpy_range(project: Path, monkeypatch: pytest.MonkeyPatch, seed: str, command: str) -> None:
    """numpy seeds are [0, 2**32-1]: outside, the split crashed once the corpora were parsed."""
    _refused(project, monkeypatch, "-o", f"seed={seed}", file=PROFILE, key="seed", command=command)
    for edge in ("0", "4294967295"):
        assert _pepm(project, monkeypatch, "-o", f"seed={edge}")[0].exit_code == 0


@pytest.mark.parametrize(
    ("profile", "override", "file", "key"),
    [
        ("tiny_quick", "split.group_by=speakr", PROFILE, "split.group_by"),
        ("tiny_quick", "split.group_by=section", PROFILE, "split.group_by"),  # a column of the tei dialect, not mpt
        ("tiny_quick", "analysis.compare_by=[gender,no_such_column]", PROFILE, "analysis.compare_by.1"),
    ],
)
def test_group_by_and_compare_by_must_be_document_columns(
    project: Path, monkeypatch: pytest.MonkeyPatch, profile: str, override: str, file: str, key: str
) -> None:
    """Columns are known before parsing: each dialect declares its fields (mpt: its metadata attributes),
    plus the dataset's source_field."""
    out = _refused(project, monkeypatch, "-o", override, file=file, key=key, profile=profile)
    if "speakr" in override:
        assert "did you mean 'speaker'" in out
    for good in ("split.group_by=vote", "analysis.compare_by=[sitting,speaker]"):  # mpt metadata, base field
        assert _pepm(project, monkeypatch, "-o", good)[0].exit_code == 0
    assert _pepm(project, monkeypatch, "-o", "split.group_by=section", profile="tiny_an")[0].exit_code == 0
    assert _pepm(project, monkeypatch, "-o", "split.group_by=vote", profile="tiny_multi")[0].exit_code == 0  # one corpus has it


def test_dataset_compare_by_must_be_a_document_column(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _edit(project / "configs/common/datasets.yml", "compare_by: [corpus_id]", "compare_by: [corpus]")
    out = _refused(project, monkeypatch, file="configs/common/datasets.yml", key="datasets.tiny_multi.compare_by.0", profile="tiny_multi")
    assert "did you mean 'corpus_id'" in out


def test_empty_view_values_are_refused(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`values: []` keeps no document: the view failed with "no labelled document" after parsing."""
    _edit(project / "configs/label_maps/ideology.yml", "values: [left, right]", "values: []")
    _refused(project, monkeypatch, file="configs/label_maps/ideology.yml", key="views.left_right.values")


def test_misspelled_dialect_option(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A misspelled option was accepted by validate and only refused when the corpus was parsed."""
    _edit(project / CORPORA, "speaker_attribute: who", "speaker_atribute: who")
    out = _refused(project, monkeypatch, file=CORPORA, key="corpora.an.dialect_options.speaker_atribute")
    assert "did you mean 'speaker_attribute'" in out


def test_duplicate_keys_name_both_lines(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A duplicate corpus id silently replaced the first entry."""
    corpora = project / CORPORA
    corpora.write_text(corpora.read_text(encoding="utf-8") + "  mpt:\n    path: data/raw/elsewhere\n    dialect: mpt\n", encoding="utf-8")
    lines = corpora.read_text(encoding="utf-8").splitlines()
    first, second = [i + 1 for i, line in enumerate(lines) if line == "  mpt:"]
    out = _refused(project, monkeypatch, file=CORPORA, key="mpt")
    assert f"lines {first} and {second}" in out
    corpora.write_text("\n".join(lines[:-3]) + "\n", encoding="utf-8")
    profile = project / PROFILE
    profile.write_text(profile.read_text(encoding="utf-8") + "seed: 8\n", encoding="utf-8")
    out = _refused(project, monkeypatch, file=PROFILE, key="seed")
    assert f"lines 5 and {len(profile.read_text().splitlines())}" in out


def test_non_utf8_profile(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = project / PROFILE
    profile.write_bytes(profile.read_bytes() + "description: caf\u00e9\n".encode("latin-1"))
    assert "UTF-8" in _refused(project, monkeypatch, file=PROFILE, key=None)


def test_alias_bomb_is_refused_quickly(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """~1 KB of nested aliases that expand to 9**9 strings (20 s and 3 GB, then a crash, before)."""
    levels = ["      - &l0 [" + ", ".join(["lol"] * 9) + "]"]
    levels += [f"      - &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, 9)]
    corpora = project / CORPORA
    good = corpora.read_text(encoding="utf-8")
    _edit(corpora, "    dialect: mpt\n", "    dialect: mpt\n    description:\n" + "\n".join(levels) + "\n")
    assert len(corpora.read_bytes()) < 1500
    assert "alias" in _refused(project, monkeypatch, file=CORPORA, key=None)
    corpora.write_text(good, encoding="utf-8")
    # the shipped label map uses an alias (an_amendements: *an_non_attached): small ones still work
    assert _pepm(project, monkeypatch)[0].exit_code == 0


@pytest.mark.parametrize(
    ("args", "file", "key", "suggestion"),
    [
        (["-o", "trainprop=0.5"], PROFILE, "trainprop", "train_prop"),
        (["-o", "split.grup_by=speaker"], PROFILE, "split.grup_by", "group_by"),
        (["-o", "models=[tfidf_svm_quik]"], PROFILE, "models.0", "tfidf_svm_quick"),
        (["-o", "view=left_rigth"], PROFILE, "view", "left_right"),
        (["-o", "dataset_id=tiny_mtp"], PROFILE, "dataset_id", "tiny_mpt"),
        (["-o", "data.corpus_ids=[mtp]"], PROFILE, "data.corpus_ids.0", "mpt"),
        (["-o", "hardware_preset=smal"], PROFILE, "hardware_preset", "small"),
    ],
)
def test_did_you_mean(project: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], file: str, key: str, suggestion: str) -> None:
    assert f"did you mean '{suggestion}'" in _refused(project, monkeypatch, *args, file=file, key=key)


def test_did_you_mean_profile(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _refused(project, monkeypatch, file="configs/profiles/tiny_quik.yml", key=None, profile="tiny_quik")
    assert "did you mean 'tiny_quick'" in out


def test_user_text_is_printed_verbatim(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich markup in a profile name or an override is text, not markup (`[/]` crashed Rich)."""
    shutil.copy(project / PROFILE, project / "configs/profiles/[red]x.yml")
    ok, _ = _pepm(project, monkeypatch, "-o", "description=a [x] b", profile="[red]x")
    assert ok.exit_code == 0 and "ok [red]x" in ok.output and "description=a [x] b" in ok.output, ok.output
    assert "[/]" in _refused(project, monkeypatch, "-o", "seed=[/]", file=PROFILE, key="seed")
    assert "models=[x]" in _refused(project, monkeypatch, "-o", "models=[x]", file=PROFILE, key="models.0")
