"""How the CLI words failures that are not bad input: disk full, native-library errors, and the
stray lines C libraries print to stderr."""

import os
import subprocess
import sys

import numpy as np
import pytest

from .conftest import error_line


def _raising(exc):
    def main(*args, **kwargs):
        raise exc
    return main


def test_an_opencv_error_is_one_line_without_a_second_error_prefix(run_cli, monkeypatch):
    import cv2

    import blursynth.cli

    try:
        cv2.resize(np.zeros((0, 0), np.uint8), (4, 4))
    except cv2.error as exc:
        monkeypatch.setattr(blursynth.cli.cli, "main", _raising(exc))
    r = run_cli("trajectories")
    assert r.code == 1
    line = error_line(r)
    assert line.startswith("error: OpenCV: (-215:Assertion failed)") and "error: error" not in line


def test_out_of_memory_is_said_in_words(run_cli, monkeypatch):
    import blursynth.cli

    monkeypatch.setattr(blursynth.cli.cli, "main", _raising(MemoryError()))
    r = run_cli("trajectories")
    assert r.code == 1 and error_line(r).startswith("error: out of memory (MemoryError); use smaller inputs")


def test_a_corrupt_png_is_refused_without_libpngs_own_line(tmp_path, capfd):
    import cv2

    from blursynth.errors import BadInputError
    from blursynth.sources.photos import load_rgb8

    data = bytearray(cv2.imencode(".png", np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3))[1].tobytes())
    data[100] ^= 0xFF  # inside IDAT: a CRC error
    (tmp_path / "bad.png").write_bytes(bytes(data))
    capfd.readouterr()
    sys.stderr.write("kept\n")
    with pytest.raises(BadInputError, match="cannot decode image"):
        load_rgb8(tmp_path / "bad.png")
    assert capfd.readouterr().err == "kept\n"


@pytest.mark.slow  # three trajectories runs in subprocesses
def test_a_full_disk_is_one_line_and_the_rerun_resumes(tmp_path):
    blursynth = [sys.executable, "-m", "blursynth", "trajectories", "--n", "400", "--samples", "256",
                 "--shard-size", "100", "--out"]
    full = subprocess.run(["bash", "-c", 'ulimit -f 40; exec "$@"', "-", *blursynth, str(tmp_path / "a")],
                          capture_output=True, text=True, timeout=300)
    assert full.returncode == 1
    lines = [l for l in full.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in full.stderr
    assert lines[0].startswith("error: disk full or file too large") and lines[0].endswith("what was finished is kept.")
    assert (tmp_path / "a" / ".blursynth-progress.json").exists()
    assert not [p for p in (tmp_path / "a" / "data").iterdir() if p.name.startswith(".")]  # no partial shard
    for out in ("a", "b"):
        subprocess.run([*blursynth, str(tmp_path / out)], capture_output=True, check=True, timeout=300)
    for shard in sorted((tmp_path / "b" / "data").iterdir()):
        assert shard.read_bytes() == (tmp_path / "a" / "data" / shard.name).read_bytes()


def test_a_warning_of_blursynth_is_one_line_without_pythons_source_line(run_cli, tmp_path, monkeypatch):
    import errno
    import fcntl

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    r = run_cli("trajectories", "--n", 2, "--out", tmp_path / "bank")
    assert r.code == 0, r.err
    told = [line for line in r.err.splitlines() if "does not support locks" in line]
    assert len(told) == 1 and told[0].startswith(f"warning: --out {tmp_path / 'bank'}: this file system"), r.err
    assert "UserWarning" not in r.err and "lock_output(" not in r.err


def test_the_command_exits_with_its_code_and_flushed_output(tmp_path):
    # entry_point ends the process without the interpreter's teardown: the exit handlers still
    # run and everything printed to a pipe (block-buffered) still arrives, for 0 and for 2.
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('handler ran', flush=True))\n"
        "from blursynth.cli import entry_point\n"
        "entry_point()\n"
    )
    ok = subprocess.run([sys.executable, "-c", script, "--help"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0
    assert "Usage: blursynth" in ok.stdout and ok.stdout.rstrip().endswith("handler ran")
    bad = subprocess.run([sys.executable, "-c", script, "blur", str(tmp_path / "none"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == "handler ran\n"
    assert [l for l in bad.stderr.splitlines() if l.startswith("error:")] and not (tmp_path / "o").exists()


def test_the_command_waits_for_a_running_thread_before_it_exits(tmp_path):
    # A thread that is not a daemon keeps a normal exit waiting; the quick exit must too.
    script = (
        "import threading, time\n"
        "from blursynth import cli\n"
        "def late():\n"
        "    time.sleep(0.5)\n"
        f"    open({str(tmp_path / 'late.txt')!r}, 'w').write('done')\n"
        "threading.Thread(target=late).start()\n"
        "cli._exit_now(3)\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 3 and (tmp_path / "late.txt").read_text() == "done"


def test_a_profiled_command_still_writes_its_profile(tmp_path):
    # cProfile writes its figures after the program returns: the quick exit must leave it room.
    run = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(tmp_path / "p.out"), "-m", "blursynth",
                          "--help"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and (tmp_path / "p.out").stat().st_size > 0


def test_the_quick_exit_is_taken_when_nothing_watches(monkeypatch):
    # The subprocess tests above hold for Python's own exit too; this one shows the quick path is
    # the one taken: handlers run, then os._exit with the code (both stand-ins here).
    import atexit
    import threading

    from blursynth import cli

    if cli._observed():
        pytest.skip("a tracer or profiler watches the tests (coverage): the exit is Python's own")
    if any(t is not threading.main_thread() and t.is_alive() and not t.daemon for t in threading.enumerate()):
        pytest.skip("a non-daemon thread runs in this test process")
    calls = []
    monkeypatch.setattr(atexit, "_run_exitfuncs", lambda: calls.append("handlers"))
    monkeypatch.setattr(cli.os, "_exit", lambda code: calls.append(("exit", code)))
    cli._exit_now(7)
    assert calls == ["handlers", ("exit", 7)]
    # Watched (as under a profiler or tracer), Python's own exit instead.
    monkeypatch.setattr(cli, "_observed", lambda: True)
    with pytest.raises(SystemExit) as exc:
        cli._exit_now(3)
    assert exc.value.code == 3 and calls == ["handlers", ("exit", 7)]


def test_the_collector_is_held_while_a_command_starts_and_back_when_its_work_begins(tmp_path):
    # In a blursynth command the collector is off through the imports and on again, with start-up's
    # objects frozen, once the work begins: in the writer, in the pool's forked workers.
    script = (
        "import atexit, gc, sys\n"
        "from blursynth import cli\n"
        "from blursynth.dataset import executors\n"
        "seen = []\n"
        "def note(): seen.append(('pool', gc.isenabled(), gc.get_freeze_count() > 0))\n"
        "executors.before_pool(note)\n"
        "real_main = cli.main\n"
        "def main(*a, **k):\n"
        "    seen.append(('start', gc.isenabled()))\n"
        "    return real_main(*a, **k)\n"
        "cli.main = main\n"
        "atexit.register(lambda: print(seen + [('end', gc.isenabled(), gc.get_freeze_count() > 0)]))\n"
        "sys.argv = ['blursynth', *sys.argv[1:]]\n"
        "cli.entry_point()\n"
    )
    from skimage import data

    from blursynth.sources.photos import save_rgb8

    for k in range(3):
        save_rgb8(tmp_path / "photos" / f"p{k}.png", data.astronaut()[k * 8:][::8, ::8])
    run = subprocess.run([sys.executable, "-c", script, "blur", str(tmp_path / "photos"), "--psf-source", "fresh",
                          "--canvas", "15", "--length", "8", "--per-image", "4", "--out", str(tmp_path / "o"),
                          "--workers", "2"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[('start', False), ('pool', True, True), ('end', True, True)]"


def test_startup_over_undoes_only_its_own_hold(monkeypatch):
    import gc

    from blursynth import _startup

    monkeypatch.setattr(_startup, "_held", False)
    was = gc.isenabled()
    gc.disable()  # a library caller's own choice: left as it is
    try:
        _startup.startup_over()
        assert not gc.isenabled()
        gc.enable()
        frozen = gc.get_freeze_count()
        _startup.hold_for_startup()
        assert not gc.isenabled()
        _startup.startup_over()
        assert gc.isenabled() and gc.get_freeze_count() >= frozen
        _startup.startup_over()  # once only
        assert gc.isenabled()
        # With collect (the default), the cyclic garbage made while held is freed, not frozen.
        gc.disable()
        _startup.hold_for_startup()  # the collector is off already: not this module's hold
        _startup.startup_over()
        assert not gc.isenabled()
        gc.enable()
        _startup.hold_for_startup()

        class Cycle:
            pass

        import weakref

        a = Cycle()
        a.me = a
        gone = weakref.ref(a)
        del a
        _startup.startup_over()
        assert gone() is None and gc.isenabled()
    finally:
        gc.unfreeze()
        (gc.enable if was else gc.disable)()


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
@pytest.mark.parametrize("command", ["blur", "trajectories", "frames-average", "render-leaves", "train"])
def test_numba_commands_start_no_openblas_threads(tmp_path, command):
    # OpenBLAS's threads (NumPy's, SciPy's) would spin beside the photo decoder for nothing; set
    # before the command's options are read (frames-average's --crf loads NumPy); a user's own
    # OPENBLAS_NUM_THREADS is kept; commands that run torch keep OpenBLAS's default.
    script = (
        "import os, sys\n"
        "from blursynth import cli\n"
        "cli.main(sys.argv[1:])\n"  # a usage error: the options were read, the work not begun
        "import numpy, scipy.linalg\n"
        "print('threads', len(os.listdir('/proc/self/task')), os.environ.get('OPENBLAS_NUM_THREADS'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    args = [sys.executable, "-c", script, command, "--no-such-option"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)
    one = command != "train"
    if one:
        assert run.stdout.split() == ["threads", "1", "1"], run.stderr
    else:
        assert run.stdout.split()[2] == "None", run.stderr
    if one:
        run = subprocess.run(args, capture_output=True, text=True, timeout=120, env={**env, "OPENBLAS_NUM_THREADS": "2"})
        assert run.stdout.split() == ["threads", "3", "2"], run.stderr


def test_an_interrupt_by_sigterm_says_so_and_exits_143():
    from blursynth.errors import Interrupted, Terminated

    for raised, said, code in [(Terminated(), "terminated (SIGTERM); kept.", 143),
                               (KeyboardInterrupt(), "interrupted; kept.", 130)]:
        try:
            raise raised
        except KeyboardInterrupt:
            error = Interrupted.of("; kept.")
        assert (str(error), error.exit_code) == (said, code)
    assert Interrupted("x").exit_code == 130  # the class's own status is untouched


@pytest.mark.parametrize("stop, code, said", [(KeyboardInterrupt, 130, "interrupted"),
                                              ("Terminated", 143, "terminated (SIGTERM)")])
def test_an_interrupt_that_native_code_wrapped_is_still_an_interrupt(run_cli, monkeypatch, stop, code, said):
    # A signal's handler raising inside Numba's dispatcher comes out as "SystemError: ...
    # returned a result with an exception set", the interrupt as its cause.
    import blursynth.cli
    from blursynth.errors import Terminated

    stop = Terminated() if stop == "Terminated" else stop()
    wrapped = SystemError("CPUDispatcher(<function f>) returned a result with an exception set")
    wrapped.__cause__ = stop
    monkeypatch.setattr(blursynth.cli.cli, "main", _raising(wrapped))
    r = run_cli("trajectories")
    assert r.code == code
    assert error_line(r) == f"error: {said}; completed shards are kept, rerun the same command to resume."
