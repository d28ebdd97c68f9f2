"""`python -m pepm_assets.core.sweep.run_single`: one planned run of plan.tsv, in this process
(spec §7; `python -m scripts.superior.run_single` is an alias). The sweep_run asset starts it as a
child process when the experiment sets a hard RAM limit, so that the process tree it watches is
the run's alone; it can also re-run one planned run by hand, outside Dagster."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..tracking import Journal, Tracker
from ..training import draw_confusions
from .execute import run_one
from .plan import read_plan
from .spec import exp_dir, run_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run_single", description=__doc__)
    parser.add_argument("--root", default=".", help="project root")
    parser.add_argument("--exp-id", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--extra-override", action="append", default=[], help="key=value after the planned ones (a backoff's caps)")
    parser.add_argument(
        "--journal", default="", help="record the MLflow logging in this journal (core/tracking.Journal), nested under its parent"
    )
    parser.add_argument("--no-mlflow", action="store_true")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    plan = {s.run_id: s for s in read_plan(exp_dir(root, args.exp_id) / "plan.tsv")}
    if args.run_id not in plan:
        print(f"run_single: {args.run_id} is not in superior/{args.exp_id}/plan.tsv", file=sys.stderr)
        return 2
    tracker = None if args.no_mlflow else Journal(Path(args.journal)) if args.journal else Tracker(root, experiment=args.exp_id)
    tags = {"mlflow.parentRunId": Journal.PARENT} if args.journal else {}
    summary = run_one(root, plan[args.run_id], tracker, args.extra_override, tags, on_step=lambda s: print(f"pepm: {s}", flush=True))
    if not args.journal:  # a run by hand: its PNGs now (under the sweep_run asset, its caller draws them)
        draw_confusions(run_dir(root, args.exp_id, args.run_id) / "reports")
    print(f"pepm: {args.run_id} done in {summary['duration_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
