"""Progress bars: --quiet on every command that draws one, and sparse redraws in a log."""

import io

import pytest

from blursynth import _progress
from blursynth.cli import main


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_a_redraw_every_log_interval_and_a_terminal_the_usual_rate(monkeypatch):
    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    bar = _progress.progress_bar(total=2, desc="t", unit="pair")
    assert bar.mininterval == bar.maxinterval == _progress.LOG_INTERVAL  # the monitor's redraw too
    bar.close()
    monkeypatch.setattr("sys.stderr", _Terminal())
    bar = _progress.progress_bar(total=2, desc="t", unit="pair")
    assert bar.mininterval < 1
    bar.close()


@pytest.mark.slow  # starts a subprocess: tqdm reads its TQDM_ variables when imported
def test_tqdm_mininterval_in_the_environment_wins_in_a_log():
    import os
    import subprocess
    import sys

    code = "from blursynth._progress import progress_bar; print(progress_bar(total=1, desc='t', unit='u').mininterval)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "TQDM_MININTERVAL": "2"})
    assert run.returncode == 0, run.stderr
    assert float(run.stdout) == 2


def test_quiet_disables_every_bar_until_set_back(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    _progress.set_quiet(True)
    try:
        assert _progress.progress_bar(total=1, desc="t", unit="pair").disable
    finally:
        _progress.set_quiet(False)
    assert not _progress.progress_bar(total=1, desc="t", unit="pair").disable
    assert _progress.progress_bar(total=1, desc="t", unit="pair", enabled=False).disable


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_silences_a_writer_command_and_holds_for_that_command_only(tmp_path, capsys, quiet):
    args = ["trajectories", "--n", "4", "--out", str(tmp_path / "bank"), "--workers", "1"]
    assert main(args + (["--quiet"] if quiet else [])) == 0
    err = capsys.readouterr().err
    assert ("trajectories" in err or "writing" in err) != quiet, err  # the bar's label
    assert _progress._quiet is False


@pytest.mark.parametrize("command", [
    ["blur"], ["trajectories"], ["build"], ["frames-average"], ["bgan", "blur"], ["uid", "blur"],
    ["dataset", "verify"], ["dataset", "export"], ["dataset", "import"], ["train"], ["evaluate"],
    ["benchmark"], ["deblur"], ["render-leaves"], ["bgan", "train"], ["uid", "train"], ["uid", "deblur"],
])
def test_every_command_that_draws_a_bar_takes_quiet(command, capsys):
    assert main(command + ["--help"]) == 0
    assert "--quiet" in capsys.readouterr().out


def test_a_notebook_widget_keeps_tqdm_s_rate(monkeypatch):
    import tqdm.auto
    import tqdm.std

    class tqdm_notebook(tqdm.std.tqdm):  # what tqdm.auto gives inside Jupyter, by name
        pass

    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())  # ipykernel's stream is no TTY either
    monkeypatch.setattr(tqdm.auto, "tqdm", tqdm_notebook)
    bar = _progress.progress_bar(total=2, desc="t", unit="pair")
    assert bar.mininterval < 1
    bar.close()
