"""Kernel banks: many random trajectories and their PSFs, as a sharded Parquet dataset.

One row per trajectory: its index and seed, the drawn parameters, one PSF per
exposure fraction (with the mass clipped and the trajectory extent at that
exposure), and the trajectory itself when asked for.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import pyarrow as pa

from ._rng import check_seed
from .dataset.reader import ShardedTable
from .dataset.schema import ARRAY_TYPE, check_psf, register_kind, struct_array, with_format_metadata
from .dataset.writer import write_dataset
from .errors import BadInputError, DatasetError, SettingError, checking
from .ops.psf import CENTRES, DEFAULT_EXPOSURES, exposure_samples
from .ops.trajectory import TrajectoryConfig, check_path_fits

CHUNK = 256  # trajectories per vectorised chunk (and per Parquet row group)
#: Largest trajectory canvas (px): PSFs of that size already dwarf most photos.
MAX_CANVAS = 1025
#: Most kernels in one bank: 10^8 is days of one core's work and tens of GB; a larger count is a
#: typo, and refusing it up front beats a writer planning 10^8 shards in memory.
MAX_KERNELS = 100_000_000
#: Most shards in one bank (each is a file in data/ and a task in the writer's plan).
MAX_SHARDS = 100_000

KERNEL_SCHEMA = with_format_metadata(
    pa.schema(
        [
            pa.field("id", pa.string()),
            pa.field("index", pa.int64()),
            pa.field("seed", pa.int64()),
            pa.field("expl", pa.float64()),
            pa.field("centripetal", pa.float64()),
            pa.field("prob_big_shake", pa.float64()),
            pa.field("gaussian_shake", pa.float64()),
            pa.field("angle_rad", pa.float64()),
            pa.field("n_big_shakes", pa.int32()),
            pa.field("exposures", pa.list_(pa.float32())),
            pa.field("psfs", pa.list_(ARRAY_TYPE)),
            pa.field("clipped", pa.list_(pa.float32())),
            pa.field("extent_px", pa.list_(pa.float32())),
            pa.field("trajectory", ARRAY_TYPE),
        ]
    ),
    "kernels",
)


def _is_whole(x) -> bool:
    """A finite number with no fractional part (NaN, infinity and strings are not)."""
    return isinstance(x, (int, float, np.integer, np.floating)) and math.isfinite(x) and int(x) == x


@dataclass(frozen=True)
class KernelBankConfig:
    """Everything that determines a kernel bank's bytes.

    Attributes
    ----------
    n : int
        Number of trajectories.
    seed : int
    trajectory : TrajectoryConfig
    exposures : tuple of float
        Exposure fractions in (0, 1], one PSF each.
    psf_size : int or None
        Fixed odd PSF side, or None to crop each PSF to its support.
    centre : {'mass', 'bbox'}
    canvas : int
        Largest PSF side when ``psf_size`` is None (64 gives 63, odd).
    keep_trajectories : bool
    shard_size : int
        Trajectories per shard.
    """

    n: int = 1000
    seed: int = 0
    trajectory: TrajectoryConfig = field(default_factory=TrajectoryConfig)
    exposures: tuple = DEFAULT_EXPOSURES
    psf_size: int | None = None
    centre: str = "mass"
    canvas: int = 64
    keep_trajectories: bool = False
    shard_size: int = 10000

    def __post_init__(self):
        if isinstance(self.n, (float, np.floating)) or not _is_whole(self.n) or self.n < 1:
            hint = " (a float: write the count as an integer, e.g. n = 100000)" if isinstance(
                self.n, (float, np.floating)) else ""
            raise SettingError(f"--n must be a positive integer; got {self.n!r}{hint}.", "n")
        if self.n > MAX_KERNELS:
            raise SettingError(f"--n {self.n} is more kernels than one bank holds (at most "
                               f"{MAX_KERNELS}); pass a smaller --n, or make several banks with "
                               "different --seed.", "n")
        with checking("seed"):
            check_seed(self.seed)
        ex = tuple(self.exposures)
        if not ex or not all(isinstance(f, (int, float)) and 0 < f <= 1 for f in ex):
            raise SettingError(
                f"--exposures must be fractions in (0, 1], e.g. 0.01,0.1,0.5,1; got {ex!r}.", "exposures"
            )
        if len(set(ex)) != len(ex):
            raise SettingError(f"--exposures has repeated values: {ex!r}.", "exposures")
        if self.psf_size is not None and (
            not _is_whole(self.psf_size) or self.psf_size < 3 or self.psf_size % 2 == 0
        ):
            hint = f" Try {max(3, int(self.psf_size) | 1)}." if _is_whole(self.psf_size) else ""
            raise SettingError(f"--psf-size must be an odd integer >= 3; got {self.psf_size!r}.{hint}",
                               "psf_size")
        if self.centre not in CENTRES:
            raise SettingError(f"--centre must be one of {', '.join(CENTRES)}; got {self.centre!r}.", "centre")
        if not _is_whole(self.canvas) or not 3 <= self.canvas <= MAX_CANVAS:
            raise SettingError(f"--canvas must be an integer from 3 to {MAX_CANVAS}; got "
                               f"{self.canvas!r}.", "canvas")
        if not _is_whole(self.shard_size) or self.shard_size < 1:
            raise SettingError(f"shard size must be >= 1; got {self.shard_size!r}.", "shard_size")
        if math.ceil(self.n / self.shard_size) > MAX_SHARDS:
            raise SettingError(f"--n {self.n} in shards of {self.shard_size} makes "
                               f"{math.ceil(self.n / self.shard_size)} shards, more than "
                               f"{MAX_SHARDS}; pass a larger --shard-size.", "shard_size")
        side = self.psf_size if self.psf_size is not None else self.canvas - 1 + self.canvas % 2
        check_path_fits(self.trajectory, int(side),
                        side_option="--psf-size" if self.psf_size else "--canvas", centre=self.centre)

    def settings(self) -> dict:
        """Plain-dict settings for manifests and fingerprints (no worker count)."""
        d = asdict(self)
        d["exposures"] = [float(f) for f in self.exposures]
        d["trajectory"]["expl_choices"] = list(self.trajectory.expl_choices)
        return d


_ARROW_TYPES = {np.dtype(np.int32): pa.int32(), np.dtype(np.int64): pa.int64(),
                np.dtype(np.float32): pa.float32(), np.dtype(np.float64): pa.float64()}


def _arrow(values: np.ndarray) -> pa.Array:
    """A 1-D numeric NumPy array as an Arrow array, sharing its memory.

    ``pa.array`` would do, but its first call imports pandas (about 0.4 s in
    every worker process) to check whether it was handed a pandas object.
    """
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(_ARROW_TYPES[values.dtype], len(values), [None, pa.py_buffer(values)])


def _numpy(values: pa.Array) -> np.ndarray:
    """A null-free numeric Arrow array as NumPy, sharing its memory (without ``to_numpy``, whose
    first call imports pandas; see :func:`_arrow`)."""
    dtype = {t: d for d, t in _ARROW_TYPES.items()}[values.type]
    if values.null_count:  # pragma: no cover - the bank's numeric columns have no nulls
        raise ValueError("expected an array without nulls.")
    return np.frombuffer(values.buffers()[1], dtype, count=len(values),
                         offset=values.offset * dtype.itemsize)


def _strings(texts: list[str]) -> pa.Array:
    """ASCII strings as an Arrow string array (without ``pa.array``; see :func:`_arrow`)."""
    lengths = np.fromiter((len(t) for t in texts), np.int32, len(texts))
    offsets = np.zeros(len(texts) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    data = "".join(texts).encode("ascii")
    return pa.Array.from_buffers(pa.string(), len(texts), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _list_array(values: pa.Array, lengths: np.ndarray) -> pa.ListArray:
    offsets = np.zeros(len(lengths) + 1, np.int32)
    np.cumsum(lengths, out=offsets[1:])
    return pa.ListArray.from_arrays(_arrow(offsets), values)


def _array_structs(values: np.ndarray, shapes: np.ndarray) -> pa.StructArray:
    """StructArray of ``{shape, values}`` from flat float32 values and (M, ndim) shapes."""
    n, ndim = shapes.shape
    shape_list = _list_array(_arrow(shapes.ravel().astype(np.int32)), np.full(n, ndim))
    value_list = _list_array(_arrow(values.astype(np.float32, copy=False)), np.prod(shapes, axis=1))
    return pa.StructArray.from_arrays([shape_list, value_list], fields=list(ARRAY_TYPE))


def bank_chunk(indices: np.ndarray, config: KernelBankConfig) -> pa.Table:
    """Compute the rows of trajectories ``indices`` as one Arrow table.

    Each trajectory is a pure function of ``(config.seed, index)``.
    """
    from .ops.psf import _check_options, _rasterize_many
    from .ops.trajectory import sample_trajectories

    tc = config.trajectory
    n, t = len(indices), tc.n_samples
    trajs, params, n_events = sample_trajectories(tc, config.seed, indices)
    exposures, fixed, mode, max_size = _check_options(
        config.exposures, config.psf_size, config.centre, config.canvas
    )
    counts = np.array([exposure_samples(t, f) for f in exposures], np.int64)
    values, sizes, clipped, extents = _rasterize_many(trajs, counts, mode, fixed, max_size)
    n_exp = len(exposures)
    k = sizes.ravel()
    psf_structs = _array_structs(values, np.stack([k, k], axis=1))
    per_row = np.full(n, n_exp)
    columns = {
        "id": _strings([f"k{int(i):09d}" for i in indices]),
        "index": _arrow(np.asarray(indices, np.int64)),
        "seed": _arrow(np.full(n, config.seed, np.int64)),
        "expl": _arrow(params[:, 0]),
        "centripetal": _arrow(params[:, 1]),
        "prob_big_shake": _arrow(params[:, 2]),
        "gaussian_shake": _arrow(params[:, 3]),
        "angle_rad": _arrow(params[:, 4]),
        "n_big_shakes": _arrow(n_events),
        "exposures": _list_array(_arrow(np.tile(np.float32(exposures), n)), per_row),
        "psfs": _list_array(psf_structs, per_row),
        "clipped": _list_array(_arrow(clipped.ravel().astype(np.float32)), per_row),
        "extent_px": _list_array(_arrow(extents.ravel().astype(np.float32)), per_row),
    }
    if config.keep_trajectories:
        columns["trajectory"] = _array_structs(
            trajs.astype(np.float32).ravel(), np.tile(np.array([[t, 2]]), (n, 1))
        )
    else:
        columns["trajectory"] = pa.nulls(n, ARRAY_TYPE)
    return pa.Table.from_arrays([columns[name] for name in KERNEL_SCHEMA.names], schema=KERNEL_SCHEMA)


def _bank_rows(start: int, stop: int, config: KernelBankConfig):
    for a in range(start, stop, CHUNK):
        yield bank_chunk(np.arange(a, min(a + CHUNK, stop)), config)


def write_kernel_bank(out, config: KernelBankConfig, *, workers: int = 1, overwrite: bool = False,
                      progress: bool = True, recipe: str | None = None, options=None) -> dict:
    """Write a kernel bank dataset (resumable; bytes independent of ``workers``).

    Parameters
    ----------
    out : str or Path
        Output directory.
    config : KernelBankConfig
    workers : int
        Worker processes.
    overwrite : bool
        Replace a dataset made by a different command.
    recipe : str, optional
        Name of the recipe that made the bank, recorded in the manifest (a
        build's ``options.recipe`` replaces it).
    options : WriteOptions, optional
        From a recipe build: executor, ``--limit`` and the recipe recorded
        (:class:`blursynth.dataset.writer.WriteOptions`).

    Returns
    -------
    manifest : dict

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     m = write_kernel_bank(d + "/bank", KernelBankConfig(n=8), progress=False)
    >>> m["num_rows"]
    8
    """
    from .config import fingerprint

    from .ops.psf import RASTER_VERSION
    from .ops.trajectory import STREAM_VERSION

    settings = {"command": "trajectories", **config.settings(), "trajectory_stream": STREAM_VERSION,
                "rasterizer": RASTER_VERSION}
    manifest = write_dataset(
        out,
        kind="kernels",
        schema=KERNEL_SCHEMA,
        n_items=config.n,
        shard_size=config.shard_size,
        make_rows=functools.partial(_bank_rows, config=config),
        fingerprint=fingerprint(settings),
        command=settings,
        workers=workers,
        overwrite=overwrite,
        unit="traj",
        desc="trajectories",
        row_group_size=CHUNK,
        progress=progress,
        extra={"exposures": [float(f) for f in config.exposures], **({"recipe": recipe} if recipe else {})},
        options=options,
    )
    warn_clipped(out, config)
    return manifest


#: Mean mass lost off the canvas, at some exposure, above which a new bank is warned about.
CLIPPED_WARNING = 0.01


def warn_clipped(path, config: KernelBankConfig) -> None:
    """One warning line when the kernels of a bank lose much of their mass off the PSF canvas.

    A path length at which every kernel must be clipped is refused up front
    (:func:`~blursynth.ops.trajectory.check_path_fits`); below that, how many are clipped depends
    on the draws, so it is measured from the ``clipped`` column of the bank just written.
    """
    import sys

    table = ShardedTable(path, kind="kernels", verify=False)  # the writer has just hashed it
    n_exp = len(config.exposures)
    parts = []
    for s in range(len(table.shards)):
        for first, batch in table.iter_batches(s, columns=["clipped"], batch_size=4096):
            with table.decoding(s, first, first + batch.num_rows - 1):
                parts.append(_numpy(batch.column(0).flatten()).reshape(-1, n_exp))
    if not parts:
        return
    clipped = np.concatenate(parts).astype(np.float64)
    mean = clipped.mean(axis=0)
    e = int(np.argmax(mean))
    if mean[e] > CLIPPED_WARNING:
        side = config.psf_size or (config.canvas if config.canvas % 2 else config.canvas - 1)
        option = "--psf-size" if config.psf_size else "--canvas"
        sys.stderr.write(
            f"warning: {path}: at exposure {config.exposures[e]:g} the kernels lose {mean[e]:.1%} "
            f"of their mass on average off the {side} px PSF side "
            f"({(clipped[:, e] > 0).mean():.0%} of them are clipped); raise {option} or lower "
            "--length.\n")


def check_bank_manifest(path, manifest, exposures) -> None:
    """Refuse a bank whose manifest was edited: a changed exposure list would mislabel every PSF.

    Parameters
    ----------
    path : str or Path
        The bank (for messages).
    manifest : dict
        Its ``manifest.json``.
    exposures : sequence of float
        The exposure list the rows will be read by.

    Raises
    ------
    DatasetError
        The settings or fingerprint are missing, the settings no longer hash to the
        fingerprint, or ``exposures`` is not the list the bank was made with.

    Examples
    --------
    >>> import json
    >>> m = json.load(open("kernels/eval48/manifest.json"))   # doctest: +SKIP
    >>> check_bank_manifest("kernels/eval48", m, m["exposures"])  # doctest: +SKIP
    """
    from .config import fingerprint

    command = manifest.get("command")
    if not isinstance(command, dict) or "fingerprint" not in manifest:
        raise DatasetError(f"{path}/manifest.json: no settings or fingerprint recorded; the "
                           "manifest is corrupt. Restore it or rebuild the bank.")
    if fingerprint(command) != manifest["fingerprint"]:
        raise DatasetError(
            f"{path}/manifest.json: its settings no longer match its fingerprint (edited by "
            "hand?); restore the file or rebuild the bank with 'blursynth trajectories'.")
    made = command.get("exposures")
    if made is not None and tuple(float(f) for f in made) != tuple(exposures):
        raise DatasetError(
            f"{path}/manifest.json: lists exposures {list(exposures)} but the bank was made "
            f"with {list(made)}; restore the file or rebuild the bank.")


def _check_bank(path, manifest) -> None:
    """The ``kernels`` kind's manifest check for ``blursynth dataset verify``."""
    exposures = manifest.get("exposures")
    if not isinstance(exposures, list) or not all(
            isinstance(f, (int, float)) and not isinstance(f, bool) for f in exposures):
        raise DatasetError(f"{path}/manifest.json: 'exposures' is {exposures!r}, not a list of numbers; "
                           "restore the file or rebuild the bank.")
    check_bank_manifest(path, manifest, [float(f) for f in exposures])


def _check_bank_row(row: dict) -> None:
    for value in row["psfs"]:
        check_psf(struct_array(value))


# A bank's fingerprint is a hash of its settings: verify catches an edited manifest, as opening
# the bank for blurring does.
register_kind("kernels", check_manifest=_check_bank, check_row=_check_bank_row)


class KernelBank:
    """Random access to the PSFs of a kernel bank.

    Parameters
    ----------
    path : str or Path
        A directory written by :func:`write_kernel_bank` / ``blursynth trajectories``.
    verify : bool
        Check each shard against the manifest as it is opened
        (:class:`~blursynth.dataset.reader.ShardedTable`).

    Examples
    --------
    >>> bank = KernelBank("kernels/eval48")       # doctest: +SKIP
    >>> bank.psf(0, 1.0).shape                      # doctest: +SKIP
    (41, 41)
    """

    def __init__(self, path, *, verify: bool = True):
        self.table = ShardedTable(path, kind="kernels", verify=verify)
        self.path = self.table.path
        self.manifest = self.table.manifest
        self.exposures = tuple(float(f) for f in self.manifest.get("exposures", ()))
        if not self.exposures:
            raise DatasetError(f"{self.path}/manifest.json: no exposure list; the manifest is corrupt.")
        check_bank_manifest(self.path, self.manifest, self.exposures)
        self._group_cache = {}

    def __len__(self) -> int:
        return len(self.table)

    def exposure_index(self, exposure_fraction: float) -> int:
        for e, f in enumerate(self.exposures):
            if abs(f - float(exposure_fraction)) < 1e-6:
                return e
        raise BadInputError(
            f"exposure {exposure_fraction} is not in kernel bank {self.path}; it holds "
            f"{', '.join(f'{f:g}' for f in self.exposures)}."
        )

    def _group(self, i: int):
        """(decoded row group holding row i, local row); a few groups are cached."""
        t = self.table
        if not 0 <= i < len(t):
            raise IndexError(f"kernel {i} out of range for a bank of {len(t)}")
        s, local = t.locate(i)
        g, start = t.group_of(s, local)
        key = (s, g)
        group = self._group_cache.get(key)
        if group is None:
            if len(self._group_cache) > 8:
                self._group_cache.clear()
            table = t.read_group(s, g, columns=["psfs"])
            with t.decoding(s, start, start + table.num_rows - 1):
                column = table.column("psfs").combine_chunks()
                structs = column.flatten()  # one struct per (row, exposure)
                values = structs.field("values")
                flat = values.flatten().to_numpy(zero_copy_only=False)
                offs = values.offsets.to_numpy()
                shapes = structs.field("shape").flatten().to_numpy().reshape(-1, 2)
                row_offs = column.offsets.to_numpy()
            group = (flat, offs - offs[0], shapes, row_offs - row_offs[0])
            self._group_cache[key] = group
        return group, local - start

    def psfs(self, i: int) -> list[np.ndarray]:
        """All PSFs of trajectory ``i``, one per exposure, float32 (k, k)."""
        (flat, offs, shapes, row_offs), r = self._group(i)
        out = []
        with self.table.decoding(*self.table.locate(i)):
            for e in range(row_offs[r], row_offs[r + 1]):
                out.append(flat[offs[e] : offs[e + 1]].reshape(shapes[e]))
        return out

    def psf(self, i: int, exposure_fraction: float = 1.0) -> np.ndarray:
        """PSF of trajectory ``i`` at one exposure fraction, float32 (k, k)."""
        return self.psfs(i)[self.exposure_index(exposure_fraction)]

    def row(self, i: int) -> dict:
        """Raw row ``i`` with PSFs and trajectory decoded to arrays."""
        row = self.table.row(i)
        with self.table.decoding(*self.table.locate(i)):
            row["psfs"] = [struct_array(v) for v in row["psfs"]]
            row["trajectory"] = struct_array(row["trajectory"])
        return row


def kernel_stats(path, *, progress: bool = False, verify: bool = True) -> dict:
    """Distribution of support, max-pixel energy and trajectory extent per exposure.

    Returns
    -------
    stats : dict
        ``{"n": N, "exposures": {f: {"support_px": summary, "side_px": summary,
        "max_energy": summary, "extent_px": summary, "clipped": summary}}}`` with
        each summary ``{"mean", "min", "p05", "p50", "p95", "max"}``. ``verify`` checks each
        shard against the manifest as it is opened.
    """
    table = ShardedTable(path, kind="kernels", verify=verify)
    exposures = [float(f) for f in table.manifest.get("exposures", ())]
    if not exposures:
        raise DatasetError(f"{table.path}/manifest.json: no exposure list; the manifest is corrupt.")
    check_bank_manifest(table.path, table.manifest, exposures)
    n_exp = len(exposures)
    acc = {key: [[] for _ in range(n_exp)] for key in ("support_px", "side_px", "max_energy", "extent_px", "clipped")}
    for s in range(len(table.shards)):
        columns = ["psfs", "extent_px", "clipped"]
        for first, batch in table.iter_batches(s, columns=columns, batch_size=4096):
            with table.decoding(s, first, first + batch.num_rows - 1):
                psfs = batch.column(0).flatten()  # StructArray, row-major (row, exposure)
                shapes = psfs.field("shape").flatten().to_numpy().reshape(-1, 2)
                values = psfs.field("values")
                flat = values.flatten().to_numpy(zero_copy_only=False)
                offs = values.offsets.to_numpy()
                offs = offs - offs[0]
                sizes = np.diff(offs)
                starts = offs[:-1]
                nonzero = np.add.reduceat((flat > 0).astype(np.int64), starts) if flat.size else np.zeros(0)
                peak = np.maximum.reduceat(flat, starts) if flat.size else np.zeros(0)
                nonzero[sizes == 0] = 0
                ext = batch.column(1).flatten().to_numpy()
                clip = batch.column(2).flatten().to_numpy()
                for e in range(n_exp):
                    acc["support_px"][e].append(nonzero[e::n_exp])
                    acc["side_px"][e].append(shapes[e::n_exp, 0])
                    acc["max_energy"][e].append(peak[e::n_exp])
                    acc["extent_px"][e].append(ext[e::n_exp])
                    acc["clipped"][e].append(clip[e::n_exp])
    result = {"n": len(table), "exposures": {}}
    for e, frac in enumerate(exposures):
        entry = {}
        for key in acc:
            v = np.concatenate(acc[key][e]).astype(np.float64)
            entry[key] = {
                "mean": float(v.mean()),
                "min": float(v.min()),
                "p05": float(np.percentile(v, 5)),
                "p50": float(np.percentile(v, 50)),
                "p95": float(np.percentile(v, 95)),
                "max": float(v.max()),
            }
        result["exposures"][f"{frac:g}"] = entry
    return result


def contact_sheet(path, *, count: int = 32, columns: int = 4, scale: int = 2, start: int = 0,
                  verify: bool = True) -> np.ndarray:
    """A picture of a kernel bank: ``count`` kernels, each shown at every exposure.

    Each block is one trajectory's PSFs left to right by exposure fraction,
    blocks laid out ``columns`` to a row; PSFs are square-root scaled to their
    peak so faint tails show.

    Returns
    -------
    sheet : (H, W, 3) uint8 ndarray
    """
    import cv2

    from .dataset.preview import psf_tile

    bank = KernelBank(path, verify=verify)
    count = max(1, min(count, len(bank) - start))
    if count < 1 or start >= len(bank):
        raise BadInputError(f"--start {start} is past the end of kernel bank {path} ({len(bank)} kernels).")
    picks = [start + j for j in range(count)]
    kernels = [bank.psfs(i) for i in picks]
    side = max(p.shape[0] for ps in kernels for p in ps)
    side = min(side, 65)
    tile = side * scale
    gap = 4
    n_exp = len(bank.exposures)
    block_w = n_exp * tile + (n_exp - 1) * 2
    rows = -(-count // columns)
    label_h = 18
    header = 24
    width = columns * block_w + (columns + 1) * gap * 3
    height = header + rows * (tile + label_h + gap)
    sheet = np.full((height, width, 3), 24, np.uint8)
    title = f"{path}: {len(bank)} kernels; exposures " + ", ".join(f"{f:g}" for f in bank.exposures)
    cv2.putText(sheet, title[: width // 7], (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (230, 230, 230), 1, cv2.LINE_AA)
    for j, (i, psfs) in enumerate(zip(picks, kernels)):
        r, c = divmod(j, columns)
        y = header + r * (tile + label_h + gap)
        x = gap * 3 + c * (block_w + gap * 3)
        cv2.putText(sheet, f"#{i}", (x, y + 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (200, 200, 200), 1, cv2.LINE_AA)
        for e, psf in enumerate(psfs):
            xx = x + e * (tile + 2)
            sheet[y + label_h : y + label_h + tile, xx : xx + tile] = psf_tile(psf, side, scale=scale)
    return sheet
