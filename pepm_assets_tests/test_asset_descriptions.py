"""Asset and check descriptions are Markdown in the Dagster UI: a placeholder such as `<dataset>`
outside a code span is read as an HTML tag and vanishes ("data/interim///{train,job}.tsv")."""

from __future__ import annotations

import re

PLACEHOLDER = re.compile(r"<\w+>")


def _outside_code(text: str) -> str:
    return re.sub(r"`[^`]*`", "", text)


def test_no_description_hides_a_placeholder_from_the_ui() -> None:
    from pepm_assets.definitions import defs

    graph = defs().resolve_asset_graph()
    descriptions = {str(key): graph.get(key).description or "" for key in graph.get_all_asset_keys()}
    descriptions.update({str(check): graph.get_check_spec(check).description or "" for check in graph.asset_check_keys})
    assert len(descriptions) > 10
    hidden = {key: PLACEHOLDER.findall(_outside_code(text)) for key, text in descriptions.items()}
    assert {key: found for key, found in hidden.items() if found} == {}
    assert any("`data/interim/<dataset>/<view>/" in text for text in descriptions.values())
