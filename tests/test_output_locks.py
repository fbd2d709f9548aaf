"""Every writer holds lock_output on its --out (a second process is refused in one line, exit 2) and
removes only the temporary files a killed run of its own left."""

import numpy as np
import pytest

from .conftest import error_line, held_lock


def _refused(r, out, pid):
    assert r.code == 2, r
    assert error_line(r) == (f"error: --out {out}: another blursynth process (pid {pid}) is writing there; "
                             "wait for it to finish or choose another --out.")


def test_render_leaves_is_refused_while_another_process_writes_the_folder(tmp_path, run_cli):
    out = tmp_path / "leaves"
    with held_lock(out) as pid:
        r = run_cli("render-leaves", "--n", 2, "--size", 32, "--out", out, "--quiet")
    _refused(r, out, pid)
    assert [p.name for p in out.iterdir()] == [".blursynth.lock"]


def test_render_leaves_removes_a_killed_runs_temporary_images_only(tmp_path, run_cli):
    out = tmp_path / "leaves"
    assert run_cli("render-leaves", "--n", 2, "--size", 32, "--out", out, "--quiet").code == 0
    debris = [out / ".leaves00002.png.tmp4242", out / ".leaves.json.tmp4242"]
    kept = out / ".leaves-notes.tmp1"
    for p in (*debris, kept):
        p.write_bytes(b"partial")
    assert run_cli("render-leaves", "--n", 3, "--size", 32, "--out", out, "--quiet").code == 0
    assert not any(p.exists() for p in debris) and kept.exists()
    assert (out / "leaves00002.png").exists()


def test_render_clip_is_refused_while_another_process_writes_its_folder(tmp_path, run_cli, photo):
    import cv2

    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), np.ascontiguousarray(photo[:96, :96, ::-1]))
    folder = tmp_path / "clips"
    with held_lock(folder) as pid:
        r = run_cli("render-clip", src, "--out", folder / "a.mkv", "--frames", 4, "--length-px", 2, "--size", "32x32")
    _refused(r, folder / "a.mkv", pid)
    assert [p.name for p in folder.iterdir()] == [".blursynth.lock"]


def test_render_clip_removes_a_killed_renders_staging_files_only(tmp_path, run_cli, photo):
    import cv2

    src = tmp_path / "photo.png"
    cv2.imwrite(str(src), np.ascontiguousarray(photo[:96, :96, ::-1]))
    folder = tmp_path / "clips"
    folder.mkdir()
    debris = [folder / ".a.tmp4242.mkv", folder / ".a.mkv.json.tmp4242"]
    kept = [folder / ".b.tmp4242.mkv", folder / "mine.txt"]
    for p in (*debris, *kept):
        p.write_bytes(b"partial")
    frames = folder / ".f.tmp4242"  # a killed render of a frames folder
    frames.mkdir()
    (frames / "000000.png").write_bytes(b"x")
    args = ("--frames", 4, "--length-px", 2, "--size", "32x32")
    assert run_cli("render-clip", src, "--out", folder / "a.mkv", *args).code == 0
    assert run_cli("render-clip", src, "--out", folder / "f", *args).code == 0
    assert not any(p.exists() for p in debris) and not frames.exists()
    assert all(p.exists() for p in kept)


@pytest.mark.slow  # trains a one-step model to deblur with
def test_deblur_is_refused_while_another_process_writes_the_folder(tmp_path, run_cli, tiny_pairs_dataset, photo):
    import cv2

    quick = ("--crop", 32, "--batch-size", 2, "--perceptual", "none", "--critic-steps", 1, "--val-count", 1,
             "--val-crop", 48, "--workers", 0, "--quiet")
    assert run_cli("train", "--data", tiny_pairs_dataset(), "--out", tmp_path / "run", "--steps", 1, *quick).code == 0
    cv2.imwrite(str(tmp_path / "p.png"), np.ascontiguousarray(photo[:32, :32, ::-1]))
    out = tmp_path / "sharp"
    with held_lock(out) as pid:
        r = run_cli("deblur", "--model", tmp_path / "run", tmp_path / "p.png", "--out", out, "--quiet")
    _refused(r, out, pid)
    assert [p.name for p in out.iterdir()] == [".blursynth.lock"]


def test_render_clip_refused_at_the_lock_leaves_the_clip_another_run_wrote(tmp_path, photo, monkeypatch):
    # This run made the folder; another render of the same --out finished in it before this one got
    # the lock. The refusal must not remove the folder (and the other run's clip) as a failed render would.
    from contextlib import contextmanager

    import blursynth.sources.render as render
    from blursynth.errors import BadInputError

    out = tmp_path / "new" / "a.mkv"
    real_lock = render.lock_output

    @contextmanager
    def lock_after_another_run(path, **kw):
        out.write_bytes(b"the other run's clip")
        out.with_name("a.mkv.json").write_text("{}")
        with real_lock(path, **kw):
            yield path

    monkeypatch.setattr(render, "lock_output", lock_after_another_run)
    settings = render.RenderSettings(n_frames=4, length_px=2.0, seed=1, size=(32, 32))
    with pytest.raises(BadInputError, match="already exist"):
        render.render_clip(np.ascontiguousarray(photo[:96, :96]), out, settings)
    assert out.read_bytes() == b"the other run's clip"
