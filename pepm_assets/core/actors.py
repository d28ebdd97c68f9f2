"""Actor counts and the ideology_actors skeleton (spec §3.1 step 2), generated from a parsed corpus.

`actors_counts_<corpus>.tsv` lists every actor with their group, role, counts, first and last date and
the label each view gives them now ("a -> b" when a dated rule gives them another at their last date
than at their first); `ideology_actors.skeleton.yml` is the same list as YAML, ready to copy into
configs/label_maps/ideology_actors.yml for the actors that need a correction.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

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
    skeleton = {
        "actors": {
            corpus_id: {
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
        }
    }
    yml = out_dir / "ideology_actors.skeleton.yml"
    header = f"# Generated from corpus {corpus_id!r}; copy the actors that need a correction into configs/label_maps/ideology_actors.yml\n"
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml: 4x faster on MPT's ~450 actors
    write_text(yml, header + yaml.dump(skeleton, Dumper=dumper, allow_unicode=True, sort_keys=False))
    return tsv, yml, table
