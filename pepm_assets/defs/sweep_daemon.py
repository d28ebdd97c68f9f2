"""`python -m pepm_assets.defs.sweep_daemon -w workspace.yaml`: the daemon `pepm sweep` starts
when none serves the instance. Dagster's daemon controller with one daemon, the run queue's: what
`dagster-daemon run` would start on the sweep's instance minus the sensors, schedules, backfills
and monitoring, which are `pepm dev`'s daemon's business (two daemons would tick the project's
drift sensors twice) and would spend the sweep's cores on their loops. Stopped by SIGINT."""

from __future__ import annotations

import argparse
import sys

import dagster as dg

from . import dagster_internals as internals

QUEUE = "QUEUED_RUN_COORDINATOR"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sweep_daemon", description=__doc__.split("\n\n")[0])
    parser.add_argument("-w", "--workspace", required=True, help="the project's workspace.yaml")
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    try:
        with (
            internals.capture_interrupts(),
            dg.DagsterInstance.get() as instance,
            internals.daemon_controller_from_instance(
                instance,
                workspace_load_target=internals.WorkspaceFileTarget(paths=[args.workspace]),
                gen_daemons=lambda inst: [internals.create_daemon_of_type(QUEUE, inst)],
                log_level=args.log_level,
                code_server_log_level=args.log_level,
            ) as controller,
        ):
            controller.check_daemon_loop()
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
