"""The project resource: where the configs and data live. Swapped by configuration in tests."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ..core.config import CommonConfig, load_common, project_root
from ..core.paths import ProjectPaths


class PepmProject(dg.ConfigurableResource):
    root: str = ""

    @property
    def path(self) -> Path:
        return Path(self.root).resolve() if self.root else project_root()

    @property
    def paths(self) -> ProjectPaths:
        return ProjectPaths(self.path)

    def common(self) -> CommonConfig:
        return load_common(self.path)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A run launched without the CLI (UI, schedule, sensor) records its partition's source
        versions before any step reads them, so it is versioned as a CLI run is (defs/sources.py)."""
        run = context.run
        if run is None or context.instance is None:
            return
        from .sources import observe_for_run

        observe_for_run(context.instance, self.path, dict(run.tags))
