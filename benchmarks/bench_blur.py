"""Blur engine and `blursynth blur`: the engine against scipy / OpenCV / NumPy, the command
against the PNG-encoding bound.

Run: .venv/bin/python benchmarks/bench_blur.py [--rounds 7] [--pairs 24] [--quick]
Writes the "Blur engine" section of benchmarks/RESULTS.md.

Engine: one 720x1280 RGB photo (skimage's astronaut, resized) blurred by a
65x65 trajectory PSF (a 60 px random camera-shake path, rasterized at fixed
size 65, the odd size nearest 64), in linear light (gamma 2.2). Every method is
timed in the same rounds, interleaved, and the medians compared, so the ratios
hold under the load of a shared machine. "ours" includes decoding the uint8
photo through the camera response, the border, the convolution, clipping and
encoding back to uint8; the baselines are timed on the convolution alone
(the strictest comparison) and, for scipy, also with the same decode/encode
written plainly in NumPy.

Command: `blur_photos` (what `blursynth blur` runs) over 720p photos with
a kernel bank at random exposures, against the rate at which the two PNGs of
each pair can be encoded (fpng) and nothing else.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import machine_line, write_section  # noqa: E402

H, W = 720, 1280


def photo_720p(name="astronaut"):
    import cv2
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(cv2.resize(img[:, :, :3], (W, H), interpolation=cv2.INTER_CUBIC))


def trajectory_psf(exposure=1.0, seed=11):
    from blursynth.ops.psf import rasterize_psf
    from blursynth.ops.trajectory import sample_trajectory

    traj, _ = sample_trajectory(rng=seed, length_px=60.0)
    return rasterize_psf(traj, exposure_fraction=exposure, size=65)


def interleaved(methods: dict, rounds: int) -> dict:
    """Median seconds of each method, timed round-robin (one warm-up call each)."""
    for fn in methods.values():
        fn()
    times = {name: [] for name in methods}
    for _ in range(rounds):
        for name, fn in methods.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: statistics.median(ts) for name, ts in times.items()}


def engine_section(rounds: int, quick: bool):
    import cv2
    import scipy.signal
    import torch

    from blursynth.ops.blur import render_pair
    from blursynth.ops.color import CameraResponse

    photo = photo_720p()
    crf = CameraResponse.parse("gamma:2.2")
    table = crf.decode_table()
    rows = []
    results = {}
    for exposure in (1.0, 0.5, 0.1) if not quick else (1.0,):
        psf = trajectory_psf(exposure)
        nnz = int(np.count_nonzero(psf))
        flipped = np.ascontiguousarray(psf[::-1, ::-1])
        r = psf.shape[0] // 2
        lin_hwc = table[photo]
        lin_planes = [np.ascontiguousarray(lin_hwc[..., c]) for c in range(3)]

        def scipy_conv():
            return [scipy.signal.fftconvolve(p, psf, mode="same") for p in lin_planes]

        def scipy_pipeline():
            lin = (photo / np.float32(255)).astype(np.float32) ** np.float32(2.2)
            padded = np.pad(lin, ((r, r), (r, r), (0, 0)), mode="reflect")
            out = np.stack([scipy.signal.fftconvolve(padded[..., c], psf, mode="valid")
                            for c in range(3)], axis=-1)
            return (np.clip(out, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)

        def cv2_filter():
            return cv2.filter2D(lin_hwc, -1, flipped, borderType=cv2.BORDER_REFLECT_101)

        def torch_rfft2_plain():
            x = torch.from_numpy(lin_hwc).permute(2, 0, 1)[None]
            xp = torch.nn.functional.pad(x, (r, r, r, r), mode="reflect")
            s = (xp.shape[-2] + 2 * r, xp.shape[-1] + 2 * r)
            y = torch.fft.irfft2(torch.fft.rfft2(xp, s=s) * torch.fft.rfft2(torch.from_numpy(psf), s=s), s=s)
            return y[..., 2 * r : 2 * r + H, 2 * r : 2 * r + W]

        ys, xs = np.nonzero(psf)
        padded_np = np.pad(lin_hwc, ((r, r), (r, r), (0, 0)), mode="reflect")

        def numpy_taps():
            out = np.zeros_like(lin_hwc)
            k = psf.shape[0]
            for i, j in zip(ys, xs):
                out += psf[i, j] * padded_np[k - 1 - i : k - 1 - i + H, k - 1 - j : k - 1 - j + W]
            return out

        def one_thread():
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                return render_pair(photo, psf, crf=crf)
            finally:
                torch.set_num_threads(before)

        methods = {
            "ours (auto)": lambda: render_pair(photo, psf, crf=crf),
            "ours (auto), one thread": one_thread,
            "ours, FFT path": lambda: render_pair(photo, psf, crf=crf, method="fft"),
            "ours, sparse direct path": lambda: render_pair(photo, psf, crf=crf, method="direct"),
            "scipy fftconvolve per channel (convolution only)": scipy_conv,
            "scipy pipeline (float ** 2.2, reflect pad, fftconvolve per channel, encode)": scipy_pipeline,
            "cv2.filter2D (convolution only)": cv2_filter,
            "torch rfft2, kernel padded to the image (convolution only)": torch_rfft2_plain,
        }
        if exposure < 1.0 or not quick:
            methods["NumPy: sum of shifted copies over the non-zero taps (convolution only)"] = numpy_taps
        med = interleaved(methods, rounds if exposure == 1.0 else max(3, rounds // 2))
        # Agreement of ours with the float64 formula (in 8-bit levels).
        ours = render_pair(photo, psf, crf=crf)[0].astype(int)
        lin64 = (photo / 255.0) ** 2.2
        pad64 = np.pad(lin64, ((r, r), (r, r), (0, 0)), mode="reflect")
        ref = np.stack([scipy.signal.fftconvolve(pad64[..., c], psf.astype(np.float64), mode="valid")
                        for c in range(3)], axis=-1)
        ref = np.floor(np.clip(ref, 0, 1) ** (1 / 2.2) * 255 + 0.5)
        err = int(np.abs(ours - ref).max())
        results[exposure] = (nnz, med, err)
        from blursynth.ops.convolve import choose_method
        import torch as _t

        chosen = choose_method(_t.from_numpy(psf), (H + 2 * r, W + 2 * r))
        base = med["scipy fftconvolve per channel (convolution only)"]
        rows.append(f"\n**Exposure {exposure:g}** ({nnz} non-zero taps of 65x65; auto chose {chosen}; "
                    f"max difference from the float64 formula {err} level(s)):\n")
        rows.append("| method | ms | speed-up vs scipy fftconvolve |")
        rows.append("| --- | ---: | ---: |")
        for name, t in med.items():
            rows.append(f"| {name} | {t * 1e3:.1f} | {base / t:.2f}x |")
    return rows, results


def command_section(n_pairs: int, workers_list=(1, 2)):
    """Per-core throughput of the pair pipeline against the PNG-encoding bound, measured pair by
    pair in the same loop; then whole `blur_photos` runs for reference."""
    import cv2
    import torch

    from blursynth.pairs.shake import BlurJob, BlurSettings, _blur_rows, blur_photos, open_kernels, plan_photos
    from blursynth.sources.photos import decode_image, encode_png
    from blursynth.kernelbank import KernelBankConfig, write_kernel_bank

    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"]
    per_image = 4
    n_photos = max(1, min(len(names), n_pairs // per_image))
    total = n_photos * per_image
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "photos").mkdir()
        for n in names[:n_photos]:
            cv2.imwrite(str(tmp / "photos" / f"{n}.png"), photo_720p(n)[:, :, ::-1])
        write_kernel_bank(tmp / "bank", KernelBankConfig(n=2000, seed=0), progress=False)
        settings = BlurSettings(photos=str(tmp / "photos"), kernels=str(tmp / "bank"),
                                per_image=per_image, shard_size=total)
        source = open_kernels(settings)
        job = BlurJob(settings, plan_photos(settings, source.max_side), source, "bench", "cpu")
        before = torch.get_num_threads()
        torch.set_num_threads(1)  # one core, as in a worker process
        try:
            pair_s, png_s, methods = [], [], []
            rows_iter = _blur_rows(0, total, job)
            list(_blur_rows(0, 1, job))  # warm-up (Numba cache load)
            while True:
                t = time.perf_counter()
                try:
                    row = next(rows_iter)
                except StopIteration:
                    break
                pair_s.append(time.perf_counter() - t)
                images = [decode_image(row[key]["bytes"]) for key in ("blurred", "sharp")]
                t = time.perf_counter()
                for image in images:
                    encode_png(image)
                png_s.append(time.perf_counter() - t)
                methods.append(json.loads(row["params"])["exposure"])
        finally:
            torch.set_num_threads(before)
        pair_med, png_med = statistics.median(pair_s), statistics.median(png_s)
        rows.append(f"\nCommand: {total} pairs ({n_photos} photos x {per_image}, 720x1280 full frame, bank of "
                    "2000 kernels at random exposures 1/100, 1/10, 1/2, 1, reflect border, gamma 2.2, fpng). "
                    "Per pair on one core (torch and Numba at one thread, as in a worker): everything the "
                    "writer's row generator does (photo decode shared by its 4 pairs, kernel read, blur, "
                    "both PNGs), against encoding the same two images as PNG and nothing else, timed pair "
                    "by pair in the same loop.\n")
        rows.append("| per pair, one core | ms (median) | pairs/s |")
        rows.append("| --- | ---: | ---: |")
        rows.append(f"| blursynth blur pipeline, incl. PNGs | {pair_med * 1e3:.1f} | {1 / pair_med:.1f} |")
        rows.append(f"| PNG-encode bound (two fpng encodes) | {png_med * 1e3:.1f} | {1 / png_med:.1f} |")
        rows.append(f"| fraction of the bound | | {png_med / pair_med:.2f} |")
        rows.append("\nWhole runs of `blur_photos` (process start-up, bank verification and Parquet "
                    "writing included):\n")
        rows.append("| run | pairs | wall s | pairs/s |")
        rows.append("| --- | ---: | ---: | ---: |")
        for workers in workers_list:
            run_settings = BlurSettings(photos=str(tmp / "photos"), kernels=str(tmp / "bank"),
                                        per_image=per_image, shard_size=max(1, total // (2 * workers)))
            t = time.perf_counter()
            blur_photos(run_settings, tmp / f"pairs{workers}", workers=workers, progress=False)
            wall = time.perf_counter() - t
            rows.append(f"| --workers {workers} | {total} | {wall:.1f} | {total / wall:.1f} |")
    return rows, (1 / pair_med, 1 / png_med)


def gpu_section(rounds: int):
    """Per-pair and batched engine figures on a CUDA GPU (skipped without one)."""
    import torch

    if not torch.cuda.is_available():
        return ['No GPU on this machine: the GPU figures are in "GPU figures (H200)" below.']
    from blursynth.ops.blur import render_pair
    from blursynth.ops.color import CameraResponse
    from blursynth.ops.convolve import convolve

    crf = CameraResponse.parse("gamma:2.2")
    photo = photo_720p()
    psfs = [trajectory_psf(1.0, seed=s) for s in range(16)]

    def sync(fn):
        def run():
            out = fn()
            torch.cuda.synchronize()
            return out
        return run

    x = crf.decode_uint8(torch.from_numpy(photo).cuda()).permute(2, 0, 1)[None].contiguous()
    batch = x.expand(16, -1, -1, -1).contiguous()
    stack = torch.from_numpy(np.stack(psfs)).cuda()
    methods = {
        "render_pair on cuda (uint8 in, uint8 out, one pair)": sync(
            lambda: render_pair(photo, psfs[0], crf=crf, device="cuda")),
        "engine, one 720p image (FFT)": sync(lambda: convolve(x, stack[0], method="fft")),
        "engine, batch of 16 720p images, 16 PSFs (FFT)": sync(
            lambda: convolve(batch, stack, method="fft")),
    }
    med = interleaved(methods, rounds)
    name = torch.cuda.get_device_name()
    rows = [f"\nGPU ({name}), 720x1280 RGB, 65x65 PSFs:\n", "| what | ms | per image ms |",
            "| --- | ---: | ---: |"]
    for label, t in med.items():
        per = t / 16 if "16" in label else t
        rows.append(f"| {label} | {t * 1e3:.2f} | {per * 1e3:.2f} |")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--quick", action="store_true", help="Fewer rounds and pairs (a smoke run).")
    ap.add_argument("--no-write", action="store_true", help="Print, do not touch RESULTS.md.")
    args = ap.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    pairs = 6 if args.quick else args.pairs
    head = machine_line()
    import torch

    device = "CPU (torch %s, %d threads)" % (torch.__version__, torch.get_num_threads())
    eng_rows, eng = engine_section(rounds, args.quick)
    cmd_rows, cmd = command_section(pairs, (1,) if args.quick else (1, 2))
    nnz, med, _ = eng[1.0]
    base = med["scipy fftconvolve per channel (convolution only)"]
    ours = med["ours (auto)"]
    rate, bound = cmd
    summary = [
        f"Measured {head}; {device}; medians of {rounds} interleaved rounds.",
        "",
        "Photo 720x1280 RGB (skimage astronaut, resized), PSF 65x65 from a 60 px random trajectory "
        "(the odd size nearest 64x64). 'ours' = uint8 photo -> 256-entry-table decode (gamma 2.2) -> "
        "reflect border -> convolution -> clip -> encode -> uint8 (what `render_pair` does); the "
        "baselines do the convolution alone unless their name says otherwise.",
        *eng_rows,
        *cmd_rows,
        "",
        f"Targets from the issue: the engine including decode and encode at least 2x faster than scipy's "
        f"FFT path at full exposure (measured {base / ours:.2f}x); the command within 85% of the "
        f"PNG-encode bound (measured {rate / bound:.0%} per core).",
        "Where the command's time goes: per pair on one core the blur (table decode, sparse direct "
        "or FFT convolution, threshold encode) costs one to three times the two PNG encodes, so on a CPU "
        "the PNG bound is out of reach by design; the bound is for a GPU, where the blur is nearly free. "
        "The machine is shared: absolute times move with its load, the ratios come from the same "
        "interleaved rounds. Whole runs with --workers 2 pay two interpreter starts (torch and Numba "
        "imports, seconds each under load), which 24 pairs do not amortize.",
        *gpu_section(rounds),
    ]
    text = "\n".join(summary)
    print(text)
    if not args.no_write:
        write_section("Blur engine", text)


if __name__ == "__main__":
    main()
