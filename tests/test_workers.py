"""``--workers N`` is N cores: N rendering processes whose parallel kernels run on one thread
each, every core by default, and the same bytes whatever N."""

from __future__ import annotations

import functools
import json
import os

import pytest

from blursynth.dataset import PAIR_SCHEMA, PairDataset, write_dataset

from .conftest import error_line, tiny_rows


def threads_rows(start, stop, fp):
    """Tiny rows naming the process that rendered them and the thread count its parallel kernels
    got there."""
    import numba

    from blursynth._numba import kernel_threads

    with kernel_threads():
        threads = numba.get_num_threads()
    for row in tiny_rows(start, stop, fp=fp):
        row["params"] = json.dumps({"pid": os.getpid(), "threads": threads})
        yield row


def write(out, *, workers, chunk=None, n=16, shard_size=4):
    return write_dataset(out, kind="pairs", schema=PAIR_SCHEMA, n_items=n, shard_size=shard_size,
                         make_rows=functools.partial(threads_rows, fp="fp-cores"),
                         fingerprint="fp-cores", command={"test": "cores"}, workers=workers,
                         progress=False, chunk_size=chunk)


def test_kernel_threads_are_one_under_one_thread_and_restored_after():
    import numba

    from blursynth._numba import kernel_threads
    from blursynth._threads import one_thread

    before = numba.get_num_threads()
    with one_thread(), kernel_threads():
        assert numba.get_num_threads() == 1
    assert numba.get_num_threads() == before
    with kernel_threads():  # outside a write: torch's budget where torch is loaded, capped
        import sys

        torch = sys.modules.get("torch")
        want = torch.get_num_threads() if torch is not None else before
        assert numba.get_num_threads() == max(1, min(want, numba.config.NUMBA_NUM_THREADS))
    assert numba.get_num_threads() == before


@pytest.mark.slow  # pool processes start
def test_every_rendering_process_runs_its_kernels_on_one_thread(tmp_path):
    # One worker renders here on one core (one worker is one core: its kernels must not take
    # the others); two are this process and one more, whether rows come from the row feed or
    # whole shards.
    # torch at two threads: outside a write the kernels would take two (the suite runs at one).
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = {"here": write(tmp_path / "here", workers=1),
                "feed": write(tmp_path / "feed", workers=2, chunk=2),
                "shards": write(tmp_path / "shards", workers=2)}
    finally:
        torch.set_num_threads(before)
    pids = {}
    for name, manifest in runs.items():
        assert manifest["num_rows"] == 16
        params = [r["params"] for r in PairDataset(tmp_path / name)]
        assert {p["threads"] for p in params} == {1}, name
        pids[name] = {p["pid"] for p in params}
    assert pids["here"] == {os.getpid()}
    assert len(pids["shards"]) == 2  # this process and the pool's one
    # The feed submits its first chunk to the pool as it starts, so a feed that rendered
    # everything here would show one pid.
    assert len(pids["feed"]) == 2


def test_default_workers_are_every_core_this_process_may_use(run_cli, photos, tmp_path,
                                                              monkeypatch):
    from blursynth import _threads
    from blursynth.pairs import shake

    seen = []
    monkeypatch.setattr(shake, "blur_photos", lambda *a, workers, **k: seen.append(workers)
                        or {"num_rows": 0, "shards": [], "fingerprint": "x", "skipped_photos": 0})
    monkeypatch.setattr(_threads, "available_cores", lambda: 5)
    blur = ("blur", photos, "--psf-source", "fresh", "--out")
    monkeypatch.delenv("BLURSYNTH_WORKERS")
    assert run_cli(*blur, tmp_path / "a").code == 0
    monkeypatch.setenv("BLURSYNTH_WORKERS", "3")
    assert run_cli(*blur, tmp_path / "b").code == 0
    r = run_cli(*blur, tmp_path / "c", "--workers", "2")
    assert r.code == 0 and "warning" not in r.err
    assert seen == [5, 3, 2]
    # More than the cores: run (the same bytes), with one warning line naming what was given.
    r = run_cli(*blur, tmp_path / "d", "--workers", "8")
    assert r.code == 0 and "warning: --workers 8 is more than the 5 cores" in r.err, r.err
    monkeypatch.setenv("BLURSYNTH_WORKERS", "9")
    r = run_cli(*blur, tmp_path / "e")
    assert r.code == 0 and "warning: BLURSYNTH_WORKERS=9 is more than the 5 cores" in r.err, r.err
    assert seen == [5, 3, 2, 8, 9]


def test_a_gpu_run_defaults_to_one_worker(run_cli, photos, tmp_path, monkeypatch):
    # Each worker holds its own CUDA context and batches on the device: one per core would run
    # a small GPU out of memory. A count given by --workers or the environment is kept.
    from blursynth import _threads
    from blursynth.nn import device
    from blursynth.pairs import shake

    seen = []
    monkeypatch.setattr(shake, "blur_photos", lambda *a, workers, **k: seen.append(workers)
                        or {"num_rows": 0, "shards": [], "fingerprint": "x", "skipped_photos": 0})
    monkeypatch.setattr(_threads, "available_cores", lambda: 5)
    monkeypatch.setattr(device, "resolve_device_name",
                        lambda name, **k: "cpu" if name == "cpu" else "cuda")
    blur = ("blur", photos, "--psf-source", "fresh", "--out")
    monkeypatch.delenv("BLURSYNTH_WORKERS")
    assert run_cli(*blur, tmp_path / "a").code == 0
    assert run_cli(*blur, tmp_path / "b", "--device", "cpu").code == 0
    assert run_cli(*blur, tmp_path / "c", "--workers", "2").code == 0
    monkeypatch.setenv("BLURSYNTH_WORKERS", "3")
    assert run_cli(*blur, tmp_path / "d").code == 0
    # Scene blur renders on the CPU whatever the device: every core.
    monkeypatch.delenv("BLURSYNTH_WORKERS")
    assert run_cli("blur", photos, "--out", tmp_path / "e", "--motion", "camera6d").code == 0
    assert seen == [1, 5, 2, 3, 5]


def test_the_default_workers_follow_the_affinity_mask():
    # In a child narrowed to one CPU, as taskset or a job scheduler would.
    import subprocess
    import sys

    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity on this platform")
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from blursynth.commands._common import default_workers; print(default_workers())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


@pytest.mark.parametrize("files, want", [
    ({"cpu.max": "150000 100000\n"}, 2),         # cgroup v2, 1.5 CPUs: rounded up
    ({"cpu.max": "max 100000\n"}, 8),            # v2, no quota
    ({"cpu.cfs_quota_us": "50000\n", "cpu.cfs_period_us": "100000\n"}, 1),  # v1, half a CPU
    ({"cpu.cfs_quota_us": "-1\n", "cpu.cfs_period_us": "100000\n"}, 8),     # v1, no quota
    ({"cpu.max": "4000000 100000\n"}, 8),        # a quota above the affinity mask
    ({}, 8),                                      # nothing readable
])
def test_available_cores_are_capped_by_a_containers_cpu_quota(tmp_path, monkeypatch, files, want):
    from blursynth import _threads

    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(_threads, "CGROUP_CPU_MAX", str(tmp_path / "cpu.max"))
    monkeypatch.setattr(_threads, "CGROUP_V1_CPU", str(tmp_path))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    assert _threads.available_cores() == want


@pytest.mark.parametrize("command", [
    ("blur", "PHOTOS", "--psf-source", "fresh"),
    ("frames-average", "PHOTOS"),
    ("trajectories", "--n", "4"),
    ("dataset", "import", "PHOTOS"),
    ("bgan", "blur", "PHOTOS", "--model", "PHOTOS"),
    ("uid", "blur", "PHOTOS", "--model", "PHOTOS"),
])
def test_every_pair_writer_refuses_a_bad_workers_variable_naming_it(run_cli, photos, tmp_path,
                                                                    monkeypatch, command):
    monkeypatch.setenv("BLURSYNTH_WORKERS", "0")
    args = [str(photos) if a == "PHOTOS" else a for a in command]
    r = run_cli(*args, "--out", tmp_path / "out")
    assert r.code == 2
    assert "BLURSYNTH_WORKERS=0 in the environment is not a positive integer" in error_line(r)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # pool processes start
def test_blur_bytes_are_the_same_with_one_two_and_the_default_workers(run_cli, photos, tmp_path,
                                                                      monkeypatch):
    # 3 photos x 2 pairs: two chunks of whole photos, so two workers share the rows.
    blur = ("blur", photos, "--psf-source", "fresh", "--per-image", "2", "--crop", "32x40",
            "--canvas", "15", "--length", "10", "--noise", "0.001,0.001", "--jpeg", "85-95",
            "--shard-size", "4", "--seed", "6", "--out")
    for name, extra in (("one", ("--workers", "1")), ("two", ("--workers", "2")), ("default", ())):
        if name == "default":
            monkeypatch.delenv("BLURSYNTH_WORKERS")
        assert run_cli(*blur, tmp_path / name, *extra).code == 0
    manifests = [json.loads((tmp_path / n / "manifest.json").read_text())
                 for n in ("one", "two", "default")]
    assert manifests[0]["num_rows"] == 6 and len(manifests[0]["shards"]) == 2
    assert [m["shards"] for m in manifests[1:]] == [manifests[0]["shards"]] * 2


@pytest.mark.slow  # compiles the kernels afresh in a process of its own
def test_workers_compile_their_kernels_on_a_first_run(photos, tmp_path):
    # A fresh install has no compiled kernels: a pool process compiles its own, and that must
    # not trip over the thread count its parent's Numba started with.
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba-cache"))
    env.pop("BLURSYNTH_WORKERS", None)
    args = [sys.executable, "-m", "blursynth", "blur", str(photos), "--psf-source", "fresh",
            "--per-image", "2", "--crop", "32x40", "--canvas", "15", "--length", "10",
            "--seed", "6", "--workers", "2", "--out"]
    first = subprocess.run([*args, str(tmp_path / "first")], env=env, capture_output=True,
                           text=True)
    assert first.returncode == 0, first.stderr[-800:]
    assert list((tmp_path / "numba-cache").rglob("*.nbi")), "the run compiled nothing afresh"
    again = subprocess.run([*args, str(tmp_path / "again")], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-800:]
    shards = [sorted(p.name for p in (tmp_path / n / "data").iterdir()) for n in ("first", "again")]
    assert shards[0] == shards[1] and shards[0]
    for name in shards[0]:
        assert ((tmp_path / "first" / "data" / name).read_bytes()
                == (tmp_path / "again" / "data" / name).read_bytes())


@pytest.mark.parametrize("workers, chunk", [(1, None), (2, None), (2, 3)])
def test_the_bar_counts_every_row_and_the_run_ends_without_waiting_on_it(tmp_path, monkeypatch, progress_bars,
                                                                         workers, chunk):
    # The progress thread is ended by a marker after the last count: every row counted, in
    # one-process, shard-pool and row-feed runs alike.
    import time

    from blursynth.dataset import executors

    # A poll far longer than the run: only the marker can end the progress thread in time.
    monkeypatch.setattr(executors, "_DRAIN_POLL", 60.0)
    t = time.perf_counter()
    write_dataset(tmp_path / "d", kind="pairs", schema=PAIR_SCHEMA, n_items=17, shard_size=4,
                  make_rows=functools.partial(tiny_rows, fp="bar"), fingerprint="bar", command={"test": "bar"},
                  workers=workers, progress=True, chunk_size=chunk)
    assert time.perf_counter() - t < 30
    assert [(b.total, b.n) for b in progress_bars] == [(17, 17)]


def test_a_build_step_on_a_gpu_defaults_to_one_worker(run_cli, tmp_path, monkeypatch):
    # As the step's own command: one worker on a GPU unless --workers (or the variable) says.
    from blursynth import _threads
    from blursynth.nn import device
    from blursynth.pairs import shake

    from .conftest import TINY

    import dataclasses

    seen = []
    real = shake.blur_photos

    def blur_photos(settings, *a, workers, **k):  # renders on the CPU: no GPU here
        seen.append(workers)
        return real(dataclasses.replace(settings, device="cpu"), *a, workers=1, **k)

    monkeypatch.setattr(shake, "blur_photos", blur_photos)
    monkeypatch.setattr(_threads, "available_cores", lambda: 5)
    monkeypatch.setattr(device, "resolve_device_name",
                        lambda name, **k: "cpu" if name == "cpu" else "cuda")
    monkeypatch.delenv("BLURSYNTH_WORKERS")
    for i, (extra, more) in enumerate((('device = "cuda"', []), ('device = "cpu"', []),
                                       ('device = "cuda"', ["--workers", "2"]),
                                       ('motion = "camera6d"', []))):  # auto: a GPU here
        recipe = tmp_path / f"r{i}.toml"
        text = TINY if "motion" not in extra else TINY.replace('kernels = "@bank"\n', "")
        recipe.write_text(text + extra + "\n")
        r = run_cli("build", recipe, "--out", tmp_path / f"o{i}", *more)
        assert r.code == 0, r
    assert seen == [1, 5, 2, 5]
