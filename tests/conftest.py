"""Shared fixtures and helpers: run the CLI in-process, tiny sample photos, tiny datasets and recipes."""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import pytest

from blursynth._rng import sample_rng
from blursynth.dataset import PAIR_SCHEMA, pair_row, write_dataset

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Commands default to every core (--workers); the suite runs two test processes at once on small
# jobs, so a command run in-process uses one unless its test asks for more.
os.environ.setdefault("BLURSYNTH_WORKERS", "1")


class CliResult:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err

    def __repr__(self):
        return f"CliResult(code={self.code}, err={self.err!r})"


@pytest.fixture
def run_cli(capsys):
    """``run_cli("trajectories", "--n", "5", ...)`` -> CliResult(code, out, err)."""
    from blursynth.cli import main

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def error_line(result) -> str:
    """The single ``error:`` line of a failed command (asserting there is exactly one)."""
    lines = [l for l in result.err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err, result.err
    return lines[0]


@pytest.fixture(scope="session")
def photo():
    """A small natural RGB photo (uint8, 96x128x3) from scikit-image's samples."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:196, 150:278])


# --- tiny blurred/sharp pair datasets (trainer tests) ------------------------------------------

def _line_psf(length, angle_rad):
    """A normalised straight-line motion PSF of odd size."""
    k = length if length % 2 else length + 1
    psf = np.zeros((k, k), np.float32)
    c = k // 2
    for t in np.linspace(-0.5, 0.5, 4 * k):
        x = c + t * (length - 1) * np.cos(angle_rad)
        y = c + t * (length - 1) * np.sin(angle_rad)
        psf[int(round(y)), int(round(x))] += 1
    return psf / psf.sum()


def _tiny_pair_rows(start, stop, *, size, seed, source, fp):
    from scipy.ndimage import convolve
    from skimage import data

    from blursynth._rng import sample_rng
    from blursynth.dataset import pair_row

    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    sizes = size if isinstance(size[0], tuple) else (size,)
    for i in range(start, stop):
        h, w = sizes[i % len(sizes)]
        rng = sample_rng(seed, i)
        img = photos[i % len(photos)]
        y = int(rng.integers(0, img.shape[0] - h))
        x = int(rng.integers(0, img.shape[1] - w))
        sharp = np.ascontiguousarray(img[y:y + h, x:x + w])
        psf = _line_psf(int(rng.integers(5, 10)), float(rng.uniform(0, np.pi)))
        blurred = np.stack([convolve(sharp[..., c].astype(np.float32), psf, mode="reflect")
                            for c in range(3)], axis=-1)
        yield pair_row(index=i, blurred=np.clip(np.rint(blurred), 0, 255).astype(np.uint8),
                       sharp=sharp, psf=psf, source=source, seed=seed,
                       params={"psf": "line"}, fingerprint=fp)


@pytest.fixture(scope="session")
def tiny_pairs_dataset(tmp_path_factory):
    """``make(n=8, size=(48, 64), seed=0, source="trajectory") -> path`` of a pair dataset:
    crops of scikit-image photos blurred by short line PSFs (scipy), written with
    ``write_dataset``; cached per argument set for the session. ``size`` may be a tuple of
    sizes, used in turn (pair i has ``size[i % len(size)]``)."""
    import functools

    from blursynth.config import fingerprint
    from blursynth.dataset import PAIR_SCHEMA, write_dataset

    made = {}

    def make(n=8, size=(48, 64), seed=0, source="trajectory"):
        size = tuple(tuple(s) for s in size) if isinstance(size[0], (tuple, list)) else tuple(size)
        key = (n, size, seed, source)
        if key not in made:
            out = tmp_path_factory.mktemp("pairs") / "ds"
            fp = fingerprint({"tiny_pairs": list(key)})
            write_dataset(out, kind="pairs", schema=PAIR_SCHEMA, n_items=n, shard_size=4,
                          make_rows=functools.partial(_tiny_pair_rows, size=size,
                                                      seed=seed, source=source, fp=fp),
                          fingerprint=fp, command={"tiny_pairs": list(key)}, progress=False)
            made[key] = out
        return made[key]

    return make


@pytest.fixture
def torchrun_lock(tmp_path_factory):
    """Held for the whole test: tests that launch torchrun never overlap, even across xdist
    workers (each launch picks a free port for its process group, and two launches at once can
    pick the same one)."""
    import fcntl

    path = tmp_path_factory.getbasetemp().parent / "blursynth-torchrun.lock"
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# --- frames: random frames, test clips, the averaging reference, both averaging kernels ----------

@pytest.fixture(params=["vector", "scalar"])
def kernel(request, monkeypatch):
    """Runs a test with the AVX-512 averaging kernel (where this CPU has it) and with the scalar
    kernels; tests that average use it (``pytestmark = pytest.mark.usefixtures("kernel")``)."""
    monkeypatch.setenv("BLURSYNTH_SIMD", "1" if request.param == "vector" else "0")
    return request.param


def random_frames(n, shape=(16, 24, 3), seed=0):
    """``n`` uniform random uint8 frames of ``shape``."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def naive_average(frames, crf):
    """The averaging reference: float64 decode, mean, encode, scaled to 8 bits (not rounded)."""
    from blursynth.ops.color import CameraResponse

    response = CameraResponse.parse(crf)
    stack = np.stack([f.astype(np.float64) / 255.0 for f in frames])
    return response.encode(response.decode(stack).mean(axis=0)) * 255.0


def two_shots(n_first=12, n_second=12, shape=(48, 64)):
    """Frames of a shot panning 2 px per frame over the astronaut, then a cut to one over the coffee cup."""
    from skimage import data

    h, w = shape
    a, b = data.astronaut(), data.coffee()
    return ([np.ascontiguousarray(a[100:100 + h, 100 + 2 * i:100 + 2 * i + w]) for i in range(n_first)]
            + [np.ascontiguousarray(b[100:100 + h, 100 + 2 * i:100 + 2 * i + w]) for i in range(n_second)])


def write_clip(path, frames, fps=240, codec="libx264rgb", pix_fmt="rgb24", options=None, container_options=None):
    """Write RGB frames as a video with PyAV (lossless H.264 RGB by default)."""
    import av

    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream(codec, rate=fps)
        s.height, s.width = frames[0].shape[:2]
        s.pix_fmt = pix_fmt
        s.options = options if options is not None else ({"crf": "0"} if codec.startswith("libx264") else {})
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


# --- tiny pair datasets written straight through the writer ---------------------------------------


def tiny_rows(start, stop, seed=0, fp="fp-test"):
    for i in range(start, stop):
        rng = sample_rng(seed, i)
        sharp = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        blurred = (sharp // 2).astype(np.uint8)
        psf = np.full((3, 3), 1 / 9, np.float32) if i % 2 else None
        yield pair_row(index=i, blurred=blurred, sharp=sharp, psf=psf, source="trajectory", seed=seed,
                       params={"i": i, "note": "tiny"}, fingerprint=fp)


def slow_tiny_rows(start, stop, fp="fp-test"):
    """:func:`tiny_rows`, a fifth of a second each: a write that is still at work when stopped."""
    import time

    for row in tiny_rows(start, stop, fp=fp):
        time.sleep(0.2)
        yield row


def write_tiny(out, n=20, shard_size=6, workers=1, fp="fp-test", overwrite=False, make_rows=tiny_rows):
    return write_dataset(out, kind="pairs", schema=PAIR_SCHEMA, n_items=n, shard_size=shard_size,
                         make_rows=functools.partial(make_rows, fp=fp), fingerprint=fp, command={"test": fp},
                         workers=workers, overwrite=overwrite, progress=False)


def edge_scene(h=24, w=32):
    img = np.full((h, w, 3), 20, np.uint8)
    img[:, w // 2 :] = 235
    img[h // 3 : h // 3 + 3, :, 1] = 128
    return img


# --- recipes ----------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"

TINY = """
[build]
seed = 3

[inputs.photos]
skimage = ["astronaut", "coffee"]

[[steps]]
name = "bank"
run = "trajectories"
n = 30
samples = 300
length = 20.0
canvas = 31

[[steps]]
name = "synth"
run = "blur"
kernels = "@bank"
photos = "@photos"
per_image = 3
crop = [48, 48]
shard_size = 2
"""


class held_lock:
    """``with held_lock(out) as pid:`` another process holds ``lock_output(out)`` inside the block."""

    def __init__(self, out):
        self.out = out

    def __enter__(self):
        import subprocess
        import sys

        code = (
            "import sys; from blursynth.dataset.outputs import lock_output\n"
            "with lock_output(sys.argv[1]):\n"
            "    print('locked', flush=True); sys.stdin.read()\n"
        )
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(self.out)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline() == "locked\n"
        return self.proc.pid

    def __exit__(self, *exc):
        self.proc.communicate("")


@pytest.fixture
def tiny_recipe(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


# --- blur inputs: photos and a kernel bank (module-scoped) ----------------------------------------

@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three small photos (PNG, a JPEG in a subfolder, a grey PNG) for ``blur``."""
    import cv2
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    (folder / "sub").mkdir()
    cv2.imwrite(str(folder / "a.png"), data.astronaut()[::6, ::6, ::-1])     # 86x86
    cv2.imwrite(str(folder / "sub" / "b.jpg"), data.coffee()[::5, ::5, ::-1])  # 80x120
    cv2.imwrite(str(folder / "c.png"), data.camera()[::6, ::6])               # gray 86x86
    return folder


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    """A 16-kernel bank of short trajectories."""
    from blursynth.kernelbank import KernelBankConfig, write_kernel_bank
    from blursynth.ops.trajectory import TrajectoryConfig

    path = tmp_path_factory.mktemp("bank") / "bank"
    write_kernel_bank(path, KernelBankConfig(n=16, seed=1, canvas=16,
                                             trajectory=TrajectoryConfig(n_samples=300, length_px=12.0)),
                      progress=False)
    return path


# --- real pairs: a GoPro-layout folder ------------------------------------------------------------

def write_image(path, image):
    """Write an RGB(A) or grey uint8 image with OpenCV, making its folder."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3 and image.shape[2] == 3:
        image = image[:, :, ::-1]
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, [2, 1, 0, 3]]
    assert cv2.imwrite(str(path), image)


@pytest.fixture
def gopro(tmp_path, photo):
    """Two GoPro sequences of two frames: sharp/, blur/ (7-px box) and blur_gamma/ (5-px box)."""
    import cv2

    root = tmp_path / "GOPRO"
    for seq in ("train/GOPR0372_07_00", "train/GOPR0374_11_01"):
        for k in range(2):
            sharp = np.roll(photo, 3 * k, axis=1)
            write_image(root / seq / "sharp" / f"{k:06d}.png", sharp)
            write_image(root / seq / "blur" / f"{k:06d}.png", cv2.blur(sharp, (7, 1)))
            write_image(root / seq / "blur_gamma" / f"{k:06d}.png", cv2.blur(sharp, (5, 1)))
    return root


# --- learned blur: the tiny untrained generator as a model folder ---------------------------------

@pytest.fixture(scope="module")
def tiny():
    """The tiny BGAN config, untrained: (generator, discriminator)."""
    from blursynth.bgan.model import CONFIGS, build_bgan

    return build_bgan(CONFIGS["tiny"], seed=0)


@pytest.fixture
def stub_model(tiny, tmp_path, monkeypatch):
    """The tiny untrained generator, served as the model folder ``tmp_path / "model"``.

    ``pairs.bgan`` caches loaded generators: the cache is emptied before and after, so
    neither this stub nor an earlier model outlives its test.
    """
    from blursynth.bgan import train as bgan_train
    from blursynth.bgan.train import CHECKPOINT
    from blursynth.pairs import bgan

    g, _ = tiny
    info = {"config": {"name": "tiny"}, "step": 0, "fingerprint": "f" * 16}
    monkeypatch.setattr(bgan_train, "load_bgan_generator", lambda path, device="cpu": (g.eval(), info))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / CHECKPOINT).write_bytes(b"stub")  # its size and time key the cache
    bgan._cached_generator.cache_clear()
    yield tmp_path / "model"
    bgan._cached_generator.cache_clear()


def two_photos(folder):
    """``folder`` with two small photos (an astronaut crop, a flat colour) for ``bgan blur``."""
    from skimage import data

    from blursynth.sources.photos import save_rgb8

    folder.mkdir()
    save_rgb8(folder / "a.png", np.ascontiguousarray(data.astronaut()[100:124, 120:156]))
    save_rgb8(folder / "b.png", np.full((20, 28, 3), (150, 90, 60), np.uint8))
    return folder


@pytest.fixture
def progress_bars(monkeypatch):
    """Every tqdm bar a write opens, recorded instead of drawn: ``total``, ``n``, ``unit``,
    ``disable`` of each, in order."""
    import tqdm.auto

    bars = []

    class Recorder:
        def __init__(self, *, total=None, initial=0, unit="it", disable=False, **_):
            self.total, self.n, self.unit, self.disable = total, initial, unit, disable
            bars.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            pass

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    return bars

