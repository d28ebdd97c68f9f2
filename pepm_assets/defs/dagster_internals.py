"""Every private Dagster API that pepm uses (`dagster._...`), imported here and nowhere else in
pepm_assets: the one place to update when Dagster moves or changes one of them.

Checked against dagster 1.13.27 (`DAGSTER_CHECKED`; pyproject.toml pins `dagster==1.13.27`).
pepm_assets_tests/test_dagster_internals.py fails, naming the symbol, when one of these names is no
longer where it is imported from, when a signature loses a parameter that pepm passes, when a value
pepm stores or compares changes (the data-version tag), and when the installed dagster is not the
pinned one. Private names have no deprecation period: upgrade dagster by changing the pin, running
that test, then moving DAGSTER_CHECKED.

What each is for:
- staleness (defs/staleness.py): Dagster has no public API to ask whether an asset partition is
  stale. `CachingStaleStatusResolver` is what the UI asks, built on an `AssetGraphView` at a
  `TemporalContext` of now, as Dagster's own test helper does
  (dagster._utils.test.data_versions.get_stale_status_resolver); `StaleStatus` is its answer.
- source versions (defs/sources.py): a runless `AssetObservation`
  (`instance.report_runless_asset_event`) carries its data version as the `DATA_VERSION_TAG` tag,
  which Dagster does not export publicly, and `extract_data_version_from_entry` reads it back from
  an event log entry.
- run submission (defs/sweeper.py): Dagster has no public Python API that puts a run on the
  instance's queue (the UI and `dagster job launch` do it through these): the workspace is loaded
  as the CLI and the daemon load it (a `WorkspaceProcessContext` on a `WorkspaceFileTarget`, then
  the code-location lookups), the run created with its remote origin as `dagster job launch` does
  (`_create_run`), then `instance.submit_run` hands it to the run coordinator.
- the sweep's dequeuer (defs/sweeper.py): `dagster-daemon run` starts every daemon the instance
  requires (sensors, schedules, backfills, monitoring, ...) in a process with its own code server;
  a sweep needs the run queue's alone, so it runs Dagster's `QueuedRunCoordinatorDaemon`
  (`create_daemon_of_type`) with its `run_daemon_loop` in a thread, on the sweep's workspace, at
  the controller's heartbeat and error intervals.
- runs that belong to their job (defs/runner.py): `execute_in_process` creates its run without a
  remote origin, so the UI lists it under no job (a job's Runs tab filters on the
  `.dagster/repository` tag, the Overview timeline drops a run without `repositoryOrigin`). The
  runner has the instance create it with the origin of the workspace's code location
  (`RemoteJobOrigin` of a `RemoteRepositoryOrigin` on a `RegisteredCodeLocationOrigin`: a location
  known by its name, as the workspace names it), which also writes the tag (`REPOSITORY_LABEL_TAG`);
  `SINGLETON_REPOSITORY_NAME` is the repository name of a `Definitions`.
- owners on the observed sources (defs/catalog.py): an observable source asset is a `SourceAsset`,
  which takes no owners and which `map_asset_specs` refuses; `create_external_asset_from_source_asset`
  is what `Definitions` turns it into anyway, an asset definition whose spec takes them.
- the compute logs (defs/compute_logs.py, named in dagster.yaml): Dagster's local compute log
  manager, subclassed to change how a capture mirrors the files to the terminal (a thread, not
  `tail` processes), with the captured-log types its `capture_logs` yields and the folder Dagster
  puts the logs in by default (`compute_logs_directory`), so that the UI reads them as before.
- the instance's storage (defs/sqlite_storage.py, named in dagster.yaml): Dagster's own SQLite
  storage classes, subclassed to keep one engine and one connection per database file where
  Dagster opens both per write (benchmarks/bench_storage.py measures what that saves), and the
  folder layout helpers, so that the files stay exactly Dagster's.
"""

from __future__ import annotations

from dagster._cli.job import _create_run as create_remote_run
from dagster._cli.workspace.cli_target import (
    get_code_location_from_workspace,
    get_remote_job_from_remote_repo,
    get_remote_repository_from_code_location,
)
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
from dagster._core.definitions.data_version import (
    DATA_VERSION_TAG,
    CachingStaleStatusResolver,
    StaleStatus,
    extract_data_version_from_entry,
)
from dagster._core.definitions.external_asset import create_external_asset_from_source_asset
from dagster._core.definitions.repository_definition.valid_definitions import SINGLETON_REPOSITORY_NAME
from dagster._core.instance.ref import compute_logs_directory
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.compute_log_manager import CapturedLogContext, ComputeIOType
from dagster._core.storage.event_log.polling_event_watcher import SqlPollingEventWatcher
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.local_compute_log_manager import IO_TYPE_EXTENSION, LocalComputeLogManager
from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage
from dagster._core.storage.schedules.sqlite.sqlite_schedule_storage import SqliteScheduleStorage
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import (
    DagsterSqliteStorage,
    _event_logs_directory,
    _runs_directory,
    _schedule_directory,
)
from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import WorkspaceFileTarget
from dagster._daemon.controller import (
    DEFAULT_DAEMON_ERROR_INTERVAL_SECONDS,
    DEFAULT_HEARTBEAT_INTERVAL_SECONDS,
    create_daemon_of_type,
)
from dagster._daemon.run_coordinator.queued_run_coordinator_daemon import QueuedRunCoordinatorDaemon
from dagster._time import get_current_datetime

QUEUED_RUN_COORDINATOR = QueuedRunCoordinatorDaemon.daemon_type()

DAGSTER_CHECKED = "1.13.27"

__all__ = [
    "DAGSTER_CHECKED",
    "DATA_VERSION_TAG",
    "DEFAULT_DAEMON_ERROR_INTERVAL_SECONDS",
    "DEFAULT_HEARTBEAT_INTERVAL_SECONDS",
    "IO_TYPE_EXTENSION",
    "QUEUED_RUN_COORDINATOR",
    "REPOSITORY_LABEL_TAG",
    "SINGLETON_REPOSITORY_NAME",
    "SQLITE_BUSY_TIMEOUT_SECONDS",
    "AssetGraphView",
    "CachingStaleStatusResolver",
    "CapturedLogContext",
    "ComputeIOType",
    "DagsterSqliteStorage",
    "DagsterStorage",
    "LocalComputeLogManager",
    "QueuedRunCoordinatorDaemon",
    "RegisteredCodeLocationOrigin",
    "RemoteJobOrigin",
    "RemoteRepositoryOrigin",
    "SqlPollingEventWatcher",
    "SqliteEventLogStorage",
    "SqliteRunStorage",
    "SqliteScheduleStorage",
    "StaleStatus",
    "TemporalContext",
    "WorkspaceFileTarget",
    "WorkspaceProcessContext",
    "_event_logs_directory",
    "_runs_directory",
    "_schedule_directory",
    "compute_logs_directory",
    "create_daemon_of_type",
    "create_external_asset_from_source_asset",
    "create_remote_run",
    "extract_data_version_from_entry",
    "get_code_location_from_workspace",
    "get_current_datetime",
    "get_remote_job_from_remote_repo",
    "get_remote_repository_from_code_location",
]
