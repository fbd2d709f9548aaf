"""OnlineBlur: pairs rendered on the fly, exactly the pairs ``blursynth blur`` writes.

A training loop that wants fresh blur at every read (or no dataset on disk) renders pair ``i``
the way the ``blur`` command renders row ``i``: the same settings object
(:class:`~blursynth.pairs.shake.BlurSettings`, validated by the same checks, so refused with the
same messages), the same plan of photos (:func:`~blursynth.pairs.shake.plan_blur`,
:func:`~blursynth.pairs.scene.plan_scene`) and the same per-pair draws keyed by (seed, i). Its
pixels, PSF and params therefore equal the row ``blur`` writes at that index, for uniform blur
(bank or fresh trajectories), scene blur (``motion`` camera6d or scene) and the RAW path.

:class:`blursynth.torch.OnlineMix` (:mod:`.mix`) mixes online sources with stored pair
datasets by weight, as ``blursynth train --data PATH:W --online RECIPE:W`` reads them.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from .._numba import fork_safe_threads
from ..errors import BadInputError, RecipeError, SettingError
from ..train.data import TRAIN_COLUMNS, to_tensor

#: What :meth:`OnlineBlur.read` returns (every key of a written row that has pixels or params).
ROW_KEYS = ("id", "index", "seed", "source", "fingerprint", "blurred", "sharp", "psf", "params",
            "motion_mask", "psf_field")


class OnlineBlur(torch.utils.data.Dataset):
    """Blur pairs rendered when read: item ``i`` is the pair ``blursynth blur`` writes as row ``i``.

    Parameters
    ----------
    photos : str or Path, optional
        Folder of sharp photos (or one image), as ``blur PHOTOS``; None keeps ``settings``'s.
    settings : BlurSettings or dict
        A :class:`~blursynth.pairs.shake.BlurSettings`, or a recipe's blur table as a dict
        (``{"psf_source": "fresh", "crop": [256, 256], "per_image": 4}``: keys as a recipe's
        ``run = "blur"`` step, checked the same way; ``kernels`` is a bank's path).
    seed : int, optional
        The run's seed (``blur --seed``); None keeps ``settings``'s (a dict's default is 0).

    Attributes
    ----------
    settings : BlurSettings
        As validated (scene blur: with its folders made absolute, as ``blur`` records them).
    fingerprint : str
        The fingerprint of the dataset ``blur`` writes with these settings and photos (every
        setting that shapes its files, ``shard_size`` included; the pixels do not depend on it).
    recipe : dict
        What determines the bytes (the fingerprint's input).

    Notes
    -----
    ``ds[i]`` is a dict: ``blurred`` and ``sharp`` float32 (3, H, W) tensors in [0, 1] and ``id``
    (``f"{i:09d}"``, the row's id), as :class:`blursynth.torch.PairDataset` gives; the
    settings' ``crop`` sets the size (without one, each photo's size). :meth:`read` gives the
    whole row instead: uint8 images, the PSF and the params, equal to the written row's.
    Iterating yields ``ds[0]``, ``ds[1]``, ... Rendering follows ``settings.device`` as ``blur``
    does (``auto``: a GPU when there is one; CUDA bytes differ from the CPU's in the last bit, as
    ``blur``'s do): use ``device="cpu"`` in DataLoader worker processes. On a GPU,
    :meth:`read_many` (and a DataLoader's batch, through :meth:`__getitems__`) renders many
    pairs per call, with the same bytes as one by one. A photo that was readable when planned
    but does not decode (``blur`` skips it, leaving its rows out of the dataset) is warned about
    once per process, and its indices give the same pairs of the next photo that decodes, so a
    training epoch goes on; :meth:`read`'s ``index`` says which pair it is. With the settings'
    ``strict`` such a photo is an error instead, as ``blur --strict`` stops at it. (Finding such
    photos when the dataset is made would mean decoding every photo.) A file whose header does not
    read, or a photo smaller than the crop, is left out of the dataset (and its length) with a
    warning when it is made, as ``blur`` leaves it out.

    Examples
    --------
    >>> import tempfile
    >>> from skimage import data
    >>> from blursynth.sources.photos import save_rgb8
    >>> tmp = tempfile.mkdtemp()
    >>> save_rgb8(f"{tmp}/photos/coffee.png", data.coffee()[::4, ::4])
    >>> ds = OnlineBlur(f"{tmp}/photos", {"psf_source": "fresh", "crop": [64, 64], "canvas": 31,
    ...                                   "length": 20.0, "per_image": 2, "device": "cpu"})
    >>> len(ds), tuple(ds[1]["blurred"].shape), ds.read(1)["params"]["crop"][2:]
    (2, (3, 64, 64), [64, 64])
    """

    def __init__(self, photos=None, settings=None, *, seed=None):
        from ..config import fingerprint
        from ..pairs.shake import BlurSettings

        from_table = isinstance(settings, dict)
        if from_table:
            settings = settings_from_table(settings, photos=photos, seed=seed)
        elif isinstance(settings, BlurSettings):
            changes = {}
            if photos is not None:
                changes["photos"] = str(photos)
            if seed is not None:
                changes["seed"] = seed
            settings = dataclasses.replace(settings, **changes)  # validated again
        else:
            raise BadInputError(f"settings must be a BlurSettings or a dict of a recipe's blur "
                                f"keys; got {type(settings).__name__}.")
        try:
            if settings.motion == "uniform":
                from ..pairs.shake import BlurJob, plan_blur

                plan, source, device, recipe = plan_blur(settings)
                self._job = BlurJob(settings, plan, source, fingerprint(recipe), device=str(device))
            else:
                from ..pairs.scene import SceneJob, plan_scene

                settings, plan, recipe = plan_scene(settings)
                self._job = SceneJob(settings, plan, fingerprint(recipe))
        except SettingError as exc:
            if not from_table:
                raise
            from ..build.recipe import in_recipe_terms

            # Refused against the photos or the bank: said in the dict's keys, as its other refusals.
            raise BadInputError(f"OnlineBlur settings: {in_recipe_terms(exc)}") from None
        self.settings, self.recipe, self.fingerprint = settings, recipe, self._job.fingerprint
        from ..build.recipe import in_recipe_terms

        for line in self._job.plan.left_out(strict="strict"):  # as blur warns of them
            _warn_at_caller(f"OnlineBlur: {in_recipe_terms(line)}")
        self._photo = None  # (photo number, resized photo, conversion note) of the last read
        self._undecodable = set()  # photo numbers that failed to decode here (warned about)
        self._undecodable_sources = set()  # names of scene objects' photos that failed (warned about)

    @classmethod
    def from_recipe(cls, path, *, build=None, inputs=None, sets=(), device=None):
        """The pairs of a recipe's ``blur`` step, rendered on the fly.

        Parameters
        ----------
        path : str or Path
            A recipe (``blursynth build``'s TOML) with one ``run = "blur"`` step whose ``photos``
            is one of its ``[inputs]`` (or a folder).
        build : str or Path, optional
            The recipe's build folder (default as ``blursynth build``: ``[build] out``, else
            ``builds/<recipe name>``): an input of scikit-image samples, and a kernel bank
            made by an earlier step, are read from there, so they must have been built.
        inputs : dict, optional
            ``{name: path}``, as ``build --input NAME=PATH``.
        sets : sequence of str
            ``STEP.KEY=VALUE`` overrides, as ``build --set``.
        device : str, optional
            Overrides the step's ``device`` (``"cpu"`` in loader workers).

        Raises
        ------
        RecipeError
            A recipe without one blur step, or whose photos are neither an input nor a folder
            (an earlier step's output); a value the blur step refuses (naming the recipe's
            line, as ``build`` does).
        """
        return cls._from_recipe(path, build=build, inputs=inputs, sets=sets, device=device,
                                input_override="inputs={{{name!r}: PATH}}")

    @classmethod
    def _from_recipe(cls, path, *, build, inputs, sets, device, input_override):
        """:meth:`from_recipe`; ``input_override``: how the caller's user points an input
        elsewhere, with ``{name}``, named in refusals."""
        from ..build.run import plan_build

        plan = plan_build(path, out=build, input_overrides=inputs, sets=sets, dry_run=True,
                          input_override=input_override)
        recipe = plan.recipe
        steps = [s for s in plan.steps if s.run == "blur"]
        if len(steps) != 1:
            names = ", ".join(s.name for s in steps)
            raise RecipeError(
                f"{recipe.path}: an online recipe needs exactly one run = \"blur\" step (its "
                f"pairs are rendered); it has {len(steps)}{f' ({names})' if names else ''}.")
        step = steps[0]
        table = recipe.data["steps"][step.index]
        _check_photos_input(plan, step, table, input_override)
        for key in ("kernels", "object_masks", "depth"):
            _check_built(plan, step, table, key)
        settings = step.settings
        if device is not None:
            settings = dataclasses.replace(settings, device=device)
        try:
            return cls(None, settings)
        except SettingError as exc:  # found against the photos or the bank: the recipe's line
            if device is not None and exc.field == "device":  # the argument's value, not the recipe's
                from ..build.recipe import in_recipe_terms

                raise BadInputError(f"device={device!r}: {in_recipe_terms(exc)}") from None
            raise recipe.refusal(step.index, exc) from None

    # -- size, pickling -------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._job.plan.files) * self.settings.per_image

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_photo"] = None  # each process loads its own photos
        return state

    def pair_sides(self) -> list:
        """(height, width) of each photo's pairs, from the plan's headers (nothing rendered)."""
        from ..pairs.shake_inputs import resized_shape

        s = self.settings
        if s.crop is not None:
            return [tuple(s.crop)] * len(self._job.plan.files)
        k = self._job.source.max_side if s.motion == "uniform" else 1
        cut = k - 1 if s.border == "valid" else 0
        return [(h - cut, w - cut) for h, w in
                (resized_shape(s.resize, *size) for size in self._job.plan.sizes)]

    # -- reading --------------------------------------------------------------------------

    def _load(self, photo_i: int):
        """Photo ``photo_i`` resized as ``blur`` renders from it, and its conversion note."""
        if self._photo is None or self._photo[0] != photo_i:
            from ..pairs.shake_inputs import resize_photo
            from ..sources.photos import load_rgb8

            photo, note = load_rgb8(self._job.plan.path(photo_i))
            self._photo = (photo_i, resize_photo(photo, self.settings.resize), note)
        return self._photo[1:]

    def _decodable(self, index: int):
        """``(index, photo, note)`` of pair ``index``; for a photo that does not decode, of the
        same pair of the next photo that does (wrapping), with a warning the first time (with
        ``strict``, an error, as ``blur --strict`` stops)."""
        per, n_photos = self.settings.per_image, len(self._job.plan.files)
        first = index // per
        for step in range(n_photos):
            photo_i = (first + step) % n_photos
            if photo_i in self._undecodable:
                continue
            try:
                return (photo_i * per + index % per, *self._load(photo_i))
            except BadInputError as exc:
                if self.settings.strict:  # as blur --strict stops at it
                    raise BadInputError(f"{str(exc).rstrip('.')}; settings strict=True stop here "
                                        "(as blur --strict); set it False to skip it.") from None
                # blur leaves such a photo's rows out; an index here cannot be left out.
                self._undecodable.add(photo_i)
                if len(self._undecodable) == n_photos:
                    raise BadInputError(f"{str(exc).rstrip('.')}; none of the photos decodes.") from None
                _warn_at_caller(f"{str(exc).rstrip('.')}; blur skips it; OnlineBlur gives its "
                                "indices the pairs of the next photo that decodes (remove it from "
                                "the photos to stop this).")
        raise BadInputError(f"OnlineBlur: none of the {n_photos} photos in {self.settings.photos} decodes.")

    def _scene_row(self, index: int) -> dict:
        """Scene pair ``index``; one whose objects are cut from a photo that does not decode
        (``blur`` skips the pair) gives the next pair that renders instead, with a warning the
        first time that photo fails (with ``strict``, an error)."""
        from ..pairs.scene import ObjectSourceError, scene_row

        n = len(self)
        for step in range(n):
            index_used, photo, note = self._decodable((index + step) % n)
            try:
                return scene_row(self._job, index_used, photo, note)
            except ObjectSourceError as exc:
                if self.settings.strict:
                    raise BadInputError(f"{str(exc).rstrip('.')}; settings strict=True stop here "
                                        "(as blur --strict); set it False to skip it.") from None
                if exc.photo not in self._undecodable_sources:
                    self._undecodable_sources.add(exc.photo)
                    _warn_at_caller(f"{str(exc).rstrip('.')}; blur skips such a pair; OnlineBlur "
                                    "gives the next pair in its place (remove the photo to stop "
                                    "this).")
        raise BadInputError(f"OnlineBlur: no pair of {self.settings.photos} renders: every one "
                            "has an object cut from a photo that does not decode.")

    def read(self, index: int, columns=None) -> dict:
        """Pair ``index`` as ``blur`` writes its row, decoded.

        Parameters
        ----------
        index : int
        columns : sequence of str, optional
            Keys to return (as :meth:`blursynth.dataset.reader.PairDataset.read`); default
            :data:`ROW_KEYS` (scene blur's ``motion_mask`` and ``psf_field`` only for scene rows).

        Returns
        -------
        row : dict
            ``blurred``, ``sharp``: (H, W, 3) uint8; ``psf``: (k, k) float32; ``params``: dict
            (as stored: JSON types); ``id``, ``index``, ``seed``, ``source``, ``fingerprint``.
        """
        n = len(self)
        _check_index(index, n)
        return self.read_many([index], columns)[0]

    def read_many(self, indices, columns=None) -> list:
        """Pairs ``indices`` as :meth:`read` gives them, rendered together.

        On a GPU (``settings.device``) the uniform RGB-path pairs are rendered in one call
        (:func:`blursynth.pairs.shake.render_rows`: one copy each way, no wait between pairs),
        with the bytes ``blur --device`` of that kind writes whatever the batch; elsewhere pair
        by pair. A DataLoader over this dataset fetches a batch through it
        (:meth:`__getitems__`).

        Parameters
        ----------
        indices : sequence of int
        columns : sequence of str, optional
            As :meth:`read`'s.

        Returns
        -------
        rows : list of dict, one per index, in order (for a photo that does not decode, the
            pair given in its place, whose ``index`` it holds)

        Examples
        --------
        >>> import tempfile
        >>> from skimage import data
        >>> from blursynth.sources.photos import save_rgb8
        >>> tmp = tempfile.mkdtemp()
        >>> save_rgb8(f"{tmp}/photos/coffee.png", data.coffee()[::4, ::4])
        >>> ds = OnlineBlur(f"{tmp}/photos", {"psf_source": "fresh", "crop": [64, 64],
        ...                                   "canvas": 31, "length": 20.0, "per_image": 2})
        >>> rows = ds.read_many([1, 0])
        >>> [r["index"] for r in rows], bool((rows[0]["blurred"] == ds.read(1)["blurred"]).all())
        ([1, 0], True)
        """
        n = len(self)
        checked = []
        for index in indices:
            _check_index(index, n)
            checked.append(int(index) % n)
        fork_safe_threads()
        threads = torch.get_num_threads()
        try:
            rows = self._render(checked)
        finally:
            # Numba's OpenMP kernels set the OpenMP thread count torch shares (1 under
            # OMP_NUM_THREADS=1 becomes the core count): a loop rendering in its own process
            # (train --workers 0) would train at another thread count, and so to other bits.
            if torch.get_num_threads() != threads:
                torch.set_num_threads(threads)
        keys = ROW_KEYS if columns is None else columns
        return [{k: row[k] for k in keys if k in row} for row in rows]

    def _render(self, indices) -> list:
        import json

        from ..config import canonical_json

        s, job = self.settings, self._job
        # The writer's own row functions: the params, PSF and pixels of blur's rows ``indices``.
        if s.motion == "uniform":
            from ..pairs.shake import draw_row, render_rows

            batch = []
            for index in indices:
                index, photo, note = self._decodable(index)
                batch.append((index, photo, *draw_row(job, index, photo.shape[:2], note)))
            rows = render_rows(job, batch)
        else:
            rows = []
            for index in indices:
                row = self._scene_row(index)
                row["psf_field"] = np.asarray(row["psf_field"], np.float32)
                rows.append(row)
        for row in rows:
            index = row["index"]
            row.update(id=f"{index:09d}", psf=np.asarray(row["psf"], np.float32),
                       params=json.loads(canonical_json(row["params"])))
        return rows

    def __getitem__(self, index) -> dict:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices) -> list:
        """``[self[i] for i in indices]``, rendered together (:meth:`read_many`): a DataLoader
        fetches a batch through it."""
        return [{"blurred": to_tensor(row["blurred"]), "sharp": to_tensor(row["sharp"]),
                 "id": row["id"], "dataset": 0}  # the keys of a PairDataset item (one source)
                for row in self.read_many(indices, TRAIN_COLUMNS)]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return (f"OnlineBlur({self.settings.photos!r}, {len(self)} pairs, motion "
                f"{self.settings.motion}, fingerprint {self.fingerprint})")


def settings_from_table(table: dict, *, photos=None, seed=None):
    """A :class:`~blursynth.pairs.shake.BlurSettings` from a recipe's blur keys, checked as a
    recipe's blur step is (the same unknown-key and value messages)."""
    from ..build.recipe import Recipe, table_settings
    from ..pairs.shake import BlurSettings

    if isinstance(table.get("resize"), (list, tuple)):
        import warnings

        from ..pairs.shake_inputs import OLD_RESIZE_NOTE

        warnings.warn(f"OnlineBlur settings: {OLD_RESIZE_NOTE}.", FutureWarning, stacklevel=3)
    table = dict(table, run="blur")
    fixed = {}
    if photos is not None:
        fixed["photos"] = str(photos)
    elif "photos" not in table:
        raise BadInputError("OnlineBlur needs photos: pass OnlineBlur(PHOTOS, settings) or a "
                            "'photos' key.")
    if seed is not None:
        fixed["seed"] = seed
    where = Recipe(Path("OnlineBlur settings"), "", {}, "")
    try:
        return table_settings(where, ("steps", 0), BlurSettings, table, fixed=fixed)
    except RecipeError as exc:  # a settings refusal, not a file's: BadInputError, as blur's
        raise BadInputError(str(exc)) from None


def _check_photos_input(plan, step, table, input_override) -> None:
    """The blur step's photos must be an input of the recipe (or a folder), and be on disk."""
    value = table.get("photos", "@photos")
    where = plan.recipe.where(("steps", step.index), "photos" if "photos" in table else None)
    ref = value[1:].partition(":")[0] if isinstance(value, str) and value.startswith("@") else None
    if ref is not None and ref not in plan.inputs:
        raise RecipeError(
            f"{where}: photos = {value!r} is the output of step {ref!r}, not an input; online "
            "blur renders from a photos input ([inputs.NAME] with path = FOLDER, or skimage).")
    spec = plan.inputs.get(ref)
    if isinstance(spec, tuple):  # ("skimage", names, folder): written by a build
        folder = Path(spec[2])
        missing = [n for n in spec[1] if not (folder / f"{n}.png").is_file()]
        if missing:
            raise RecipeError(
                f"{where}: input {ref!r} is scikit-image samples, which a build writes to "
                f"{folder} ({missing[0]} is not there yet); run 'blursynth build "
                f"{plan.recipe.path} --out {plan.out} --limit 1' first, or give the input a "
                f"path ({input_override.format(name=ref)}).")


def _check_built(plan, step, table, key) -> None:
    """A folder the blur step takes from an earlier step (a kernel bank) must have been built."""
    value = table.get(key)
    if not (isinstance(value, str) and value.startswith("@")):
        return
    ref = value[1:].partition(":")[0]
    if ref in plan.inputs:
        return
    folder = Path(getattr(step.settings, key))
    if not (folder / "manifest.json").is_file() and not (key != "kernels" and folder.is_dir()):
        where = plan.recipe.where(("steps", step.index), key)
        fix = " or set psf_source = 'fresh' and drop kernels" if key == "kernels" else ""
        raise RecipeError(
            f"{where}: {key} = {value!r} is made by step {ref!r}, not built in {plan.out} yet; "
            f"run 'blursynth build {plan.recipe.path} --out {plan.out}' first{fix}.")


def open_online(spec: str, *, device: str = "cpu") -> OnlineBlur:
    """The OnlineBlur of ``train --online RECIPE``: the recipe's blur step, rendered on
    ``device`` (the CPU: loader workers render)."""
    p = Path(spec)
    expected = "expected a recipe TOML with a blur step (e.g. recipes/deblurgan-synth.toml)"
    if p.is_dir():
        raise BadInputError(f"--online {spec}: is a folder; {expected}.")
    if not p.is_file():  # (a weight that is not a number: parse_data_spec says so)
        raise BadInputError(f"--online {spec}: no such recipe file; {expected}.")
    # train has no --input: an input is pointed elsewhere in the recipe itself.
    return OnlineBlur._from_recipe(p, build=None, inputs=None, sets=(), device=device,
                                   input_override="path = ... in the recipe's [inputs.{name}]")


__all__ = ["OnlineBlur", "open_online", "settings_from_table"]


def _check_index(index, n: int) -> None:
    """Refuse an index that is not an int (TypeError, naming its type) or not in [-n, n)."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
        raise TypeError(f"index {index!r} is a {type(index).__name__}; an OnlineBlur is indexed "
                        f"by int (0 to {n - 1})")
    if not -n <= index < n:
        raise IndexError(f"index {index!r} out of range for an OnlineBlur of {n} pairs")


def _warn_at_caller(message: str) -> None:
    """``warnings.warn`` at the first frame outside this module: the line that asked for the
    pair (``read``, ``read_many``, ``ds[i]`` or a DataLoader's fetch), however many of the
    dataset's own methods lie between."""
    import sys
    import warnings

    frame, level = sys._getframe(1), 2
    while frame is not None and frame.f_code.co_filename == __file__:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, stacklevel=level)
