"""verify_dataset: names the bad shard or row; each kind's own checks (a bank's settings)."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from blursynth.dataset import PAIR_SCHEMA, verify_dataset
from blursynth.errors import DatasetError

from .conftest import error_line
from .conftest import write_tiny


def test_verify_names_truncated_shard(tmp_path, run_cli):
    write_tiny(tmp_path / "d")
    shard = tmp_path / "d/data/train-00002-of-00004.parquet"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    r = run_cli("dataset", "verify", tmp_path / "d")
    assert r.code == 2
    line = error_line(r)
    assert "train-00002-of-00004.parquet" in line and "sha256" in line


def test_verify_names_flipped_byte(tmp_path, run_cli):
    write_tiny(tmp_path / "d")
    shard = tmp_path / "d/data/train-00001-of-00004.parquet"
    data = bytearray(shard.read_bytes())
    data[len(data) // 3] ^= 0x01
    shard.write_bytes(bytes(data))
    r = run_cli("dataset", "verify", tmp_path / "d")
    assert r.code == 2 and "train-00001-of-00004.parquet" in error_line(r)


def test_verify_names_bad_row_when_hash_is_updated(tmp_path):
    # A shard rewritten with a broken PNG in row 4 and a manifest made to match its hash:
    # verify must still find the row by decoding.
    import hashlib

    import pyarrow as pa

    write_tiny(tmp_path / "d")
    path = tmp_path / "d/data/train-00000-of-00004.parquet"
    rows = pq.read_table(path).to_pylist()
    rows[4]["blurred"]["bytes"] = b"\x89PNG\r\n\x1a\nbroken"
    pq.write_table(pa.Table.from_pylist(rows, schema=PAIR_SCHEMA), path)
    manifest = json.loads((tmp_path / "d/manifest.json").read_text())
    manifest["shards"][0]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "d/manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"train-00000-of-00004.parquet row 4"):
        verify_dataset(tmp_path / "d")


def test_verify_manifest_mismatch(tmp_path, run_cli):
    write_tiny(tmp_path / "d")
    manifest = json.loads((tmp_path / "d/manifest.json").read_text())
    manifest["shards"][1]["rows"] = 99
    manifest["num_rows"] = 113
    (tmp_path / "d/manifest.json").write_text(json.dumps(manifest))
    r = run_cli("dataset", "verify", tmp_path / "d")
    assert r.code == 2 and "manifest.json says 99" in error_line(r)
    # A shard the manifest does not list.
    write_tiny(tmp_path / "e")
    (tmp_path / "e/data/train-00009-of-00009.parquet").write_bytes(b"x")
    r = run_cli("dataset", "verify", tmp_path / "e")
    assert r.code == 2 and "not listed" in error_line(r)


def test_verify_checks_a_banks_settings_against_its_fingerprint(tmp_path, run_cli):
    import shutil

    bank = Path(__file__).resolve().parents[1] / "kernels" / "eval48"
    shutil.copytree(bank, tmp_path / "bank")
    r = run_cli("dataset", "verify", tmp_path / "bank")
    assert r.code == 0, r.err
    manifest = json.loads((tmp_path / "bank/manifest.json").read_text())
    edited = json.loads(json.dumps(manifest))
    edited["command"]["seed"] += 1  # shards and hashes untouched: only the settings lie
    (tmp_path / "bank/manifest.json").write_text(json.dumps(edited))
    r = run_cli("dataset", "verify", tmp_path / "bank")
    assert r.code == 2 and "no longer match its fingerprint" in error_line(r)
    edited = json.loads(json.dumps(manifest))
    edited["exposures"] = [0.5, 1.0]
    (tmp_path / "bank/manifest.json").write_text(json.dumps(edited))
    r = run_cli("dataset", "verify", tmp_path / "bank")
    assert r.code == 2 and "made with" in error_line(r)
    edited["exposures"] = None
    (tmp_path / "bank/manifest.json").write_text(json.dumps(edited))
    r = run_cli("dataset", "verify", tmp_path / "bank")
    assert r.code == 2 and "not a list of numbers" in error_line(r)


@pytest.mark.slow  # a fresh Python process, so that nothing has imported kernelbank yet
def test_a_kernel_bank_verifies_without_importing_kernelbank_first():
    import subprocess
    import sys

    bank = Path(__file__).resolve().parents[1] / "kernels" / "eval48"
    code = ("import sys\nfrom blursynth.dataset import verify_dataset\n"
            "assert 'blursynth.kernelbank' not in sys.modules\n"
            f"r = verify_dataset({str(bank)!r}, decode=False)\n"
            "print(r['kind'], r['rows'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["kernels", "48"]
