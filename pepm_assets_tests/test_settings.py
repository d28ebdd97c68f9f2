"""PEPM_* environment variables: read only through pepm_assets/core/settings.py, parsed with errors
that name the variable, read when used (so a monkeypatched value takes effect)."""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path

import pytest

from pepm_assets.core import compiled, dvc, settings, tracking
from pepm_assets.definitions import build_definitions

from .fixtures import REPO

PACKAGE = REPO / "pepm_assets"
SETTINGS = PACKAGE / "core" / "settings.py"

# Reads in other engineers' files still to switch to settings (issue 14): (path pattern, variable).
# Delete an entry when its file reads through settings; an entry that matches nothing fails below.
PENDING = {
    ("pepm_assets/core/sqlite_settings.py", "PEPM_SQLITE_SYNCHRONOUS"): "synchronous_level(): settings.SQLITE_SYNCHRONOUS.get()",
}


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))]
    return {id(n.body[0].value) for n in nodes if n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


def _is_environ_read(call: ast.Call) -> bool:
    """os.environ.get(...) / os.getenv(...) / environ.get(...)."""
    func = call.func
    if not isinstance(func, ast.Attribute):
        return False
    if func.attr == "getenv":
        return True
    target = func.value
    return func.attr == "get" and (
        (isinstance(target, ast.Attribute) and target.attr == "environ") or (isinstance(target, ast.Name) and target.id == "environ")
    )


def environment_uses(path: Path) -> list[tuple[str, int]]:
    """(variable, line) for each PEPM_* name spelled as a whole string in code (messages and
    docstrings that mention one are fine), and ("<computed>", line) for each environment read
    whose key is neither a literal nor a module constant: a name passed around and read
    generically would escape the first check."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = _docstrings(tree)
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found = []
    for node in ast.walk(tree):
        literal = isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
        if literal and re.fullmatch(r"PEPM_[A-Z0-9_]+", node.value):
            found.append((node.value, node.lineno))
        keys = []
        if isinstance(node, ast.Call) and _is_environ_read(node) and node.args:
            keys = [node.args[0]]
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "environ":
            keys = [node.slice]
        for key in keys:
            if isinstance(key, ast.Name) and key.id in constants:
                if re.fullmatch(r"PEPM_[A-Z0-9_]+", constants[key.id]):
                    found.append((constants[key.id], key.lineno))
            elif not isinstance(key, ast.Constant):
                found.append(("<computed>", key.lineno))
    return sorted(found, key=lambda use: use[1])


def _package_files() -> list[tuple[str, Path]]:
    return [(p.relative_to(REPO).as_posix(), p) for p in sorted(PACKAGE.rglob("*.py")) if p != SETTINGS]


def _pending(rel: str, variable: str) -> bool:
    return any(fnmatch.fnmatchcase(rel, pattern) and var == variable for pattern, var in PENDING)


def test_pepm_variables_are_named_only_in_settings() -> None:
    offending = []
    for rel, path in _package_files():
        uses = environment_uses(path)
        offending += [f"{rel}:{line}: {variable}" for variable, line in uses if not _pending(rel, variable)]
    assert not offending, "read PEPM_* variables through pepm_assets/core/settings.py (settings.<NAME>.get()):\n" + "\n".join(offending)


def test_pending_exemptions_are_still_needed() -> None:
    uses = {(rel, variable) for rel, path in _package_files() for variable, _ in environment_uses(path)}
    stale = [
        f"{pattern} {variable}"
        for pattern, variable in PENDING
        if not any(fnmatch.fnmatchcase(r, pattern) and v == variable for r, v in uses)
    ]
    assert not stale, f"these files read through settings now: delete their PENDING entries: {stale}"


def test_the_check_sees_each_way_of_reading(tmp_path: Path) -> None:
    """The ways PEPM_* variables were read before settings.py existed: a literal, a name passed
    around (compiled.load), a module constant (sqlite_settings.ENV)."""
    source = tmp_path / "old.py"
    source.write_text(
        '"""PEPM_DVC in a docstring is fine."""\nimport os\n'
        'a = int(os.environ.get("PEPM_MAX_CONCURRENT", "2"))\n'
        "def load(env_var):\n    return os.environ.get(env_var)\n"
        'raise SystemExit("dvc not found: set PEPM_DVC")\n'
        'ENV = "PEPM_SQLITE_SYNCHRONOUS"\nlevel = os.environ[ENV]\n',
        encoding="utf-8",
    )
    assert environment_uses(source) == [
        ("PEPM_MAX_CONCURRENT", 3),
        ("<computed>", 5),
        ("PEPM_SQLITE_SYNCHRONOUS", 7),
        ("PEPM_SQLITE_SYNCHRONOUS", 8),
    ]


def test_every_setting_is_listed_and_read_through_settings() -> None:
    """ALL is the table of README.md: every Setting of the module is in it, and each is read
    somewhere in pepm_assets as settings.<NAME> (or by a PENDING file)."""
    declared = {name: value for name, value in vars(settings).items() if isinstance(value, settings.Setting)}
    assert sorted(s.name for s in declared.values()) == sorted(s.name for s in settings.ALL)
    assert all(s.name.startswith("PEPM_") for s in settings.ALL)
    read = set()
    for _, path in _package_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "settings":
                read.add(node.attr)
    pending = {variable for _, variable in PENDING}
    unread = [f"settings.{name} ({s.name})" for name, s in declared.items() if name not in read and s.name not in pending]
    assert not unread, f"declared but nothing reads them: {unread}"


@pytest.mark.parametrize(
    ("setting", "bad"),
    [
        (settings.MAX_CONCURRENT, "abc"),
        (settings.MAX_CONCURRENT, "0"),
        (settings.SQLITE_SYNCHRONOUS, "fast"),
        (settings.TEI_WALK, "pyhton"),
        (settings.TEXT_KEY, "yes"),
        (settings.NGRAMS, "c"),
        (settings.DVC, "/nonexistent/dvc"),
        (settings.DAGSTER_URL, "localhost:3000"),
        (settings.MLFLOW_UI_URL, "127.0.0.1:5000"),
        (settings.LAUNCHED_BY, "makefile"),
        (settings.SIDE_WORKER, "no"),
    ],
)
def test_a_bad_value_names_the_variable(setting: settings.Setting, bad: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(setting.name, bad)
    with pytest.raises(settings.SettingError, match="^" + re.escape(f"{setting.name}={bad!r}: ")):
        setting.get()


def test_unset_or_empty_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for setting in settings.ALL:
        monkeypatch.setenv(setting.name, " ")
    got = {s.name: s.get() for s in settings.ALL}
    assert got == {
        "PEPM_ROOT": None,
        "PEPM_MLFLOW_URI": None,
        "PEPM_DAGSTER_URL": None,
        "PEPM_MLFLOW_UI_URL": "http://127.0.0.1:5000",
        "PEPM_LAUNCHED_BY": None,
        "PEPM_SIDE_WORKER": "on",
        "PEPM_DVC": None,
        "PEPM_MAX_CONCURRENT": 2,
        "PEPM_SQLITE_SYNCHRONOUS": "NORMAL",
        "PEPM_TEI_WALK": "compiled",
        "PEPM_TEXT_KEY": "compiled",
        "PEPM_REGEX_CACHE": None,
        "PEPM_NGRAMS": "compiled",
        "PEPM_FRAME_CHUNKS": "compiled",
        "PEPM_SWEEP_EXECUTOR": "in_process",
        "PEPM_CELERY_BROKER": None,
        "PEPM_CELERY_BACKEND": None,
    }


def test_values_are_read_when_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Set after import, a value still reaches the code that uses it."""
    monkeypatch.setenv("PEPM_MLFLOW_URI", "http://tracking.example:5000")
    assert tracking.default_uri(tmp_path) == "http://tracking.example:5000"
    monkeypatch.delenv("PEPM_MLFLOW_URI")
    assert tracking.default_uri(tmp_path) == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"

    fake = tmp_path / "my-dvc"
    fake.write_text("#!/bin/sh\n", encoding="utf-8")
    monkeypatch.setenv("PEPM_DVC", str(fake))
    assert dvc.executable(tmp_path) == str(fake)
    monkeypatch.setenv("PEPM_DVC", str(tmp_path / "missing"))
    with pytest.raises(settings.SettingError, match="PEPM_DVC"):  # not a silent fall back to another dvc
        dvc.executable(tmp_path)

    monkeypatch.setenv("PEPM_TEXT_KEY", "python")
    assert compiled.load("pepm_assets.core._textkey", settings.TEXT_KEY, "")[1] == "python"
    monkeypatch.setenv("PEPM_TEXT_KEY", "Compiled")
    assert compiled.load("pepm_assets.core._textkey", settings.TEXT_KEY, "")[1] == "compiled"


def test_max_concurrent_reaches_the_executor(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEPM_MAX_CONCURRENT", "3")
    config = build_definitions(project).executor.apply_config_mapping({}).value["config"]
    assert config["max_concurrent"] == 3
    monkeypatch.setenv("PEPM_MAX_CONCURRENT", "abc")
    with pytest.raises(settings.SettingError, match="PEPM_MAX_CONCURRENT='abc'"):
        build_definitions(project)
