"""core/frame_chunks.py: a call depth going back and forth across a frame-stack chunk's edge costs
no fresh memory (no mmap, no page faults) while the chunks are kept, and keeping them never
outlives what it is for (a stage run in process hands the caller's allocator back:
test_collector.py's stage test)."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from pepm_assets.core import frame_chunks

CALLS, DEPTHS = 2_000, 400  # 800,000 calls; at least 2 of the 400 depths put _leaf's frame across a chunk's edge


def _wide_function(n_locals: int):
    """A function whose frame is larger than _at_depth's: as the depth grows by one _at_depth frame
    at a time, some depth leaves less room in the chunk than it needs, whatever the stack below."""
    names = ", ".join(f"v{i}" for i in range(n_locals))
    scope: dict = {}
    exec(f"def leaf():\n    {names} = range({n_locals})\n", scope)
    return scope["leaf"]


_leaf = _wide_function(64)


def _at_depth(n: int, calls: int) -> None:
    if n:
        return _at_depth(n - 1, calls)
    for _ in range(calls):
        _leaf()  # at those depths, its frame is the first of a new chunk: pushed and popped `calls` times


def _page_faults_of_the_sweep() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for depth in range(DEPTHS):
        _at_depth(depth, CALLS)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_a_call_depth_crossing_a_chunk_edge_again_and_again_costs_no_fresh_memory_while_chunks_are_kept() -> None:
    assert frame_chunks.applies()  # built by `pip install -e .`, GIL enabled
    own_allocator = _page_faults_of_the_sweep()
    with frame_chunks.kept():
        reused = frame_chunks.stats()["reused"]
        kept = _page_faults_of_the_sweep()
        reused = frame_chunks.stats()["reused"] - reused
    # Python's own allocator maps a fresh chunk each time (the reproduction: >= 1 page fault each)
    assert own_allocator >= 2 * CALLS, own_allocator
    assert kept < 200, kept  # a few for the chunks first mapped, none per crossing
    assert reused >= 2 * CALLS, reused  # the crossings were served by the kept chunks


def test_the_callers_allocator_is_back_after_the_outermost_block_with_the_kept_chunks_given_back() -> None:
    assert not frame_chunks.stats()["installed"]
    with frame_chunks.kept():
        with frame_chunks.kept():
            _at_depth(200, 10)
        assert frame_chunks.stats()["installed"]  # the inner block's end did not end the outer's
    assert frame_chunks.stats() | {"reused": 0, "passed": 0} == {"installed": False, "reused": 0, "passed": 0, "kept": 0}


PROCESS = """
import json, sys
from pepm_assets.core import collector, frame_chunks
with frame_chunks.kept():
    pass
after_block = frame_chunks.stats()["installed"]
collector.tune_process()
with frame_chunks.kept():
    pass
json.dump({"after_block": after_block, "after_tuning_and_a_block": frame_chunks.stats()["installed"]}, open(sys.argv[1], "w"))
"""


def test_a_process_pepm_owns_keeps_chunks_to_its_end_unless_the_setting_says_python(tmp_path: Path) -> None:
    def run(setting: str) -> dict:
        target = tmp_path / f"{setting}.json"
        env = {**os.environ, "PEPM_FRAME_CHUNKS": setting}
        subprocess.run([sys.executable, "-c", PROCESS, str(target)], check=True, timeout=60, env=env)
        return json.loads(target.read_text(encoding="utf-8"))

    assert run("compiled") == {"after_block": False, "after_tuning_and_a_block": True}
    assert run("python") == {"after_block": False, "after_tuning_and_a_block": False}
