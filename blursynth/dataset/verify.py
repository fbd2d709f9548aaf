"""Proving a dataset on disk is what its manifest says: hashes, row counts, and each kind's own checks."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from .._stopping import stop_if_asked
from ..errors import DatasetError
from .reader import check_shard_sha256, load_manifest
from .schema import DATA_DIR, known_kinds, registered_kind


def verify_dataset(path, *, decode: bool = True, progress: bool = False) -> dict:
    """Prove a dataset on disk is what its manifest says.

    Re-hashes every shard, checks row counts, and runs the checks the
    dataset's kind registered (:func:`~blursynth.dataset.schema.register_kind`):
    its manifest check, and (``decode=True``) its check of every row: a pair
    dataset decodes every image; a kernel bank checks every PSF, and its
    settings must still hash to its fingerprint and list the exposures it was
    made with.

    Returns
    -------
    report : dict
        ``{"shards": n, "rows": n, "kind": ...}``.

    Raises
    ------
    DatasetError
        Naming the first bad shard (and row, when a row is at fault), or a kind
        no module has registered.
    """
    path = Path(path)
    manifest = load_manifest(path)
    checks = registered_kind(manifest["kind"])
    if checks is None:
        raise DatasetError(
            f"{path}: a {manifest['kind']!r} dataset, a kind this program cannot check (known: "
            f"{', '.join(sorted(known_kinds()))}); import the module that writes it first.")
    if checks.check_manifest is not None:
        checks.check_manifest(path, manifest)
    listed = {s["file"] for s in manifest["shards"]}
    on_disk = {f"{DATA_DIR}/{p.name}" for p in (path / DATA_DIR).glob("*.parquet")}
    extra = sorted(on_disk - listed)
    if extra:
        raise DatasetError(f"{path / extra[0]}: shard not listed in manifest.json; the manifest does not match its shards.")
    from .._progress import progress_bar

    total = 0
    from .._startup import startup_over

    startup_over()  # the work begins: start-up's objects frozen, the collector back on
    bar = progress_bar(total=manifest["num_rows"], unit="row", desc="verifying", enabled=progress)
    try:
        for shard in manifest["shards"]:
            file = path / shard["file"]
            if not file.exists():
                raise DatasetError(f"{file}: shard listed in manifest.json is missing.")
            check_shard_sha256(file, shard["sha256"], cached=False)
            try:
                pf = pq.ParquetFile(file)
                rows = pf.metadata.num_rows
            except Exception as exc:
                raise DatasetError(f"{file}: unreadable Parquet ({exc}).") from None
            if rows != shard["rows"]:
                raise DatasetError(f"{file}: holds {rows} rows; manifest.json says {shard['rows']}.")
            if decode:
                row_no = 0
                try:
                    for batch in pf.iter_batches(batch_size=32):
                        for row in batch.to_pylist():
                            if checks.check_row is not None:
                                checks.check_row(row)
                            row_no += 1
                            stop_if_asked()
                            bar.update(1)
                except DatasetError as exc:
                    raise DatasetError(f"{file} row {row_no}: {exc}") from None
                except Exception as exc:
                    raise DatasetError(f"{file} row {row_no}: unreadable ({exc}).") from None
            total += rows
    finally:
        bar.close()
    if total != manifest["num_rows"]:
        raise DatasetError(f"{path}: shards hold {total} rows; manifest.json says {manifest['num_rows']}.")
    return {"kind": manifest["kind"], "shards": len(manifest["shards"]), "rows": total}
