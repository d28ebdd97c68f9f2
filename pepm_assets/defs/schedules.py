"""Keep staleness current without anyone clicking: observe sources regularly."""

from __future__ import annotations

import dagster as dg

from .jobs import OBSERVE_PARAMS, OBSERVE_RAW


def build_schedules() -> list[dg.ScheduleDefinition]:
    return [
        dg.ScheduleDefinition(
            name=f"{job}_hourly",
            job_name=job,
            cron_schedule="0 * * * *",
            description="Observe sources so that edited corpora or configs show as stale.",
        )
        for job in (OBSERVE_RAW, OBSERVE_PARAMS)
    ]
