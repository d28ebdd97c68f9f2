"""The private Dagster API that pepm relies on (pepm_assets/defs/dagster_internals.py) is still where
pepm imports it from, with the signatures and values pepm uses, in the dagster version pyproject.toml
pins. Each failure names the symbol; the module list is read from dagster_internals.py's own
imports (without importing it), so a name added there is checked here too."""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import dagster as dg
import pytest

from .fixtures import REPO

INTERNALS = REPO / "pepm_assets" / "defs" / "dagster_internals.py"
WHERE = "pepm_assets/defs/dagster_internals.py"


def _pinned_dagster() -> str:
    pins = re.findall(r'^\s*"dagster\s*==\s*([\w.]+)",?\s*$', (REPO / "pyproject.toml").read_text(encoding="utf-8"), re.MULTILINE)
    assert len(pins) == 1, f'pyproject.toml: expected one exact pin `"dagster==X"` in the dependencies, found {pins}'
    return pins[0]


def _checked_version() -> str:
    found = re.search(r'^DAGSTER_CHECKED = "([^"]+)"$', INTERNALS.read_text(encoding="utf-8"), re.MULTILINE)
    assert found, f'{WHERE}: no DAGSTER_CHECKED = "<version>" line'
    return found.group(1)


def _private_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every `from dagster._... import name` and `import dagster._...` of a file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("dagster._"):
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.startswith("dagster._")]
    return found


def test_the_installed_dagster_is_the_pinned_one_the_internals_were_checked_against() -> None:
    pinned, checked = _pinned_dagster(), _checked_version()
    assert dg.__version__ == pinned, (
        f"installed dagster {dg.__version__}, pyproject.toml pins {pinned}: pepm's private Dagster imports ({WHERE}) "
        "were checked against the pin only; reinstall (`pip install -e .`) or move the pin and re-check them"
    )
    assert checked == pinned, (
        f"{WHERE} says DAGSTER_CHECKED = {checked!r} but pyproject.toml pins dagster=={pinned}: "
        "run this test file against the new pin, fix what it reports, then update DAGSTER_CHECKED"
    )


PRIVATE = _private_imports(INTERNALS)


def test_the_internals_module_imports_private_names() -> None:
    assert len(PRIVATE) >= 7, f"{WHERE}: expected its `from dagster._... import` lines, found {PRIVATE}"


@pytest.mark.parametrize(("module", "name"), PRIVATE, ids=[f"{m}.{n}" for m, n in PRIVATE])
def test_each_private_name_is_still_where_pepm_imports_it(module: str, name: str) -> None:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"dagster {dg.__version__}: module {module} is gone ({exc}); {WHERE} imports {name} from it")
    assert hasattr(mod, name), f"dagster {dg.__version__}: {module}.{name} is gone; {WHERE} imports it (find where it moved)"


def test_no_other_module_of_pepm_assets_imports_private_dagster() -> None:
    package = REPO / "pepm_assets"
    elsewhere = {
        str(path.relative_to(REPO)): imports
        for path in sorted(package.rglob("*.py"))
        if path != INTERNALS and (imports := _private_imports(path))
    }
    assert not elsewhere, f"private Dagster imports outside {WHERE} (import them there, and check them here): {elsewhere}"


# What pepm passes: the parameters named here must exist, in this order after `self` (pepm passes
# some by position), and any parameter they do not cover must have a default.
SIGNATURES = {
    "AssetGraphView.__init__": ("temporal_context", "instance", "asset_graph"),  # staleness.stale_resolver, by keyword
    "CachingStaleStatusResolver.__init__": ("instance", "asset_graph", "loading_context"),  # by keyword
    "CachingStaleStatusResolver.get_status": ("key", "partition_key"),  # staleness.stale_status, by position
    "CachingStaleStatusResolver.get_stale_causes": ("key", "partition_key"),  # by position
    "extract_data_version_from_entry": ("entry",),  # sources.recorded_version, by position
    "get_current_datetime": (),  # staleness.stale_resolver, no argument
    "WorkspaceProcessContext.__init__": ("instance", "workspace_load_target", "version", "read_only"),  # sweeper._run_queue
    "QueuedRunCoordinatorDaemon.run_daemon_loop": (  # sweeper._dequeuing, by position
        "workspace_process_context",
        "daemon_uuid",
        "daemon_shutdown_event",
        "heartbeat_interval_seconds",
        "error_interval_seconds",
    ),
}


@pytest.mark.parametrize("qualname", list(SIGNATURES))
def test_signatures_still_take_what_pepm_passes(qualname: str) -> None:
    from pepm_assets.defs import dagster_internals

    owner, _, attr = qualname.partition(".")
    obj = getattr(dagster_internals, owner)
    fn = getattr(obj, attr) if attr else obj
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    named = [p.name for p in params[: len(SIGNATURES[qualname])]]
    assert named == list(SIGNATURES[qualname]), (
        f"dagster {dg.__version__}: {qualname} now takes {named}, pepm passes {list(SIGNATURES[qualname])} ({WHERE})"
    )
    required = [
        p.name for p in params[len(named) :] if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    assert not required, f"dagster {dg.__version__}: {qualname} now also requires {required}, which pepm does not pass ({WHERE})"


def test_values_pepm_stores_or_compares() -> None:
    from pepm_assets.defs import dagster_internals as di

    assert di.DATA_VERSION_TAG == "dagster/data_version", (
        f"dagster {dg.__version__}: DATA_VERSION_TAG is now {di.DATA_VERSION_TAG!r}: the source versions pepm "
        "recorded under the old tag would no longer be read back (defs/sources.py)"
    )
    assert {"FRESH", "STALE", "MISSING"} <= set(di.StaleStatus.__members__), (
        f"dagster {dg.__version__}: StaleStatus members are {list(di.StaleStatus.__members__)}; pepm reports FRESH / STALE / MISSING"
    )
    assert di.get_current_datetime().tzinfo is not None, "get_current_datetime() must be timezone-aware (TemporalContext.effective_dt)"


def test_staleness_and_source_versions_work_through_them() -> None:
    """The uses themselves, on a small partitioned graph: a runless observation carries its version,
    it is read back, and the stale resolver sees MISSING -> FRESH -> STALE (with a cause)."""
    from pepm_assets.defs import dagster_internals as di
    from pepm_assets.defs.sources import observe, recorded_version
    from pepm_assets.defs.staleness import stale_resolver, stale_status

    parts = dg.StaticPartitionsDefinition(["a", "b"])

    @dg.observable_source_asset(partitions_def=parts)
    def src() -> dg.DataVersionsByPartition:
        return dg.DataVersionsByPartition({"a": "v1", "b": "v1"})

    @dg.asset(partitions_def=parts, deps=[src], code_version="1")
    def out() -> None:
        return None

    defs = dg.Definitions(assets=[src, out])
    with dg.DagsterInstance.ephemeral() as instance:
        assert isinstance(stale_resolver(instance, defs), di.CachingStaleStatusResolver)
        assert observe(instance, "src", {"a": "v1"}) == ["src[a]"]
        assert observe(instance, "src", {"a": "v1"}) == []  # already the last one recorded
        assert recorded_version(instance, "src", "a") == "v1" and recorded_version(instance, "src", "b") is None
        assert stale_status(instance, defs, "out", "a")[0] == "MISSING"
        assert dg.materialize([src, out], selection=[out], partition_key="a", instance=instance).success
        assert stale_status(instance, defs, "out", "a") == ("FRESH", [])
        assert observe(instance, "src", {"a": "v2"}) == ["src[a]"]
        status, causes = stale_status(instance, defs, "out", "a")
        assert status == "STALE" and causes and all(c.startswith(("data:", "dependency:", "code:")) for c in causes), causes
