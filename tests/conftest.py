"""Shared fixtures: run the CLI in-process, tiny sample photos."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


class CliResult:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err

    def __repr__(self):
        return f"CliResult(code={self.code}, err={self.err!r})"


@pytest.fixture
def run_cli(capsys):
    """``run_cli("trajectories", "--n", "5", ...)`` -> CliResult(code, out, err)."""
    from blursynth.cli import main

    def run(*args):
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


def error_line(result) -> str:
    """The single ``error:`` line of a failed command (asserting there is exactly one)."""
    lines = [l for l in result.err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1, result.err
    assert "Traceback" not in result.err, result.err
    return lines[0]


@pytest.fixture(scope="session")
def photo():
    """A small natural RGB photo (uint8, 96x128x3) from scikit-image's samples."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[100:196, 150:278])
