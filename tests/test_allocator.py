"""keep_freed_memory: glibc's malloc told to keep freed frames, only where a caller asks for it."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # each test starts a fresh Python process


def test_keep_freed_memory_stops_refaulting_frames():
    # Hold a window of frame-sized arrays, drop it, repeat: with glibc's defaults the
    # freed blocks go back to the system and every page faults in again.
    script = """
import resource, sys
import numpy as np
from blursynth._allocator import keep_freed_memory
if sys.argv[1] == "tuned" and not keep_freed_memory():
    print("untunable"); sys.exit()
def window():
    held = [np.ones(720 * 1280 * 3, np.uint8) for _ in range(8)]
    return len(held)
window()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    window()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 160)
"""
    faults = {}
    for mode in ("default", "tuned"):
        out = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True).stdout
        if out.strip() == "untunable":
            pytest.skip("this C library has no mallopt")
        faults[mode] = float(out)
    # A 2.7 MB frame is 675 pages; kept in the heap, reused frames fault none of them.
    assert faults["default"] > 100
    assert faults["tuned"] < 0.1 * faults["default"]


def test_only_callers_that_ask_get_the_allocator_setting():
    script = """
import numpy as np, tempfile
from pathlib import Path
from blursynth import _allocator
from blursynth.pairs import frames
from blursynth.sources.render import write_video
d = Path(tempfile.mkdtemp())
rng = np.random.default_rng(0)
write_video([rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(12)], d / "c.mkv", fps=240)
settings = frames.FramesAverageSettings(window_min=3, window_max=5, seed=1)
frames.write_frame_pairs([d / "c.mkv"], d / "a", settings, progress=False)
print(_allocator._ALLOCATOR_TUNED)
frames.write_frame_pairs([d / "c.mkv"], d / "b", settings, progress=False, keep_freed=True)
print(_allocator._ALLOCATOR_TUNED)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == "False"
    assert out[1] in ("True", "False") and (out[1] == "True") == _glibc()


def _glibc() -> bool:
    import ctypes
    import ctypes.util

    try:
        return hasattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), "mallopt")
    except OSError:
        return False
