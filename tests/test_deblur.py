"""``blursynth deblur``'s reading of photos: EXIF orientation, grayscale kept, one pixel limit,
truncated files, and an --out inside the input folder (the model is stubbed: an identity)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageOps

from .conftest import error_line, held_lock


class _Identity:
    def receptive_radius(self):
        return 4


@pytest.fixture
def stub_model(monkeypatch):
    """deblur with a generator that returns its input, the gray levels spread over the channels
    (as a real model's output of a gray image is not exactly gray)."""
    from blursynth.train import evaluate

    def deblur_array(gen, image, **_):
        out = image.astype(np.int16) + np.array([2, 0, -2], np.int16)
        return np.clip(out, 0, 255).astype(np.uint8)

    monkeypatch.setattr(evaluate, "load_generator", lambda model, device: (_Identity(), {}))
    monkeypatch.setattr(evaluate, "deblur_array", deblur_array)


def _deblur(run_cli, *inputs, out, extra=()):
    return run_cli("deblur", "--model", "stub", *inputs, "--out", out, "--quiet", *extra)


def test_exif_orientation_is_applied_and_noted(run_cli, stub_model, tmp_path, photo):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo).save(tmp_path / "phone.jpg", exif=exif, quality=100)
    r = _deblur(run_cli, tmp_path / "phone.jpg", out=tmp_path / "out")
    assert r.code == 0, r.err
    assert f"note: {tmp_path / 'phone.jpg'}: EXIF orientation 6 applied" in r.err
    with Image.open(tmp_path / "out" / "phone.png") as im:
        got = np.asarray(im).astype(int)
    assert got.shape == (128, 96, 3)  # upright, not sideways
    with Image.open(tmp_path / "phone.jpg") as im:
        upright = np.asarray(ImageOps.exif_transpose(im)).astype(int) + [2, 0, -2]
    assert np.abs(got - np.clip(upright, 0, 255)).max() <= 3  # PIL's JPEG decoder against OpenCV's


@pytest.mark.parametrize("mode", ["L", "LA", "I;16"])
def test_grayscale_input_stays_grayscale(run_cli, stub_model, tmp_path, mode):
    gray = np.random.default_rng(0).integers(10, 240, (20, 30), dtype=np.uint8)
    if mode == "L":
        image = Image.fromarray(gray)
    elif mode == "LA":
        image = Image.fromarray(np.stack([gray, np.full_like(gray, 255)], -1), "LA")
    else:
        image = Image.fromarray(gray.astype(np.uint16) * 257)
    image.save(tmp_path / "g.png")
    Image.fromarray(np.stack([gray] * 3, -1)).save(tmp_path / "rgb.png")
    r = _deblur(run_cli, tmp_path / "g.png", tmp_path / "rgb.png", out=tmp_path / "out")
    assert r.code == 0, r.err
    with Image.open(tmp_path / "out" / "g.png") as im:
        assert im.mode == "L"
        assert np.array_equal(np.asarray(im), gray)  # the mean of the model's three channels
    with Image.open(tmp_path / "out" / "rgb.png") as im:
        assert im.mode == "RGB"


def test_out_inside_the_input_folder_is_not_an_input(run_cli, stub_model, tmp_path, photo):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(photo).save(folder / "a.png")
    assert _deblur(run_cli, folder, out=folder / "out").code == 0
    r = _deblur(run_cli, folder, out=folder / "out")
    assert r.code == 2 and error_line(r) == (f"error: {folder / 'out' / 'a.png'}: already exists; pass "
                                             "--overwrite to replace outputs or choose another --out.")
    r = _deblur(run_cli, folder, out=folder / "out", extra=("--overwrite",))
    assert r.code == 0, r.err
    assert "wrote 1 image(s)" in r.out
    assert sorted(p.name for p in (folder / "out").iterdir() if not p.name.startswith(".")) == ["a.png"]


def test_truncated_and_too_large_inputs_are_refused_as_blur_refuses_them(run_cli, stub_model, tmp_path, photo):
    from .test_photos import _bomb_png

    Image.fromarray(photo).save(tmp_path / "whole.png")
    whole = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "bomb.png").write_bytes(_bomb_png(20000, 20000))
    r = _deblur(run_cli, tmp_path / "whole.png", tmp_path / "cut.png", out=tmp_path / "o1")
    assert r.code == 2 and error_line(r) == (f"error: {tmp_path / 'cut.png'}: the file is truncated (it ends "
                                             "before its image does); copy it again or remove it.")
    r = _deblur(run_cli, tmp_path / "bomb.png", out=tmp_path / "o2")
    assert r.code == 2 and error_line(r) == (
        f"error: {tmp_path / 'bomb.png'}: 400,000,000 pixels is more than the 178,956,970 pixels "
        "blursynth decodes (a guard against decompression bombs); scale the image down first.")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_an_image_that_fails_only_when_decoded_leaves_no_output_folder(run_cli, stub_model, tmp_path, photo):
    from .test_photos import _bomb_png

    Image.fromarray(photo).save(tmp_path / "a.png")
    (tmp_path / "b.png").write_bytes(_bomb_png(20, 20))  # header and chunks whole, pixel data short
    r = _deblur(run_cli, tmp_path / "a.png", tmp_path / "b.png", out=tmp_path / "new" / "out")
    assert r.code == 2 and error_line(r) == (f"error: {tmp_path / 'b.png'}: cannot decode image; the file is "
                                             "corrupt or not an image.")
    assert (tmp_path / "new" / "out" / "a.png").exists()  # written before b failed
    r = _deblur(run_cli, tmp_path / "b.png", out=tmp_path / "new2" / "out")
    assert r.code == 2 and not (tmp_path / "new2").exists()


def test_refused_at_the_lock_keeps_what_another_run_wrote(run_cli, stub_model, tmp_path, photo, monkeypatch):
    # This run made --out; another deblur into it finished before this one got the lock. The refusal
    # ('already exists') must not undo the folder as a failed run would: it holds the other run's output.
    from contextlib import contextmanager

    from blursynth.train import evaluate

    Image.fromarray(photo).save(tmp_path / "p.png")
    out = tmp_path / "new" / "out"
    real_lock = evaluate.lock_output

    @contextmanager
    def lock_after_another_run(path, **kw):
        (out / "p.png").write_bytes(b"the other run's photo")
        with real_lock(path, **kw):
            yield path

    monkeypatch.setattr(evaluate, "lock_output", lock_after_another_run)
    r = _deblur(run_cli, tmp_path / "p.png", out=out)
    assert r.code == 2 and "already exists" in error_line(r), r.err
    assert (out / "p.png").read_bytes() == b"the other run's photo"


def test_refused_at_the_lock_prints_only_its_error_line(run_cli, stub_model, tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "p.png")
    out = tmp_path / "out"
    with held_lock(out) as pid:
        r = run_cli("deblur", "--model", "stub", tmp_path / "p.png", "--out", out)  # with its progress bar
    assert r.code == 2 and f"(pid {pid})" in error_line(r)
    assert [line for line in r.err.splitlines() if line.strip()] == [error_line(r)], r.err


def test_a_killed_runs_temporary_outputs_are_removed_only_those(run_cli, stub_model, tmp_path, photo):
    Image.fromarray(photo).save(tmp_path / "p.png")
    out = tmp_path / "out"
    out.mkdir()
    debris, kept = out / ".p.png.tmp4242", out / ".q.png.tmp4242"  # q.png is no output of this run
    for path in (debris, kept):
        path.write_bytes(b"partial")
    r = _deblur(run_cli, tmp_path / "p.png", out=out)
    assert r.code == 0, r.err
    assert not debris.exists() and kept.exists() and (out / "p.png").exists()


def test_a_pair_dataset_gives_its_blurred_images_and_no_lock_file_is_left(
        run_cli, stub_model, tmp_path, tiny_pairs_dataset):
    from blursynth.dataset.reader import PairDataset

    data = tiny_pairs_dataset(n=3)
    out = tmp_path / "out"
    r = _deblur(run_cli, data, out=out)
    assert r.code == 0, r.err
    stored = PairDataset(data)
    # only the images: nothing a sorted listing of the folder would open as one
    assert sorted(p.name for p in out.iterdir()) == [f"{stored[i]['id']}.png" for i in range(3)]
    got = np.asarray(Image.open(out / f"{stored[1]['id']}.png"))
    want = np.clip(stored[1]["blurred"].astype(np.int16) + np.array([2, 0, -2]), 0, 255)
    assert np.array_equal(got, want)
