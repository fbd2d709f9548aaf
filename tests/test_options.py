"""What the commands' options say and accept: units in --help, one size convention (HxW)."""


from click.testing import CliRunner


def _help(*command):
    from blursynth.cli import cli

    r = CliRunner().invoke(cli, [*command, "--help"], terminal_width=200)
    assert r.exit_code == 0, r.output
    return " ".join(r.output.split())


def test_noise_units_in_blur_help():
    text = _help("blur")
    assert "SHOT is the variance per unit linear intensity" in text
    assert "READ the standard deviation" in text
    assert "variance SHOT*x + READ^2" in text


def test_noise_units_in_readme():
    from .conftest import ROOT

    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "shot noise as a variance per unit linear intensity" in readme
    assert "read noise as a standard deviation" in readme


def test_readme_says_what_a_new_user_tripped_on():
    from .conftest import ROOT

    readme = " ".join((ROOT / "README.md").read_text().split())
    # train's --workers are DataLoader workers, outside $BLURSYNTH_WORKERS.
    assert "means something else: PyTorch DataLoader workers" in readme
    assert "`$BLURSYNTH_WORKERS` does not apply to them" in readme
    # The first run's silent kernel compile.
    assert "The first run after installing compiles the blur kernels it uses (about 10 s" in readme
    # The recipe table: uid-faces needs the VGG19 weights or perceptual=none.
    row = next(line for line in (ROOT / "README.md").read_text().splitlines()
               if line.startswith("| `uid-faces.toml`"))
    assert "`--set model.perceptual=none`" in row and "VGG19" in row


def test_build_limit_help_says_spread():
    assert "spread over its inputs" in _help("build")


# --- one size convention: HxW (height first) everywhere ---------------------------------------


def _blur_settings(monkeypatch, run_cli, tmp_path, *args):
    """The BlurSettings ``blur`` builds from ``args`` (the run itself is replaced)."""
    import blursynth.pairs.shake as shake

    seen = {}

    def fake(settings, out, **kw):
        seen["settings"] = settings
        return {"num_rows": 0, "shards": [], "fingerprint": "x", "skipped_photos": 0}

    monkeypatch.setattr(shake, "blur_photos", fake)
    r = run_cli("blur", tmp_path, "--psf-source", "fresh", "--out", tmp_path / "out", *args)
    return r, seen.get("settings")


def test_resize_to_is_height_first(monkeypatch, run_cli, tmp_path):
    r, s = _blur_settings(monkeypatch, run_cli, tmp_path, "--resize-to", "300x400", "--crop", "100x200")
    assert r.code == 0, r.err
    # The settings (and the rows' params) keep resize as (width, height).
    assert s.resize == (400, 300) and s.crop == (100, 200) and "warning" not in r.err


def test_old_resize_spelling_still_works_with_a_warning(monkeypatch, run_cli, tmp_path):
    r, s = _blur_settings(monkeypatch, run_cli, tmp_path, "--resize", "400x300")
    assert r.code == 0, r.err
    assert s.resize == (400, 300)
    assert r.err.strip() == ("warning: --resize 400x300 is the old width-first spelling (width 400, height 300); "
                             "write --resize-to 300x400 (sizes are height x width everywhere); --resize WxH goes "
                             "in the next release.")
    r, s = _blur_settings(monkeypatch, run_cli, tmp_path, "--resize", "0.5")
    assert r.code == 0 and s.resize == 0.5 and r.err == ""


def test_resize_and_resize_to_together_refused(monkeypatch, run_cli, tmp_path):
    from .conftest import error_line

    r, s = _blur_settings(monkeypatch, run_cli, tmp_path, "--resize", "0.5", "--resize-to", "30x40")
    assert r.code == 2 and s is None
    assert "--resize (a scale) or --resize-to (a size), not both" in error_line(r)


def test_kernels_preview_prints_hxw(run_cli, tmp_path):
    from blursynth.sources.photos import load_rgb8

    from .conftest import ROOT

    r = run_cli("kernels", "preview", ROOT / "kernels/eval48", "--out", tmp_path / "k.png", "--count", 2,
                "--columns", 1)
    assert r.code == 0, r.err
    sheet, _ = load_rgb8(tmp_path / "k.png")
    assert sheet.shape[0] != sheet.shape[1]
    assert r.out.strip() == f"wrote {tmp_path / 'k.png'} ({sheet.shape[0]}x{sheet.shape[1]} HxW)"
