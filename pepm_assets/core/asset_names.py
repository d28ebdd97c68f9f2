"""The names of the per-model assets, made and parsed here only: `model/<id>` and `evaluation/<id>`
(Dagster asset keys with two parts, ["model", id]: the asset graph and catalog group them under
`model` and `evaluation`, which reads better than one flat `model__<id>` name each).

A name is the key's user string (what the UI, `pepm status` and the run reports print); Dagster
names an asset's op, so its step, after the key's Python identifier: `model__<id>`.
"""

from __future__ import annotations

MODEL, EVALUATION = "model", "evaluation"
KINDS = (MODEL, EVALUATION)


def asset_name(kind: str, model_id: str) -> str:
    """`model/<id>` or `evaluation/<id>`."""
    if kind not in KINDS:
        raise ValueError(f"unknown per-model asset kind {kind!r} (kinds: {', '.join(KINDS)})")
    return f"{kind}/{model_id}"


def model_asset(model_id: str) -> str:
    return asset_name(MODEL, model_id)


def evaluation_asset(model_id: str) -> str:
    return asset_name(EVALUATION, model_id)


def key_path(name: str) -> list[str]:
    """The Dagster asset key path of an asset name: ["model", id] for `model/<id>`, [name] otherwise."""
    return name.split("/")


def parse(name: str) -> tuple[str, str] | None:
    """(kind, model id) of a per-model asset name or of its step key (`model__<id>`); None for another asset."""
    for kind in KINDS:
        for prefix in (f"{kind}/", f"{kind}__"):
            if name.startswith(prefix) and len(name) > len(prefix):
                return kind, name[len(prefix) :]
    return None


def step_key(name: str) -> str:
    """The step that materializes an asset: Dagster names it after the key's Python identifier."""
    return "__".join(key_path(name))
