"""The row feed (``write_dataset(..., chunk_size=)``): rows rendered in chunks on every worker and
written here in order; the bytes are those of a one-process run whatever the workers, chunks and
shards."""

from __future__ import annotations

import functools
import json
import os
import time

import pytest

from blursynth.dataset import PAIR_SCHEMA, PairDataset, write_dataset
from blursynth.dataset.executors import RowFeed, chunk_spans
from blursynth.errors import BadInputError

from .conftest import tiny_rows


def write(out, *, n=20, shard_size=6, workers=1, chunk=None, tail=None, make_rows=tiny_rows):
    return write_dataset(out, kind="pairs", schema=PAIR_SCHEMA, n_items=n, shard_size=shard_size,
                         make_rows=functools.partial(make_rows, fp="fp-feed"), fingerprint="fp-feed",
                         command={"test": "feed"}, workers=workers, progress=False, chunk_size=chunk,
                         tail_chunk_size=tail)


def files(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_chunk_spans_cover_every_item_once_at_absolute_multiples():
    spans = [(0, 7), (7, 14), (14, 15)]
    chunks = chunk_spans(spans, 3)
    assert chunks == [(0, 3), (3, 6), (6, 7), (7, 9), (9, 12), (12, 14), (14, 15)]
    assert [i for a, b in chunks for i in range(a, b)] == list(range(15))
    with pytest.raises(ValueError):
        chunk_spans(spans, 0)


def test_feed_in_this_process_gives_the_rows_in_order():
    # One worker: no pool; rows() walks the chunks of each span in order.
    feed = RowFeed(functools.partial(tiny_rows, fp="x"), [(0, 5), (5, 9)], workers=1, chunk=2)
    try:
        got = [r["index"] for r in feed.rows(0, 5)] + [r["index"] for r in feed.rows(5, 9)]
    finally:
        feed.close()
    assert got == list(range(9))


def test_the_last_chunks_are_cut_so_the_workers_finish_together():
    # Two processes: the last two chunks are cut into tail_chunk items at absolute multiples (a
    # group of items, e.g. a photo's pairs, stays whole); the rows come out in order all the same.
    import multiprocessing as mp

    feed = RowFeed(functools.partial(tiny_rows, fp="x"), [(0, 13)], workers=2, chunk=4,
                   tail_chunk=2, ctx=mp.get_context("fork"))
    try:
        assert feed.chunks == [(0, 4), (4, 8), (8, 10), (10, 12), (12, 13)]
        got = [r["index"] for r in feed.rows(0, 13)]
    finally:
        feed.close()
    assert got == list(range(13))
    # One process has nobody to wait for, and without tail_chunk nothing is cut.
    for workers, tail in ((1, 2), (2, None)):
        whole = RowFeed(functools.partial(tiny_rows, fp="x"), [(0, 13)], workers=workers, chunk=4,
                        tail_chunk=tail, ctx=mp.get_context("fork"))
        assert whole.chunks == [(0, 4), (4, 8), (8, 12), (12, 13)]
        whole.close()
    # Fewer chunks than processes before the cut: the pool is sized for the chunks after it.
    few = RowFeed(functools.partial(tiny_rows, fp="x"), [(0, 8)], workers=4, chunk=4, tail_chunk=1,
                  ctx=mp.get_context("fork"))
    try:
        assert len(few.chunks) == 8 and few.n_pool == 3
        assert [r["index"] for r in few.rows(0, 8)] == list(range(8))
    finally:
        few.close()


def test_bytes_do_not_depend_on_workers_chunks_or_shards(tmp_path):
    ref = files(tmp_path / "a") if write(tmp_path / "a") else None
    # One shard for all rows (the old scheduler ran it on one process), and chunks that do not
    # divide the shards.
    write(tmp_path / "b", workers=2, chunk=3)
    write(tmp_path / "c", workers=3, chunk=1)
    write(tmp_path / "t", workers=2, chunk=4, tail=1)  # the last chunks cut to single items
    assert files(tmp_path / "b") == ref
    assert files(tmp_path / "c") == ref
    assert files(tmp_path / "t") == ref
    one = write(tmp_path / "d", shard_size=20)
    assert write(tmp_path / "e", shard_size=20, workers=2, chunk=4)["shards"] == one["shards"]
    assert files(tmp_path / "e") == files(tmp_path / "d")


@pytest.mark.parametrize("start", ["fork", "forkserver"])
def test_both_ways_of_starting_the_pool_give_the_same_bytes(tmp_path, monkeypatch, start):
    # fork where no OpenMP pool has started here (a command's first write), else the fork server.
    import multiprocessing as mp

    from blursynth.dataset import executors

    ref = files(tmp_path / "a") if write(tmp_path / "a", shard_size=20) else None
    ctx = mp.get_context("fork") if start == "fork" else executors._pool_context(
        executors._feed_chunk, tiny_rows)
    monkeypatch.setattr(executors, "_feed_context", lambda make_rows: ctx)
    rows = functools.partial(slow_here_rows, parent=os.getpid())
    assert write(tmp_path / "b", shard_size=20, workers=2, chunk=2)["num_rows"] == 20
    assert files(tmp_path / "b") == ref
    write(tmp_path / "c", n=24, shard_size=24, workers=2, chunk=2, make_rows=rows)
    assert len({r["params"]["pid"] for r in PairDataset(tmp_path / "c")}) == 2


def slow_here_rows(start, stop, fp, parent=None):
    """Rows naming the process that made them; slow in the writing process, so that the pool's
    process takes chunks as soon as it is up, and not instant in the pool's, so that its first
    chunk is still being rendered when the writing process looks for one to render itself."""
    for row in tiny_rows(start, stop, fp=fp):
        time.sleep(0.15 if os.getpid() == parent else 0.03)
        row["params"] = json.dumps({"pid": os.getpid()})
        yield row


def test_one_shard_keeps_every_worker_busy(tmp_path):
    rows = functools.partial(slow_here_rows, parent=os.getpid())
    m = write(tmp_path / "d", n=30, shard_size=30, workers=2, chunk=2, make_rows=rows)
    assert len(m["shards"]) == 1 and m["num_rows"] == 30
    ds = PairDataset(tmp_path / "d")
    assert [r["index"] for r in ds] == list(range(30))
    pids = {r["params"]["pid"] for r in ds}
    assert os.getpid() in pids and len(pids) == 2  # this process and the pool's one process


def failing_rows(start, stop, fp, bad=13):
    for row in tiny_rows(start, stop, fp=fp):
        if row["index"] == bad:
            raise BadInputError(f"photo {bad} does not decode.")
        yield row


def test_a_chunk_error_stops_the_write_with_its_message(tmp_path):
    out = tmp_path / "d"
    with pytest.raises(BadInputError) as info:
        write(out, n=24, shard_size=8, workers=2, chunk=2, make_rows=failing_rows)
    assert str(info.value) == "photo 13 does not decode."
    # The shard that held the bad row was never renamed into place and no temporary is left
    # (when no shard was finished before the error, the new folder is removed as a whole).
    assert not (out / "data/train-00001-of-00003.parquet").exists()
    left = list((out / "data").iterdir()) if (out / "data").exists() else []
    assert not [p for p in left if not p.name.endswith(".parquet")]


def test_tables_are_built_as_from_pylist_builds_them_without_pandas():
    import numpy as np
    import pyarrow as pa

    from blursynth.dataset.arrow_rows import table_from_rows
    from blursynth.dataset.schema import GT_FRAMES_PAIR_SCHEMA, SCENE_PAIR_SCHEMA, pair_row

    img = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    rows = list(tiny_rows(0, 5, fp="t"))
    rows[2]["sharp"] = None  # a test image without ground truth
    scene = [pair_row(index=i, blurred=img, sharp=img, psf=None if i else np.eye(3), source="trajectory",
                      seed=1, params={"i": i}, fingerprint="s", motion_mask=np.zeros((4, 5), np.uint8),
                      psf_field=np.ones((2, 2, 3, 3)) / 9) for i in range(3)]
    frames = [pair_row(index=i, blurred=img, sharp=img, psf=None, source="real", seed=0, params={},
                       fingerprint="g", gt_frames=[img] * i) for i in range(3)]
    for batch, schema in ((rows, PAIR_SCHEMA), (scene, SCENE_PAIR_SCHEMA), (frames, GT_FRAMES_PAIR_SCHEMA),
                          ([], PAIR_SCHEMA)):
        ours = table_from_rows(batch, schema)
        ours.validate(full=True)
        assert ours.equals(pa.Table.from_pylist(batch, schema=schema))
    with pytest.raises(TypeError, match="no conversion"):
        table_from_rows([{"t": 1}], pa.schema([("t", pa.timestamp("s"))]))


def test_blur_of_one_shard_is_the_same_on_one_two_or_three_workers(photos, tmp_path):
    # The row feed under `blursynth blur`: one shard of 9 pairs (chunks of whole photos, 6 pairs),
    # fresh trajectories, noise, JPEG and a crop: the shards of every worker count hash alike.
    from blursynth.pairs.shake import BlurSettings, blur_photos

    s = BlurSettings(photos=str(photos), psf_source="fresh", per_image=3, crop=(32, 40), fresh_canvas=15,
                     fresh_length_px=10.0, noise="0.001,0.001", jpeg="85-95", seed=4)
    runs = [blur_photos(s, tmp_path / f"w{w}", workers=w, progress=False) for w in (1, 2, 3)]
    assert runs[0]["num_rows"] == 9 and len(runs[0]["shards"]) == 1
    assert [r["shards"] for r in runs[1:]] == [runs[0]["shards"]] * 2


# --- a command that is stopped: its pool ends with it ----------------------------------------

SLOW_WRITE = """
import functools, sys
if sys.argv[2] == "fork server":
    import torch  # noqa: F401 - a way that loads torch gets its pool from a fork server
from blursynth.dataset import PAIR_SCHEMA, write_dataset
from tests.conftest import slow_tiny_rows

write_dataset(sys.argv[1], kind="pairs", schema=PAIR_SCHEMA, n_items=400, shard_size=400,
              make_rows=functools.partial(slow_tiny_rows, fp="f"), fingerprint="f", command={}, workers=2,
              progress=False, chunk_size=2)
"""


def _descendants(pid: int) -> list[int]:
    """Processes started by ``pid`` and by them, not yet ended (through /proc)."""
    parent_of = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != b"Z":
                parent_of[int(name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parent_of.items() if parent in frontier]
        found += kids
        frontier = kids
    return found


def _wait_for(condition, seconds: float):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _start_with_pool(cmd, pool_size: int):
    """``cmd`` started in a session of its own, once it has ``pool_size`` processes at work."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert _wait_for(lambda: len(_descendants(proc.pid)) >= pool_size or proc.poll() is not None, 60), \
        "no pool started"
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.5)  # the pool's processes at work
    return proc, _descendants(proc.pid)


def _lock_free(out) -> bool:
    from blursynth.dataset.outputs import lock_output

    try:
        with lock_output(out):
            return True
    except BadInputError:
        return False


@pytest.mark.slow  # starts a subprocess
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="lists processes through /proc")
@pytest.mark.parametrize("start", ["fork", "fork server"])
def test_a_command_killed_outright_leaves_no_process_and_no_lock(tmp_path, start):
    # SIGKILL (or the out-of-memory killer) gives the command no chance to shut its pool down:
    # its processes end by themselves (a fork server's too), and with them the lock.
    import sys

    from blursynth._processes import has_ended

    out = tmp_path / "out"
    proc, started = _start_with_pool([sys.executable, "-c", SLOW_WRITE, str(out), start],
                                     1 if start == "fork" else 3)  # a fork server, its tracker, its child
    proc.kill()
    proc.wait()
    assert started and _wait_for(lambda: all(has_ended(pid) for pid in started), 10)
    assert _wait_for(lambda: _lock_free(out), 5)


@pytest.mark.slow  # starts a subprocess
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="lists processes through /proc")
@pytest.mark.parametrize("sig, code, said", [("SIGTERM", 143, "terminated (SIGTERM)"), ("SIGINT", 130, "aborted")])
def test_a_signal_to_the_whole_group_stops_the_command_cleanly(photos, bank, tmp_path, sig, code, said):
    # A job manager's SIGTERM (or a terminal's Ctrl-C) reaches every process of the group: the
    # pool's leave stopping to the command, which shuts them down, rather than ending mid-reply.
    import signal
    import sys

    from blursynth._processes import has_ended

    out = tmp_path / "pairs"
    cmd = [sys.executable, "-m", "blursynth", "blur", str(photos), "--kernels", str(bank), "--out", str(out),
           "--per-image", "3000", "--workers", "2", "--shard-size", "64"]
    proc, started = _start_with_pool(cmd, 1)
    os.killpg(proc.pid, getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.rstrip().splitlines()[-1] == f"error: {said}; rerun the same command to resume."
    assert _wait_for(lambda: all(has_ended(pid) for pid in started), 10)
    assert not list((out / "data").glob(".*tmp*")) and _lock_free(out)  # nothing half-written, nothing held


@pytest.mark.slow  # starts a subprocess
def test_has_ended_tells_a_live_process_from_an_ended_one():
    import subprocess
    import sys

    from blursynth._processes import has_ended

    assert has_ended(os.getpid()) is False
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    assert _wait_for(lambda: has_ended(child.pid), 10)  # ended, not yet reaped: a zombie
    child.wait()
    assert has_ended(child.pid) is True


@pytest.mark.slow  # starts a subprocess
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="lists processes through /proc")
def test_sigterm_to_the_group_of_a_fork_server_pool_leaves_nothing_for_the_tracker(tmp_path):
    # The fork server ignores SIGTERM: had it died of it, the pool would look broken and kill its
    # processes mid-shutdown, and the resource tracker would warn of their leaked semaphores.
    import signal
    import sys

    from blursynth._processes import has_ended

    out = tmp_path / "bank"
    cmd = [sys.executable, "-m", "blursynth", "trajectories", "--n", "400000", "--out", str(out),
           "--workers", "2", "--shard-size", "2000"]
    proc, started = _start_with_pool(cmd, 3)  # the tracker, the fork server, the pool's process
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "leaked" not in err and "resource_tracker" not in err, err
    assert _wait_for(lambda: all(has_ended(pid) for pid in started), 10)


@pytest.mark.slow  # starts a subprocess
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads signal masks through /proc")
def test_the_fork_server_ignores_both_signals_and_blocks_neither_once_started():
    import subprocess
    import sys

    code = (
        "import time; from multiprocessing import forkserver\n"
        "from blursynth.dataset.executors import _pool_context\n"
        "from blursynth.dataset.writer import _write_shard\n"
        "_pool_context(_write_shard, _write_shard); time.sleep(3)\n"
        "status = open(f'/proc/{forkserver._forkserver._forkserver_pid}/status').read().splitlines()\n"
        "print(*(int(l.split()[1], 16) for l in status if l.startswith(('SigIgn', 'SigBlk'))))\n"
        "print(forkserver._forkserver._preload_modules[0])\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    masks, first = run.stdout.splitlines()
    blocked, ignored = (int(x) for x in masks.split())  # /proc lists SigBlk before SigIgn
    both = (1 << (2 - 1)) | (1 << (15 - 1))  # SIGINT, SIGTERM
    assert ignored & both == both and blocked & both == 0
    assert first == "blursynth._forkserver"


def test_importing_the_fork_server_module_elsewhere_changes_nothing():
    # A doctest run imports every module: the handlers of its process must stay as they were.
    import importlib
    import signal

    import blursynth._forkserver

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    importlib.reload(blursynth._forkserver)
    assert {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} == before
    assert not blursynth._forkserver._in_fork_server()


FORK_SERVER_SIGNALLED = r"""
import os, signal, sys, time
from multiprocessing import forkserver
from blursynth.dataset.executors import _pool_context
from blursynth.dataset.writer import _write_shard

_pool_context(_write_shard, _write_shard)
pid = forkserver._forkserver._forkserver_pid
time.sleep(float(sys.argv[1]))
os.kill(pid, signal.SIGINT)
os.kill(pid, signal.SIGTERM)
time.sleep(1.5)
state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
print("running" if state in "RSD" else state)
"""


@pytest.mark.slow  # starts subprocesses
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads process states through /proc")
@pytest.mark.parametrize("delay", [0.0, 0.03, 0.3])
def test_the_fork_server_outlives_ctrl_c_and_sigterm_from_its_first_instant(delay):
    # Started with both signals blocked, then ignoring them: no traceback, still serving.
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", FORK_SERVER_SIGNALLED, str(delay)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "running", run.stdout + run.stderr
    assert run.stderr == ""
