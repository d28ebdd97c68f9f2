"""Actor counts and the ideology_actors skeleton (spec §3.1 step 2), generated from a parsed corpus.

`actors_counts_<corpus>.tsv` lists every actor with their group, role, counts, first and last date and
the label each view gives them now ("a -> b" when a dated rule gives them another at their last date
than at their first); `ideology_actors.skeleton.yml` is the same list as YAML, ready to copy into
configs/label_maps/ideology_actors.yml for the actors that need a correction.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import atomic_path, write_text
from .labels import LabelMap, views_table


def actor_counts(docs: pd.DataFrame) -> pd.DataFrame:
    """One row per (speaker, name, group, role): documents, tokens, and the first and last date ("" when
    none of their documents has one), which the dated rules of the label map are read at."""
    if "date" in docs.columns:
        docs = docs.assign(date=docs["date"].replace("", None))
    else:
        docs = docs.assign(date=None)
    grouped = docs.groupby(["speaker", "speaker_name", "group", "role"], dropna=False)
    table = grouped.agg(
        n_docs=("doc_id", "size"), n_tokens=("n_tokens", "sum"), first_date=("date", "min"), last_date=("date", "max")
    ).reset_index()
    table[["first_date", "last_date"]] = table[["first_date", "last_date"]].fillna("")
    return table.sort_values(["n_docs", "speaker"], ascending=[False, True], ignore_index=True)


def write_actor_files(corpus_id: str, docs_file: Path, label_map: LabelMap, out_dir: Path) -> tuple[Path, Path, pd.DataFrame]:
    docs = pd.read_parquet(docs_file, columns=["doc_id", "speaker", "speaker_name", "group", "role", "n_tokens", "date"])
    table = views_table(label_map, corpus_id, actor_counts(docs))
    tsv = out_dir / f"actors_counts_{corpus_id}.tsv"
    with atomic_path(tsv) as tmp:
        table.to_csv(tmp, sep="\t", index=False)
    yml = out_dir / "ideology_actors.skeleton.yml"
    write_text(yml, skeleton_text(corpus_id, skeleton_entries(table)))
    return tsv, yml, table


def skeleton_entries(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """speaker -> what the skeleton says of them (views_table's row)."""
    return {
        row.speaker: {
            "group": row.group,
            "role": row.role,
            "n_docs": int(row.n_docs),
            **({"first_date": row.first_date, "last_date": row.last_date} if row.first_date else {}),
            "category": row.category or None,
            "exclusion": row.exclusion or None,
        }
        for row in table.itertuples(index=False)
    }


SKELETON_ALIGN_MAX = 32  # characters of a speaker key (with its colon) that the skeleton's columns make room for


def skeleton_text(corpus_id: str, entries: dict[str, dict[str, Any]]) -> str:
    """The skeleton as YAML in ideology_actors.yml's own layout, one flow mapping per actor (a line
    to copy), written directly: the same document as `yaml.safe_load` reads it, at a tenth of
    PyYAML's dump time (~0.03 s per corpus pipeline on MPT)."""
    keys = [_scalar(speaker) + ":" for speaker in entries]
    # the mappings aligned after the usual keys; a longer one (MPT's "Plusieurs_députés_du_groupe_...")
    # is followed by one space rather than pushing every line to its length
    width = max((len(k) for k in keys if len(k) <= SKELETON_ALIGN_MAX), default=0)
    lines = [
        f"# Generated from corpus {corpus_id!r}; copy the actors that need a correction into configs/label_maps/ideology_actors.yml",
        "actors:",
        f"  {_scalar(corpus_id)}:" + ("" if entries else " {}"),
    ]
    for key, fields in zip(keys, entries.values()):
        inner = ", ".join(f"{name}: {_scalar(value)}" for name, value in fields.items())
        lines.append(f"    {key.ljust(width)} {{{inner}}}")
    return "\n".join(lines) + "\n"


# what a YAML stream may not hold raw (PyYAML's reader refuses them) or reads as a line break
_NOT_RAW = re.compile("[^\x09\x0a\x0d\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]|[\u2028\u2029]")


_PLAIN = re.compile(r"[^\W\d][\w\-]*")  # a word that YAML reads as this string when left unquoted (but the words below)
_RESERVED = {"null", "true", "false", "yes", "no", "on", "off", "y", "n"}  # YAML 1.1's null and booleans


def _scalar(value: Any) -> str:
    """A YAML scalar: null, an integer, a plain word (`Jean_Dupont`, `member`), or a double-quoted
    string (JSON's quoting, which YAML's double-quoted style reads the same, with what YAML may not
    hold raw escaped too)."""
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    value = str(value)
    if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
        return value
    return _NOT_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", json.dumps(value, ensure_ascii=False))
