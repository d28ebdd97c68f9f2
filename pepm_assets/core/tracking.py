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

A run spans the work it records: created at the fit's (evaluation's) start and ended at its end,
from meta_model.json / meta_eval.json's `started_at` / `ended_at`, however late it is logged (a
sweep's journal is replayed after the run). An evaluation run has each class's precision, recall,
F1 and support as metrics (`f1_<class>`, ...), the tags `train_dataset_id` and `eval_dataset_id`,
and every run the `dagster_run_id` its step gives, with `dagster_run_url` when PEPM_DAGSTER_URL
names the Dagster UI; the other way, `run_url` is a run's page in the MLflow UI (PEPM_MLFLOW_UI_URL),
which the Dagster metadata links to.

The leaderboard names a champion per dataset x view (`set_champion`): its best model's training
run is registered under `pepm.<dataset>.<view>` with the alias `champion`, the version reusing the
model's logged folder (no artifact copied), so `models:/pepm.<dataset>.<view>@champion` is always
the best model of that dataset x view.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from . import settings, sqlite_settings
from .locks import exclusive_lock

T = TypeVar("T")
EXPERIMENT = "pepm"
CHAMPION = "champion"
TIMES = ("started_at", "ended_at")  # meta_model / meta_eval: when the fit / the evaluation ran (the MLflow run's span)
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


def champion_name(dataset_id: str, view: str) -> str:
    """The registered model whose `champion` alias is the best model of a dataset x view."""
    return f"pepm.{dataset_id}.{view}"


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


def span_ms(meta: dict[str, Any], seconds_key: str) -> tuple[int, int]:
    """(start, end) in ms since the epoch of the work a meta_model / meta_eval records: its
    `started_at` / `ended_at` (ISO timestamps written around the fit or the evaluation), so that
    the MLflow run spans the work itself, not the few ms of logging it afterwards. A meta written
    before they were: it ends now and lasts `seconds_key` (train_seconds, predict_seconds)."""
    try:
        start = int(datetime.fromisoformat(meta["started_at"]).timestamp() * 1000)
        end = int(datetime.fromisoformat(meta["ended_at"]).timestamp() * 1000)
        return start, max(start, end)
    except (KeyError, TypeError, ValueError):
        end = int(time.time() * 1000)
        return end - int(float(meta.get(seconds_key) or 0) * 1000), end


def _metric_name(text: str) -> str:
    """A class name as part of an MLflow metric name: letters (accents too), digits, _ - and spaces
    kept, anything else (a slash, a dot: MLflow refuses names that read as other paths) as _."""
    return re.sub(r"[^\w\- ]", "_", str(text)) or "_"


def per_class_metrics(report_dir: Path) -> dict[str, float]:
    """precision_<class>, recall_<class>, f1_<class>, support_<class> of the report's metrics.json
    (`per_class`: the canonical split's, as its confusion matrix); {} for a clustering or a report
    without it."""
    try:
        per_class = json.loads((Path(report_dir) / "metrics.json").read_text(encoding="utf-8")).get("per_class") or {}
    except (OSError, ValueError):
        return {}
    out: dict[str, float] = {}
    for label, scores in per_class.items():
        for key in ("precision", "recall", "f1", "support"):
            if isinstance(scores.get(key), (int, float)):
                out[f"{key}_{_metric_name(label)}"] = float(scores[key])
    return out


def with_links(tags: dict[str, str]) -> dict[str, str]:
    """The run's tags, with `dagster_run_url` (the Dagster UI page of `dagster_run_id`) when
    PEPM_DAGSTER_URL names the UI; no tag with an empty value for `partition` (an unpartitioned
    step has none)."""
    out = {k: v for k, v in tags.items() if not (k == "partition" and v == "")}
    base = settings.DAGSTER_URL.get()
    if base and out.get("dagster_run_id") and "dagster_run_url" not in out:
        out["dagster_run_url"] = f"{base}/runs/{out['dagster_run_id']}"
    return out


def _dataset_tags(meta: dict[str, Any]) -> dict[str, str]:
    """What an evaluation was trained on and scored on, as tags (a cross-corpus cell has both)."""
    return {
        "train_dataset_id": str(meta["dataset_id"]),
        "eval_dataset_id": str(meta.get("eval_dataset_id") or meta["dataset_id"]),
        "eval_dataset": str(meta.get("eval_dataset_id") or meta["dataset_id"]),
    }


def _open_run(mlflow: Any, client: Any, experiment_id: str, run_name: str, tags: dict[str, str], start_ms: int) -> Any:
    """client.create_run at `start_ms`, with the tags mlflow.start_run would add (source, user, git)."""
    from mlflow.tracking.context import registry

    resolved = registry.resolve_tags({**with_links(tags), "mlflow.runName": run_name})
    return client.create_run(experiment_id, start_time=start_ms, tags=resolved, run_name=run_name)


@contextlib.contextmanager
def _finished(client: Any, run_id: str, end_ms: int):
    """FINISHED at `end_ms` (the work's end) once the block has logged everything; FAILED, now, if
    it raised (as mlflow.start_run's block would leave it)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED", end_time=end_ms)


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
        key = (self.uri, self.experiment)
        if key not in _EXPERIMENT_IDS:
            with _first_use_lock(self.uri):  # the store's tables, then the experiment, made once
                client = mlflow.MlflowClient(self.uri)
                experiment = client.get_experiment_by_name(self.experiment)
                if experiment is None:
                    artifacts = (self.root / "mlruns" / "artifacts").resolve().as_uri() if self.uri.startswith("sqlite") else None
                    _EXPERIMENT_IDS[key] = _retry(lambda: client.create_experiment(self.experiment, artifact_location=artifacts))
                else:
                    _EXPERIMENT_IDS[key] = experiment.experiment_id
        return mlflow, _EXPERIMENT_IDS[key]

    def _log(self, log: Callable[[Any, Any, str], T]) -> T:
        """`log(mlflow, client, experiment_id)`, retried while the store is busy. The client names
        this tracker's store: nothing sets MLflow's process-wide URI, which would repoint the
        caller's own MLflow, and through MLFLOW_TRACKING_URI the processes it starts afterwards."""
        mlflow, experiment_id = self._mlflow()
        client = mlflow.MlflowClient(self.uri)
        return _retry(lambda: log(mlflow, client, experiment_id))

    def run_url(self, run_id: str) -> str:
        """The page of an MLflow run of this tracker's experiment in the MLflow UI (PEPM_MLFLOW_UI_URL)."""
        _mlflow, experiment_id = self._mlflow()
        return f"{settings.MLFLOW_UI_URL.get().rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def set_champion(self, dataset_id: str, view: str, model_id: str, model_version: str) -> dict[str, str] | None:
        """Alias `champion` of the registered model `pepm.<dataset>.<view>` on the training run of
        `model_id` at its lineage version `model_version` (found through the model's own registered
        version, `pepm.<dataset>.<view>.<model_id>`, tagged with it). A version is created only when
        the champion changes to a run not registered there yet. None when that training was not
        registered (MLflow was off when it ran)."""
        name = champion_name(dataset_id, view)

        def log(mlflow: Any, client: Any, _experiment_id: str) -> dict[str, str] | None:
            own = client.search_model_versions(f"name = '{name}.{model_id}' and tags.version = '{model_version}'")
            if not own:
                return None
            trained = max(own, key=lambda v: int(v.version))
            try:
                current = client.get_model_version_by_alias(name, CHAMPION)
            except mlflow.exceptions.MlflowException:
                current = None
            if current is not None and current.run_id == trained.run_id:
                return {"registered_model": name, "version": str(current.version), "run_id": trained.run_id, "model": model_id}
            try:
                client.create_registered_model(name, description=f"pepm: the best model of {dataset_id}/{view} (alias {CHAMPION})")
            except mlflow.exceptions.MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            found = client.search_model_versions(f"name = '{name}' and run_id = '{trained.run_id}'")
            version = (
                found[0]
                if found
                else client.create_model_version(
                    name, source=trained.source, run_id=trained.run_id, tags={"model": model_id, "version": model_version}
                )
            )
            client.set_registered_model_alias(name, CHAMPION, str(version.version))
            return {"registered_model": name, "version": str(version.version), "run_id": trained.run_id, "model": model_id}

        return self._log(log)

    def start_parent(self, run_name: str, tags: dict[str, str], params: dict[str, Any]) -> str:
        """An MLflow run that stays open while its children (trainings, evaluations: `parent_run_id`)
        are logged: a sweep run's, one per Dagster run (dagster-mlflow's model). Ended by end_parent."""

        def log(mlflow: Any, client: Any, experiment_id: str) -> str:
            run = client.create_run(experiment_id, tags={**with_links(tags), "mlflow.runName": run_name})
            client.log_batch(run.info.run_id, params=[mlflow.entities.Param(k, v) for k, v in _flatten(params).items()])
            return run.info.run_id

        return self._log(log)

    def end_parent(self, run_id: str, status: str, metrics: dict[str, float], tags: dict[str, str] | None = None) -> None:
        """FINISHED or FAILED, with the run's summary metrics and last tags."""

        def log(mlflow: Any, client: Any, _experiment_id: str) -> None:
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

        def log(mlflow: Any, client: Any, experiment_id: str) -> dict[str, str]:
            start, end = span_ms(meta_model, "train_seconds")
            run_name = f"train {meta_model['model_id']} {meta_model['dataset_id']}/{meta_model['view']}"
            run = _open_run(mlflow, client, experiment_id, run_name, {**tags, "stage": "train"}, start)
            params = _flatten({"model": meta_model["model_params"], "params": resolved, **_protocol(meta_model)})
            fitted = (meta_model.get("repeats") or {}).get("fitted", [])
            values = {
                "train_seconds": meta_model["train_seconds"],
                "n_train_used": meta_model["n_train_used"],
                "n_splits_fitted": 1 + len(fitted),
            }
            with _finished(client, run.info.run_id, end):  # the run spans the fit
                client.log_batch(
                    run.info.run_id,
                    metrics=[mlflow.entities.Metric(k, float(v), end, 0) for k, v in values.items()],
                    params=[mlflow.entities.Param(k, v) for k, v in params.items()],
                )
                client.log_artifacts(run.info.run_id, str(model_dir), artifact_path="model")
            source = f"{run.info.artifact_uri}/model"
            if not register:
                return {"run_id": run.info.run_id}
            try:  # cheaper than searching first (a search scans the registry)
                client.create_registered_model(name, description="pepm model (see meta_model.json in the artifacts)")
            except mlflow.exceptions.MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            version = client.create_model_version(name, source=source, run_id=run.info.run_id, tags=tags)
            return {"run_id": run.info.run_id, "registered_model": name, "version": str(version.version)}

        return self._log(log)

    def log_evaluation(self, meta_eval: dict[str, Any], summary: dict[str, Any], report_dir: Path, tags: dict[str, str]) -> str:
        """An evaluation run; its id. Logged once: when `tags` name the evaluation's lineage version
        and a finished run of that version on the same dataset exists (the cross-corpus matrix
        scored a diagonal cell whose evaluation was stale, then evaluation/<model> scored it
        again), that run's id is returned and nothing is logged."""
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
        metrics.update(per_class_metrics(report_dir))  # precision_<class>, recall_<class>, f1_<class>, support_<class>
        params = {
            "model_id": meta_eval["model_id"],
            "params_hash": meta_eval["params_hash"],
            "seed": meta_eval["seed"],
            **_protocol(meta_eval),
        }

        version, scored_on = tags.get("version"), _dataset_tags(meta_eval)["eval_dataset_id"]

        def log(mlflow: Any, client: Any, experiment_id: str) -> str:
            if version:  # this evaluation (its lineage version: same fit, same job set, same scores) logged already?
                query = (
                    f"tags.version = '{version}' and tags.stage = 'evaluate' and tags.eval_dataset_id = '{scored_on}' "
                    "and attributes.status = 'FINISHED'"
                )
                found = client.search_runs([experiment_id], filter_string=query, max_results=1)
                if found:
                    return found[0].info.run_id
            start, end = span_ms(meta_eval, "predict_seconds")
            name = f"evaluate {meta_eval['model_id']} {meta_eval['dataset_id']}->{meta_eval['eval_dataset_id']}/{meta_eval['view']}"
            run = _open_run(mlflow, client, experiment_id, name, {**tags, "stage": "evaluate", **_dataset_tags(meta_eval)}, start)
            run_id = run.info.run_id
            with _finished(client, run_id, end):  # the run spans the evaluation
                client.log_batch(
                    run_id,
                    metrics=[mlflow.entities.Metric(k, v, end, 0) for k, v in metrics.items()]
                    + [mlflow.entities.Metric(k, v, end, step) for step, values in per_split for k, v in values.items()],
                    params=[mlflow.entities.Param(k, str(v)) for k, v in params.items()],
                )
                client.log_artifacts(run_id, str(report_dir), artifact_path="report")
            return run_id

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
        optional = ("repeats", *TIMES)
        meta = {**{k: meta_model[k] for k in keep}, **_protocol(meta_model), **{k: meta_model[k] for k in optional if k in meta_model}}
        self._write("log_training", meta_model=meta, resolved=resolved, model_dir=str(model_dir), tags=tags, register=register)
        return {}

    def log_evaluation(self, meta_eval: dict[str, Any], summary: dict[str, Any], report_dir: Path, tags: dict[str, str]) -> str:
        keep = ("model_id", "dataset_id", "eval_dataset_id", "view", "params_hash", "seed")
        optional = ("predict_seconds", *TIMES)
        meta = {**{k: meta_eval[k] for k in keep}, **_protocol(meta_eval), **{k: meta_eval[k] for k in optional if k in meta_eval}}
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
