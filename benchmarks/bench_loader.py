"""A training loader's reads of a stored pair dataset: in order and shuffled, one Parquet row per
row group (how pair datasets are written) against 16 (how earlier versions wrote them).

A Parquet reader reads a whole row group to give one of its rows, so a shuffled loader over
16-row groups reads about 16 pairs for each it uses. The dataset: 64 pairs of 32 distinct
720x1280 photos (`blur --psf-source fresh --per-image 2`); the baseline is the same shard
written again with 16 rows per group, in the same run. Times are the best of 3 passes over every
pair (page cache warm, passes interleaved), per pair: `PairDataset[i]` (both images decoded, as a loader worker
gives them) with a 256x256 crop and whole, and the raw row read alone (`ShardedTable.row`).

Run: .venv/bin/python benchmarks/bench_loader.py [--no-write]
Writes the "Training loader: random reads" section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from benchmarks._common import machine_line, write_section  # noqa: E402


def regroup(src: Path, dst: Path, rows_per_group: int) -> None:
    """``src`` copied to ``dst`` with its shards rewritten at ``rows_per_group`` (same rows,
    same column options, the layout recorded as the writer records it), the manifest's digests
    updated."""
    import pyarrow.parquet as pq

    from blursynth.dataset.schema import sha256_file
    from blursynth.dataset.writer import _writer_metadata

    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    for shard in manifest["shards"]:
        path = dst / shard["file"]
        f = pq.ParquetFile(path)
        table = f.read()
        table = table.replace_schema_metadata(_writer_metadata(table.schema, rows_per_group).metadata)
        # The writer's options: zstd but for the PNG bytes, no dictionary, no statistics.
        names = [f.schema.column(i).path for i in range(len(f.schema))]
        compression = {n: ("none" if n.endswith(".bytes") else "zstd") for n in names}
        pq.write_table(table, path, row_group_size=rows_per_group, compression=compression,
                       use_dictionary=False, write_statistics=False)
        shard["sha256"] = sha256_file(path)
    (dst / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def per_pair_ms(fn, order, passes=3) -> float:
    best = float("inf")
    for _ in range(passes):
        t = time.perf_counter()
        for i in order:
            fn(int(i))
        best = min(best, time.perf_counter() - t)
    return best / len(order) * 1000


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-write", action="store_true", help="Print, do not touch RESULTS.md.")
    args = ap.parse_args(argv)
    from bench_blur import distinct_photos

    from blursynth.dataset.reader import PairDataset as Stored
    from blursynth.pairs.shake import BlurSettings, blur_photos
    from blursynth.torch import PairDataset

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        distinct_photos(tmp / "photos", 32)
        settings = BlurSettings(photos=str(tmp / "photos"), psf_source="fresh", per_image=2)
        blur_photos(settings, tmp / "one", workers=1, progress=False)
        regroup(tmp / "one", tmp / "sixteen", 16)
        n = 64
        orders = {"in order": np.arange(n), "shuffled": np.random.default_rng(0).permutation(n)}
        reads = {}
        for name in ("one", "sixteen"):
            path = tmp / name
            table = Stored(path).table  # its one-row-group cache serves reads in order
            for crop in (256, None):
                ds = PairDataset(str(path), crop=crop)
                ds[0]
                reads[name, f"PairDataset[i], crop {crop or 'none'}"] = ds.__getitem__
            reads[name, "raw row read"] = lambda i, table=table: table.row(i, ["blurred", "sharp"])
        # Interleaved passes (every read, both layouts, both orders, then again), best of 3:
        # a shared machine's slow spells touch both layouts alike.
        res = {}
        for _ in range(3):
            for (name, what), fn in reads.items():
                for o, order in orders.items():
                    ms = per_pair_ms(fn, order, passes=1)
                    res[name, what, o] = min(ms, res.get((name, what, o), float("inf")))
    rows = [
        f"`benchmarks/bench_loader.py`, {machine_line()}.",
        "",
        "A stored dataset of 64 pairs of 32 distinct 720x1280 photos; milliseconds per pair, best "
        "of 3 passes (page cache warm); the same shard with one row per Parquet row group (as "
        "written now) and with 16 (as earlier versions wrote it), in this run, passes interleaved.",
        "",
        "| read | order | 1 row per group | 16 rows per group | 16 over 1 |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for what in ("PairDataset[i], crop 256", "PairDataset[i], crop none", "raw row read"):
        for o in orders:
            a, b = res["one", what, o], res["sixteen", what, o]
            rows.append(f"| {what} | {o} | {a:.1f} | {b:.1f} | {b / a:.2f}x |")
    text = "\n".join(rows)
    print(text)
    if not args.no_write:
        write_section("Training loader: random reads", text)


if __name__ == "__main__":
    main()
