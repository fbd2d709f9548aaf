"""Does UID learn a face domain's blur, and deblur it? A small, bounded CPU experiment beside BGAN.

Run: .venv/bin/python benchmarks/bench_uid.py [--minutes 4] [--work DIR] [--no-write]
(about 3 x --minutes plus a minute of clips and measures, on 2 cores).
Writes the "Transferred blur (UID)" section of benchmarks/RESULTS.md.

- Faces: scikit-image's ``lfw_subset`` (100 grey 25 px crops, enlarged to 96 px by
  ``blursynth.sources.faces``). Faces 0-39 are the sharp training set (their centre 48 px),
  faces 40-79 become the "real" blurred set, faces 80-99 are held out.
- "Real" blur: a clip per face from ``render-clip`` (a virtual camera shaking over it, 48 frames
  at 240 fps, 48x48, a 36 px path) averaged by ``frames-average`` (windows 9-25 frames, linear light). The models
  read only the blurred images of faces 40-79; the held-out faces' pairs (blurred window, its
  sharp middle frame) are the evaluation set.
- UID and BGAN are trained for the same bounded time each (config ``small``, 48 px patches,
  batch 4, ``--perceptual none``: the VGG19 ImageNet file cannot be downloaded here). UID runs
  twice: with ``small``'s defaults (self-reconstruction weight 10, code gain 2) and, as the
  baseline, with the paper's losses alone (``--self-reconstruction-weight 0 --code-gain 0``).
  BGAN uses bench_bgan.py's run b settings (lr 5e-4, content weight 1).
- Blur measures (bench_bgan.py's: log10 variance of the Laplacian and log10 fraction of spectral
  power above 0.25 cycles/px, per grayscale image) of blur generated on the held-out sharp
  frames, compared with the held-out real blurred windows by 1-D Wasserstein distance; "before"
  is each untrained network. Trajectory blur (bench_bgan.trajectory_blur) of the same frames is
  measured beside them.
- ``uid deblur`` (the paper's domain-specific deblurring) on the held-out blurred windows: PSNR
  against their sharp frames, beside the blurred input's own PSNR, before and after training.
- Does the code carry the blur: each held-out blurred window decoded from its own content with
  its own code and with another window's (the issue's test, on faces), and the same content
  decoded with a real face's code and a prior draw.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from benchmarks._common import machine_line, write_section  # noqa: E402
from benchmarks.bench_bgan import measures, trajectory_blur  # noqa: E402

FACE = 96  # enlarged face side
FRAME = 48  # clip frame side
PATH_PX = 36  # the camera path over a whole clip (48 frames): a 9-25 frame window spans 6-18 px
SHARP, REAL, HELD = range(0, 40), range(40, 80), range(80, 100)


def face_images():
    from blursynth.sources.faces import FaceCropSettings, face_crops

    return face_crops(FaceCropSettings(first=0, count=100, size=FACE))


def _centre(img, side):
    y0, x0 = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
    return np.ascontiguousarray(img[y0:y0 + side, x0:x0 + side])


def frame_averaged(faces, indices, work: Path, name: str, seed: int):
    """Clips of the faces ``indices`` averaged into pairs; return (dataset path, seconds)."""
    import contextlib
    import io

    from blursynth.cli import main
    from blursynth.sources.photos import save_rgb8

    t = time.perf_counter()
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in indices:
        photo, clip = folder / f"face_{i:03d}.png", folder / f"face_{i:03d}.mkv"
        save_rgb8(photo, faces[i])
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["render-clip", str(photo), "--out", str(clip), "--frames", "48", "--length-px",
                         str(PATH_PX), "--size", f"{FRAME}x{FRAME}", "--seed", str(seed + i), "--overwrite"]) == 0
        clips.append(str(clip))
    out = work / f"{name}_pairs"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["frames-average", *clips, "--window", "9-25", "--odd-only", "--seed", str(seed),
                     "--out", str(out), "--overwrite"]) == 0
    return out, time.perf_counter() - t


def psnr(a, b) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def uid_sets(nets, held_sharp, refs, seed):
    """UID's blur of the held-out frames: codes of real blurred references, and prior codes."""
    from blursynth.pairs.uid import encode_code, prior_code, reference_index, transfer_blur_image

    codes = [encode_code(nets, refs[reference_index(seed, i, len(refs))]) for i in range(len(held_sharp))]
    transferred = [transfer_blur_image(nets, img, c) for img, c in zip(held_sharp, codes)]
    prior = [transfer_blur_image(nets, img, prior_code(seed, i, nets.z_dim)) for i, img in enumerate(held_sharp)]
    return transferred, prior


def own_vs_other(nets, held_blurred, partner=None):
    """Mean absolute error (grey levels) of blurred windows decoded from their own content with
    their own code mean, and with the code of window ``partner[i]`` (default: the window half the
    set away, another face); windows without a partner (None) are left out."""
    import torch

    from blursynth.train.models import from_model_range, to_model_range

    n = len(held_blurred)
    if partner is None:
        partner = [(i + n // 2) % n for i in range(n)]
    keep = [i for i in range(n) if partner[i] is not None]
    b = to_model_range(torch.from_numpy(np.stack(held_blurred)).permute(0, 3, 1, 2).float() / 255)
    with torch.no_grad():
        mu, _ = nets.blur_code(b)
        c = nets.content(b, "blurred")
        other = mu[[partner[i] if partner[i] is not None else i for i in range(n)]]
        errs = [float((from_model_range(nets.make_blurred(c, z)) - from_model_range(b))[keep].abs().mean())
                * 255 for z in (mu, other)]
    return errs[0], errs[1]


def same_face_partners(videos):
    """For each held-out window, another window of the same clip (face), or None: the same content
    under another stretch of the camera path, so swapping their codes swaps only the blur."""
    return [next((j for j in range(len(videos)) if j != i and videos[j] == v), None)
            for i, v in enumerate(videos)]


def deblur_psnr(nets, held_blurred, held_sharp) -> float:
    from blursynth.uid.deblur import deblur_array

    return float(np.mean([psnr(deblur_array(nets, b), s) for b, s in zip(held_blurred, held_sharp)]))


def run(args):
    import torch
    from scipy.stats import wasserstein_distance

    from blursynth.bgan.model import CONFIGS as BGAN_CONFIGS
    from blursynth.bgan.model import build_bgan
    from blursynth.bgan.train import BGANTrainSettings, load_bgan_generator, train_bgan
    from blursynth.dataset import PairDataset
    from blursynth.pairs.bgan import blur_image, pair_noise
    from blursynth.sources.photos import save_rgb8
    from blursynth.uid.model import CONFIGS as UID_CONFIGS
    from blursynth.uid.model import build_uid, count_parameters, load_uid
    from blursynth.uid.train import UIDTrainSettings, train_uid

    # One thread: on a shared 2-core machine a second thread mostly waits on the others.
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_uid_"))
    work.mkdir(parents=True, exist_ok=True)
    header = machine_line()
    faces = face_images()
    for i in SHARP:
        save_rgb8(work / "sharp_train" / f"face_{i:03d}.png", _centre(faces[i], FRAME))
    real_ds, real_s = frame_averaged(faces, REAL, work, "real", args.seed)
    held_ds, held_s = frame_averaged(faces, HELD, work, "held", args.seed + 1000)
    real = PairDataset(real_ds)
    real_blur = [real[i]["blurred"] for i in range(len(real))]
    held = PairDataset(held_ds)
    held_blurred = [held[i]["blurred"] for i in range(len(held))]
    held_sharp = [held[i]["sharp"] for i in range(len(held))]

    uid_before = build_uid(UID_CONFIGS["small"], seed=args.seed).eval()
    bgan_before, _ = build_bgan(BGAN_CONFIGS["small"], seed=args.seed)
    before_t, before_p = uid_sets(uid_before, held_sharp, real_blur, args.seed)
    sets = {"sharp inputs (held-out frames)": held_sharp,
            "UID before training, real codes": before_t,
            "BGAN before training": [blur_image(bgan_before, img, pair_noise(7, i))
                                     for i, img in enumerate(held_sharp)]}
    deblur_before = deblur_psnr(uid_before, held_blurred, held_sharp)

    common = dict(sharp=str(work / "sharp_train"), real_blur=str(real_ds), steps=100000, config="small",
                  patch=48, batch_size=4, perceptual="none", seed=args.seed, device="cpu",
                  sample_every=250, checkpoint_every=250, log_every=25, max_seconds=args.minutes * 60,
                  progress=not args.quiet)
    uid_summary = train_uid(UIDTrainSettings(out=str(work / "uid"), lr=args.uid_lr, **common))
    nets, config, uid_info = load_uid(work / "uid")
    after_t, after_p = uid_sets(nets, held_sharp, real_blur, args.seed)
    sets["UID after training, real codes (uid blur --blur-from)"] = after_t
    sets["UID after training, prior codes (uid blur --blur-prior)"] = after_p
    deblur_after = deblur_psnr(nets, held_blurred, held_sharp)
    own_other = own_vs_other(nets, held_blurred)
    partners = same_face_partners([held[i]["params"]["video"] for i in range(len(held))])
    own_same = own_vs_other(nets, held_blurred, partners)
    # The baseline: the paper's losses alone, the code layers started as the others.
    paper_summary = train_uid(UIDTrainSettings(out=str(work / "uid_paper"), lr=args.uid_lr,
                                               self_reconstruction_weight=0.0, code_gain=0.0, **common))
    paper_nets, _, paper_info = load_uid(work / "uid_paper")
    paper_t, paper_p = uid_sets(paper_nets, held_sharp, real_blur, args.seed)
    sets["UID, paper's losses only, real codes"] = paper_t
    deblur_paper = deblur_psnr(paper_nets, held_blurred, held_sharp)
    own_other_paper = own_vs_other(paper_nets, held_blurred)
    own_same_paper = own_vs_other(paper_nets, held_blurred, partners)

    bgan_summary = train_bgan(BGANTrainSettings(out=str(work / "bgan"), lr=args.bgan_lr,
                                                perceptual_weight=1.0, **common))
    bgan_after, bgan_info = load_bgan_generator(work / "bgan")
    sets["BGAN after training"] = [blur_image(bgan_after, img, pair_noise(7, i))
                                   for i, img in enumerate(held_sharp)]
    sets["trajectory-blurred inputs"] = trajectory_blur(held_sharp, args.seed)
    sets["real blurred (held-out frame-averaged)"] = held_blurred

    m = {k: measures(v) for k, v in sets.items()}
    target = m["real blurred (held-out frame-averaged)"]
    rows = {k: (len(sets[k]), np.median(v["laplacian"]), np.median(v["hf"]),
                wasserstein_distance(v["laplacian"], target["laplacian"]),
                wasserstein_distance(v["hf"], target["hf"])) for k, v in m.items()}
    blurred_psnr = float(np.mean([psnr(b, s) for b, s in zip(held_blurred, held_sharp)]))
    # how far the transferred blur moved the sharp input, in grey levels
    change = {k: float(np.mean([np.abs(a.astype(float) - s).mean() for a, s in zip(sets[k], held_sharp)]))
              for k in sets if k.startswith(("UID", "BGAN"))}

    # Does the code matter? The same content decoded with a real blurred face's code and a prior draw.
    code_effect = float(np.mean([np.abs(a.astype(float) - b).mean() for a, b in zip(after_t, after_p)]))
    code_effect_paper = float(np.mean([np.abs(a.astype(float) - b).mean() for a, b in zip(paper_t, paper_p)]))
    windows = [held[i]["params"]["window_frames"] for i in range(len(held))]
    lines = [
        f"Measured {header}; the machine was shared with other jobs (another benchmark's training "
        f"ran throughout), so steps per second are low and uneven. Script: "
        f"`benchmarks/bench_uid.py --minutes {args.minutes:g}` (seed {args.seed}, {args.threads} torch "
        "thread(s)).",
        "",
        f"Faces: scikit-image's `lfw_subset` (grey 25 px crops enlarged to {FACE} px by the `face-crops` "
        f"step's code). Sharp training set: faces 0-39 (centre {FRAME} px). \"Real\" blurred set: "
        f"{len(real)} frame-averaged windows of clips over faces 40-79 (`render-clip`, 48 frames at 240 fps, "
        f"{PATH_PX} px camera path, {FRAME}x{FRAME}; `frames-average --window 9-25 --odd-only`; {real_s:.0f} s); "
        f"the models read only their blurred images. Held out: {len(held)} windows of faces 80-99 "
        f"({min(windows)}-{max(windows)} frames, {held_s:.0f} s), whose sharp middle frames are the inputs "
        "blurred below and the ground truth of the deblurring.",
        "",
        f"Training, {args.minutes:g} min each: config `small`, patch 48, batch 4, `--perceptual none` "
        f"(no VGG19 file offline). UID: lr {args.uid_lr:g}, `small`'s defaults: the paper's loss weights plus "
        f"self-reconstruction {uid_info['loss_weights'].get('self_reconstruction', 0):g} and code gain "
        f"{config.code_gain} ({count_parameters(nets):,} parameters in all its networks); \"UID, paper's losses\": "
        "the same with `--self-reconstruction-weight 0 --code-gain 0`. BGAN: lr "
        f"{args.bgan_lr:g}, content weight 1 (bench_bgan.py's run b).",
        "",
        "| model | steps | s/step | last losses | fingerprint |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for name, summary, fp in (("UID", uid_summary, uid_info["fingerprint"]),
                              ("UID, paper's losses", paper_summary, paper_info["fingerprint"]),
                              ("BGAN", bgan_summary, bgan_info["fingerprint"])):
        last = summary.get("last") or {}
        losses = ", ".join(f"{k[5:] if k.startswith('loss_') else k} {v:.3g}" for k, v in last.items()
                           if k.startswith("loss") and isinstance(v, (int, float)))
        lines.append(f"| {name} | {summary['steps']} | {summary['seconds'] / max(summary['steps'], 1):.2f} | "
                     f"{losses} | {fp} |")
    lines += [
        "",
        "Blur measures of the held-out images (lower = blurrier): median log10 variance of the Laplacian and "
        "median log10 fraction of spectral power above 0.25 cycles/px; W = 1-D Wasserstein distance to the held-out "
        "real blurred windows' values; change = mean absolute difference from the sharp input (grey levels).",
        "",
        "| set | images | median log10 var(Lap) | median log10 HF fraction | W to real (Lap) | W to real (HF) | change |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for k, (n, ml, mh, wl, wh) in rows.items():
        c = f"{change[k]:.1f}" if k in change else ""
        lines.append(f"| {k} | {n} | {ml:.3f} | {mh:.3f} | {wl:.3f} | {wh:.3f} | {c} |")
    u0, u1 = rows["UID before training, real codes"], rows["UID after training, real codes (uid blur --blur-from)"]
    b0, b1 = rows["BGAN before training"], rows["BGAN after training"]
    tr = rows["trajectory-blurred inputs"]
    lines += [
        "",
        f"Distance to the real blurred set, before -> after: UID (real codes) Laplacian {u0[3]:.3f} -> {u1[3]:.3f}, "
        f"HF {u0[4]:.3f} -> {u1[4]:.3f}; BGAN Laplacian {b0[3]:.3f} -> {b1[3]:.3f}, HF {b0[4]:.3f} -> {b1[4]:.3f}; "
        f"trajectory blur {tr[3]:.3f}, {tr[4]:.3f}.",
        "",
        f"`uid deblur` on the {len(held)} held-out blurred windows, PSNR against their sharp frames: blurred input "
        f"{blurred_psnr:.2f} dB; UID before training {deblur_before:.2f} dB; after {deblur_after:.2f} dB "
        f"({deblur_after - blurred_psnr:+.2f} dB against the input); with the paper's losses only "
        f"{deblur_paper:.2f} dB.",
        "",
        f"Does the code carry the blur? Each held-out blurred window decoded from its own content with its own "
        f"code mean and with another face's window's, mean absolute error in grey levels: UID {own_other[0]:.2f} "
        f"own vs {own_other[1]:.2f} other ({own_other[1] / max(own_other[0], 1e-9):.2f}x); paper's losses only "
        f"{own_other_paper[0]:.2f} vs {own_other_paper[1]:.2f} "
        f"({own_other_paper[1] / max(own_other_paper[0], 1e-9):.2f}x). Another face's code may differ in content "
        f"as well as blur (a code that holds the face's brightness would pass this too); with the code of another "
        f"window of the same face ({sum(p is not None for p in partners)} windows have one: the same face under "
        f"another stretch of the camera path), UID {own_same[0]:.2f} vs {own_same[1]:.2f} "
        f"({own_same[1] / max(own_same[0], 1e-9):.2f}x), paper's losses only {own_same_paper[0]:.2f} vs "
        f"{own_same_paper[1]:.2f} ({own_same_paper[1] / max(own_same_paper[0], 1e-9):.2f}x). A sharp face decoded with a real face's "
        f"code and with a prior draw differs by {code_effect:.2f} grey levels (paper's losses only "
        f"{code_effect_paper:.2f}).",
        "",
        f"Reading: after training, UID's transferred blur is {'closer to' if u1[3] < rows['sharp inputs (held-out frames)'][3] else 'farther from'} "
        f"the real blurred set than the unblurred inputs are (Laplacian W {u1[3]:.3f} against {rows['sharp inputs (held-out frames)'][3]:.3f}); "
        f"a window decoded with the code of another window of the same face is {own_same[1] / max(own_same[0], 1e-9):.2f}x "
        f"as far from itself as with its own (another face's: {own_other[1] / max(own_other[0], 1e-9):.2f}x), so "
        f"{'the code carries some of the blur' if own_same[1] > 1.05 * own_same[0] else 'the code carries little of the blur yet'} "
        f"(it moves the output by {code_effect:.2f} grey levels, which alone says only that it is read); "
        f"`uid deblur` {'beats' if deblur_after > blurred_psnr else 'does not yet beat'} its blurred input.",
        "",
        "Caveats: minutes of a small network on 40 faces and ~100 blurred windows is far from the paper's "
        "training (its faces are CelebA's, 64 px, trained for many epochs); the sharp faces are enlarged 25 px "
        "crops, so already soft; the held-out windows come from 20 faces, a few each, so they are not independent; "
        "one seed.",
    ]
    body = "\n".join(lines)
    print(body)
    (work / "section.md").write_text(body + "\n")
    (work / "result.json").write_text(json.dumps(
        {"rows": {k: [float(x) for x in v] for k, v in rows.items()}, "change": change,
         "psnr": {"blurred": blurred_psnr, "uid_before": deblur_before, "uid_after": deblur_after,
                  "uid_paper": deblur_paper},
         "code_effect": code_effect, "code_effect_paper": code_effect_paper,
         "own_other": own_other, "own_other_paper": own_other_paper,
         "own_same_face": own_same, "own_same_face_paper": own_same_paper,
         "uid_paper": {k: str(v) for k, v in paper_summary.items()},
         "uid": {k: str(v) for k, v in uid_summary.items()}, "bgan": {k: str(v) for k, v in bgan_summary.items()}},
        indent=1))
    if not args.no_write:
        write_section("Transferred blur (UID)", body)
    print(f"work folder: {work}", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=4.0, help="Training time of each model.")
    ap.add_argument("--uid-lr", type=float, default=2e-4, help="UID's Adam lr (its default).")
    ap.add_argument("--bgan-lr", type=float, default=5e-4, help="BGAN's Adam lr (bench_bgan.py's).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads.")
    ap.add_argument("--work", default=None, help="Work folder (default: a new temp folder).")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="Print only; leave RESULTS.md alone.")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
