"""core/collector.py: the garbage collector's tuning never outlives what it is for. A stage leaves
the caller's collector as it found it (a test session, a code server: nothing stays frozen, and
garbage made during the stage is still collected); a process of pepm's own (the CLI, a sweep's run
worker) is tuned once, and what it writes is complete when it exits without its last collections."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import weakref
from pathlib import Path

import dagster as dg

from pepm_assets.core import collector, frame_chunks
from pepm_assets.definitions import build_definitions
from pepm_assets.defs import runner


class _Node:
    def __init__(self) -> None:
        self.me = self  # a cycle: only the collector frees it


def test_a_stage_leaves_the_callers_collector_and_allocator_as_it_found_them(project: Path, dagster_instance: dg.DagsterInstance) -> None:
    threshold = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    chunks_kept_before = frame_chunks.stats()["installed"]  # True where a CLI test tuned this process for good
    seen: list[int] = []
    chunks_kept: list[bool] = []

    def on_step(_: str) -> None:
        seen.append(gc.get_freeze_count())
        chunks_kept.append(bool(frame_chunks.stats()["installed"]))

    runner.run_stage(project, "prepare", "tiny_quick", [], dagster_instance, build_definitions(project), on_step=on_step)
    assert chunks_kept and all(chunks_kept)  # frame-stack chunks kept for reuse during the stage (core/frame_chunks.py)
    assert frame_chunks.stats()["installed"] == chunks_kept_before  # and the caller's allocator back after it
    assert seen and all(n > 0 for n in seen)  # during the stage, the objects alive before it are left alone
    assert gc.get_freeze_count() == 0 and gc.get_threshold() == threshold  # and handed back after it
    old = _Node()
    ref = weakref.ref(old)
    del old
    gc.collect()
    assert ref() is None  # the caller's cyclic garbage is collected again


def test_nested_blocks_keep_the_freeze_until_the_outermost_ends() -> None:
    with collector.older_objects_left_alone():
        frozen = gc.get_freeze_count()
        with collector.older_objects_left_alone():
            pass
        assert gc.get_freeze_count() >= frozen > 0  # the inner block's end did not lift the outer's freeze
    assert gc.get_freeze_count() == 0


def test_garbage_made_inside_the_block_is_collected_and_the_block_undoes_itself() -> None:
    before = _Node()
    with collector.older_objects_left_alone():
        inner = _Node()
        ref_inner, ref_before = weakref.ref(inner), weakref.ref(before)
        del inner, before
        gc.collect()
        assert ref_inner() is None  # made in the block: collected
        assert ref_before() is not None  # alive before the block: left alone until it ends
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert ref_before() is None


TUNED = """
import atexit, gc, json, sys
from pepm_assets.core import collector, frame_chunks
facts = {}

def report():  # registered before tune_process: runs after its gc.freeze (atexit runs the last registered first)
    facts["frozen_at_exit"] = gc.get_freeze_count() > 0
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(facts, out)

atexit.register(report)
before = atexit._ncallbacks()
collector.tune_process(); collector.tune_process()
cycles = [[] for _ in range(50_000)]
for c in cycles:
    c.append(c)
facts.update(threshold=gc.get_threshold(), handlers=atexit._ncallbacks() - before, n=len(cycles))
"""


def test_a_tuned_process_is_tuned_once_and_ends_with_its_outputs_complete(tmp_path: Path) -> None:
    target = tmp_path / "out.json"
    subprocess.run([sys.executable, "-c", TUNED, str(target)], check=True, timeout=60)
    got = json.loads(target.read_text(encoding="utf-8"))
    assert got == {"threshold": [collector.YOUNG_THRESHOLD, 10, 10], "handlers": 1, "n": 50_000, "frozen_at_exit": True}


def test_a_long_lived_block_collects_nothing_freezes_what_it_built_and_hands_the_collector_back() -> None:
    collections: list[int] = []

    def seen(phase: str, info: dict) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        with collector.long_lived():
            built = [[] for _ in range(50_000)]  # enough allocations for a few young collections
            assert not gc.isenabled()
        assert collections == [] and gc.isenabled()
        assert gc.get_freeze_count() >= len(built)  # frozen: no full collection walks them again
        gc.unfreeze()
        gc.disable()
        with collector.long_lived():
            pass
        assert not gc.isenabled()  # a caller's disabled collector stays disabled
    finally:
        gc.callbacks.remove(seen)
        gc.unfreeze()
        gc.enable()
