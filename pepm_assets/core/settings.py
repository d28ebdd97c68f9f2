"""Every PEPM_* environment variable pepm reads: its name, meaning, default and parsing, in one place.

Configs (YAML, profiles, overrides) decide what a run computes and enter its params hash; these
switches only decide where things are and how the work is done, so they live outside the configs.
Each is read when `.get()` is called, never at import, so a test's monkeypatch.setenv takes effect.
An unset or empty variable means its default; a value that does not parse raises SettingError,
which names the variable. Code elsewhere in pepm_assets reads these variables only through here
(pepm_assets_tests/test_settings.py checks it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


class SettingError(ValueError):
    """A PEPM_* variable with a value pepm cannot use; the message names it."""


@dataclass(frozen=True)
class Setting(Generic[T]):
    name: str
    meaning: str
    default: str  # the default in words, for the table in README.md
    parse: Callable[[str], T]  # raises ValueError with the reason; `get` adds the variable's name
    unset: T | None = None  # what `get` returns when the variable is unset or empty

    def get(self) -> T | None:
        raw = os.environ.get(self.name, "").strip()
        if not raw:
            return self.unset
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise SettingError(f"{self.name}={raw!r}: {exc}") from None


def _text(raw: str) -> str:
    return raw


def _path(raw: str) -> Path:
    return Path(raw).expanduser()


def _file(raw: str) -> str:
    """An explicit executable that is missing fails, instead of silently falling back to another."""
    if not Path(raw).expanduser().is_file():
        raise ValueError("no such file")
    return str(Path(raw).expanduser())


def _url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return raw.rstrip("/")


def _positive_int(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError("expected a whole number >= 1") from None
    if value < 1:
        raise ValueError("expected a whole number >= 1")
    return value


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.lower() if choices[0].islower() else raw.upper()
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}")
        return value

    return parse


ROOT: Setting[Path] = Setting(
    "PEPM_ROOT",
    "the project folder (the one holding configs/common/corpora.yml)",
    "the nearest such folder above the current directory",
    _path,
)
MLFLOW_URI: Setting[str] = Setting(
    "PEPM_MLFLOW_URI",
    "MLflow tracking URI (a server, Postgres); the Dagster resource's tracking_uri wins over it",
    "sqlite:///<root>/mlruns/mlflow.db",
    _text,
)
DAGSTER_URL: Setting[str] = Setting(
    "PEPM_DAGSTER_URL",
    "base URL of the Dagster UI (e.g. http://localhost:3000): each MLflow run gets a `dagster_run_url` tag, the page of its Dagster run",
    "none (only the `dagster_run_id` tag)",
    _url,
)
MLFLOW_UI_URL: Setting[str] = Setting(
    "PEPM_MLFLOW_UI_URL",
    "base URL of the MLflow UI: a model's and an evaluation's Dagster metadata link to their MLflow run's page (`mlflow_run`)",
    "http://127.0.0.1:5000 (what `pepm mlflow` serves)",
    _url,
    "http://127.0.0.1:5000",
)
LAUNCHED_BY: Setting[str] = Setting(
    "PEPM_LAUNCHED_BY",
    "who launches the Dagster runs of this process: their `pepm/launched_by` tag (make exports `make`, the tests set `test`)",
    "cli for the pepm command, python for the runner called from Python",
    _choice("cli", "make", "test", "sweep", "python"),
)
SIDE_WORKER: Setting[str] = Setting(
    "PEPM_SIDE_WORKER",
    "`off`: `pepm run` logs to MLflow, draws its figures and computes a small view's diagnostics in its own process instead of a side worker started at its start (core/side_worker.py)",
    "on",
    _choice("on", "off"),
    "on",
)
DVC: Setting[str] = Setting(
    "PEPM_DVC",
    "the dvc executable (DVC lives in its own virtual environment)",
    "<root>/.venv-dvc/bin/dvc, else dvc on PATH",
    _file,
)
MAX_CONCURRENT: Setting[int] = Setting(
    "PEPM_MAX_CONCURRENT",
    "steps a run launched from the Dagster UI executes at once (resource classes still bound heavy/medium steps)",
    "2",
    _positive_int,
    2,
)
SQLITE_SYNCHRONOUS: Setting[str] = Setting(
    "PEPM_SQLITE_SYNCHRONOUS",
    "SQLite `synchronous` level of the embedded Dagster and MLflow stores (FULL: no commit lost on a power cut)",
    "NORMAL",
    _choice("OFF", "NORMAL", "FULL", "EXTRA"),
    "NORMAL",
)
TEI_WALK: Setting[str] = Setting(
    "PEPM_TEI_WALK",
    "`python`: the TEI column walker runs its Python reference instead of the compiled module",
    "compiled (python when the module is not built)",
    _choice("compiled", "python"),
    "compiled",
)
TEXT_KEY: Setting[str] = Setting(
    "PEPM_TEXT_KEY",
    "`python`: dedup text keys are computed by the Python reference instead of the compiled module",
    "compiled (python when the module is not built)",
    _choice("compiled", "python"),
    "compiled",
)
REGEX_CACHE: Setting[str] = Setting(
    "PEPM_REGEX_CACHE",
    "folder where very large regexes (spaCy French's tokenizer exceptions) are kept compiled across processes; `off`: compiled in each process",
    "$XDG_CACHE_HOME/pepm/regex, else ~/.cache/pepm/regex",
    _text,
)
NGRAMS: Setting[str] = Setting(
    "PEPM_NGRAMS",
    "`python`: word n-grams are counted by scikit-learn instead of the compiled counter",
    "compiled (python when the module is not built)",
    _choice("compiled", "python"),
    "compiled",
)

FRAME_CHUNKS: Setting[str] = Setting(
    "PEPM_FRAME_CHUNKS",
    "`python`: Python's frame-stack chunks are mapped afresh each time (its own allocator) instead of kept for reuse (core/frame_chunks.py)",
    "compiled (python when the module is not built)",
    _choice("compiled", "python"),
    "compiled",
)
SWEEP_EXECUTOR: Setting[str] = Setting(
    "PEPM_SWEEP_EXECUTOR",
    "where a sweep run's step executes: in the run's own process, or as a Celery task on a worker of another host (docs/multihost.md)",
    "in_process",
    _choice("in_process", "celery"),
    "in_process",
)
CELERY_BROKER: Setting[str] = Setting(
    "PEPM_CELERY_BROKER", "the Celery broker of PEPM_SWEEP_EXECUTOR=celery (e.g. redis://host:6379/0)", "none (required with celery)", _text
)
CELERY_BACKEND: Setting[str] = Setting(
    "PEPM_CELERY_BACKEND", "the Celery result backend of PEPM_SWEEP_EXECUTOR=celery", "the broker's URL", _text
)

ALL: tuple[Setting, ...] = (
    ROOT,
    MLFLOW_URI,
    DAGSTER_URL,
    MLFLOW_UI_URL,
    LAUNCHED_BY,
    SIDE_WORKER,
    DVC,
    MAX_CONCURRENT,
    SQLITE_SYNCHRONOUS,
    TEI_WALK,
    TEXT_KEY,
    REGEX_CACHE,
    NGRAMS,
    FRAME_CHUNKS,
    SWEEP_EXECUTOR,
    CELERY_BROKER,
    CELERY_BACKEND,
)
