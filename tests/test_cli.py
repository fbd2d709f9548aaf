import subprocess
import sys

import pytest

from blursynth.cli import COMMANDS, LazyGroup

from .conftest import error_line


@pytest.mark.slow  # a fresh Python process
def test_help_does_not_import_heavy_modules():
    code = (
        "import sys\n"
        "from blursynth.cli import main\n"
        "rc = main(['--help'])\n"
        "heavy = [m for m in ('torch', 'numba', 'cv2', 'pyarrow', 'scipy') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "HEAVY []" in out
    assert "trajectories" in out and "dataset" in out


def test_every_registered_command_loads():
    group = LazyGroup()
    for name in COMMANDS:
        command = group._load(name)
        assert command is not None, f"command module of {name!r} is missing"
        assert command.help, name


def test_unknown_command_and_option_are_one_line(run_cli):
    r = run_cli("frobnicate")
    assert r.code == 2 and "frobnicate" in error_line(r)
    r = run_cli("trajectories", "--bogus")
    assert r.code == 2 and "--bogus" in error_line(r)
    r = run_cli("trajectories")
    assert r.code == 2 and "--out" in error_line(r)


def test_unexpected_failure_is_one_line_exit_1_and_debug_shows_traceback(tmp_path, monkeypatch, run_cli):
    import blursynth.kernelbank as kb

    def boom(*a, **k):
        raise OSError("disk on fire")

    monkeypatch.setattr(kb, "write_kernel_bank", boom)
    r = run_cli("trajectories", "--n", 2, "--out", tmp_path / "b")
    assert r.code == 1 and "disk on fire" in error_line(r) and "--debug" in error_line(r)
    import pytest

    with pytest.raises(OSError):
        run_cli("--debug", "trajectories", "--n", 2, "--out", tmp_path / "b")


def test_version(run_cli):
    r = run_cli("--version")
    assert r.code == 0 and "0.1.0" in r.out


def test_errors_from_data_loader_workers_keep_only_their_message():
    from blursynth.cli import _one_line

    text = (
        "Caught BadInputError in DataLoader worker process 0.\n"
        "Original Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n'
        "blursynth.errors.BadInputError: pairs/ row 7: image 40x40 is smaller than --crop 64.\n"
    )
    assert _one_line(text) == "pairs/ row 7: image 40x40 is smaller than --crop 64."
    assert _one_line("two\n  lines") == "two lines"
