"""core/frame_chunks.py: a call depth going back and forth across a frame-stack chunk's edge costs
no fresh memory (no mmap, no page faults) while the chunks are kept, and keeping them never
outlives what it is for (a stage run in process hands the caller's allocator back:
test_collector.py's stage test).

Each case runs in a fresh interpreter: the test session's own process may keep its chunks for good
(a test that runs the CLI in process tunes it as a process pepm owns, `collector.tune_process`).
The reproduction (Python's own allocator maps a chunk afresh at each crossing) holds on CPython
3.11 and 3.12; 3.13 and 3.14 releases that cache a chunk per thread (gh-142183) no longer thrash,
and the module is then little use: this test says so by failing there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SWEEP = """
import json, resource, sys
from pepm_assets.core import collector, frame_chunks

CALLS, DEPTHS = 2_000, 400  # 800,000 calls; at least 2 of the 400 depths put the leaf's frame across a chunk's edge

# a leaf whose frame is larger than at_depth's: as the depth grows by one at_depth frame at a time,
# some depth leaves less room in the chunk than the leaf needs, whatever the stack below
names = ", ".join(f"v{i}" for i in range(64))
scope = {}
exec(f"def leaf():\\n    {names} = range(64)\\n", scope)
leaf = scope["leaf"]

def at_depth(n, calls):
    if n:
        return at_depth(n - 1, calls)
    for _ in range(calls):
        leaf()  # at those depths, its frame is the first of a new chunk: pushed and popped `calls` times

def page_faults_of_the_sweep():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for depth in range(DEPTHS):
        at_depth(depth, CALLS)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

facts = {"applies": frame_chunks.applies(), "calls": CALLS, "own_allocator": page_faults_of_the_sweep()}
with frame_chunks.kept():
    with frame_chunks.kept():  # nested: the inner block's end does not end the outer's
        at_depth(200, 10)
    facts["installed_after_inner_block"] = frame_chunks.stats()["installed"]
    reused = frame_chunks.stats()["reused"]
    facts["kept"] = page_faults_of_the_sweep()
    facts["reused"] = frame_chunks.stats()["reused"] - reused
after = frame_chunks.stats()
facts["after_block"] = {"installed": after["installed"], "kept": after["kept"]}
if "--tune" in sys.argv:
    collector.tune_process()
    with frame_chunks.kept():
        pass
    facts["after_tuning_and_a_block"] = frame_chunks.stats()["installed"]
json.dump(facts, open(sys.argv[1], "w"))
"""


def _run(tmp_path: Path, *args: str, setting: str = "compiled") -> dict:
    target = tmp_path / f"facts_{setting}.json"
    env = {**os.environ, "PEPM_FRAME_CHUNKS": setting}
    subprocess.run([sys.executable, "-c", SWEEP, str(target), *args], check=True, timeout=120, env=env)
    return json.loads(target.read_text(encoding="utf-8"))


def test_a_call_depth_crossing_a_chunk_edge_again_and_again_costs_no_fresh_memory_while_chunks_are_kept(tmp_path: Path) -> None:
    facts = _run(tmp_path)
    assert facts["applies"]  # built by `pip install -e .`, GIL enabled
    # Python's own allocator maps a fresh chunk each time (the reproduction: >= 1 page fault each)
    assert facts["own_allocator"] >= 2 * facts["calls"], facts
    assert facts["kept"] < 200, facts  # a few for the chunks first mapped, none per crossing
    assert facts["reused"] >= 2 * facts["calls"], facts  # the crossings were served by the kept chunks


def test_the_callers_allocator_is_back_after_the_outermost_block_with_the_kept_chunks_given_back(tmp_path: Path) -> None:
    facts = _run(tmp_path)
    assert facts["installed_after_inner_block"] is True
    assert facts["after_block"] == {"installed": False, "kept": 0}


def test_a_process_pepm_owns_keeps_chunks_to_its_end_unless_the_setting_says_python(tmp_path: Path) -> None:
    assert _run(tmp_path, "--tune")["after_tuning_and_a_block"] is True
    python = _run(tmp_path, "--tune", setting="python")
    assert python["after_tuning_and_a_block"] is False and python["installed_after_inner_block"] is False
    assert python["kept"] >= 2 * python["calls"]  # Python's own allocation: every crossing maps afresh
