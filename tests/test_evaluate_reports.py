"""Reports of a trained run (issue 18 §3): ``evaluate --protocol``, its per-image CSV and
``--save-outputs``, and ``blursynth benchmark`` (table, CSV, outputs, contact sheet)."""

from __future__ import annotations

import csv
import functools
import json

import numpy as np
import pytest
import torch

from blursynth.dataset import PAIR_SCHEMA, pair_row, write_dataset
from blursynth.dataset.reader import PairDataset

from .conftest import error_line

FAST = ["--perceptual", "none", "--crop", "16", "--batch-size", "1", "--workers", "0", "--quiet",
        "--val-count", "1", "--val-crop", "16", "--val-every", "1000", "--checkpoint-every", "1000"]


def _real_rows(start, stop, *, fp, ground_truth=True, layout="flat"):
    rng = np.random.default_rng(1)
    for i in range(start, stop):
        sharp = rng.integers(0, 256, (24, 28, 3), dtype=np.uint8)
        blurred = ((sharp.astype(np.uint16) + np.roll(sharp, 2, axis=1)) // 2).astype(np.uint8)
        params = {"set": layout, "layout": layout, "split": "test", "sequence": f"s{i % 2}",
                  "blurred_name": f"b{i}.png", "sharp_name": f"s{i}.png"}
        if not ground_truth:
            params["ground_truth"] = False
        yield pair_row(index=i, blurred=blurred, sharp=sharp if ground_truth else None, psf=None,
                       source="real", seed=0, params=params, fingerprint=fp)


def _write(out, n, **kw):
    fp = f"fp-{out.name}"
    write_dataset(out, kind="pairs", schema=PAIR_SCHEMA, n_items=n, shard_size=8,
                  make_rows=functools.partial(_real_rows, fp=fp, **kw), fingerprint=fp,
                  command={"test": out.name}, progress=False)
    return out


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("sets")
    return {"flat": _write(root / "flat", 4), "lai": _write(root / "lai", 3, ground_truth=False,
                                                            layout="lai")}


@pytest.fixture(scope="module")
def run(tmp_path_factory, sets):
    from blursynth.cli import main

    out = tmp_path_factory.mktemp("run") / "run"
    assert main(["train", "--data", str(sets["flat"]), "--out", str(out), "--steps", "1",
                 *FAST]) == 0
    return out


def _csv(path):
    return list(csv.DictReader(open(path)))


def test_csv_has_one_line_per_image_and_matches_the_protocol(run_cli, run, sets, tmp_path):
    from blursynth.train.protocols import score

    r = run_cli("evaluate", "--model", run, "--data", sets["flat"], "--csv", tmp_path / "s.csv",
                "--json", tmp_path / "s.json", "--quiet")
    assert r.code == 0, r
    lines = _csv(tmp_path / "s.csv")
    ds = PairDataset(sets["flat"])
    assert [l["id"] for l in lines] == [ds[i]["id"] for i in range(len(ds))]
    assert {l["protocol"] for l in lines} == {"plain"}
    # The blurred input's figures are the protocol's own, to the digit.
    for i, line in enumerate(lines):
        want = score("plain", ds[i]["blurred"], ds[i])
        assert float(line["blurred_psnr"]) == want["psnr"]
        assert float(line["blurred_ssim_matlab"]) == want["ssim_matlab"]
    report = json.loads((tmp_path / "s.json").read_text())
    assert report["blurred"]["psnr"] == pytest.approx(
        np.mean([float(l["blurred_psnr"]) for l in lines]))
    assert report["protocols"] == "plain"
    assert "SSIM-M" in r.out


def test_auto_scores_images_without_ground_truth_by_sharpness(run_cli, run, sets, tmp_path):
    r = run_cli("evaluate", "--model", run, "--data", sets["flat"], "--data", sets["lai"],
                "--csv", tmp_path / "s.csv", "--quiet")
    assert r.code == 0, r
    lines = _csv(tmp_path / "s.csv")
    lai = [l for l in lines if l["dataset"] == str(sets["lai"])]
    assert len(lai) == 3 and {l["protocol"] for l in lai} == {"noref"}
    assert all(l["deblurred_sharpness"] and not l["deblurred_psnr"] for l in lai)
    assert "sharpness" in r.out


def test_kohler_without_ground_truth_is_sharpness_and_levin_without_kernel_is_refused(
        run_cli, run, sets, tmp_path):
    r = run_cli("evaluate", "--model", run, "--data", sets["lai"], "--protocol", "kohler",
                "--quiet",
                "--csv", tmp_path / "s.csv")
    # kohler without frames on a row without ground truth: scored by sharpness, as the protocol says
    assert r.code == 0, r
    r = run_cli("evaluate", "--model", run, "--data", sets["flat"], "--protocol", "levin",
                "--quiet",
                "--csv", tmp_path / "t.csv", "--save-outputs", tmp_path / "outs")
    assert r.code == 2 and "kernel" in error_line(r)  # levin needs the true kernel: none here
    assert not (tmp_path / "t.csv").exists() and not (tmp_path / "outs").exists()


def test_unknown_protocol_is_one_line(run_cli, run, sets):
    r = run_cli("evaluate", "--model", run, "--data", sets["flat"], "--protocol", "gopro")
    assert r.code == 2 and "--protocol" in r.err


def test_save_outputs_writes_what_the_scores_are_of(run_cli, run, sets, tmp_path):
    from blursynth.sources.photos import load_rgb8
    from blursynth.train.protocols import score

    out = tmp_path / "outs"
    r = run_cli("evaluate", "--model", run, "--data", sets["flat"], "--save-outputs", out,
                "--csv", tmp_path / "s.csv", "--quiet")
    assert r.code == 0, r
    ds = PairDataset(sets["flat"])
    lines = _csv(tmp_path / "s.csv")
    assert sorted(p.name for p in (out / "flat").iterdir()) == \
        sorted(f"{ds[i]['id']}.png" for i in range(4))
    for i, line in enumerate(lines):
        image, _ = load_rgb8(line["output"])
        assert float(line["deblurred_psnr"]) == score("plain", image, ds[i])["psnr"]
    # A second run never replaces them: one line, before any scoring.
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    r = run_cli("evaluate", "--model", run, "--data", sets["flat"], "--save-outputs", out,
                "--quiet")
    assert r.code == 2 and "already exists" in error_line(r)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == before


def test_csv_path_that_is_a_folder_is_refused_before_scoring(run_cli, run, sets, tmp_path):
    r = run_cli("evaluate", "--model", run, "--data", sets["flat"], "--csv", tmp_path, "--quiet")
    assert r.code == 2 and "--csv" in error_line(r)


def test_benchmark_writes_table_csv_outputs_and_sheet(run_cli, run, sets, tmp_path):
    from blursynth.sources.photos import load_rgb8

    out = tmp_path / "bench"
    r = run_cli("benchmark", "--model", run, "--set", f"flat={sets['flat']}", "--set",
                f"lai={sets['lai']}",
                "--out", out, "--save-outputs", "--sheet-count", 2, "--quiet")
    assert r.code == 0, r
    report = json.loads((out / "report.json").read_text())
    assert list(report["sets"]) == ["flat", "lai"]
    assert report["sets"]["flat"]["protocols"] == "plain"
    assert report["sets"]["lai"]["protocols"] == "noref"
    lines = _csv(out / "per_image.csv")
    assert [l["dataset"] for l in lines] == ["flat"] * 4 + ["lai"] * 3
    flat = [float(l["deblurred_psnr"]) for l in lines[:4]]
    assert report["sets"]["flat"]["deblurred"]["psnr"] == pytest.approx(np.mean(flat))
    # The table says blurred -> deblurred per set, the same figures as the JSON.
    md = (out / "report.md").read_text()
    row = next(l for l in md.splitlines() if l.startswith("| flat "))
    s = report["sets"]["flat"]
    assert f"{s['blurred']['psnr']:.2f} → {s['deblurred']['psnr']:.2f}" in row
    assert md.strip() in r.out
    assert sorted(p.name for p in (out / "outputs").iterdir()) == ["flat", "lai"]
    assert len(list((out / "outputs" / "lai").glob("*.png"))) == 3
    # Contact sheet: the 2 worst and 2 best of the PSNR-scored images, three thumbnails wide.
    sheet, _ = load_rgb8(out / "worst_best.png")
    # 24x28 images enlarged to 256 px wide (219 high) so each caption fits its tile
    assert sheet.shape[1] == 3 * 256 and sheet.shape[0] == 14 + 4 * (14 + round(24 * 256 / 28))


def test_benchmark_ranks_worst_first_by_psnr_gain():
    from blursynth.train.benchmark import worst_and_best

    recs = [{"blurred": {"psnr": 20.0}, "deblurred": {"psnr": 20.0 + g}, "id": str(g)}
            for g in (3, -1, 5, 0, 2)]
    chosen = worst_and_best(recs, 2)
    assert [(k, r["id"]) for k, r in chosen] == [("worst", "-1"), ("worst", "0"), ("best", "5"),
                                                 ("best", "3")]
    assert [r["id"] for _, r in worst_and_best(recs[:3], 5)] == ["-1", "3", "5"]  # none twice


def test_benchmark_refuses_before_scoring(run_cli, run, sets, tmp_path):
    r = run_cli("benchmark", "--model", run, "--set", f"a={sets['flat']}", "--set",
                f"a={sets['lai']}",
                "--out", tmp_path / "b")
    assert r.code == 2 and "given twice" in error_line(r)
    r = run_cli("benchmark", "--model", run, "--set", f"a/b={sets['flat']}", "--out",
                tmp_path / "b")
    assert r.code == 2 and "name" in error_line(r)
    assert not (tmp_path / "b").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    r = run_cli("benchmark", "--model", run, "--set", f"a={sets['flat']}", "--out",
                tmp_path / "mine")
    assert r.code == 2 and "exists" in error_line(r)
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]


def test_benchmark_overwrite_replaces_an_earlier_report(run_cli, run, sets, tmp_path):
    out = tmp_path / "bench"
    args = ["benchmark", "--model", run, "--set", f"flat={sets['flat']}", "--out", out, "--quiet",
            "--save-outputs"]
    assert run_cli(*args).code == 0
    assert run_cli(*args).code == 2
    r = run_cli(*args, "--overwrite", "--limit", 2)
    assert r.code == 0, r
    assert len(list((out / "outputs" / "flat").glob("*.png"))) == 2
    assert len(_csv(out / "per_image.csv")) == 2


def test_a_pair_refused_part_way_leaves_no_outputs(run_cli, run, sets, tmp_path, monkeypatch):
    # The third pair is refused after two outputs were written: they go, with the folders made.
    from blursynth.train import evaluate as ev

    calls = {"n": 0}
    real = ev.score_row

    def refusing_the_third(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise ev.BadInputError("pair 2: refused")
        return real(*a, **k)

    monkeypatch.setattr(ev, "score_row", refusing_the_third)
    r = run_cli("evaluate", "--model", run, "--data", sets["flat"], "--save-outputs",
                tmp_path / "a" / "outs", "--quiet")
    assert r.code == 2 and "refused" in error_line(r)
    assert not (tmp_path / "a").exists()


def test_an_identical_image_is_left_out_of_the_psnr_mean_and_counted():
    from blursynth.train.evaluate import summarize

    recs = [{"protocol": "plain", "blurred": {"psnr": float("inf"), "ssim": 1.0},
             "deblurred": {"psnr": 40.0, "ssim": 0.9}},
            {"protocol": "plain", "blurred": {"psnr": 20.0, "ssim": 0.5},
             "deblurred": {"psnr": 30.0, "ssim": 0.8}}]
    out = summarize(recs)
    assert out["blurred"]["psnr"] == 20.0 and out["deblurred"]["psnr"] == 35.0
    assert out["n_infinite_psnr"] == {"blurred": 1, "deblurred": 0}
    assert "n_infinite_psnr" not in summarize(recs[1:])


def test_levin_without_kernels_is_refused_before_any_pair_is_deblurred(run_cli, run, sets,
                                                                       monkeypatch):
    from blursynth.train import evaluate as ev

    calls = []
    monkeypatch.setattr(ev, "score_row", lambda *a, **k: calls.append(1))
    r = run_cli("evaluate", "--model", run, "--data", sets["flat"], "--protocol", "levin",
                "--quiet")
    assert r.code == 2 and "no true kernel" in error_line(r) and calls == []


def test_save_outputs_refuses_an_id_that_climbs_out_of_the_folder(tmp_path):
    from blursynth.errors import BadInputError
    from blursynth.train.evaluate import check_outputs_folder

    class Table:
        def row(self, i, columns=None):
            return {"id": "test/../../../x/blur"}

    class Ds:
        table = Table()

    (tmp_path / "x").mkdir()
    with pytest.raises(BadInputError, match="outside"):
        check_outputs_folder(tmp_path / "a" / "outs", [("p", Ds(), [0])], ["set"],
                             refuse_existing=False)


def test_training_on_a_set_without_ground_truth_is_refused_in_one_line(run_cli, sets, tmp_path):
    r = run_cli("train", "--data", sets["lai"], "--out", tmp_path / "r", "--steps", "1", *FAST)
    assert r.code == 2 and "3 of 3 pairs have no ground truth" in error_line(r)
    assert len(r.err.strip().splitlines()) == 1 and not (tmp_path / "r").exists()
    r = run_cli("train", "--data", sets["flat"], "--val-data", sets["lai"], "--out", tmp_path / "v",
                "--steps", "1", *FAST)
    assert r.code == 2 and "--val-data" in error_line(r)
    r = run_cli("bgan", "train", "--sharp", sets["lai"], "--real-blur", sets["flat"], "--out",
                tmp_path / "b", "--steps", "1", "--config", "tiny", "--patch", "16")
    assert r.code == 2 and "--sharp" in error_line(r) and "no ground truth" in error_line(r)
    assert not (tmp_path / "b").exists()


def test_benchmark_overwrite_refused_part_way_keeps_the_earlier_report(run_cli, run, sets,
                                                                      tmp_path, monkeypatch):
    from blursynth.train import evaluate as ev

    out = tmp_path / "bench"
    args = ["benchmark", "--model", run, "--set", f"flat={sets['flat']}", "--out", out, "--quiet",
            "--save-outputs"]
    assert run_cli(*args).code == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = {"n": 0}
    real = ev.score_row

    def refusing_the_second(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ev.BadInputError("pair 1: refused")
        return real(*a, **k)

    monkeypatch.setattr(ev, "score_row", refusing_the_second)
    r = run_cli(*args, "--overwrite")
    assert r.code == 2 and "refused" in error_line(r)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before


def test_reports_are_strict_json(run_cli, run, sets, tmp_path):
    # lai-real has no ground truth: its PSNR gain is not measured (null, not NaN)
    out = tmp_path / "bench"
    r = run_cli("benchmark", "--model", run, "--set", f"lai={sets['lai']}", "--out", out, "--quiet")
    assert r.code == 0, r
    report = json.loads((out / "report.json").read_text(),
                        parse_constant=lambda c: pytest.fail(f"{c} in report.json"))
    assert report["sets"]["lai"]["gain_psnr_db"] is None
    r = run_cli("evaluate", "--model", run, "--data", sets["lai"], "--quiet", "--json",
                tmp_path / "e.json")
    assert r.code == 0, r
    json.loads((tmp_path / "e.json").read_text(),
               parse_constant=lambda c: pytest.fail(f"{c} in --json"))


def test_protocol_choices_are_the_protocols_module_names():
    # one list: the commands' --protocol choices come from the protocols' own names
    from blursynth.commands.evaluate import benchmark, evaluate
    from blursynth.train import protocols

    for cmd in (evaluate, benchmark):
        opt = next(p for p in cmd.params if p.name == "protocol")
        assert list(opt.type.choices) == ["auto", *protocols.PROTOCOLS]


def test_text_and_markdown_tables_share_one_measure_formatter():
    from blursynth.train import benchmark, evaluate

    assert benchmark.format_measure is evaluate.format_measure
    assert evaluate.format_measure(float("nan"), "+7.4f") == "      -"


def test_kohler_without_recorded_frames_is_refused_before_any_pair_is_deblurred(
        run_cli, run, sets, monkeypatch):
    from blursynth.train import evaluate as ev

    calls = []
    monkeypatch.setattr(ev, "score_row", lambda *a, **k: calls.append(1))
    for cmd in (["evaluate", "--data", sets["flat"]],
                ["benchmark", "--set", f"flat={sets['flat']}", "--out", sets["flat"].parent / "k"]):
        r = run_cli(*cmd, "--model", run, "--protocol", "kohler", "--quiet")
        assert r.code == 2 and "recorded ground-truth frames" in error_line(r) and calls == []


def _write_splits(out, splits):
    fp = f"fp-{out.name}"

    def rows(start, stop, fp):
        for row, split in zip(_real_rows(start, stop, fp=fp), splits[start:stop]):
            params = json.loads(row["params"])
            row["params"] = json.dumps({**params, "split": split})
            yield row

    write_dataset(out, kind="pairs", schema=PAIR_SCHEMA, n_items=len(splits), shard_size=8,
                  make_rows=functools.partial(rows, fp=fp), fingerprint=fp,
                  command={"test": out.name}, progress=False)
    return out


def test_rows_from_several_splits_are_warned_about_and_the_table_names_protocols(
        run_cli, run, tmp_path):
    data = _write_splits(tmp_path / "mixed", ["train", "train", "test"])
    r = run_cli("evaluate", "--model", run, "--data", data, "--quiet")
    assert r.code == 0, r
    assert "splits test 1, train 2" in r.err and "--split test" in r.err
    assert "(protocol: plain)" in r.out
    data = _write_splits(tmp_path / "one", ["test", "test"])
    r = run_cli("evaluate", "--model", run, "--data", data, "--quiet")
    assert r.code == 0 and "warning" not in r.err


def test_csv_names_noref_for_rows_without_ground_truth_under_any_protocol(run_cli, run, sets,
                                                                          tmp_path):
    r = run_cli("evaluate", "--model", run, "--data", sets["lai"], "--protocol", "plain",
                "--quiet", "--csv", tmp_path / "s.csv")
    assert r.code == 0, r
    assert {row["protocol"] for row in _csv(tmp_path / "s.csv")} == {"noref"}


def test_the_markdown_footnote_points_at_the_documentation():
    from blursynth.train.benchmark import format_markdown

    s = {"protocols": "plain", "n_pairs": 1, "n_scored": {"psnr": 1},
         "blurred": {"psnr": 20.0}, "deblurred": {"psnr": 21.0}, "gain_psnr_db": 1.0}
    text = format_markdown({"model": "m", "step": 1, "arch": "a", "config": "c", "sets": {"x": s}})
    assert "docs/algorithms.md" in text and "blursynth.train" not in text


def test_contact_sheet_shows_the_scored_kohler_frame_and_fits_small_images(monkeypatch):
    from types import SimpleNamespace

    import blursynth.nn.runs as runs
    from blursynth.train import benchmark
    from blursynth.train.models import CONFIGS, build_models

    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (40, 48, 3), dtype=np.uint8) for _ in range(3)]
    pair = {"blurred": frames[0], "sharp": frames[1], "gt_frames": frames, "params": {}}
    rec = {"dataset": "k", "row": 0, "id": "image1/trajectory01", "protocol": "kohler",
           "blurred": {"psnr": 20.0, "ssim": 0.5}, "deblurred": {"psnr": 21.0, "ssim": 0.6,
                                                                  "best_frame": 2.0}}
    seen = {}
    monkeypatch.setattr(runs, "save_sample_sheet",
                        lambda path, rows, n, labels, notes: seen.update(rows=rows, notes=notes))
    gen, _ = build_models(CONFIGS["small"], seed=0)
    settings = SimpleNamespace(tile=1024, norm_stats="global")
    benchmark.write_contact_sheet("x.png", [("best", rec)], gen, {"k": (None, [pair])}, settings)
    sharp_tile = seen["rows"][0][2]
    assert sharp_tile.shape[-1] == benchmark.SHEET_SIDE  # enlarged: room for the captions
    want = benchmark._thumb(frames[2])
    assert torch.equal(sharp_tile, want)
    assert "frame 2" in seen["notes"][0][2] and "ssim 0.500 -> 0.600" in seen["notes"][0][1]


def test_tables_say_how_many_images_each_measure_covers(run_cli, run, sets, tmp_path):
    # flat (4 pairs with ground truth) and lai (3 without): over both, PSNR covers 4 of 7
    r = run_cli("evaluate", "--model", run, "--data", sets["flat"], "--data", sets["lai"],
                "--quiet")
    assert r.code == 0, r
    assert "images scored" in r.out and "psnr 4, sharpness 3" in r.out
    from blursynth.train.benchmark import format_markdown

    s = {"protocols": "noref,plain", "n_pairs": 7, "n_scored": {"psnr": 4, "sharpness": 3},
         "blurred": {"psnr": 20.0}, "deblurred": {"psnr": 21.0}, "gain_psnr_db": 1.0}
    text = format_markdown({"model": "m", "step": 1, "arch": "a", "config": "c", "sets": {"x": s}})
    assert "| 7 (psnr 4, sharpness 3) |" in text
