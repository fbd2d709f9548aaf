"""A dataset's summary for ``blursynth dataset info``: manifest facts, size, sources, image sizes."""

from __future__ import annotations

import collections
import json
import struct
from pathlib import Path

from .reader import ShardedTable, load_manifest


def dataset_info(path, *, verify: bool = True) -> dict:
    """Summary of a dataset: manifest facts, bytes on disk, rows per source, image sizes seen.

    The rows of a pair dataset are read, so ``verify`` checks each shard against the manifest
    as it is opened (as every reader does).
    """
    path = Path(path)
    manifest = load_manifest(path)
    table = ShardedTable(path, verify=verify)
    info = {
        "path": str(path),
        "kind": manifest["kind"],
        "rows": manifest["num_rows"],
        "shards": len(manifest["shards"]),
        "bytes": sum((path / s["file"]).stat().st_size for s in manifest["shards"] if (path / s["file"]).exists()),
        "fingerprint": manifest["fingerprint"],
        "command": manifest.get("command", {}),
    }
    # The curve(s) the pairs went through: the manifest's tag, or (older datasets) the command's crf.
    crf = manifest.get("camera_response")
    if crf is None and isinstance(info["command"], dict) and info["command"].get("crf") is not None:
        crf = {"crf": info["command"]["crf"]}
    if crf is not None:
        info["camera_response"] = crf
    # Samples the maker refused (frames-average: windows across a scene cut), by reason.
    skipped = collections.Counter(r.get("reason", "?") for s in manifest["shards"] for r in s.get("skipped", []))
    if skipped:
        info["skipped"] = dict(sorted(skipped.items()))
    if manifest["kind"] == "pairs":
        sources = collections.Counter()
        sizes = collections.Counter()
        with_psf = without_truth = with_frames = 0
        for s in range(len(table.shards)):
            for first, batch in table.iter_batches(s, columns=["source", "psf", "params"], batch_size=4096):
                rows = table.to_pylist(s, first, batch.select(["source", "params"]))
                sources.update(row["source"] for row in rows)
                with_psf += len(batch.column(1)) - batch.column(1).null_count
                # Imported test sets: images without ground truth (params say so; sharp is null)
                # and recorded sequences (gt_frames), counted from the params, not the images.
                for row in rows:
                    if row["source"] == "real":
                        p = json.loads(row["params"])
                        without_truth += p.get("ground_truth") is False
                        with_frames += bool(p.get("gt_frame_count"))
            # Image sizes from the first rows of each shard only: reading every PNG would
            # read the whole dataset.
            for _, batch in table.iter_batches(s, columns=["blurred"], batch_size=4):
                for data in batch.column(0).field("bytes").to_pylist():
                    if data[:8] == b"\x89PNG\r\n\x1a\n":
                        w, h = struct.unpack(">II", data[16:24])
                        sizes[f"{h}x{w}"] += 1  # HxW, as every size blursynth prints
                break  # the first batch only
        info["sources"] = dict(sources)
        info["with_psf"] = with_psf
        if without_truth:
            info["without_ground_truth"] = without_truth
        if with_frames:
            info["with_gt_frames"] = with_frames
        if manifest.get("sets"):
            info["sets"] = manifest["sets"]
        info["image_sizes_sampled"] = dict(sizes.most_common(5))
    else:
        info["exposures"] = manifest.get("exposures")
    return info
