"""A signal's stop survives a raise that native code swallowed (blursynth._stopping)."""

import os
import subprocess
import sys
import textwrap

import pytest

# The handler's raise lands inside a ctypes callback, as it does inside llvmlite's object-cache
# callback while Numba compiles: Python prints it as "ignored" and the callback's caller goes on.
SCRIPT = textwrap.dedent(
    """
    import ctypes, os, signal, sys, time
    from blursynth import _stopping, cli
    from blursynth.dataset.executors import report_rows

    cli._signal_pid = os.getpid()
    signal.signal(signal.{sig}, cli._on_stop_signal)
    {hook}

    @ctypes.CFUNCTYPE(None)
    def callback():
        os.kill(os.getpid(), signal.{sig})
        time.sleep(0.5)  # the handler runs here, in the callback

    callback()
    print("went on", flush=True)
    try:
        report_rows(1)
    except KeyboardInterrupt as exc:
        print("stopped:", type(exc).__name__, flush=True)
    """
)


@pytest.mark.slow  # starts a subprocess
@pytest.mark.parametrize("sig, raised", [("SIGINT", "KeyboardInterrupt"), ("SIGTERM", "Terminated")])
def test_a_stop_raised_inside_a_native_callback_is_raised_again_by_the_writer(sig, raised):
    script = SCRIPT.format(sig=sig, hook="_stopping.install_unraisable_hook()")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["went on", f"stopped: {raised}"]
    assert "Exception ignored" not in run.stderr  # the hook keeps the swallowed raise quiet


@pytest.mark.slow  # starts a subprocess
def test_without_the_hook_python_reports_the_swallowed_raise():
    # The case the hook exists for: without it the same run prints a traceback of the lost raise.
    script = SCRIPT.format(sig="SIGINT", hook="")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.stdout.splitlines() == ["went on", "stopped: KeyboardInterrupt"]
    assert "Exception ignored" in run.stderr and "KeyboardInterrupt" in run.stderr


def test_no_stop_asked_raises_nothing_and_forget_clears_one():
    from blursynth import _stopping

    _stopping.forget()
    _stopping.stop_if_asked()
    _stopping.ask(15, now=False)
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            _stopping.stop_if_asked()
        assert type(caught.value).__name__ == "Terminated"
    finally:
        _stopping.forget()
    _stopping.stop_if_asked()


def test_the_hook_is_quiet_after_a_stop_only():
    from types import SimpleNamespace

    from blursynth import _stopping

    seen = []
    hook = _stopping.unraisable_hook(seen.append)
    other = SimpleNamespace(exc_value=ValueError("x"))
    interrupt = SimpleNamespace(exc_value=KeyboardInterrupt())
    loader = SimpleNamespace(exc_value=RuntimeError("DataLoader worker (pid 7) is killed by signal: Terminated. "))
    hook(interrupt)  # no stop asked: reported as usual
    hook(loader)
    _stopping.ask(15, now=False)
    try:
        hook(interrupt)  # a stop asked: kept quiet, raised again later
        hook(loader)  # the loader's workers ended by the same signal
        hook(other)  # a finaliser of something the stop cut short
    finally:
        _stopping.forget()
    hook(other)
    assert seen == [interrupt, loader, other]


@pytest.mark.parametrize("where", ["report_rows", "report_progress", "frames_bar"])
def test_the_loops_that_run_long_raise_a_stop_asked_earlier(where):
    from blursynth import _stopping
    from blursynth.dataset import executors
    from blursynth.pairs.frames import _counted

    class Bar:
        n = 0

        def update(self, n):
            self.n += n

    calls = {"report_rows": lambda: executors.report_rows(1),
             "report_progress": lambda: executors.report_progress(1),
             "frames_bar": lambda: list(_counted(iter([1, 2]), Bar()))}
    calls[where]()  # nothing asked: runs
    _stopping.ask(2, now=False)
    try:
        with pytest.raises(KeyboardInterrupt):
            calls[where]()
    finally:
        _stopping.forget()


def test_a_pool_process_stops_at_its_next_row_after_a_lost_raise(monkeypatch):
    from blursynth import _stopping
    from blursynth.dataset import executors

    rendered = []

    def rows(start, stop):
        for i in range(start, stop):
            rendered.append(i)
            if rendered == [0]:
                _stopping.ask(2, now=False)  # the handler ran; its raise was lost
            yield {"i": i}

    monkeypatch.setattr(executors, "_feed_rows", rows)
    try:
        with pytest.raises(KeyboardInterrupt):
            executors._feed_chunk(0, 5)
    finally:
        _stopping.forget()
    assert rendered == [0]  # not the rest of the chunk
    assert executors._feed_chunk(0, 2) == [{"i": 0}, {"i": 1}]


def test_main_sets_its_handlers_back_and_leaves_an_ignored_signal_ignored(monkeypatch, capsys):
    import signal

    from blursynth import cli

    kinds = (signal.SIGINT, signal.SIGTERM)
    before = {sig: signal.getsignal(sig) for sig in kinds}
    hook = sys.unraisablehook
    during = []
    monkeypatch.setattr(cli, "_main", lambda argv: during.append({s: signal.getsignal(s) for s in kinds}) or 0)
    assert cli.main([]) == 0
    assert during[-1] == {sig: cli._on_stop_signal for sig in kinds}
    assert {sig: signal.getsignal(sig) for sig in kinds} == before and sys.unraisablehook is hook
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `cmd &` in a script starts it
    try:
        assert cli.main([]) == 0
        assert during[-1] == {signal.SIGINT: signal.SIG_IGN, signal.SIGTERM: cli._on_stop_signal}
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, old)


@pytest.mark.parametrize("signum, raised", [(2, "KeyboardInterrupt"), (15, "Terminated")])
def test_an_error_a_stop_turned_into_is_the_stop_in_a_pool_task_and_in_the_command(signum, raised, monkeypatch,
                                                                                  capsys):
    from blursynth import _stopping, cli
    from blursynth.dataset import executors

    def native_call():
        _stopping.ask(signum, now=False)  # the handler ran inside native code, which then failed
        raise SystemError("returned a result with an exception set")

    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            executors._pool_task(native_call)
    finally:
        _stopping.forget()
    assert type(caught.value).__name__ == raised

    def command(*args, **kwargs):
        native_call()

    monkeypatch.setattr(cli.cli, "main", command)
    assert cli.main(["trajectories"]) == (130 if signum == 2 else 143)
    assert capsys.readouterr().err.startswith("error: interrupted" if signum == 2 else "error: terminated (SIGTERM)")
    _stopping.stop_if_asked()  # main() forgot the stop as it ended


POOL_SCRIPT = textwrap.dedent(
    """
    import ctypes, os, signal, time
    from blursynth.dataset import executors

    executors._init_worker(None, os.getppid())  # as a pool's process starts

    @ctypes.CFUNCTYPE(None)
    def callback():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)  # the handler runs here, in the callback

    def task():
        callback()
        print("went on", flush=True)
        executors.report_rows(1)

    try:
        executors._pool_task(task)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    """
)


@pytest.mark.slow  # starts a subprocess
def test_a_pool_process_keeps_a_lost_raise_quiet_and_raises_it_again():
    run = subprocess.run([sys.executable, "-c", POOL_SCRIPT], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["went on", "stopped"]
    assert run.stderr == ""


@pytest.mark.slow  # starts a subprocess
def test_a_signal_after_the_command_is_over_is_ignored():
    # The end of a Ctrl-C race: the command's result is printed, its status set; a signal then
    # (here, from the clean-up itself) changes neither and prints no traceback.
    code = textwrap.dedent(
        """
        import os, signal
        from blursynth import _progress, cli

        def quiet_off(quiet):  # runs in main()'s clean-up
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGTERM)

        _progress.set_quiet = quiet_off
        cli._exit_now(cli.main(["cameras"], _exiting=True))
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stderr == "", run.stderr
    assert run.stdout.strip()
