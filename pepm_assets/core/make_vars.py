"""The specification's Make variables (`make run SEED=3 TRAIN_PROP=0.7 …`, and an experiment's
`make_vars`) mapped onto profile parameters, as overrides. Nothing calls Make: the Makefile passes
the variables it was given on its command line to `pepm run --make-var NAME=value`, and an unknown
name is an error that lists the known ones (a silently ignored SEDD=7 would run seed 42)."""

from __future__ import annotations

import difflib

from .config import ConfigError

STAGES = ("prepare", "train", "evaluate", "pipeline")  # STAGE's values (`pepm run --stage`); no Dagster import to check one

# Make variable -> (profile key, how the value is written: "scalar" | "list")
MAKE_VARS: dict[str, tuple[str, str]] = {
    "SEED": ("seed", "scalar"),
    "TRAIN_PROP": ("train_prop", "scalar"),
    "HARDWARE_PRESET": ("hardware_preset", "scalar"),
    "BALANCE_STRATEGY": ("balance_strategy", "scalar"),
    "BALANCE_PRESET": ("balance_preset", "scalar"),
    "DATASET_ID": ("dataset_id", "scalar"),
    "EVAL_DATASET_ID": ("eval_dataset_id", "scalar"),
    "VIEW": ("view", "scalar"),
    "LABEL_MAP": ("label_map", "scalar"),
    "CORPUS_ID": ("dataset_id", "scalar"),  # the spec's single-corpus mode: the dataset named as the corpus
    "CORPUS_IDS": ("data.corpus_ids", "list"),
    "MERGE_MODE": ("data.merge_mode", "scalar"),
    "FAMILY": ("families", "list"),
    "FAMILIES": ("families", "list"),
    "MODELS": ("models", "list"),
    "GROUP_BY": ("split.group_by", "scalar"),
    "COMPARE_BY": ("analysis.compare_by", "list"),
    "MIN_TOKENS": ("filters.min_tokens", "scalar"),
    "MAX_DOCS_PER_CORPUS": ("filters.max_docs_per_corpus", "scalar"),
}


def to_overrides(assignments: list[str], source: str = "make variables") -> list[str]:
    """["SEED=3", "FAMILY=spacy", "MODELS=a,b"] -> ["seed=3", "families=[spacy]", "models=[a,b]"]."""
    out = []
    for item in assignments:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(source, item, "expected NAME=value")
        if name not in MAKE_VARS:
            close = difflib.get_close_matches(name, MAKE_VARS, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(source, name, f"unknown Make variable ({hint}known: STAGE, PROFILE, OVERRIDES, {', '.join(MAKE_VARS)})")
        key, kind = MAKE_VARS[name]
        if kind == "list":
            items = [v.strip() for v in value.replace(" ", ",").split(",") if v.strip()]
            value = "[" + ",".join(items) + "]"
        out.append(f"{key}={value}")
    return out
