"""Photos decoded ahead on a spare core (blursynth.sources.decode_ahead): the same arrays and
errors as load_rgb8, inherited by forked processes, and the same pairs written."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from blursynth.errors import BadInputError
from blursynth.sources import decode_ahead as da
from blursynth.sources.photos import load_rgb8

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="decodes ahead on Linux only")


@pytest.fixture
def folder(tmp_path, photos):
    """The blur photos (PNG, JPEG in a subfolder, grey PNG) and one corrupt PNG after them."""
    import shutil

    shutil.copytree(photos, tmp_path / "p")
    good = (tmp_path / "p" / "a.png").read_bytes()
    (tmp_path / "p" / "d.png").write_bytes(good[:200] + bytes(len(good) - 200))  # header intact
    return tmp_path / "p"


def _paths(folder):
    return [folder / "a.png", folder / "c.png", folder / "d.png", folder / "sub" / "b.jpg"]


def test_taken_photos_equal_load_rgb8_and_its_errors(folder):
    ahead = da.DecodeAhead(folder)
    try:
        ahead.wait()
        for path in _paths(folder):
            try:
                expected = load_rgb8(path)
            except BadInputError as exc:
                with pytest.raises(BadInputError) as got:
                    ahead.take(path)
                assert str(got.value) == str(exc)
                continue
            image, note = ahead.take(path)
            assert note == expected[1]
            assert image.dtype == np.uint8 and image.flags.writeable and image.flags.c_contiguous
            np.testing.assert_array_equal(image, expected[0])
            assert ahead.take(path) is None  # handed out once
    finally:
        ahead.close()
    assert ahead.read_fd is None  # the decoder was reaped


def test_budget_bounds_what_is_held(folder):
    import cv2

    cv2.imwrite(str(folder / "0big.png"), np.zeros((400, 500, 3), np.uint8))  # listed first
    first = load_rgb8(folder / "a.png")[0]
    ahead = da.DecodeAhead(folder, budget=first.nbytes + 10)
    try:
        ahead.wait()
        assert ahead.take(folder / "0big.png") is None  # over the budget: left to the job
        assert ahead.take(folder / "a.png") is not None  # the next photo that fits
        assert ahead.take(folder / "c.png") is None  # no room left: decoded when needed
    finally:
        ahead.close()


def test_a_photo_that_fails_otherwise_is_left_to_the_job(folder, monkeypatch):
    def failing(path):
        if str(path).endswith("a.png"):
            raise PermissionError(path)
        return load_rgb8(path)

    monkeypatch.setattr(da, "load_rgb8", failing)  # the decoder, forked next, has it too
    ahead = da.DecodeAhead(folder)
    try:
        ahead.wait()
        assert ahead.take(folder / "a.png") is None  # the job meets the error in its own words
        assert ahead.take(folder / "c.png") is not None  # and the decoder went on
    finally:
        ahead.close()


def test_a_pool_starting_stops_the_decoder_whatever_its_start_method(folder, monkeypatch):
    from blursynth.dataset import executors

    monkeypatch.setattr(executors, "_before_pool", [])
    monkeypatch.setattr(da, "_ahead", None)
    monkeypatch.setattr(da.threading, "active_count", lambda: 1)
    da.decode_ahead(folder)
    try:
        assert da._ahead.read_fd is not None
        executors._pool_starting()  # what a writer does before a fork server's pool, too
        assert da._ahead.read_fd is None
    finally:
        da.end_decode_ahead()


def _child_takes(path, expected_digest, queue):
    def refuse(path):
        raise AssertionError(f"{path} decoded again")

    da.load_rgb8 = refuse  # this child's own module: the photo must be the inherited one
    image, _ = da.load_photo(path)
    queue.put(hashlib.sha256(image.tobytes()).hexdigest() == expected_digest)


def test_forked_process_takes_what_was_decoded_before_the_fork(folder, monkeypatch):
    expected = hashlib.sha256(load_rgb8(folder / "c.png")[0].tobytes()).hexdigest()
    monkeypatch.setattr(da, "_ahead", da.DecodeAhead(folder))
    try:
        da._ahead.wait()
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        proc = ctx.Process(target=_child_takes, args=(folder / "c.png", expected, queue))
        proc.start()
        assert queue.get(timeout=30) is True
        proc.join(30)
        assert proc.exitcode == 0
        assert da._ahead.take(folder / "c.png") is not None  # this process has its own copy
    finally:
        da.end_decode_ahead()


def test_a_fork_stops_the_decoder_first(folder, monkeypatch):
    monkeypatch.setattr(da, "_ahead", da.DecodeAhead(folder))
    try:
        assert da._ahead.read_fd is not None
        proc = mp.get_context("fork").Process(target=int)
        proc.start()
        proc.join(30)
        # The hook ran before the fork: the decoder was told to stop and its reports taken,
        # so no report is left in a pipe both processes could read.
        assert da._ahead.read_fd is None
    finally:
        da.end_decode_ahead()


def _hang(*args):
    time.sleep(600)


def test_a_decoder_that_hangs_is_ended(folder, monkeypatch):
    monkeypatch.setattr(da, "_decode", _hang)
    monkeypatch.setattr(da, "HALT_WAIT", 0.2)
    ahead = da.DecodeAhead(folder)
    pid = ahead.pid
    t = time.monotonic()
    ahead.close()
    assert time.monotonic() - t < 10
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed and reaped
    assert ahead.take(folder / "a.png") is None


def test_blur_takes_every_photo_from_the_decoder(folder, tmp_path, monkeypatch):
    """Pairs made from decoded-ahead photos are the pairs made without: every photo comes from
    the decoder (decoding here is made to fail), and the shards are byte-identical."""
    from blursynth.pairs.shake import BlurSettings, blur_photos

    (folder / "d.png").unlink()
    settings = BlurSettings(photos=str(folder), psf_source="fresh", per_image=2, crop=(48, 48),
                            fresh_canvas=15, fresh_length_px=8.0)
    plain = blur_photos(settings, tmp_path / "plain", progress=False)

    def refuse(path):
        raise AssertionError(f"{path} decoded again")

    monkeypatch.setattr(da, "_ahead", da.DecodeAhead(folder))
    try:
        da._ahead.wait()
        monkeypatch.setattr(da, "load_rgb8", refuse)
        ahead = blur_photos(settings, tmp_path / "ahead", progress=False)
    finally:
        da.end_decode_ahead()
    assert ahead["num_rows"] == plain["num_rows"] == 6
    assert [s["sha256"] for s in ahead["shards"]] == [s["sha256"] for s in plain["shards"]]


def test_decoding_ahead_only_with_spare_workers_and_a_new_output(folder, tmp_path, monkeypatch):
    from blursynth.commands import _common

    started = []
    monkeypatch.setattr(da, "decode_ahead", lambda photos, exclude: started.append((photos, exclude)))
    monkeypatch.setattr("blursynth._threads.available_cores", lambda: 2)
    with _common.photos_decoded_ahead(folder, tmp_path / "out", 1):
        pass
    (tmp_path / "old").mkdir()
    with _common.photos_decoded_ahead(folder, tmp_path / "old", 2):
        pass
    assert started == []
    with _common.photos_decoded_ahead(folder, tmp_path / "out", 2):
        assert started == [(folder, tmp_path / "out")]


def test_the_decoder_goes_when_the_command_fails(folder, tmp_path, monkeypatch):
    """A refusal inside the block (here a made-up one) still ends the decoder."""
    from blursynth.commands import _common

    monkeypatch.setattr("blursynth._threads.available_cores", lambda: 2)
    monkeypatch.setattr(da.threading, "active_count", lambda: 1)  # decode ahead under pytest too
    with pytest.raises(BadInputError):
        with _common.photos_decoded_ahead(folder, tmp_path / "out", 2):
            decoder = da._ahead
            assert decoder is not None and decoder.read_fd is not None
            raise BadInputError("refused")
    assert da._ahead is None and decoder.read_fd is None


_COUNT_TAKES = """
import os, sys
from blursynth.sources import decode_ahead as da
log = sys.argv[1]
take = da.DecodeAhead.take
def counted(self, path):
    result = take(self, path)
    with open(log, "a") as f:
        f.write(f"{int(result is not None)} {path}\\n")
    return result
da.DecodeAhead.take = counted
from blursynth.cli import entry_point
sys.argv = ["blursynth", *sys.argv[2:]]
entry_point()
"""


def test_the_command_takes_its_photos_from_the_decoder(folder, tmp_path):
    """The command as a user runs it, PHOTOS spelled relative to the working folder: the photos
    are taken from the decoder (in the command's process or the pool's)."""
    (folder / "d.png").unlink()
    log = tmp_path / "takes.txt"
    env = {k: v for k, v in os.environ.items() if k != "BLURSYNTH_WORKERS"}
    proc = subprocess.run(
        [sys.executable, "-c", _COUNT_TAKES, str(log), "blur", f"./{folder.name}", "--out", "out",
         "--psf-source", "fresh", "--crop", "40x40", "--canvas", "15", "--length", "8", "--workers", "2"],
        cwd=folder.parent, capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    takes = log.read_text().split("\n")[:-1]
    assert len(takes) == 3  # one take per photo, in whichever process rendered it
    # Three small photos decode in milliseconds, during a start-up of half a second or more.
    assert sum(int(t.split()[0]) for t in takes) >= 1, takes


def test_cli_two_workers_write_the_bytes_of_one(folder, tmp_path):
    """The command as a user runs it (a fresh process, so the decoder forks), against one worker."""
    (folder / "d.png").unlink()
    shards = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        env = {**os.environ, "BLURSYNTH_WORKERS": None}
        env = {k: v for k, v in env.items() if v is not None}
        proc = subprocess.run(
            [sys.executable, "-m", "blursynth", "blur", str(folder), "--out", str(out), "--psf-source", "fresh",
             "--per-image", "3", "--crop", "40x40", "--canvas", "15", "--length", "8", "--workers", str(workers)],
            capture_output=True, text=True, timeout=300, env=env,
        )
        assert proc.returncode == 0, proc.stderr
        shards[workers] = {p.name: p.read_bytes() for p in sorted(Path(out).rglob("*.parquet"))}
    assert shards[1] and shards[1] == shards[2]
