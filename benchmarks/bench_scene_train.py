"""Trainer experiment: train on uniform-blur pairs or on scene-blur pairs, test on other photos.

Run: .venv/bin/python benchmarks/bench_scene_train.py [--steps 3000] [--per-image 30]
     [--test-per-image 40] [--seeds 0,1] [--threads 1] [--parallel]
     [--workdir benchmarks/out/scenetrain] [--no-write]
Writes the "Scene blur: trainer experiment" section of benchmarks/RESULTS.md. About 45 minutes
of wall time with --parallel on a heavily shared 2-core machine (2 seeds x 2 runs of 3000 steps;
the scene runs are the slower), so it is not in run_all.py; run it by hand. What exists in --workdir (datasets, finished runs,
scores) is kept, so a rerun only does what is missing; delete the folder to start over.

The same experiment as bench_raw_train.py (whose runner and scoring it shares through
benchmarks/_common.py), for the scene-blur path of issue 17:

1. Sharp photos: the 11 training photos of bench_train_quality's ``--data v2`` and its 2 test
   photos (coffee, stereo_motorcycle), which no training set sees.
2. Two training sets from the same photos, the same number of 128x128 pairs per photo, no noise,
   gamma 2.2: uniform blur (``blursynth blur --psf-source fresh --length 25 --exposure 1``: one
   random-trajectory PSF per pair, today's default kind of pair) and scene blur (``--motion
   scene``: a 6-DoF camera-shake path, so the blur varies across the frame, plus 1-3 moving
   cut-outs from the other training photos, at the defaults).
3. Held-out pairs from the test photos, made the same three ways: scene (objects cut from the
   other test photo), camera6d alone (the same windows and camera paths without the objects:
   is it the camera or the objects?) and uniform.
4. The small config of ``blursynth train`` on each training set for the same fixed number of
   steps (equal steps stand in for equal minutes: the machine is shared; wall times beside),
   same settings, once per trainer seed; then ``blursynth evaluate`` of every run on every
   held-out set, beside the blurred input's own scores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (  # noqa: E402
    ENV, ROOT, cli, compare_db, compare_runs, machine_line, source_line, train_runs, train_wall,
    write_section)
from benchmarks.bench_train_quality import DATA_RECIPES, TEST_PHOTOS, photos  # noqa: E402

TRAIN_PHOTOS = DATA_RECIPES["v2"]["photos"]
SECTION = "Scene blur: trainer experiment"
COMMON = ["--crop", "128x128", "--crf", "gamma:2.2"]
# bench_raw_train's uniform blur: whole 25 px random trajectories.
UNIFORM = ["--psf-source", "fresh", "--length", 25, "--exposure", 1]
NAMES = ("uniform pairs", "scene pairs")


def blur_sets(work: Path) -> dict:
    """name -> (folder, description, blur options) of the training and held-out sets."""
    return {
        "train_uniform": (work / "train_uniform", "uniform", UNIFORM),
        "train_scene": (work / "train_scene", "scene", ["--motion", "scene"]),
        "test_scene": (work / "test_scene", "scene (camera6d + 1-3 objects)",
                       ["--motion", "scene"]),
        "test_camera6d": (work / "test_camera6d", "camera6d alone", ["--motion", "camera6d"]),
        "test_uniform": (work / "test_uniform", "uniform, 25 px paths", UNIFORM),
    }


def make_data(work: Path, args) -> dict:
    train_ph = photos(work / "photos_train", TRAIN_PHOTOS)
    test_ph = photos(work / "photos_test", TEST_PHOTOS)
    made = work / "blur_times.json"
    times = json.loads(made.read_text()) if made.exists() else {}
    for name, (out, _, extra) in blur_sets(work).items():
        if (out / "manifest.json").exists():
            continue
        train = name.startswith("train")
        times[name] = cli("blur", train_ph if train else test_ph, *COMMON, *extra,
                          "--per-image", args.per_image if train else args.test_per_image,
                          "--out", out, "--seed", 1 if train else 3, "--workers", 1)
        made.write_text(json.dumps(times))
    return times


def drawn(folder: Path) -> dict:
    """What a set drew: pairs per photo, and for scene rows the camera paths' lengths (px) and
    the objects per pair."""
    from blursynth.dataset import PairDataset

    ds = PairDataset(folder)
    per_photo, lengths, objects = {}, [], []
    for i in range(len(ds)):
        p = ds.raw(i, ["params"])["params"]
        p = json.loads(p) if isinstance(p, str) else p
        per_photo[p["photo"]] = per_photo.get(p["photo"], 0) + 1
        if "camera" in p:
            lengths.append(p["camera"]["length_px"])
            objects.append(len(p.get("objects") or ()))
    return {"n": len(ds), "per_photo": per_photo, "lengths": lengths, "objects": objects}


def check_same_windows(a: Path, b: Path) -> None:
    """Pair i of the two sets has the same photo, window and camera path (the same seed)."""
    from blursynth.dataset import PairDataset

    da, db = PairDataset(a), PairDataset(b)
    for i in range(len(da)):
        pa, pb = da.raw(i, ["params"])["params"], db.raw(i, ["params"])["params"]
        pa, pb = (json.loads(p) if isinstance(p, str) else p for p in (pa, pb))
        for key in ("photo", "crop"):
            if pa[key] != pb[key]:
                raise SystemExit(f"pair {i}: {key} differs between {a} and {b}")
        if pa["camera"]["length_px"] != pb["camera"]["length_px"]:
            raise SystemExit(f"pair {i}: the camera path differs between {a} and {b}")


def decode_ms(folder: Path, n: int = 80) -> float:
    """Median ms to decode one row as the trainer's loader does (``PairDataset[i]``: every
    column), over ``n`` rows in a fixed random order: the loader's access pattern (in row order,
    neighbouring rows come several times cheaper)."""
    import time

    import numpy as np

    from blursynth.dataset import PairDataset

    ds = PairDataset(folder)
    ds[0]
    times = []
    for i in np.random.default_rng(0).permutation(len(ds))[:n]:
        t = time.perf_counter()
        ds[int(i)]
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def _lengths(d: dict) -> str:
    q = statistics.quantiles(d["lengths"], n=4)
    return f"median {q[1]:.0f} px (quartiles {q[0]:.0f}-{q[2]:.0f})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=3000, help="Generator updates of each run.")
    ap.add_argument("--per-image", type=int, default=30, help="Training pairs per photo.")
    ap.add_argument("--test-per-image", type=int, default=40, help="Held-out pairs per photo.")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of every command.")
    ap.add_argument("--seeds", default="0,1", type=lambda t: [int(v) for v in t.split(",")],
                    help="Trainer seeds: one run per training set and seed (same data).")
    ap.add_argument("--parallel", action="store_true",
                    help="Train the two runs of a seed at once (one process each).")
    ap.add_argument("--workdir", default=str(ROOT / "benchmarks" / "out" / "scenetrain"))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    ENV["OMP_NUM_THREADS"] = str(args.threads)
    work = Path(args.workdir)
    info = work / f"steps{args.steps}" / "measured.json"
    if not info.exists():
        info.parent.mkdir(parents=True, exist_ok=True)
        info.write_text(json.dumps({"header": machine_line(), "source": source_line()}))
    header, source = (json.loads(info.read_text())[k] for k in ("header", "source"))
    data_times = make_data(work, args)
    sets = blur_sets(work)
    got = {k: drawn(sets[k][0]) for k in sets}
    if got["train_uniform"]["per_photo"] != got["train_scene"]["per_photo"]:
        raise SystemExit("the two training sets do not have the same pairs per photo")
    check_same_windows(sets["test_scene"][0], sets["test_camera6d"][0])
    decode = {k: decode_ms(sets[k][0]) for k in ("train_uniform", "train_scene")}
    runs = train_runs(work, {NAMES[0]: sets["train_uniform"][0], NAMES[1]: sets["train_scene"][0]},
                      steps=args.steps, seeds=args.seeds, parallel=args.parallel)
    tests = [k for k in sets if k.startswith("test")]
    c = compare_runs(runs, sets, tests, NAMES, steps=args.steps, seeds=args.seeds,
                     diff_label="scene-trained minus uniform-trained")
    rows, scores, blurred = c["rows"], c["scores"], c["blurred"]
    mean, diff, per_seed, eval_min = c["mean"], c["diff"], c["per_seed"], c["eval_min"]
    (work / f"steps{args.steps}" / "settings.json").write_text(json.dumps({
        "machine": header, "args": vars(args), "data_times": data_times, "source": source,
        "drawn": got, "decode_ms": decode,
        "scores": {f"{n} seed {s}": v for (n, s), v in scores.items()},
        "walls": {f"{n} seed {s}": w for (n, s), (_, w) in runs.items()}}, indent=1))
    gain = {(n, k): mean[n, k]["psnr"] - blurred[k]["psnr"] for n in NAMES for k in tests}
    n_train, n_test = got["train_scene"]["n"], got["test_scene"]["n"]
    walls = [w for _, w in runs.values()]
    slower = (statistics.mean(w for (n, _), (_, w) in runs.items() if n == NAMES[1])
              / statistics.mean(w for (n, _), (_, w) in runs.items() if n == NAMES[0]))
    same_sign = sum(len({d > 0 for d in per_seed[k]}) == 1 for k in tests)
    body = "\n".join([
        f"Measured {header}, {source}, on a machine shared with six other sessions' builds and "
        f"tests (2 cores). Wall time: the five datasets {sum(data_times.values()) / 60:.1f} min, "
        f"training {train_wall(runs, args.seeds, args.parallel) / 60:.1f} min "
        f"({'the two runs of a seed at once' if args.parallel else 'one run after the other'}), "
        f"evaluation {eval_min:.1f} min.",
        "",
        f"`benchmarks/bench_scene_train.py` (bench_raw_train.py's experiment and runner, "
        f"`benchmarks/_common.py`): the small config (`blursynth train --config small`, "
        f"generator ngf 16, 3 ResBlocks; crops 64, batch 4, L1 content loss, no critic, `--init "
        f"identity --lr 5e-4 --dropout 0 --precision bf16`, {args.threads} torch thread(s), CPU) "
        f"trained for the same {args.steps} steps on each of two training sets (equal steps "
        f"stand in for equal minutes: the machine is shared, so minutes measure the neighbours "
        f"as much as the run; wall times beside), once per trainer seed "
        f"{', '.join(map(str, args.seeds))}. Training sets: {n_train} pairs each, "
        f"{args.per_image} per photo from the same 11 scikit-image sample photos "
        f"({', '.join(TRAIN_PHOTOS)}; 6 of them grey), 128x128, gamma 2.2, no noise, `--seed "
        f"1`: uniform blur (`--psf-source fresh --length 25 --exposure 1`: one 25 px "
        f"random-trajectory PSF per pair) and scene blur (`--motion scene` at its defaults: a "
        f"6-DoF shake path with focal = 128 px, so rotation makes the blur vary across the "
        f"window, path length {_lengths(got['train_scene'])}, plus "
        f"{statistics.mean(got['train_scene']['objects']):.1f} moving cut-outs per pair on "
        f"average from the other training photos). The crops and paths of the two sets are "
        f"their own draws (only the photos and pairs per photo are shared). Held-out sets: "
        f"{n_test} pairs each ({args.test_per_image} per photo) from coffee and "
        f"stereo_motorcycle, which no training set saw, `--seed 3`: scene (objects cut from the "
        f"other test photo; paths {_lengths(got['test_scene'])}), camera6d alone (pair for "
        f"pair the scene set's windows and camera paths, checked, without the objects) and "
        f"uniform with 25 px paths. Each cell is "
        f"`blursynth evaluate`'s PSNR dB / SSIM on the full 128x128 images (gain over the "
        f"blurred input in brackets); the last row is the scene-trained network's PSNR minus "
        f"the uniform-trained one's, the mean over seeds and each seed's in brackets.",
        "",
        f"| trained on | seed | steps | train min | {' | '.join(sets[k][1] for k in tests)} |",
        "| --- | ---: | ---: | ---: | " + " | ".join("---" for _ in tests) + " |",
        *rows,
        "",
        "What it shows: on held-out scene pairs of other photos the network trained on scene "
        f"pairs scored {compare_db(diff['test_scene'], 'the one trained on uniform pairs')}, "
        f"with gains over the blurred input of {gain[NAMES[0], 'test_scene']:+.2f} dB "
        f"(uniform-trained) and {gain[NAMES[1], 'test_scene']:+.2f} dB (scene-trained); on "
        f"camera shake alone {compare_db(diff['test_camera6d'], 'it')}, gains "
        f"{gain[NAMES[0], 'test_camera6d']:+.2f} and {gain[NAMES[1], 'test_camera6d']:+.2f} dB; "
        f"on uniform pairs, the other network's own kind, "
        f"{compare_db(diff['test_uniform'], 'it')}, gains {gain[NAMES[0], 'test_uniform']:+.2f} "
        f"and {gain[NAMES[1], 'test_uniform']:+.2f} dB ("
        + (f"means over seeds; the sign held in every seed in {same_sign} of {len(tests)} "
           "columns)." if len(args.seeds) > 1 else "one seed).")
        + " SSIM, scene-trained minus uniform-trained: "
        + ", ".join(f"{mean[NAMES[1], k]['ssim'] - mean[NAMES[0], k]['ssim']:+.3f} ({sets[k][1]})"
                    for k in tests)
        + ". That is what realism bought and what it cost here, within the limits below.",
        "",
        f"What it cost in time: the scene runs took {slower:.1f}x the uniform runs' wall time "
        f"for the same steps (means over seeds; the runs of a seed ran side by side). The "
        f"network, crops and batches are the same, so the difference is the data: the trainer's "
        f"loader decodes every column of a row (`PairDataset[i]`), and a scene row also carries "
        f"its 5x5 PSF field, pose path and motion mask, none of which training uses. A decoded "
        f"scene row took {decode['train_scene']:.0f} ms against {decode['train_uniform']:.0f} "
        f"ms for a uniform row (median of 80 in random order, measured when this text was "
        f"written), about "
        f"{4 * (decode['train_scene'] - decode['train_uniform']):.0f} ms more CPU per batch of 4 "
        f"in the one loader process, on cores that other sessions kept busy; how much of the gap "
        f"that explains was not separated here (reading only the two images would remove it; "
        f"left for the trainer's owners). Making the pairs cost "
        f"{data_times['train_scene'] / data_times['train_uniform']:.0f}x the uniform set's time "
        f"({data_times['train_scene']:.0f} s against {data_times['train_uniform']:.0f} s for "
        f"{n_train} pairs).",
        "",
        "What it does not show: (1) real blur: both kinds are synthetic and no real blurred test "
        "set (GoPro, RealBlur, Köhler) is scored, so nothing here says which training data "
        "transfers better to photographs, only how each does on the other's kind of synthetic "
        "pair; (2) the two training sets differ in more than realism: the scene paths' lengths "
        "are drawn (10-60 px, the model's default range) where the uniform ones are all 25 px, "
        "so the scene set also holds stronger and weaker blur, and the held-out sets' blurred "
        "inputs differ in difficulty (first row); a uniform set with drawn lengths, or scene "
        "paths held to 25 px, would separate strength from kind; (3) a small net and a short "
        f"run: {n_train} pairs from 11 photos, {args.steps} steps of a 0.27M-parameter network "
        f"({min(walls) / 60:.0f}-{max(walls) / 60:.0f} minutes a run on a shared core), far from "
        f"converged, and a longer run or a bigger network could reorder the columns; (4) "
        f"{len(args.seeds)} trainer seed(s) on one draw of the data and 2 test photos: the "
        "spread between seeds (last row) is the only error bar, without the spread over data "
        "draws and photos; (5) the 64x64 training crops see a part of a 128x128 window, so a "
        "crop of a scene pair sees less of the blur's variation across the frame than the "
        "full-window evaluation; (6) PSNR and SSIM only, no look at the pictures (moving "
        "objects are a small part of the pixels, so their share of the scores is small).",
    ])
    print(body)
    if not args.no_write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
