"""The dataset writer: round trip, bytes independent of workers, resume, refusals, kills."""

import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from blursynth._rng import sample_rng
from blursynth.dataset import (
    PAIR_SCHEMA, PairDataset, load_manifest, verify_dataset, write_dataset,
)
from blursynth.errors import BadInputError, DatasetError

from .conftest import error_line, held_lock, tiny_rows, write_tiny


def test_round_trip(tmp_path):
    m = write_tiny(tmp_path / "d")
    assert m["num_rows"] == 20 and len(m["shards"]) == 4
    assert [s["file"] for s in m["shards"]][0] == "data/train-00000-of-00004.parquet"
    ds = PairDataset(tmp_path / "d")
    assert len(ds) == 20
    expected = list(tiny_rows(0, 20))
    for i in (0, 5, 6, 19, -1):
        item = ds[i]
        j = i % 20
        assert item["index"] == j and item["params"] == {"i": j, "note": "tiny"}
        sharp = sample_rng(0, j).integers(0, 256, (12, 16, 3), dtype=np.uint8)
        np.testing.assert_array_equal(item["sharp"], sharp)
        np.testing.assert_array_equal(item["blurred"], sharp // 2)
        assert (item["psf"] is None) == (j % 2 == 0)
        assert expected[j]["id"] == item["id"]
    with pytest.raises(IndexError):
        ds[20]
    assert [r["index"] for r in ds] == list(range(20))
    assert verify_dataset(tmp_path / "d") == {"kind": "pairs", "shards": 4, "rows": 20}


def test_bytes_do_not_depend_on_workers(tmp_path):
    write_tiny(tmp_path / "a", workers=1)
    write_tiny(tmp_path / "b", workers=2)
    for name in ["manifest.json"] + [f"data/{p.name}" for p in (tmp_path / "a/data").iterdir()]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


@pytest.mark.parametrize("workers, sync_every", [(1, None), (2, None), (1, 100)])
def test_manifest_digests_are_the_files_own(tmp_path, monkeypatch, workers, sync_every):
    # The digest is taken from the bytes as they are written, not by reading the shard back;
    # the early syncs (every 100 bytes here: many per shard) change neither.
    from blursynth.dataset import writer
    from blursynth.dataset.schema import sha256_file

    if sync_every:
        plain = write_tiny(tmp_path / "plain", n=13, shard_size=5, workers=workers)
        monkeypatch.setattr(writer._HashingFile, "SYNC_EVERY", sync_every)
        synced = []
        monkeypatch.setattr(writer, "_sync_quietly", lambda fd: synced.append(fd))
    m = write_tiny(tmp_path / "d", n=13, shard_size=5, workers=workers)
    if sync_every:
        assert len(synced) >= 3  # at least one per shard
        assert m == plain
    for shard in m["shards"]:
        assert shard["sha256"] == sha256_file(tmp_path / "d" / shard["file"]), shard["file"]
    assert len({s["sha256"] for s in m["shards"]}) == 3


def test_the_disk_syncs_run_beside_the_write_and_end_with_it(tmp_path, monkeypatch):
    # The real fdatasync threads, many per shard; the same bytes, and no thread or file left.
    import threading

    from blursynth.dataset import writer

    plain = write_tiny(tmp_path / "plain", n=13, shard_size=5)
    monkeypatch.setattr(writer._HashingFile, "SYNC_EVERY", 100)
    started = []
    real_sync = writer._sync_quietly
    monkeypatch.setattr(writer, "_sync_quietly", lambda fd: started.append(fd) or real_sync(fd))
    threads = threading.active_count()
    assert write_tiny(tmp_path / "d", n=13, shard_size=5) == plain
    assert len(started) >= 3 and threading.active_count() == threads


def _rows_then_fail(start, stop, fp):
    for i, row in enumerate(tiny_rows(start, stop, fp=fp)):
        if i == 3:
            raise RuntimeError("the row maker failed")
        yield row


def test_a_failing_row_maker_leaves_no_temporary_file_or_sync_thread(tmp_path, monkeypatch):
    # Row groups of one row: the shard has been written to, and synced, before the failure.
    import threading

    from blursynth.dataset import writer

    monkeypatch.setattr(writer._HashingFile, "SYNC_EVERY", 100)
    started = []
    real_sync = writer._sync_quietly
    monkeypatch.setattr(writer, "_sync_quietly", lambda fd: started.append(fd) or real_sync(fd))
    threads = threading.active_count()
    with pytest.raises(RuntimeError, match="the row maker failed"):
        write_dataset(tmp_path / "d", kind="pairs", schema=PAIR_SCHEMA, n_items=5, shard_size=5,
                      make_rows=functools.partial(_rows_then_fail, fp="f"), fingerprint="f", command={},
                      row_group_size=1, progress=False)
    assert started and threading.active_count() == threads
    assert not [p for p in (tmp_path / "d" / "data").iterdir() if p.name.startswith(".")]


def pid_rows(start, stop, fp="fp-test"):
    """Rows whose params name the process that made them (to see who wrote which shard)."""
    import os

    for row in tiny_rows(start, stop, fp=fp):
        row["params"] = json.dumps({"pid": os.getpid()})
        yield row


def test_pool_shares_shards_with_the_calling_process(tmp_path):
    import os

    write_tiny(tmp_path / "d", n=24, shard_size=2, workers=2, make_rows=pid_rows)
    pids = {r["params"]["pid"] for r in PairDataset(tmp_path / "d")}
    assert os.getpid() in pids  # this process wrote shards...
    assert len(pids) == 2  # ...and so did exactly one pool process (workers=2 means two in all)
    assert verify_dataset(tmp_path / "d")["rows"] == 24


def test_huggingface_datasets_decodes_images(tmp_path):
    datasets = pytest.importorskip("datasets")
    write_tiny(tmp_path / "d")
    files = sorted(str(p) for p in (tmp_path / "d/data").glob("*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert ds.features["blurred"].__class__.__name__ == "Image"
    img = ds[3]["sharp"]
    np.testing.assert_array_equal(np.asarray(img), PairDataset(tmp_path / "d")[3]["sharp"])
    assert ds[3]["psf"]["shape"] == [3, 3]


def test_pyarrow_dataset_and_duckdb_read_shards(tmp_path):
    import pyarrow.dataset as pds

    write_tiny(tmp_path / "d")
    table = pds.dataset(str(tmp_path / "d/data"), format="parquet").to_table(columns=["index", "source"])
    assert sorted(table.column("index").to_pylist()) == list(range(20))
    duckdb = pytest.importorskip("duckdb")
    n, s = duckdb.sql(f"SELECT count(*), sum(index) FROM '{tmp_path}/d/data/*.parquet'").fetchall()[0]
    assert (n, s) == (20, sum(range(20)))


def test_writer_settings_in_key_value_metadata(tmp_path):
    write_tiny(tmp_path / "d")
    f = pq.ParquetFile(tmp_path / "d/data/train-00000-of-00004.parquet")
    meta = json.loads(f.schema_arrow.metadata[b"blursynth"])
    assert meta["kind"] == "pairs" and meta["format_version"] == 1
    assert meta["writer"]["uncompressed_columns"] == ["blurred.bytes", "sharp.bytes"]
    hf = json.loads(f.schema_arrow.metadata[b"huggingface"])
    assert hf["info"]["features"]["blurred"] == {"_type": "Image"}
    # The PNG columns really are stored uncompressed, the others with zstd.
    rg = f.metadata.row_group(0)
    codecs = {rg.column(c).path_in_schema: rg.column(c).compression for c in range(rg.num_columns)}
    assert codecs["blurred.bytes"] == "UNCOMPRESSED" and codecs["params"] == "ZSTD"
    # Plain binary/string, not large_*.
    assert str(f.schema_arrow.field("blurred").type) == "struct<bytes: binary, path: string>"


def _interrupted_rows(start, stop, fp):
    if start >= 12:
        raise KeyboardInterrupt  # as if Ctrl-C arrived during the third shard
    yield from tiny_rows(start, stop, fp=fp)


def test_resume_skips_complete_shards_and_ends_identical(tmp_path):
    write_tiny(tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        write_tiny(tmp_path / "part", make_rows=_interrupted_rows)
    assert not (tmp_path / "part/manifest.json").exists()
    kept = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "part/data").glob("*.parquet")}
    assert len(kept) == 2
    write_tiny(tmp_path / "part")
    for name, mtime in kept.items():
        assert (tmp_path / "part/data" / name).stat().st_mtime_ns == mtime  # not rewritten
    for p in (tmp_path / "full").rglob("*"):
        if p.is_file():
            assert p.read_bytes() == (tmp_path / "part" / p.relative_to(tmp_path / "full")).read_bytes()


def test_rerun_rebuilds_a_shard_that_changed_on_disk(tmp_path):
    write_tiny(tmp_path / "d")
    shard = tmp_path / "d/data/train-00001-of-00004.parquet"
    good = shard.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 3] ^= 0x01
    shard.write_bytes(bytes(bad))
    with pytest.raises(DatasetError):
        verify_dataset(tmp_path / "d")
    write_tiny(tmp_path / "d")  # the same command again
    assert shard.read_bytes() == good
    assert verify_dataset(tmp_path / "d")["rows"] == 20


@pytest.mark.parametrize("stop_early", [False, True])
def test_the_same_command_with_other_settings_is_told_which_differ(tmp_path, stop_early):
    # From the manifest of a finished dataset, and from the progress file of an interrupted one.
    from blursynth.dataset import write_dataset
    from blursynth.dataset.schema import PAIR_SCHEMA

    def write(fp, settings, rows=tiny_rows):
        return write_dataset(tmp_path / "d", kind="pairs", schema=PAIR_SCHEMA, n_items=12, shard_size=6,
                             make_rows=functools.partial(rows, fp=fp), fingerprint=fp,
                             command={"command": "blur", **settings}, workers=1, overwrite=False,
                             progress=False)

    def stop_in_second_shard(start, stop, fp):
        if start >= 6:
            raise KeyboardInterrupt
        yield from tiny_rows(start, stop, fp=fp)

    if stop_early:
        with pytest.raises(KeyboardInterrupt):
            write("one", {"seed": 1, "size": (3, 4), "photos": "a/"}, rows=stop_in_second_shard)
    else:
        write("one", {"seed": 1, "size": (3, 4), "photos": "a/"})
    with pytest.raises(DatasetError) as info:
        write("two", {"seed": 2, "size": (3, 4), "photos": "a/"})
    assert str(info.value) == (f"{tmp_path / 'd'} holds a pairs dataset made by this command with other "
                               "settings (seed 1 (recorded) vs 2; fingerprint one != two); rerun with the "
                               "recorded settings to resume it, choose another output folder or pass "
                               "--overwrite to replace it.")
    with pytest.raises(DatasetError) as info:  # long values cut, at most three named
        write("three", {"seed": 3, "size": [5, 6], "photos": "b" * 100, "z": 1})
    message = str(info.value)
    assert 'photos "a/" (recorded) vs "' + "b" * 56 + "..., " in message and "and 1 more;" in message


def test_different_command_refused_unless_overwrite(tmp_path):
    write_tiny(tmp_path / "d", fp="one")
    with pytest.raises(DatasetError, match="different command"):
        write_tiny(tmp_path / "d", fp="two")
    assert load_manifest(tmp_path / "d")["fingerprint"] == "one"
    write_tiny(tmp_path / "d", fp="two", overwrite=True)
    assert load_manifest(tmp_path / "d")["fingerprint"] == "two"


def test_out_is_a_file_or_foreign_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(BadInputError, match="is a file"):
        write_tiny(tmp_path / "f")
    (tmp_path / "other").mkdir()
    (tmp_path / "other/notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not a blursynth dataset"):
        write_tiny(tmp_path / "other", overwrite=True)
    assert (tmp_path / "other/notes.txt").read_text() == "mine"


def _bad_rows(start, stop, fp):
    raise BadInputError("bad input found while working")
    yield  # pragma: no cover


def test_bad_input_during_first_shard_leaves_nothing(tmp_path):
    with pytest.raises(BadInputError):
        write_tiny(tmp_path / "d", make_rows=_bad_rows)
    assert not (tmp_path / "d").exists()


def test_out_that_cannot_be_created(tmp_path, run_cli):
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInputError, match="cannot write there"):
        write_tiny(tmp_path / "file" / "d", n=2)
    r = run_cli("trajectories", "--n", 2, "--out", tmp_path / "file" / "bank")
    assert r.code == 2 and "cannot write there" in error_line(r)
    assert (tmp_path / "file").read_text() == "x"


KILL_SCRIPT = r"""
import functools, sys, time
sys.path.insert(0, {root!r})
from tests.test_dataset_writer import write_tiny, slow_rows
write_tiny(sys.argv[1], n=40, shard_size=5, make_rows=slow_rows)
"""


def slow_rows(start, stop, fp):
    for row in tiny_rows(start, stop, fp=fp):
        time.sleep(0.1)  # 0.5 s a shard: time enough to kill the writer mid-run, even on a busy machine
        yield row


@pytest.mark.slow  # runs the writer in a subprocess and kills it
def test_killed_writer_leaves_no_partial_shard_and_rerun_is_identical(tmp_path):
    root = str(Path(__file__).resolve().parents[1])
    script = tmp_path / "run.py"
    script.write_text(KILL_SCRIPT.format(root=root))
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(out)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        done = list((out / "data").glob("*.parquet")) if (out / "data").exists() else []
        if len(done) >= 2:
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert not (out / "manifest.json").exists()
    shards = sorted((out / "data").glob("*.parquet"))
    assert 2 <= len(shards) < 8
    for s in shards:  # every visible shard is complete and readable
        assert pq.ParquetFile(s).metadata.num_rows == 5
    write_tiny(out, n=40, shard_size=5, make_rows=slow_rows)
    assert not list((out / "data").glob(".*tmp*"))
    write_tiny(tmp_path / "clean", n=40, shard_size=5)
    for p in (tmp_path / "clean").rglob("*"):
        if p.is_file():
            assert p.read_bytes() == (out / p.relative_to(tmp_path / "clean")).read_bytes(), p.name


def test_write_options_limit_and_recipe(tmp_path):
    from blursynth.config import fingerprint
    from blursynth.dataset import WriteOptions

    recipe = {"file": "r.toml", "fingerprint": "abc", "step": "synth"}
    m = write_dataset(tmp_path / "d", kind="pairs", schema=PAIR_SCHEMA, n_items=20, shard_size=6,
                      make_rows=functools.partial(tiny_rows, fp="fp-test"), fingerprint="fp-test",
                      command={"test": "fp-test"}, progress=False, options=WriteOptions(limit=5, recipe=recipe))
    assert m["num_rows"] == m["planned_items"] == 5 and m["recipe"] == recipe
    # A limited dataset is another dataset: a full write into the folder is refused, not resumed.
    assert m["fingerprint"] == fingerprint({"fingerprint": "fp-test", "limit": 5, "picks": "spread"})
    with pytest.raises(DatasetError, match="different command"):
        write_tiny(tmp_path / "d")
    # A limit above the number of items changes nothing.
    full = write_dataset(tmp_path / "e", kind="pairs", schema=PAIR_SCHEMA, n_items=20, shard_size=6,
                         make_rows=functools.partial(tiny_rows, fp="fp-test"), fingerprint="fp-test",
                         command={"test": "fp-test"}, progress=False, options=WriteOptions(limit=50))
    assert full == write_tiny(tmp_path / "f")


def test_a_second_writer_is_refused_while_the_first_holds_the_folder(tmp_path, run_cli):
    out = tmp_path / "bank"
    with held_lock(out) as pid:
        r = run_cli("trajectories", "--n", 2, "--samples", 64, "--out", out)
    assert r.code == 2
    assert error_line(r) == (
        f"error: --out {out}: another blursynth process (pid {pid}) is writing there; "
        "wait for it to finish or choose another --out."
    )
    assert [p.name for p in out.iterdir()] == [".blursynth.lock"]  # nothing written, nothing removed


def test_a_rerun_removes_only_the_temporaries_a_killed_writer_made(tmp_path):
    out = tmp_path / "d"
    write_tiny(out, n=12, shard_size=6)
    debris = [out / ".manifest.json.tmp4242", out / "..blursynth-progress.json.tmp4242",
              out / "data" / ".train-00001-of-00002.parquet.tmp4242"]
    kept = [out / ".notes.tmp4242", out / "data" / ".README.txt.tmp1"]
    for p in debris + kept:
        p.write_bytes(b"partial")
    write_tiny(out, n=12, shard_size=6)
    assert not any(p.exists() for p in debris)
    assert all(p.exists() for p in kept)


def test_a_data_folder_that_is_a_link_is_refused_and_nothing_behind_it_is_removed(tmp_path):
    shared = tmp_path / "shared"
    write_tiny(shared, n=6, shard_size=6, fp="other")
    out = tmp_path / "d"
    out.mkdir()
    (out / "data").symlink_to(shared / "data")
    (out / ".blursynth-progress.json").write_text(json.dumps({"kind": "pairs", "fingerprint": "fp-test", "n_shards": 2, "done": {}}))
    before = sorted(p.name for p in (shared / "data").iterdir())
    with pytest.raises(BadInputError, match=r"data is a symbolic link; blursynth will not remove or replace shards through a link"):
        write_tiny(out, n=12, shard_size=6)
    assert sorted(p.name for p in (shared / "data").iterdir()) == before


def test_a_killed_writers_temporaries_are_found_whatever_the_shard_count(tmp_path):
    # Shard numbers take more than five digits from 100000 shards on (a kernel bank may have 100000).
    from blursynth.dataset.schema import shard_name
    from blursynth.dataset.writer import _remove_temporaries

    data = tmp_path / "data"
    data.mkdir()
    names = [shard_name("train", 3, 12), shard_name("train", 99999, 100000), shard_name("train", 100000, 100001)]
    for name in names:
        (data / f".{name}.tmp4242").write_bytes(b"partial")
    (data / ".notes.parquet.tmp4242").write_bytes(b"not a shard name")
    _remove_temporaries(tmp_path)
    assert [p.name for p in data.iterdir()] == [".notes.parquet.tmp4242"]


def test_a_resume_with_work_to_do_rebuilds_shards_written_with_other_row_groups(tmp_path):
    # Earlier versions wrote pairs 16 to a row group. A resume that writes anything makes such
    # shards again (and says so), so the dataset is the bytes of an uninterrupted run; a
    # finished dataset of an earlier version is left as it is (rebuilding it would be a whole
    # run's work for the same pairs).
    def write(out, **kw):
        return write_dataset(out, kind="pairs", schema=PAIR_SCHEMA, n_items=10, shard_size=5,
                             make_rows=functools.partial(tiny_rows, fp="f"), fingerprint="f",
                             command={}, progress=False, **kw)

    def shards(out):
        return {p.name: p.read_bytes() for p in (out / "data").glob("*.parquet")}

    fresh = write(tmp_path / "new")
    assert (fresh.rows_written, fresh.shards_written) == (10, 2)
    assert [pq.ParquetFile(p).metadata.num_row_groups for p in sorted((tmp_path / "new").glob("data/*"))] == [5, 5]
    old = tmp_path / "old"
    write(old, row_group_size=16)
    before = shards(old)
    finished = write(old)
    assert (finished.rows_written, finished.shards_written) == (0, 0) and shards(old) == before
    (old / "data" / "train-00001-of-00002.parquet").unlink()  # as if that run had stopped there
    with pytest.warns(UserWarning, match=r"rebuilding 1 finished shard\(s\) written with other Parquet row "
                                         r"groups than this blursynth writes \(1 row\(s\) each\)"):
        again = write(old)
    assert (again.rows_written, again.shards_written) == (10, 2)
    assert shards(old) == shards(tmp_path / "new")
    done = write(tmp_path / "new")
    assert (done.rows_written, done.shards_written) == (0, 0) and done == fresh


def test_a_shard_is_of_another_layout_by_its_row_groups_not_only_by_what_it_records(tmp_path):
    from blursynth.dataset.writer import _has_layout

    out = tmp_path / "d"
    write_dataset(out, kind="pairs", schema=PAIR_SCHEMA, n_items=4, shard_size=4,
                  make_rows=functools.partial(tiny_rows, fp="f"), fingerprint="f", command={}, progress=False)
    shard = next((out / "data").glob("*.parquet"))
    assert _has_layout(shard, 1) and not _has_layout(shard, 16)
    table = pq.read_table(shard)  # the same rows and metadata, rewritten in one group
    pq.write_table(table, shard, row_group_size=4)
    assert b"blursynth" in pq.read_metadata(shard).metadata and not _has_layout(shard, 1)
