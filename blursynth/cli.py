"""The ``blursynth`` command: a click group that loads each command lazily.

Commands live in ``blursynth/commands/<name>.py`` so that ``blursynth --help``
imports neither torch, numba nor OpenCV, and so that each command module holds
only option parsing: it builds a settings object, calls one library function
and reports.
"""

from __future__ import annotations

import errno
import importlib
import os
import re
import signal
import sys
import warnings

import click

from .errors import BlursynthError, Terminated

# name -> "module:attribute"; the modules are imported only when needed.
COMMANDS = {
    "trajectories": "blursynth.commands.trajectories:trajectories",
    "kernels": "blursynth.commands.kernels:kernels",
    "dataset": "blursynth.commands.dataset:dataset",
    "blur": "blursynth.commands.blur:blur",
    "cameras": "blursynth.commands.cameras:cameras",
    "frames-average": "blursynth.commands.frames:frames_average",
    "render-clip": "blursynth.commands.frames:render_clip",
    "render-leaves": "blursynth.commands.frames:render_leaves",
    "train": "blursynth.commands.train:train",
    "evaluate": "blursynth.commands.evaluate:evaluate",
    "deblur": "blursynth.commands.evaluate:deblur",
    "benchmark": "blursynth.commands.evaluate:benchmark",
    "export-model": "blursynth.commands.export_model:export_model",
    "bgan": "blursynth.commands.bgan:bgan",
    "uid": "blursynth.commands.uid:uid",
    "build": "blursynth.commands.build:build",
}

#: Commands whose work is Numba's kernels, NumPy and OpenCV: they run without OpenBLAS's threads
#: (:func:`blursynth.commands._common.blas_on_one_thread`).
NUMBA_COMMANDS = frozenset({"blur", "trajectories", "frames-average", "render-leaves"})


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx):
        return sorted(name for name in COMMANDS if self._load(name) is not None)

    def get_command(self, ctx, name):
        return self._load(name)

    @staticmethod
    def _load(name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            # A command whose module is not part of this build is left out.
            if exc.name == module_name:
                return None
            raise
        return getattr(module, attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="blursynth")
@click.pass_context
def cli(ctx, debug):
    """Make (blurred, sharp) training pairs for image deblurring, and train on them."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    if ctx.invoked_subcommand in NUMBA_COMMANDS:
        # Here, before the command's options are read: reading one (a --crf) may load NumPy.
        from .commands._common import blas_on_one_thread

        blas_on_one_thread()


def _one_line(text: str) -> str:
    text = str(text)
    if "Original Traceback" in text:
        # An error raised in a torch DataLoader worker comes back with the worker's
        # traceback in its message; its last line is the error itself.
        last = [line for line in text.splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if last.split(": ", 1)[0].endswith("Error") else last
    return " ".join(text.split())


_DISK_FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


def _describe(exc: Exception) -> str:
    """One line for an error that is not the user's input: disk full and out of memory in words,
    anything else as ``Type: message`` (``cv2.error`` as ``OpenCV``, not a second ``error:``)."""
    text = _one_line(exc)
    if isinstance(exc, OSError) and (exc.errno in _DISK_FULL or re.search(r"\berrno (27|28|122)\b", text, re.I)):
        # pyarrow's write errors carry the errno only in their text.
        where = f" writing {exc.filename}" if exc.filename else ""
        return (f"disk full or file too large{where} ({exc.strerror or text}); free space or raise the file size "
                "limit, then rerun the same command: what was finished is kept.")
    name = type(exc).__name__
    native = re.fullmatch(r"OpenCV\([^)]*\) \S+: error: (.*)", text)
    if native:
        name, text = "OpenCV", native[1]
    elif name == "error":  # cv2.error, zlib.error, struct.error: the module says which
        name = f"{type(exc).__module__} error"
    if isinstance(exc, MemoryError) or "Insufficient memory" in text:
        return (f"out of memory ({name}{': ' + text if text else ''}); use smaller inputs or settings, "
                "or fewer --workers.")
    return f"{name}: {text} (rerun with --debug for the traceback)"


_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _show_warning(python_show, message, category, filename, lineno, file=None, line=None):
    """blursynth's own warnings as one ``warning:`` line, as commands print theirs (Python's format
    adds the file and source line); those of other libraries as Python shows them."""
    if issubclass(category, UserWarning) and os.path.abspath(filename).startswith(_PACKAGE):
        click.echo(f"warning: {_one_line(message)}", err=True)
    else:
        python_show(message, category, filename, lineno, file, line)


_signal_pid = None  # the process whose main() set _on_stop_signal


def _on_stop_signal(signum, frame):
    # Recorded before it is raised (blursynth._stopping): a raise inside a native library's
    # callback is lost, and the command's loops raise it again. A process forked from the
    # command's inherits the handler until it sets its own (a pool process, at once): there
    # SIGTERM does nothing, and its command stops it; SIGINT is Python's usual interrupt.
    from . import _stopping

    if os.getpid() == _signal_pid:
        _stopping.ask(signum)
    elif signum == signal.SIGINT:
        raise KeyboardInterrupt


def main(argv=None, *, _exiting: bool = False) -> int:
    """Entry point: run the CLI, turning known errors into one line and an exit code.
    ``_exiting``: the process ends right after (:func:`entry_point`)."""
    import threading

    from . import _stopping

    python_show = warnings.showwarning
    warnings.showwarning = lambda *args: _show_warning(python_show, *args)
    global _signal_pid
    main_thread = threading.current_thread() is threading.main_thread()
    python_handlers = {}
    if main_thread:  # only the main thread may set a handler
        _stopping.forget()
        _signal_pid = os.getpid()
        for sig in (signal.SIGINT, signal.SIGTERM):
            # A signal the process was started to ignore (`cmd &` in a script, a launcher that
            # shields its workers from Ctrl-C) stays ignored, as Python leaves it.
            if signal.getsignal(sig) is not signal.SIG_IGN:
                python_handlers[sig] = signal.signal(sig, _on_stop_signal)
        python_unraisable = _stopping.install_unraisable_hook()
    try:
        return _main(argv)
    finally:
        if _exiting and main_thread:
            # The command is over and its exit status set: a signal now (the end of a Ctrl-C
            # race) would only print a traceback from the clean-up or an exit handler.
            for sig in python_handlers:
                signal.signal(sig, signal.SIG_IGN)
        from ._progress import set_quiet

        set_quiet(False)  # a --quiet holds for its command only
        warnings.showwarning = python_show
        if main_thread and not _exiting:
            sys.unraisablehook = python_unraisable
            _restore_signals(python_handlers)  # last: a signal held back meanwhile arrives as it ends


def _restore_signals(handlers: dict) -> None:
    """Set the handlers :func:`main` replaced back, all of them even if a signal comes meanwhile:
    it waits, blocked, and reaches the handler set back (a second Ctrl-C at the very end)."""
    from . import _stopping

    blocked = set(handlers) if hasattr(signal, "pthread_sigmask") else set()
    if blocked:
        signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        _stopping.forget()
        for sig, handler in handlers.items():
            # None: the handler was set outside Python (an embedding program), which Python
            # cannot set back; the default is the nearest.
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)


def _main(argv) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    try:
        cli.main(args=argv, prog_name="blursynth", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort as exc:
        if isinstance(exc.__cause__, Terminated):
            click.echo("error: terminated (SIGTERM); rerun the same command to resume.", err=True)
            return 143
        click.echo("error: aborted; rerun the same command to resume.", err=True)
        return 130
    except click.ClickException as exc:
        if debug:
            raise
        hint = ""
        ctx = getattr(exc, "ctx", None)
        if ctx is not None:
            hint = f" (see '{ctx.command_path} --help')"
        click.echo(f"error: {_one_line(exc.format_message())}{hint}", err=True)
        return 2
    except BlursynthError as exc:
        if debug:
            raise
        click.echo(f"error: {_one_line(exc)}", err=True)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    except Exception as exc:  # a bug or an environment failure, not bad input
        from ._stopping import asked

        stop = exc.__cause__ if isinstance(exc.__cause__, KeyboardInterrupt) else asked()
        if stop is not None:
            # Raised by the signal's handler inside native code that then reported "a result
            # with an exception set" (Numba's dispatcher): the interrupt, not a failure.
            return _interrupted(stop)
        if debug:
            raise
        click.echo(f"error: {_describe(exc)}", err=True)
        return 1
    return 0


def _interrupted(exc: KeyboardInterrupt) -> int:
    """Say that the command was interrupted (Ctrl-C) or terminated (SIGTERM); its exit status."""
    what, code = ("terminated (SIGTERM)", 143) if isinstance(exc, Terminated) else ("interrupted", 130)
    click.echo(f"error: {what}; completed shards are kept, rerun the same command to resume.", err=True)
    return code


def entry_point():
    """The ``blursynth`` command: :func:`main`, then exit without tearing the interpreter down.

    The garbage collector is held off while the command starts (:mod:`blursynth._startup`)."""
    from ._startup import hold_for_startup

    hold_for_startup()
    _exit_now(main(_exiting=True))


def _observed() -> bool:
    """Whether a profiler, tracer or monitoring tool watches this process: from Python 3.12
    cProfile and coverage register with ``sys.monitoring`` (PEP 669) instead of
    ``sys.setprofile``/``settrace``."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        return True
    monitoring = getattr(sys, "monitoring", None)
    return monitoring is not None and any(monitoring.get_tool(i) is not None for i in range(6))


def _exit_now(code: int) -> None:
    """End the process with ``code`` once the exit handlers have run and the streams are flushed.

    The interpreter's own teardown (every module and object freed one by one, Numba's and LLVM's
    among them) costs about 0.2 s after a run that set up Numba's CPU target: a fifth of a one-pair
    run, and a stretch at the end of every run in which no core works. The operating system frees
    all of it at once. What a normal exit does that matters still happens: the ``atexit``
    handlers (multiprocessing's, which join the pools' processes; temporary folders') and the
    flush of stdout and stderr. Every file the commands write is closed by the code that opened
    it before :func:`main` returns (C-level buffers of native code are not flushed; none writes
    to stdout).
    While a thread that is not a daemon still runs, Python's exit waits for it, so this does too;
    under a profiler or a tracer (``python -m cProfile``, a debugger, coverage), which write their
    results after the program returns, the exit is Python's own.
    """
    import atexit
    import threading

    main_thread = threading.main_thread()
    if (_observed() or any(t is not main_thread and t.is_alive() and not t.daemon
                           for t in threading.enumerate())):
        sys.exit(code)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said on it
            pass
    os._exit(code)
