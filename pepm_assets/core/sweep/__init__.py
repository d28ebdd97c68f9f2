"""Experiment sweeps (the specification's "superior" orchestrator), plain-Python half.

An experiment YAML (configs/superior/*.yml, spec §5) becomes a plan of runs (axes product x
repeats, seeds derived); each planned run is one Dagster run of the `sweep_run` asset (defs/sweep.py),
isolated under superior/<exp_id>/runs/<run_id>/; the files of spec §4.1 live in superior/<exp_id>/:

    config.py   the experiment config, validated (errors name file and key)
    plan.py     RunSpec, the plan (grid, repeats, seeds, resource classes), plan.tsv
    ledger.py   runs.tsv: one row per planned run, its status and facts, written atomically
    policy.py   oom_policy and early_stop: which planned runs a result skips, stops or re-plans
    memory.py   the hard RAM limit: a process tree's RSS, watched
    execute.py  one planned run in its own folder: split, formats, models, evaluations
    hooks.py    metrics_global.tsv, plots/<metric>__vs__<x>.png, report.md
"""
