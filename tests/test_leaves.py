"""render-leaves: dead-leaves images, keyed by (seed, i), resumable; bad input."""

import math

import numpy as np
import pytest

from .conftest import error_line


def _files(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_images_depend_only_on_seed_and_index(run_cli, tmp_path):
    r = run_cli("render-leaves", "--n", 3, "--size", 48, "--out", tmp_path / "a", "--quiet")
    assert r.code == 0, r.err
    r = run_cli("render-leaves", "--n", 5, "--size", 48, "--out", tmp_path / "b", "--quiet")
    assert r.code == 0, r.err
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    pngs = [n for n in a if n.endswith(".png")]
    assert pngs == [f"leaves{i:05d}.png" for i in range(3)]
    for n in pngs:
        assert a[n] == b[n], n
    assert a["leaves00000.png"] != a["leaves00001.png"]
    r = run_cli("render-leaves", "--n", 1, "--size", 48, "--seed", 1, "--out", tmp_path / "c",
                "--quiet")
    assert r.code == 0 and _files(tmp_path / "c")["leaves00000.png"] != a["leaves00000.png"]


def test_interrupted_run_resumes_and_n_can_grow(run_cli, tmp_path):
    out = tmp_path / "leaves"
    assert run_cli("render-leaves", "--n", 3, "--size", 32, "--out", out, "--quiet").code == 0
    before = _files(out)
    (out / "leaves00001.png").unlink()  # as if stopped before writing it
    r = run_cli("render-leaves", "--n", 4, "--size", 32, "--out", out, "--quiet")
    assert r.code == 0, r.err
    assert "wrote 2 " in r.out and "2 already there kept" in r.out
    after = _files(out)
    for name, data in before.items():
        if name.endswith(".png"):
            assert after[name] == data, name
    assert "leaves00003.png" in after


def test_colours_come_from_the_photos(run_cli, tmp_path):
    import imageio.v3 as iio

    from blursynth.io.images import load_rgb8

    (tmp_path / "ph").mkdir()
    iio.imwrite(tmp_path / "ph" / "red.png", np.tile(np.uint8([200, 30, 10]), (20, 30, 1)))
    r = run_cli("render-leaves", "--n", 1, "--size", 32, "--noise", 0, "--colours-from",
                tmp_path / "ph", "--out", tmp_path / "o", "--quiet")
    assert r.code == 0, r.err
    img, _ = load_rgb8(tmp_path / "o" / "leaves00000.png")
    assert (img == [200, 30, 10]).all()
    # without photos, colours are spread over the RGB cube
    r = run_cli("render-leaves", "--n", 1, "--size", 64, "--noise", 0, "--out", tmp_path / "u",
                "--quiet")
    img, _ = load_rgb8(tmp_path / "u" / "leaves00000.png")
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 100


def test_disk_count_gives_the_coverage_asked():
    # The count follows from E[r^2] under the r^-3 law; Monte Carlo of the same law, with
    # centres a radius beyond the frame as the renderer draws them, hits the coverage asked.
    from blursynth.leaves import LeavesSettings

    s = LeavesSettings(n=1, size=64, r_min=2, r_max=16, coverage=0.9)
    k = s.n_disks()
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    covered = []
    for _ in range(20):
        radii = (2.0 ** -2 - rng.random(k) * (2.0 ** -2 - 16.0 ** -2)) ** -0.5
        c = rng.random((k, 2)) * (64 + 32) - 16
        mask = np.zeros((64, 64), bool)
        for (x, y), r in zip(c, radii):
            mask |= (xx - x) ** 2 + (yy - y) ** 2 <= r * r
        covered.append(mask.mean())
    assert 0.87 < np.mean(covered) < 0.93, np.mean(covered)
    mean_area = math.pi * math.log(8) / (0.5 * (2 ** -2 - 16 ** -2))
    assert k == math.ceil(-math.log(0.1) * (64 + 32) ** 2 / mean_area)


@pytest.mark.parametrize("args, match", [
    (["--r-min", "10", "--r-max", "5"], "--r-max must be above --r-min"),
    (["--coverage", "1"], "--coverage must be in (0, 1)"),
    (["--noise", "nan"], "finite"),
    (["--size", "8"], "--size"),
    (["--n", "0"], "--n"),
])
def test_bad_settings(run_cli, tmp_path, args, match):
    base = {"--n": "2", "--size": "32"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    r = run_cli("render-leaves", *[a for kv in base.items() for a in kv], "--out",
                tmp_path / "o", "--quiet")
    assert r.code == 2
    assert match in error_line(r)
    assert not (tmp_path / "o").exists()


def test_out_with_other_files_or_settings_is_refused(run_cli, tmp_path):
    mine = tmp_path / "photos"
    mine.mkdir()
    (mine / "holiday.jpg").write_bytes(b"x")
    r = run_cli("render-leaves", "--n", 1, "--size", 32, "--out", mine, "--quiet")
    assert r.code == 2 and "holiday.jpg" in error_line(r)
    assert sorted(p.name for p in mine.iterdir()) == ["holiday.jpg"]
    out = tmp_path / "o"
    assert run_cli("render-leaves", "--n", 2, "--size", 32, "--out", out, "--quiet").code == 0
    before = _files(out)
    r = run_cli("render-leaves", "--n", 2, "--size", 48, "--out", out, "--quiet")
    assert r.code == 2 and "other render-leaves settings" in error_line(r)
    assert _files(out) == before
    (tmp_path / "empty").mkdir()
    r = run_cli("render-leaves", "--n", 1, "--colours-from", tmp_path / "empty", "--out",
                tmp_path / "o2", "--quiet")
    assert r.code == 2 and "holds no images" in error_line(r)
    assert not (tmp_path / "o2").exists()
