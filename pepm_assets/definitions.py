"""The one Definitions object of the code location (workspace.yaml -> pepm_assets.definitions).

Partitions come from the project's configs, so the definitions are built for a project root:
`build_definitions(root)`; `defs` is the one for the current project.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)  # observable_source_asset is beta in 1.13

from .core import settings
from .core.config import load_common, project_root
from .core.labels import load_label_map
from .defs.assets.analysis import build_analysis_assets
from .defs.assets.drift import build_drift_assets
from .defs.assets.prepare import build_prepare_assets
from .defs.assets.train import RESOURCE_CLASS_TAG, MlflowTracking, build_train_assets
from .defs.catalog import with_owners_and_kinds
from .defs.jobs import build_jobs
from .defs.partitions import corpus_partitions, view_partitions
from .defs.resources import PepmProject
from .defs.schedules import build_schedules
from .defs.sweep import sweep_job, sweep_run


def build_definitions(root: Path | None = None) -> dg.Definitions:
    root = Path(root).resolve() if root else project_root()
    common = load_common(root)
    label_map = load_label_map(root / "configs" / "label_maps" / "ideology.yml", root)
    # Runs launched from the UI: one process per step, started by a forkserver with pepm preloaded
    # (cheaper than spawn); the CLI and tests execute in process. Swap for celery/dask/k8s here.
    # resource classes (models.yml) bound how many steps of each kind run at once
    executor = dg.multiprocess_executor.configured(
        {
            "max_concurrent": settings.MAX_CONCURRENT.get(),
            "start_method": {"forkserver": {"preload_modules": ["pepm_assets.definitions"]}},
            "tag_concurrency_limits": [
                {"key": RESOURCE_CLASS_TAG, "value": "heavy", "limit": 1},
                {"key": RESOURCE_CLASS_TAG, "value": "medium", "limit": 2},
            ],
        }
    )
    views_pd = view_partitions(common, label_map)
    jobs = {job.name: job for job in [*build_jobs(), sweep_job()]}
    schedules, sensors = build_schedules(jobs)
    return dg.Definitions(
        assets=with_owners_and_kinds(
            [
                *build_prepare_assets(common, label_map),
                *build_train_assets(common, views_pd),
                *build_drift_assets(corpus_partitions(common), views_pd, sorted(common.corpora)),
                *build_analysis_assets(views_pd),
                sweep_run,
            ]
        ),
        jobs=list(jobs.values()),
        schedules=schedules,
        sensors=sensors,
        resources={"project": PepmProject(root=str(root)), "mlflow": MlflowTracking()},
        executor=executor,
    )


@dg.definitions
def defs() -> dg.Definitions:
    """The project's definitions, built when Dagster loads the code location, not when this module
    is imported: importing it (the CLI, the runner, the tests) reads no config, so a broken config
    fails what reads it, never an import."""
    return build_definitions()
