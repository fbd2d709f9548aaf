"""Reading datasets: unfinished, missing and hand-edited datasets are one-line errors."""

import json

import pytest

from blursynth.dataset import PairDataset
from blursynth.errors import DatasetError

from .conftest import error_line
from .conftest import write_tiny


def test_unfinished_dataset_is_not_readable(tmp_path):
    write_tiny(tmp_path / "d")
    (tmp_path / "d/manifest.json").unlink()
    (tmp_path / "d/.blursynth-progress.json").write_text("{}")
    with pytest.raises(DatasetError, match="unfinished"):
        PairDataset(tmp_path / "d")


def test_not_a_dataset(tmp_path, run_cli):
    for args in (["dataset", "info", tmp_path / "missing"], ["dataset", "verify", tmp_path]):
        r = run_cli(*args)
        assert r.code == 2, r
        line = error_line(r)
        assert "manifest.json" in line or "no such dataset" in line, line


def test_hand_edited_manifest_is_a_one_line_error(tmp_path, run_cli):
    write_tiny(tmp_path / "d", n=4, shard_size=4)
    manifest = json.loads((tmp_path / "d/manifest.json").read_text())
    manifest["num_rows"] = manifest["shards"][0]["rows"] = 40
    (tmp_path / "d/manifest.json").write_text(json.dumps(manifest))
    r = run_cli("dataset", "preview", tmp_path / "d", "--out", tmp_path / "p.png", "--start", 20)
    assert r.code == 2 and "holds 4 rows; manifest.json says 40" in error_line(r)
    assert not (tmp_path / "p.png").exists()
    (tmp_path / "d/manifest.json").write_text("[]")
    r = run_cli("dataset", "info", tmp_path / "d")
    assert r.code == 2 and "not an object" in error_line(r)


# --- every reader checks each shard against the manifest as it opens it (D4, D14) ---------------

def _shards(d):
    return [d / s["file"] for s in json.loads((d / "manifest.json").read_text())["shards"]]


def _page(shard, column):
    """(offset, size) of the first page of ``column`` in a shard's first row group."""
    import pyarrow.parquet as pq

    rg = pq.ParquetFile(shard).metadata.row_group(0)
    col = next(rg.column(k) for k in range(rg.num_columns) if rg.column(k).path_in_schema == column)
    return col.data_page_offset, col.total_compressed_size


def _flip(file, offset):
    data = bytearray(file.read_bytes())
    data[offset] ^= 0x40
    file.write_bytes(bytes(data))


def _rewrite_row(d, shard_no, row, column, value):
    """Put ``value`` (raw bytes for a string/binary column) into one row of a shard, keeping the
    manifest's hash in step: a dataset whose bytes are what its manifest says but do not decode."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from blursynth.dataset.schema import sha256_file

    shard = _shards(d)[shard_no]
    table = pq.read_table(shard)
    i = table.schema.get_field_index(column)
    if column == "blurred":
        struct = table.column(i).combine_chunks()
        data = struct.field("bytes").to_pylist()
        data[row] = value
        arr = pa.StructArray.from_arrays([pa.array(data, pa.binary()), struct.field("path")],
                                         fields=list(struct.type))
    else:
        data = [v.encode() for v in table.column(i).to_pylist()]
        data[row] = value
        arr = pa.array(data, pa.binary()).view(table.schema.field(i).type)
    pq.write_table(table.set_column(i, table.schema.field(i), arr), shard)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["shards"][shard_no]["sha256"] = sha256_file(shard)
    (d / "manifest.json").write_text(json.dumps(manifest))
    return shard


def test_a_changed_shard_is_refused_by_every_reader(tmp_path, run_cli):
    d = tmp_path / "d"
    write_tiny(d, n=8, shard_size=4)
    shard = _shards(d)[1]
    offset, _ = _page(shard, "blurred.bytes")
    _flip(shard, offset + 200)  # inside an image: before, export copied it and exited 0
    for args, made in ((["dataset", "export", d, "--out", tmp_path / "x"], tmp_path / "x"),
                       (["dataset", "preview", d, "--out", tmp_path / "p.png"], tmp_path / "p.png"),
                       (["dataset", "info", d], None)):
        r = run_cli(*args)
        line = error_line(r)
        assert r.code == 2 and line.startswith(f"error: {shard}: sha256 "), line
        assert "does not match manifest" in line
        assert "--no-verify" in line
        assert made is None or not made.exists()
    # --no-verify is the escape: export copies the bytes as they are.
    r = run_cli("dataset", "export", d, "--out", tmp_path / "x", "--no-verify")
    assert r.code == 0, r
    assert len(list((tmp_path / "x/blur").iterdir())) == 8


def test_swapped_and_unlisted_shards_are_refused(tmp_path, run_cli):
    d = tmp_path / "d"
    write_tiny(d, n=8, shard_size=4)
    a, b = _shards(d)
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    r = run_cli("dataset", "preview", d, "--out", tmp_path / "p.png")
    assert r.code == 2 and error_line(r).startswith(f"error: {a}: sha256 "), r
    assert not (tmp_path / "p.png").exists()
    assert run_cli("dataset", "preview", d, "--out", tmp_path / "p.png", "--no-verify").code == 0
    a.write_bytes(data_a)
    b.write_bytes(data_b)
    (d / "data/train-00007-of-00009.parquet").write_bytes(data_a)
    r = run_cli("dataset", "info", d)
    assert r.code == 2
    assert "train-00007-of-00009.parquet: shard not listed in manifest.json" in error_line(r)
    assert run_cli("dataset", "info", d, "--no-verify").code == 0


@pytest.mark.parametrize("name", ["../x.parquet", "/tmp/x.parquet", "data/../../x.parquet",
                                  "data/sub/x.parquet"])
def test_a_shard_name_leaving_the_dataset_is_refused(tmp_path, run_cli, name):
    d = tmp_path / "d"
    write_tiny(d, n=4, shard_size=4)
    (shard,) = _shards(d)
    outside = tmp_path / "x.parquet"
    outside.write_bytes(shard.read_bytes())  # a readable shard: only the name is wrong
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["shards"][0]["file"] = name
    (d / "manifest.json").write_text(json.dumps(manifest))
    for args in (["dataset", "info", d], ["dataset", "verify", d],
                 ["dataset", "preview", d, "--out", tmp_path / "p.png", "--no-verify"],
                 ["dataset", "export", d, "--out", tmp_path / "e", "--no-verify"]):
        r = run_cli(*args)
        assert r.code == 2, r
        assert f"file {name!r} is not a shard name inside the dataset" in error_line(r)
    assert not (tmp_path / "p.png").exists() and not (tmp_path / "e").exists()


@pytest.mark.parametrize("column, value, args, failure", [
    ("params", b"{not json", ["dataset", "export"], "JSONDecodeError"),
    ("source", b"tra\xffjectory", ["dataset", "info"], "UnicodeDecodeError"),
    ("blurred", b"\x89PNG\r\n\x1a\n garbage", ["dataset", "preview"],
     "blurred: cannot decode image"),
])
def test_a_row_that_does_not_decode_is_one_line_naming_shard_and_row(tmp_path, run_cli, column,
                                                                       value, args, failure):
    d = tmp_path / "d"
    write_tiny(d, n=8, shard_size=4)
    shard = _rewrite_row(d, 1, 2, column, value)
    out = {"info": [], "preview": ["--out", tmp_path / "o.png"],
           "export": ["--out", tmp_path / "o"]}[args[-1]]
    for verify in ([], ["--no-verify"]):
        r = run_cli(*args, d, *out, *verify)
        line = error_line(r)
        assert r.code == 2 and line.startswith(f"error: {shard} row 2") and failure in line, line
        assert not (tmp_path / "o").exists() and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("column, byte", [("params", 3), ("params", 7), ("source", 0), ("id", 5)])
def test_damaged_compressed_pages_are_one_line_under_no_verify(tmp_path, run_cli, column, byte):
    d = tmp_path / "d"
    write_tiny(d, n=4, shard_size=4)
    (shard,) = _shards(d)
    offset, _ = _page(shard, column)
    _flip(shard, offset + byte)  # thrift page headers and zstd frames: raw OSErrors before
    r = run_cli("dataset", "export", d, "--out", tmp_path / "x", "--no-verify")
    line = error_line(r)
    assert r.code == 2 and line.startswith(f"error: {shard} row") and "unreadable (" in line, line
    assert not (tmp_path / "x").exists()


def test_a_shard_changed_after_it_was_checked_is_checked_again(tmp_path):
    d = tmp_path / "d"
    write_tiny(d, n=4, shard_size=4)
    assert len(list(PairDataset(d))) == 4
    (shard,) = _shards(d)
    offset, _ = _page(shard, "sharp.bytes")
    _flip(shard, offset + 100)
    with pytest.raises(DatasetError, match="does not match manifest"):
        PairDataset(d)[0]
    assert PairDataset(d, verify=False).raw(0)["id"]


def test_read_decodes_only_the_columns_named(tmp_path):
    import numpy as np

    from blursynth.train.data import TRAIN_COLUMNS

    write_tiny(tmp_path / "d", n=3)
    ds = PairDataset(tmp_path / "d")
    full, part = ds[1], ds.read(1, TRAIN_COLUMNS)
    assert set(part) == set(TRAIN_COLUMNS)  # no psf, params or fingerprint read or decoded
    assert part["id"] == full["id"]
    assert np.array_equal(part["blurred"], full["blurred"])
    assert np.array_equal(part["sharp"], full["sharp"])
