"""What the commands' options say and accept: units in --help, one size convention (HxW)."""

import re

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


def test_build_limit_help_says_spread():
    assert "spread over its inputs" in _help("build")
