"""dataset info and dataset preview."""

from blursynth.dataset import dataset_info

from .conftest import write_tiny


def test_info_and_preview(tmp_path, run_cli):
    write_tiny(tmp_path / "d")
    info = dataset_info(tmp_path / "d")
    assert info["rows"] == 20 and info["sources"] == {"trajectory": 20} and info["with_psf"] == 10
    # Sizes are HxW (height first) in every printout, as --crop and render-clip's --size take them.
    n_sampled = sum(info["image_sizes_sampled"].values())
    assert info["image_sizes_sampled"] == {"12x16": n_sampled}
    r = run_cli("dataset", "info", tmp_path / "d")
    assert r.code == 0 and "20 rows" in r.out
    assert f"image sizes (sampled, HxW): 12x16 ({n_sampled})" in r.out.splitlines()
    r = run_cli("dataset", "preview", tmp_path / "d", "--out", tmp_path / "p.png", "--count", "3")
    assert r.code == 0
    from blursynth.sources.photos import load_rgb8

    sheet, _ = load_rgb8(tmp_path / "p.png")
    assert sheet.shape[0] > 3 * 160 and sheet.std() > 10
    assert r.out.strip() == f"wrote {tmp_path / 'p.png'} ({sheet.shape[0]}x{sheet.shape[1]} HxW)"
