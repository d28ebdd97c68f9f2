"""ideology_actors.skeleton.yml is written as text (core/actors.py): whatever the speakers and
groups are called, YAML must read back exactly the entries it was written from."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pepm_assets.core import actors, labels

TEXT = st.text(st.characters(codec="utf-8"), max_size=12)  # every code point but lone surrogates
WORDISH = st.sampled_from(
    [
        "null",
        "Yes",
        "off",
        "~",
        "1er",
        "2013-01-29",
        "0x1F",
        "1e3",
        ".inf",
        "-",
        "a: b",
        "#x",
        "&a",
        "*a",
        "!t",
        "|",
        ">",
        "a\x85b",
        "a\u2028b",
        "\ufeffa",
        "a\x7f",
        " a ",
        "a\n",
    ]
)
VALUE = st.one_of(st.none(), st.integers(-(10**6), 10**6), TEXT, WORDISH)
ENTRIES = st.dictionaries(
    st.one_of(TEXT, WORDISH), st.dictionaries(st.sampled_from(["group", "role", "category", "n_docs"]), VALUE), max_size=6
)


@settings(max_examples=300, deadline=None)
@given(corpus=st.one_of(TEXT, WORDISH), entries=ENTRIES)
def test_the_skeleton_reads_back_as_the_entries_it_was_written_from(corpus: str, entries: dict) -> None:
    assert yaml.safe_load(actors.skeleton_text(corpus, entries)) == {"actors": {corpus: entries}}


def test_the_skeleton_of_the_shipped_corpora_reads_back_and_keeps_the_label_maps_layout(shipped_corpora: Path, tmp_path: Path) -> None:
    from pepm_assets_tests.fixtures import REPO, shipped_docs

    label_map = labels.load_label_map(REPO / "configs" / "label_maps" / "ideology.yml", REPO)
    for corpus_id in ("mpt", "an_debats", "an_amendements"):
        docs_file = tmp_path / f"{corpus_id}.parquet"
        pq.write_table(shipped_docs(shipped_corpora, corpus_id), docs_file)
        _, yml, table = actors.write_actor_files(corpus_id, docs_file, label_map, tmp_path)
        text = yml.read_text(encoding="utf-8")
        assert yaml.safe_load(text) == {"actors": {corpus_id: actors.skeleton_entries(table)}}
        lines = text.splitlines()
        assert len(lines) == 3 + table["speaker"].nunique() > 10  # one line per actor, as in ideology_actors.yml
        assert all(line.startswith("    ") and line.endswith("}") for line in lines[3:])


def test_a_long_speaker_key_does_not_push_the_other_lines_mappings_to_its_length() -> None:
    """The mappings start in one column after the usual keys (MPT has a 57-character pseudo-speaker
    among 454 keys whose 95th percentile is 29): a longer key gets one space after it."""
    long = "Plusieurs_députés_du_groupe_SRC_et_du_groupe_écologiste"
    entries = {"Jean_Dupont": {"group": "SRC"}, "Marie_Curie_Sklodowska": {"group": "UMP"}, long: {"group": None}}
    lines = actors.skeleton_text("mpt", entries).splitlines()[3:]
    starts = [line.index("{") for line in lines]
    assert starts[0] == starts[1] == len("    Marie_Curie_Sklodowska: ")
    assert lines[2] == f"    {long}: {{group: null}}"
