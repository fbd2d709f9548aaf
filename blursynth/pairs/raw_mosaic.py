"""The RAW mosaics of ``dataset export --raw``: each RAW-path row's noisy blurred mosaic, rebuilt.

A row stores developed 8-bit images only; its mosaic is rebuilt from the row's params and
its source (photos, clips, and for learned blur the model) by the same chain that made the
pair (:func:`blursynth.ops.blur.develop_raw_pair`, stopped before demosaicing), through each
kind's ``rebuild_pair``. Each rebuilt mosaic is developed again and compared with the stored
blurred image, so a source that changed since the dataset was made is refused instead of
exported. This lives beside the generators because it reruns them; the dataset layer
(:mod:`blursynth.dataset.export`) is handed a rebuilder and writes what it returns.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from ..errors import BadInputError


def raw_rebuilder(raw, sources=(), model=None):
    """What ``export_png(rebuilder=...)`` takes for ``--raw``: ``manifest -> RawRebuilder``.

    Returns None without ``raw``; ``sources`` or ``model`` without it are refused (they say
    where a RAW-path run's inputs are, and nothing else reads them).
    """
    if raw is None:
        if sources or model:
            raise BadInputError(f"{'--sources' if sources else '--model'} says where a RAW-path run's inputs are, "
                                "for --raw; add --raw png16 or --raw npy.")
        return None
    return functools.partial(RawRebuilder, sources=sources, model=model)


class RawRebuilder:
    """Rebuilds rows' RAW mosaics from where their sources are now.

    Parameters
    ----------
    manifest : dict
        The dataset's manifest (its ``command`` says where the run's inputs were).
    sources : sequence of str
        ``--sources``: the photos folder (trajectory and learned blur), or the clips in the
        order the run was given them (frames-average; one clip for a one-input run). Empty:
        the paths ``manifest.json`` records, as given to the run (relative to the folder it
        ran in, here taken as the current one).
    model : str or None
        ``--model``: the learned-blur model folder (default: the manifest's).
    """

    def __init__(self, manifest: dict, sources=(), model=None):
        self.command = manifest.get("command") or {}
        self.sources = [str(s) for s in sources]
        self.model = None if model is None else str(model)

    # -- where each kind's source is ---------------------------------------------------------------
    def _photos(self, row) -> str:
        if self.sources:
            if len(self.sources) != 1:
                raise BadInputError(f"--sources: row {row['id']} was made from a photos folder; give one "
                                    f"--sources (the folder), not {len(self.sources)}.")
            return self.sources[0]
        where = self.command.get("photos")
        if not where:
            raise BadInputError(f"--raw: row {row['id']}: manifest.json does not say where its photos were; "
                                "pass --sources PHOTOS (the folder the run read).")
        return str(where)

    def _clips(self, row) -> list:
        inputs = [str(p) for p in self.command.get("inputs") or []]
        if self.sources:
            if len(self.sources) == 1 and len(inputs) <= 1:
                return self.sources
            if len(self.sources) != len(inputs):
                raise BadInputError(f"--sources: the run read {len(inputs)} inputs; give them all, in the order "
                                    f"manifest.json lists them (command.inputs), not {len(self.sources)}.")
            return self.sources
        if not inputs:
            raise BadInputError(f"--raw: row {row['id']}: manifest.json does not say where its clips were; "
                                "pass --sources CLIP (each input of the run, in order).")
        return inputs

    def _model(self, row) -> str:
        model = self.model or self.command.get("model")
        if not model:
            raise BadInputError(f"--raw: row {row['id']}: manifest.json does not say which model made it; pass "
                                "--model MODEL.")
        return str(model)

    def where(self, row) -> str:
        """The source a row's mosaic is rebuilt from, as a user would name it."""
        params = row["params"]
        if row["source"] == "video":
            clips = self._clips(row)
            return clips[int(params["source_index"])] if len(clips) > 1 else clips[0]
        if row["source"] in ("trajectory", "bgan"):
            from ..sources.photos import photo_path

            return str(photo_path(self._photos(row), params["photo"]))
        raise BadInputError(f"--raw: row {row['id']} has source {row['source']!r}, which has no RAW mosaic to "
                            "rebuild.")

    def check_reachable(self, row) -> None:
        """Refuse, naming the path and how to fix it, a row whose source is not there."""
        where = self.where(row)
        if row["source"] == "video":
            missing = where
        else:
            root = self._photos(row)
            missing = root if not os.path.exists(root) else where
        if not os.path.exists(missing):
            option = "--sources CLIP (each clip of the run, in order; repeat the option)" if row["source"] == "video" \
                else "--sources PHOTOS (the folder the run read)"
            raise BadInputError(f"--raw: row {row['id']}'s source {missing} is not reachable (the RAW mosaic is "
                                f"rebuilt from it); pass {option} where it is now.")
        if row["source"] == "bgan" and not os.path.exists(self._model(row)):
            raise BadInputError(f"--raw: row {row['id']}'s model {self._model(row)} is not reachable (the learned "
                                "blur is rerun to rebuild the mosaic); pass --model MODEL where it is now.")

    def check(self, rows) -> None:
        """Check, before anything is written, every RAW-path row's source (``rows``: dicts with
        ``id``, ``source`` and decoded ``params``), and refuse a ``--model`` no row would use."""
        checked, kinds = set(), set()
        for row in rows:
            kinds.add(row["source"])
            key = (row["source"], self.where(row))
            if key not in checked:
                self.check_reachable(row)
                checked.add(key)
        if self.model is not None and "bgan" not in kinds:
            raise BadInputError(f"--model {self.model}: no RAW-path row of this dataset was made by learned blur "
                                "(bgan blur), so no model is rerun; leave --model out.")

    # -- the mosaic --------------------------------------------------------------------------------
    def mosaic(self, row) -> np.ndarray:
        """The row's noisy blurred RAW mosaic ((H, W) float32, white level 1.0), checked.

        Raises
        ------
        BadInputError
            The source is missing, or the mosaic does not develop into the stored blurred
            image (the source changed, or the row was made on another kind of device).
        """
        params, device = row["params"], row["params"].get("device", "cpu")
        self.check_reachable(row)
        if device != "cpu":
            import torch

            if not torch.cuda.is_available():
                raise BadInputError(f"--raw: row {row['id']} was made on {device}, whose bytes the CPU does not "
                                    "reproduce; export on a machine with CUDA.")
        if row["source"] == "video":
            from .frames import rebuild_pair

            mosaic = rebuild_pair(row, self._clips(row), mosaic_only=True)
        elif row["source"] == "bgan":
            from .bgan import rebuild_pair

            mosaic = rebuild_pair(row, self._photos(row), model=self._model(row), device=device,
                                  mosaic_only=True)
        else:
            from .shake import rebuild_pair

            mosaic = rebuild_pair(row, self._photos(row), device=device, mosaic_only=True)
        if not np.array_equal(develop_mosaic(mosaic, params), row["blurred"]):
            raise BadInputError(f"--raw: row {row['id']}: the mosaic rebuilt from {self.where(row)} does not "
                                "develop into the stored blurred image: the source changed since the dataset was "
                                "made; pass --sources with the run's original inputs.")
        return mosaic


def develop_mosaic(mosaic, params: dict) -> np.ndarray:
    """A RAW-path row's blurred image from its mosaic: develop, encode, JPEG (the pair's end)."""
    from ..ops.blur import _develop_encode
    from ..ops.color import CameraResponse
    from ..ops.degrade import jpeg_roundtrip

    out = _develop_encode(mosaic, params["raw"], CameraResponse.parse(params["crf"]))
    if params.get("jpeg_quality") is not None:
        out = jpeg_roundtrip(out, int(params["jpeg_quality"]))
    return out
