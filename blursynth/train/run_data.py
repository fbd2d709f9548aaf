"""A training run's data: the ``--data`` sets opened and split, the ``--online`` sources mixed
in, the validation pairs chosen and loaded, and the warning when two sets share their kernel
draws. Nothing here writes."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..errors import BadInputError
from .data import center_crop, check_ground_truth, open_pairs, to_tensor


def plan_data(settings, crop, online=()):
    """Open the datasets, split off validation pairs, check crops fit; nothing is written.

    Returns the training rows (a :class:`blursynth.torch.PairDataset`, the run's loader; with
    ``--online``, a :class:`blursynth.torch.OnlineMix` of it and ``online``, the sources
    opened from ``settings.online``) and the validation items, (dataset path, row) each."""
    from ..torch.pairs import PairDataset

    if not settings.data and not settings.online:
        raise BadInputError("no --data given; pass at least one pair dataset, e.g. --data pairs/.")
    pairs, val_items = None, []  # --online alone: nothing stored, nothing held out
    if settings.data:
        pairs = PairDataset([d.path for d in settings.data], crop=crop, split="train",
                            weights=[d.weight for d in settings.data], seed=settings.seed,
                            split_by=settings.split_by or "source",
                            heldout=0.0 if settings.val_data else settings.val_fraction,
                            verify=settings.verify, rotate=bool(settings.rotate))
        val_items = [(path, int(i)) for path, held in zip(pairs.paths, pairs.heldout_rows)
                     for i in held]
    if len(online) != len(settings.online):
        raise BadInputError(
            f"online: {len(settings.online)} --online recipe(s) but {len(online)} opened "
            "source(s); open each with blursynth.torch.online.open_online(PATH) and pass them "
            "as train(settings, online=[...]) (blursynth train does).")
    if settings.online:
        from ..torch.mix import OnlineMix

        # Rendered on the CPU: with --workers N only the loader workers render (so this
        # process may fork them); with 0 it renders here, and OnlineBlur.read restores torch's
        # thread count after each pair.
        pairs = OnlineMix(pairs, list(online), [o.weight for o in settings.online], crop=crop,
                          seed=settings.seed, names=[o.path for o in settings.online],
                          rotate=bool(settings.rotate))
    for vpath in settings.val_data:
        ds = open_pairs(vpath, verify=settings.verify)
        check_ground_truth(ds, vpath, "--val-data")
        val_items += [(vpath, i) for i in range(len(ds))]
    # Take evenly spaced held-out pairs of every dataset (datasets are often ordered by
    # photo or clip), interleaved so that the first val_count items cover every dataset.
    by_src = {}
    for p, i in val_items:
        by_src.setdefault(p, []).append(i)
    share = -(-settings.val_count // max(len(by_src), 1))
    for p, rows in by_src.items():
        if len(rows) > share:
            by_src[p] = [rows[int(j)] for j in np.linspace(0, len(rows) - 1, share).round()]
    order = []
    for k in range(max((len(v) for v in by_src.values()), default=0)):
        order += [(p, v[k]) for p, v in by_src.items() if k < len(v)]
    return pairs, order[: settings.val_count]


def kernel_draws(path):
    """What fixes the blur kernels of a dataset's pairs (pair ``i``'s kernel depends only on it
    and ``i``), or None: ``(kernel bank fingerprint, seed)`` for ``blur`` from a bank, the
    trajectory settings and seed for ``blur --psf-source fresh``."""
    import json

    from ..dataset.schema import MANIFEST

    try:
        command = json.loads((Path(path) / MANIFEST).read_text()).get("command") or {}
    except (OSError, ValueError, AttributeError):
        return None  # open_pairs has said what is wrong with it
    if command.get("command") != "blur" or "seed" not in command:
        return None
    if command.get("psf_source") == "bank" and command.get("kernel_bank"):
        return ("kernel bank", command["kernel_bank"], command["seed"])
    if command.get("psf_source") == "fresh":
        return ("fresh trajectories", f"{command.get('fresh_length_px')} px", command["seed"])
    return None


def warn_shared_kernel_draws(data) -> None:
    """Warn (one line per pair of datasets) when two ``--data`` sets draw the same kernel
    sequence: made by ``blur`` from one kernel bank with one ``--seed``, pair ``i`` of each has
    the same kernel, so mixing them repeats kernels instead of adding new ones."""
    seen = {}
    for src in data:
        key = kernel_draws(src.path)
        if key is None:
            continue
        if key in seen and seen[key] != src.path:
            kind, which, seed = key
            sys.stderr.write(
                f"warning: --data {seen[key]} and --data {src.path} share their kernel draws "
                f"({kind} {which}, --seed {seed}): pair i of each was blurred by the same kernel. "
                "Make one of them again with another --seed for kernels that differ.\n")
        else:
            seen.setdefault(key, src.path)


def load_val(val_items, crop, verify=True, multiple=4):
    """The validation pairs ``val_items`` ((dataset path, row) each), centre-cropped to
    ``crop`` (a multiple of ``multiple``), as (blurred, sharp) tensors."""
    datasets, out = {}, []
    for path, i in val_items:
        ds = datasets.setdefault(path, open_pairs(path, verify=verify))
        pair = ds[i]
        out.append((to_tensor(center_crop(pair["blurred"], crop, multiple)),
                    to_tensor(center_crop(pair["sharp"], crop, multiple))))
    return out
