"""MLflow tracking: every training and every evaluation is an MLflow run.

Embedded default: a SQLite backend and a local artifact folder inside the project
(`mlruns/mlflow.db`, `mlruns/artifacts/`); `PEPM_MLFLOW_URI` (or the Dagster resource's
`tracking_uri`) points the same code at a server or Postgres. Each trained model also gets a
registered model version (`pepm.<dataset>.<view>.<model_id>`), whose source is the logged model
folder. SQLite allows one writer at a time: writes are retried when the database is locked
(parallel Dagster steps), see docs/internals.md.

The first use of a SQLite store (MLflow creates its tables and runs its Alembic migrations when it
opens a database without them, with no lock between processes: two at once fail with "table
_alembic_tmp_metrics already exists", or leave the database half-migrated for good) is made under
an flock on <folder of the database>/.init.lock (<root>/mlruns/.init.lock by default), once per
process and tracking URI.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from . import settings, sqlite_settings
from .locks import exclusive_lock

T = TypeVar("T")
EXPERIMENT = "pepm"
_EXPERIMENT_IDS: dict[tuple[str, str], str] = {}  # (tracking URI, experiment name) -> its id, in this process


def default_uri(root: Path) -> str:
    return settings.MLFLOW_URI.get() or f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"


def _sqlite_file(uri: str) -> Path | None:
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def _first_use_lock(uri: str) -> contextlib.AbstractContextManager[None]:
    """Serialises opening (so creating, migrating) a SQLite store between processes; a server or
    Postgres store is left to its own locking."""
    db = _sqlite_file(uri)
    if db is None:
        return contextlib.nullcontext()
    db.parent.mkdir(parents=True, exist_ok=True)
    return exclusive_lock(db.parent / ".init.lock")


def fail_running_runs(root: Path, dagster_run_id: str, message: str, uri: str | None = None) -> list[str]:
    """Set FAILED the MLflow runs still RUNNING that the Dagster run `dagster_run_id` started (its
    process died: MLflow never heard that they ended), in the store at `uri` (default: the CLI's,
    PEPM_MLFLOW_URI or <root>/mlruns/mlflow.db). Returns their MLflow run ids. A SQLite store that
    does not exist is not created for this."""
    uri = uri or default_uri(Path(root))
    db = _sqlite_file(uri)
    if db is not None and not db.is_file():
        return []
    import mlflow

    sqlite_settings.install()

    with _first_use_lock(uri):
        client = mlflow.MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]  # pepm's, and each sweep's
    if not experiments:
        return []
    runs = client.search_runs(
        experiments,
        max_results=1000,
        filter_string=f"tags.dagster_run_id = '{dagster_run_id}' and attributes.status = 'RUNNING'",
    )
    for run in runs:
        run_id = run.info.run_id
        _retry(lambda run_id=run_id: client.set_tag(run_id, "pepm.failure", message))
        _retry(lambda run_id=run_id: client.set_terminated(run_id, status="FAILED"))
    return [run.info.run_id for run in runs]


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = str(value)[:500]
    return out


def _protocol(meta: dict[str, Any]) -> dict[str, str]:
    """The split kind, class weighting and number of splits a meta_model / meta_eval states
    (core/training.py: protocol), as run params beside the seed; left out of a meta written before
    they were."""
    return {key: str(meta[key]) for key in ("split", "class_weight", "splits") if key in meta}


def _retry(fn: Callable[[], T], attempts: int = 8) -> T:
    for i in range(attempts):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001  (sqlite "database is locked" surfaces as several types)
            if "locked" not in str(exc).lower() or i == attempts - 1:
                raise
            time.sleep(0.2 * 2**i)
    raise AssertionError("unreachable")


class Tracker:
    """Thin wrapper: one place that knows MLflow's API (imported lazily, it is heavy)."""

    def __init__(self, root: Path, uri: str | None = None, experiment: str = EXPERIMENT) -> None:
        self.root = Path(root)
        self.uri = uri or default_uri(self.root)
        self.experiment = experiment

    def _mlflow(self):
        """(mlflow, id of the experiment). The experiment is looked up (or created) once per
        process, tracking URI and name, not before every run: two queries less per logged run."""
        import logging

        import mlflow

        for name in ("mlflow", "alembic"):  # schema creation / migration chatter on first use
            logging.getLogger(name).setLevel(logging.WARNING)
        if self.uri.startswith("sqlite:///"):
            Path(self.uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            sqlite_settings.install()
        mlflow.set_tracking_uri(self.uri)
        key = (self.uri, self.experiment)
        if key not in _EXPERIMENT_IDS:
            with _first_use_lock(self.uri):  # the store's tables, then the experiment, made once
                experiment = mlflow.get_experiment_by_name(self.experiment)
                if experiment is None:
                    artifacts = (self.root / "mlruns" / "artifacts").resolve().as_uri() if self.uri.startswith("sqlite") else None
                    _EXPERIMENT_IDS[key] = _retry(lambda: mlflow.create_experiment(self.experiment, artifact_location=artifacts))
                else:
                    _EXPERIMENT_IDS[key] = experiment.experiment_id
        return mlflow, _EXPERIMENT_IDS[key]

    def _log(self, log: Callable[[Any, str], T]) -> T:
        mlflow, experiment_id = self._mlflow()
        return _retry(lambda: log(mlflow, experiment_id))

    def start_parent(self, run_name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
        """An MLflow run that stays open while its children (trainings, evaluations: `parent_run_id`)
        are logged: a sweep run's, one per Dagster run (dagster-mlflow's model). Ended by end_parent."""

        def log(mlflow: Any, experiment_id: str) -> str:
            client = mlflow.MlflowClient()
            run = client.create_run(experiment_id, tags={**tags, "mlflow.runName": run_name})
            client.log_batch(run.info.run_id, params=[mlflow.entities.Param(k, v) for k, v in _flatten(params).items()])
            return run.info.run_id

        return self._log(log)

    def end_parent(self, run_id: str, status: str, metrics: dict[str, float], tags: dict[str, str] | None = None) -> None:
        """FINISHED or FAILED, with the run's summary metrics and last tags."""

        def log(mlflow: Any, _experiment_id: str) -> None:
            client = mlflow.MlflowClient()
            now = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[mlflow.entities.Metric(k, float(v), now, 0) for k, v in metrics.items()],
                tags=[mlflow.entities.RunTag(k, v) for k, v in (tags or {}).items()],
            )
            client.set_terminated(run_id, status=status)

        self._log(log)

    def log_training(
        self, meta_model: dict[str, Any], resolved: dict[str, Any], model_dir: Path, tags: dict[str, str], register: bool = True
    ) -> dict[str, str]:
        """A training run (nested under tags' `mlflow.parentRunId` when given); `register`: also a
        registered model version (the project's models; a sweep's are not, they would crowd the
        registry that `pepm promote` reads)."""
        name = f"pepm.{meta_model['dataset_id']}.{meta_model['view']}.{meta_model['model_id']}"

        def log(mlflow: Any, experiment_id: str) -> dict[str, str]:
            with mlflow.start_run(
                experiment_id=experiment_id,
                run_name=f"train {meta_model['model_id']} {meta_model['dataset_id']}/{meta_model['view']}",
                tags={**tags, "stage": "train"},
            ) as run:
                mlflow.log_params(_flatten({"model": meta_model["model_params"], "params": resolved, **_protocol(meta_model)}))
                fitted = (meta_model.get("repeats") or {}).get("fitted", [])
                mlflow.log_metrics(
                    {
                        "train_seconds": meta_model["train_seconds"],
                        "n_train_used": meta_model["n_train_used"],
                        "n_splits_fitted": 1 + len(fitted),
                    }
                )
                mlflow.log_artifacts(str(model_dir), artifact_path="model")
                source = f"{run.info.artifact_uri}/model"
            if not register:
                return {"run_id": run.info.run_id}
            client = mlflow.MlflowClient()
            try:  # cheaper than searching first (a search scans the registry)
                client.create_registered_model(name, description="pepm model (see meta_model.json in the artifacts)")
            except mlflow.exceptions.MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            version = client.create_model_version(name, source=source, run_id=run.info.run_id, tags=tags)
            return {"run_id": run.info.run_id, "registered_model": name, "version": str(version.version)}

        return self._log(log)

    def log_evaluation(self, meta_eval: dict[str, Any], summary: dict[str, Any], report_dir: Path, tags: dict[str, str]) -> str:
        metrics = {k: float(v) for k, v in summary.items() if isinstance(v, (int, float))}
        for key in ("accuracy_ci95", "macro_f1_ci95"):
            if key in summary:
                metrics.update({f"{key}_low": summary[key][0], f"{key}_high": summary[key][1]})
        validation = summary.get("validation") or {}  # split.validation_prop: the scores model selection may use
        metrics.update({f"valid_{k}": float(v) for k, v in validation.items() if k in ("accuracy", "macro_f1") and v is not None})
        # split.repeats: accuracy / macro_f1 above are the mean over the splits (with _sd); each split's
        # own score is the metric split_<name> at step = its repeat index (the MLflow UI plots them)
        per_split = [
            (int(e["repeat"]), {f"split_{k}": float(e[k]) for k in ("accuracy", "macro_f1") if k in e})
            for e in summary.get("split_scores", [])
        ]

        def log(mlflow: Any, experiment_id: str) -> str:
            name = f"evaluate {meta_eval['model_id']} {meta_eval['dataset_id']}->{meta_eval['eval_dataset_id']}/{meta_eval['view']}"
            with mlflow.start_run(
                experiment_id=experiment_id, run_name=name, tags={**tags, "stage": "evaluate", "eval_dataset": meta_eval["eval_dataset_id"]}
            ) as run:
                mlflow.log_params(
                    {
                        "model_id": meta_eval["model_id"],
                        "params_hash": meta_eval["params_hash"],
                        "seed": meta_eval["seed"],
                        **_protocol(meta_eval),
                    }
                )
                mlflow.log_metrics(metrics)
                for step, values in per_split:
                    mlflow.log_metrics(values, step=step)
                mlflow.log_artifacts(str(report_dir), artifact_path="report")
                return run.info.run_id

        return self._log(log)


class Journal:
    """A Tracker that writes its calls down (JSON lines) instead of sending them: a sweep run's
    worker records what it would log, and `pepm sweep` replays it (`replay`) as the sweep's one
    MLflow writer. The worker then never imports MLflow (about 1.8 s of a 5 s run) and parallel
    runs do not queue on the SQLite store's single writer. The parent's id is a placeholder,
    resolved at replay; only the fields the Tracker logs are kept."""

    PARENT = "journal:parent"

    def __init__(self, path: Path, fresh: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh:  # a new attempt of the run: what an older one recorded is not its to replay
            self.path.write_text("", encoding="utf-8")

    def _write(self, op: str, **fields: Any) -> None:
        with self.path.open("a", encoding="utf-8") as fh:  # one line per call: a killed writer cuts one line at most
            fh.write(json.dumps({"op": op, **fields}, default=_plain) + "\n")

    def start_parent(self, run_name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
        self._write("start_parent", run_name=run_name, tags=tags, params=params)
        return self.PARENT

    def end_parent(self, run_id: str, status: str, metrics: dict[str, float], tags: dict[str, str] | None = None) -> None:
        self._write("end_parent", run_id=run_id, status=status, metrics=metrics, tags=tags or {})

    def log_training(
        self, meta_model: dict[str, Any], resolved: dict[str, Any], model_dir: Path, tags: dict[str, str], register: bool = True
    ) -> dict[str, str]:
        keep = ("dataset_id", "view", "model_id", "model_params", "train_seconds", "n_train_used")
        meta = {**{k: meta_model[k] for k in keep}, **_protocol(meta_model), **{k: meta_model[k] for k in ("repeats",) if k in meta_model}}
        self._write("log_training", meta_model=meta, resolved=resolved, model_dir=str(model_dir), tags=tags, register=register)
        return {}

    def log_evaluation(self, meta_eval: dict[str, Any], summary: dict[str, Any], report_dir: Path, tags: dict[str, str]) -> str:
        keep = ("model_id", "dataset_id", "eval_dataset_id", "view", "params_hash", "seed")
        meta = {**{k: meta_eval[k] for k in keep}, **_protocol(meta_eval)}
        self._write("log_evaluation", meta_eval=meta, summary=summary, report_dir=str(report_dir), tags=tags)
        return ""


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else str(value)  # numpy scalars stay numbers


def replay(path: Path, tracker: Tracker, unfinished: str = "FAILED") -> str | None:
    """Log a Journal's calls through `tracker`, in order; the parent's MLflow id (None: no parent
    recorded). A parent the journal never ended (its writer was killed, or cancelled) ends
    `unfinished`. A line cut short by a killed writer is its last and is skipped."""
    ids: dict[str, str] = {}
    parent, ended = None, False
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        tags = {k: ids.get(v, v) for k, v in rec.get("tags", {}).items()}
        op = rec["op"]
        if op == "start_parent":
            parent = ids[Journal.PARENT] = tracker.start_parent(rec["run_name"], tags, rec["params"])
        elif op == "end_parent" and rec["run_id"] in ids:
            tracker.end_parent(ids[rec["run_id"]], rec["status"], rec["metrics"], tags)
            ended = True
        elif op == "log_training":
            tracker.log_training(rec["meta_model"], rec["resolved"], Path(rec["model_dir"]), tags, rec["register"])
        elif op == "log_evaluation":
            tracker.log_evaluation(rec["meta_eval"], rec["summary"], Path(rec["report_dir"]), tags)
    if parent and not ended:
        tracker.end_parent(parent, unfinished, {}, {"pepm.failure": "the run's worker ended without ending its MLflow run"})
    return parent
