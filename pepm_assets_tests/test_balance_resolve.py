"""How a profile's balance settings become a strategy's parameters (`balance.resolve`): which
preset names a strategy accepts, and that a strategy's parameters cannot change once built."""

from __future__ import annotations

import pydantic
import pytest

from pepm_assets.core import balance
from pepm_assets.core.config import ConfigError

PRESETS = {"cap_docs": {"default": {"max_docs": 2000}, "parity": {"max_docs": "min"}}}


def test_a_strategy_without_presets_takes_only_the_default_preset() -> None:
    assert balance.resolve("oversample", "default", {}, PRESETS, "p.yml") == {"target": "max"}
    with pytest.raises(ConfigError) as err:
        balance.resolve("oversample", "parity", {}, PRESETS, "p.yml")
    assert err.value.key == "balance_preset"
    assert err.value.message.startswith("unknown preset 'parity'")


def test_a_strategy_with_presets_refuses_one_it_lacks_even_default() -> None:
    assert balance.resolve("cap_docs", "parity", {}, PRESETS, "p.yml") == {"max_docs": "min"}
    for preset in ("huge", "Default"):
        with pytest.raises(ConfigError, match="unknown preset") as err:
            balance.resolve("cap_docs", preset, {}, PRESETS, "p.yml")
        assert err.value.key == "balance_preset"
    no_default = {"cap_docs": {"parity": {"max_docs": "min"}}}
    with pytest.raises(ConfigError, match="unknown preset 'default'"):
        balance.resolve("cap_docs", "default", {}, no_default, "p.yml")


def test_explicit_params_override_the_preset_and_are_validated() -> None:
    assert balance.resolve("cap_docs", "default", {"max_docs": 5}, PRESETS, "p.yml") == {"max_docs": 5}
    with pytest.raises(ConfigError) as err:
        balance.resolve("cap_docs", "default", {"max_docs": 0}, PRESETS, "p.yml")
    assert err.value.key == "balance_params.max_docs"  # the key the user wrote, nothing after it


def test_a_built_strategy_cannot_change_its_parameters() -> None:
    """Parameters are frozen: what the view's metadata records is what the strategy used."""
    strategy = balance.build("cap_docs", {"max_docs": 5})
    with pytest.raises(pydantic.ValidationError):
        strategy.params.max_docs = 6  # type: ignore[misc]
    assert strategy.params.max_docs == 5


def test_each_strategys_own_defaults_are_its_shipped_default_preset() -> None:
    """A strategy built without a preset (balance.yml edited, or a strategy used from Python) gets
    the values the shipped `default` preset documents, not other ones."""
    from pepm_assets.core.config import load_common
    from pepm_assets_tests.fixtures import REPO

    shipped = load_common(REPO).balance_presets
    checked = 0
    for name in balance.REGISTRY.names():
        default = shipped.get(name, {}).get("default")
        if default is None:
            continue
        assert balance.build(name, {}).params.model_dump() == default, name
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize(
    ("strategy", "key", "refused", "accepted"),
    [
        ("alpha_total", "alpha", [-0.01, 1.01], [0, 1]),
        ("alpha_total", "total", [0, -3], [1]),
        ("cap_tokens", "max_tokens", [0], [1]),
        ("cap_docs", "max_docs", [0, "max"], [1, "min"]),
        ("oversample", "target", [0, "min"], [1, "max"]),
    ],
)
def test_parameter_bounds(strategy: str, key: str, refused: list, accepted: list) -> None:
    """The smallest meaningful values pass, the nonsensical ones are refused before any work."""
    presets = {strategy: {"default": {}}}
    for value in accepted:
        assert balance.resolve(strategy, "default", {key: value}, presets, "p.yml")[key] == value
    for value in refused:
        with pytest.raises(ConfigError) as err:
            balance.resolve(strategy, "default", {key: value}, presets, "p.yml")
        assert err.value.key == f"balance_params.{key}", value


def test_an_unknown_strategy_or_parameter_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown balance strategy 'smote'") as err:
        balance.resolve("smote", "default", {}, PRESETS, "p.yml")
    assert err.value.key == "balance_strategy"
    with pytest.raises(ConfigError) as err:
        balance.resolve("cap_docs", "default", {"max_doc": 3}, PRESETS, "p.yml")
    assert (err.value.key, err.value.message) == ("balance_params.max_doc", "unknown key (strategy 'cap_docs', preset 'default')")
