"""render-leaves: dead-leaves images, keyed by (seed, i), resumable; bad input."""

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

    from blursynth.sources.photos import load_rgb8

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


def test_disks_cover_the_fraction_asked():
    # The disk count follows from E[r^2] under the r^-3 law; the disks the renderer draws
    # (centres, radii) cover the coverage asked of the frame, on average over images.
    from blursynth._rng import sample_rng
    from blursynth.sources.leaves import LeavesSettings, STREAM_LEAVES, _disks

    s = LeavesSettings(n=1, size=64, r_min=2, r_max=16, coverage=0.9)
    yy, xx = np.mgrid[0:64, 0:64] + 0.5
    covered, radii_all = [], []
    for i in range(20):
        centres, radii, colours = _disks(sample_rng(0, i, STREAM_LEAVES), s, None)
        assert len(colours) == len(radii) + 1  # one more: the background
        mask = np.zeros((64, 64), bool)
        for (x, y), r in zip(centres, radii):
            mask |= (xx - x) ** 2 + (yy - y) ** 2 <= r * r
        covered.append(mask.mean())
        radii_all.append(radii)
    assert 0.87 < np.mean(covered) < 0.93, np.mean(covered)
    # Radii follow r^-3 on [2, 16] (P(r <= 4) = 0.762 before any is dropped). A disk is kept
    # when its centre, drawn over the 96 px wide square, lies within r + 1 of the 64 px frame:
    # probability (min(66 + 2r, 96) / 96)^2, which favours large disks a little.
    r = np.concatenate(radii_all)
    assert r.min() >= 2 and r.max() <= 16
    grid = np.linspace(2, 16, 100001)
    density = grid ** -3.0 * (np.minimum(66 + 2 * grid, 96) / 96) ** 2
    expected = density[grid <= 4].sum() / density.sum()  # about 0.73
    assert abs(np.mean(r <= 4) - expected) < 0.02, (np.mean(r <= 4), expected)


def test_palette_samples_the_whole_photo(tmp_path):
    # a grid over rows and columns, not a few columns (a raster stride would hit only those)
    import imageio.v3 as iio

    from blursynth.sources.leaves import palette_from_photos

    h, w = 512, 512
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = np.arange(w)[None, :] // 2  # column index in red
    img[..., 1] = np.arange(h)[:, None] // 2  # row index in green
    iio.imwrite(tmp_path / "grad.png", img)
    pal = palette_from_photos([tmp_path / "grad.png"])
    assert pal.shape == (64 * 64, 3)
    assert len(np.unique(pal[:, 0])) == 64 and len(np.unique(pal[:, 1])) == 64


@pytest.mark.parametrize("args, match", [
    (["--r-min", "10", "--r-max", "5"], "--r-max must be above --r-min"),
    (["--coverage", "1"], "--coverage must be in (0, 1)"),
    (["--noise", "nan"], "finite"),
    (["--size", "8"], "--size"),
    (["--n", "0"], "--n"),
    (["--size", "32", "--r-min", "10"], "the default, --size / 4"),
    (["--size", "4096", "--r-min", "0.5", "--r-max", "16000"], "disks per image"),
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
    r = run_cli("render-leaves", "--n", 1, "--size", 32, "--out", out, "--quiet")
    assert r.code == 2 and "beyond --n 1; pass --n 2 or more" in error_line(r)
    assert _files(out) == before
    (tmp_path / "empty").mkdir()
    r = run_cli("render-leaves", "--n", 1, "--colours-from", tmp_path / "empty", "--out",
                tmp_path / "o2", "--quiet")
    assert r.code == 2 and "holds no images" in error_line(r)
    assert not (tmp_path / "o2").exists()


def test_folder_of_another_version_is_not_resumed(run_cli, tmp_path):
    import json

    out = tmp_path / "o"
    assert run_cli("render-leaves", "--n", 1, "--size", 32, "--out", out, "--quiet").code == 0
    rec = json.loads((out / "leaves.json").read_text())
    rec["version"] = 1
    (out / "leaves.json").write_text(json.dumps(rec))
    r = run_cli("render-leaves", "--n", 2, "--size", 32, "--out", out, "--quiet")
    assert r.code == 2 and "earlier version" in error_line(r)
    assert sorted(p.name for p in out.iterdir() if p.name != ".blursynth.lock") == ["leaves.json", "leaves00000.png"]
    # a run stopped before its first image holds only leaves.json: any settings may reuse it
    (out / "leaves00000.png").unlink()
    r = run_cli("render-leaves", "--n", 1, "--size", 48, "--out", out, "--quiet")
    assert r.code == 0, r.err


def test_unreadable_photo_in_colours_folder(run_cli, tmp_path, monkeypatch):
    import imageio.v3 as iio

    import blursynth.sources.photos as images

    (tmp_path / "ph").mkdir()
    iio.imwrite(tmp_path / "ph" / "a.png", np.zeros((8, 8, 3), np.uint8))
    real = images.load_rgb8

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(images, "load_rgb8", denied)
    r = run_cli("render-leaves", "--n", 1, "--size", 32, "--colours-from", tmp_path / "ph",
                "--out", tmp_path / "o", "--quiet")
    assert r.code == 2 and "cannot read" in error_line(r) and "a.png" in error_line(r)
    assert not (tmp_path / "o").exists()
    monkeypatch.setattr(images, "load_rgb8", real)


def test_corrupt_photo_in_colours_folder_is_skipped_as_blur_skips_it(run_cli, tmp_path):
    import imageio.v3 as iio

    (tmp_path / "ph").mkdir()
    iio.imwrite(tmp_path / "ph" / "a.png", np.full((8, 8, 3), (200, 0, 0), np.uint8))
    (tmp_path / "ph" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    r = run_cli("render-leaves", "--n", 1, "--size", 32, "--noise", 0, "--colours-from", tmp_path / "ph",
                "--out", tmp_path / "o", "--quiet")
    assert r.code == 0, r.err
    warned = [l for l in r.err.splitlines() if l.startswith("warning:")]
    assert len(warned) == 1 and warned[0].startswith(f"warning: --colours-from: {tmp_path / 'ph' / 'b.png'}: ")
    assert warned[0].endswith("; skipped")
    assert {tuple(c) for c in iio.imread(tmp_path / "o" / "leaves00000.png").reshape(-1, 3)} == {(200, 0, 0)}
    # none that decodes: one line, exit 2, nothing written
    (tmp_path / "ph" / "a.png").unlink()
    r = run_cli("render-leaves", "--n", 1, "--size", 32, "--colours-from", tmp_path / "ph",
                "--out", tmp_path / "o2", "--quiet")
    assert r.code == 2 and "none of its 1 image(s) could be read" in error_line(r)
    assert not (tmp_path / "o2").exists()


def test_ctrl_c_keeps_the_images_written(run_cli, tmp_path, monkeypatch):
    import blursynth.sources.leaves as leaves

    real = leaves.dead_leaves

    def stop_at_second(index, settings, palette=None):
        if index == 1:
            raise KeyboardInterrupt
        return real(index, settings, palette)

    monkeypatch.setattr(leaves, "dead_leaves", stop_at_second)
    out = tmp_path / "o"
    r = run_cli("render-leaves", "--n", 3, "--size", 32, "--out", out, "--quiet")
    assert r.code == 130 and "images written" in error_line(r)
    assert sorted(p.name for p in out.iterdir() if p.name != ".blursynth.lock") == ["leaves.json", "leaves00000.png"]
    monkeypatch.setattr(leaves, "dead_leaves", real)
    r = run_cli("render-leaves", "--n", 3, "--size", 32, "--out", out, "--quiet")
    assert r.code == 0 and "1 already there kept" in r.out


def test_out_inside_the_colours_folder_resumes(run_cli, tmp_path):
    """The output folder is not read as colour photos, so a rerun still matches its settings."""
    import imageio.v3 as iio

    photos = tmp_path / "ph"
    photos.mkdir()
    iio.imwrite(photos / "red.png", np.tile(np.uint8([200, 30, 10]), (20, 30, 1)))
    args = ("render-leaves", "--n", 2, "--size", 32, "--colours-from", photos, "--out", photos / "leaves",
            "--quiet")
    assert run_cli(*args).code == 0
    before = _files(photos / "leaves")
    r = run_cli(*args)
    assert r.code == 0, r.err
    assert "2 already there kept" in r.out
    assert _files(photos / "leaves") == before


def test_palette_of_an_exif_rotated_photo_is_that_of_the_upright_one(tmp_path):
    from PIL import Image

    from blursynth.sources.leaves import palette_from_photos

    stored = np.random.default_rng(5).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(stored).save(tmp_path / "phone.png", exif=exif)
    Image.fromarray(np.ascontiguousarray(np.rot90(stored))).save(tmp_path / "upright.png")
    assert np.array_equal(palette_from_photos([tmp_path / "phone.png"]),
                          palette_from_photos([tmp_path / "upright.png"]))
