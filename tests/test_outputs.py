"""dataset.outputs: the one output-folder claim, and atomic writes."""

import json
import os

import pytest

from blursynth.dataset.outputs import OutputKind, atomic_write_text, claim, hidden_or_log, temporary_path
from blursynth.errors import BadInputError

from .conftest import held_lock

RUN_LIKE = OutputKind(
    what="run",
    is_file="--out {out}: is a file; expected a folder for the run.",
    foreign="--out {out}: is a non-empty folder that is not a run (it holds {name}); choose a new or empty folder.",
    own=lambda name: name in ("run.json", "checkpoint.pt") or hidden_or_log(name),
)
MARKED = OutputKind(
    what="images",
    is_file="--out {out}: is a file.",
    foreign="--out {out}: holds other files ({name}).",
    unmarked="--out {out}: has {name} but no settings file.",
    own=lambda name: name.startswith("."),
    markers=("settings.json",),
    own_when_marked=lambda name: name.endswith(".png"),
    exists=None,
)


def test_new_folder_is_made_with_its_parents_and_undo_removes_them(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    c = claim(out, RUN_LIKE)
    assert out.is_dir() and not c.marked
    assert c.created == (out, out.parent, out.parent.parent)
    assert not list(out.iterdir())  # the write probe is gone
    (out / "run.json").write_text("{}")
    c.undo()
    assert not (tmp_path / "a").exists()


def test_create_false_makes_nothing(tmp_path):
    c = claim(tmp_path / "new", RUN_LIKE, create=False)
    assert c.created == () and not (tmp_path / "new").exists()


def test_existing_folder_is_not_undone(tmp_path):
    (tmp_path / "out").mkdir()
    c = claim(tmp_path / "out", RUN_LIKE)
    assert c.created == ()
    c.undo()
    assert (tmp_path / "out").is_dir()


def test_a_file_is_refused_with_the_kinds_message(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(BadInputError, match=r"^--out .*f: is a file; expected a folder for the run\.$"):
        claim(tmp_path / "f", RUN_LIKE)
    assert (tmp_path / "f").read_text() == "x"


def test_own_names_pass_and_a_foreign_one_is_named(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("run.json", ".tmp123", "train.log"):
        (out / name).write_text("")
    claim(out, RUN_LIKE)
    (out / "holiday.png").write_text("")
    with pytest.raises(BadInputError, match=r"not a run \(it holds 'holiday.png'\)"):
        claim(out, RUN_LIKE)


def test_markers_decide_which_names_are_own(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / ".hidden").write_text("")
    assert not claim(out, MARKED).marked  # only names it always owns: an empty folder to it
    (out / "0001.png").write_text("")
    with pytest.raises(BadInputError, match=r"has '0001.png' but no settings file"):
        claim(out, MARKED)
    (out / "settings.json").write_text("{}")
    assert claim(out, MARKED).marked
    (out / "notes.txt").write_text("")
    with pytest.raises(BadInputError, match=r"holds other files \('notes.txt'\)"):
        claim(out, MARKED)


def test_exists_is_refused_without_overwrite(tmp_path):
    kind = OutputKind(what="export", is_file="{out} file", foreign="{out} foreign {name}",
                      exists="--out {out} exists; choose a new folder or pass --overwrite.")
    (tmp_path / "x").mkdir()
    with pytest.raises(BadInputError, match="exists; choose a new folder"):
        claim(tmp_path / "x", kind)
    claim(tmp_path / "x", kind, overwrite=True)


def test_cannot_write_under_a_file_is_one_line_and_leaves_nothing(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInputError, match=r"cannot write there \(Not a directory\); choose a folder"):
        claim(tmp_path / "file" / "sub" / "out", RUN_LIKE)
    assert (tmp_path / "file").read_text() == "x" and [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs file permissions (not root)")
def test_cannot_write_in_a_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(BadInputError, match="cannot write there"):
            claim(locked / "out", RUN_LIKE)
        with pytest.raises(BadInputError, match="cannot write there"):
            claim(locked, RUN_LIKE)  # exists, but no file can be written in it
        assert not list(locked.iterdir())
    finally:
        locked.chmod(0o700)


def test_every_clean_up_of_temporaries_matches_the_names_temporary_path_gives(tmp_path):
    from blursynth.dataset.outputs import TEMPORARY

    for name in ("checkpoint.pt", "manifest.json", "export", "step-0000004.png", ".hidden"):
        m = TEMPORARY.fullmatch(temporary_path(tmp_path / name).name)
        assert m is not None and m["name"] == name
    assert TEMPORARY.fullmatch("checkpoint.pt.tmp12") is None  # not hidden: the user's file


def test_write_output_file_names_its_option_when_the_folder_is_busy(tmp_path):
    from blursynth.dataset.outputs import write_output_file

    with held_lock(tmp_path) as pid:
        with pytest.raises(BadInputError) as err:
            write_output_file(tmp_path / "s.json", b"{}", option="--json")
    assert str(err.value) == (f"--json {tmp_path / 's.json'}: another blursynth process (pid {pid}) is "
                              "writing there; wait for it to finish or choose another --json.")
    assert not (tmp_path / "s.json").exists()


def test_atomic_write_text_replaces_whole(tmp_path):
    atomic_write_text(tmp_path / "a.json", json.dumps({"a": 1}))
    atomic_write_text(tmp_path / "a.json", json.dumps({"a": 2}))
    assert json.loads((tmp_path / "a.json").read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_verify_refuses_a_kind_no_module_registered(tmp_path):
    from blursynth.dataset import verify_dataset
    from blursynth.errors import DatasetError

    from .conftest import write_tiny

    write_tiny(tmp_path / "d", n=2, shard_size=2)
    manifest = json.loads((tmp_path / "d/manifest.json").read_text())
    manifest["kind"] = "scenes"
    (tmp_path / "d/manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError, match=r"a 'scenes' dataset, a kind this program cannot check"):
        verify_dataset(tmp_path / "d")


def test_every_folder_writer_refuses_a_file_as_out(tmp_path, run_cli, photo):
    """One claim per writer: an --out that is a file is refused in one line and left alone."""
    from blursynth.sources.photos import save_rgb8

    from .conftest import error_line

    save_rgb8(tmp_path / "photos" / "p.png", photo)
    for side in ("blur", "sharp"):
        save_rgb8(tmp_path / "pairs" / side / "a.png", photo)
    target = tmp_path / "f"
    target.write_text("keep")
    commands = [
        ("trajectories", "--n", 2),
        ("blur", tmp_path / "photos", "--psf-source", "fresh", "--crop", "80x80"),
        ("dataset", "import", tmp_path / "pairs", "--layout", "flat"),
        ("render-leaves", "--n", 1, "--size", 32),
    ]
    for args in commands:
        r = run_cli(*args, "--out", target)
        assert r.code == 2 and "is a file" in error_line(r), (args, r.err)
        assert target.read_text() == "keep"


def test_build_claims_its_folder(tmp_path, run_cli):
    from .conftest import error_line
    from .conftest import TINY

    recipe = tmp_path / "tiny.toml"
    recipe.write_text(TINY)
    (tmp_path / "f").write_text("keep")
    r = run_cli("build", recipe, "--out", tmp_path / "f", "--dry-run")
    assert r.code == 2 and "is a file; expected a folder" in error_line(r)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep")
    r = run_cli("build", recipe, "--out", mine, "--dry-run")
    assert r.code == 2 and "not a build of this recipe (it holds 'thesis.tex')" in error_line(r)
    # A build's own names (its steps, inputs, recipe copy) and logs are its to resume, once the
    # marker a build writes first says it is one.
    build = tmp_path / "b"
    for name in ("bank", "synth", "inputs"):
        (build / name).mkdir(parents=True)
    for name in ("recipe.toml", "build.json", "build.log"):
        (build / name).write_text("")
    r = run_cli("build", recipe, "--out", build, "--dry-run")
    assert r.code == 2 and "holds a build.json that blursynth did not write" in error_line(r)
    (build / ".blursynth-build.json").write_text("{}")
    assert run_cli("build", recipe, "--out", build, "--dry-run").code == 0


def test_lock_output_refuses_a_second_process_and_is_released_when_it_ends(tmp_path):
    from blursynth.dataset.outputs import LOCK_NAME, lock_output

    out = tmp_path / "out"
    with held_lock(out) as pid:
        with pytest.raises(BadInputError) as err:
            with lock_output(out):
                pass
    assert str(err.value) == (
        f"--out {out}: another blursynth process (pid {pid}) is writing there; "
        "wait for it to finish or choose another --out."
    )
    with lock_output(out):  # the kernel released it with the process
        pass
    assert [p.name for p in out.iterdir()] == [LOCK_NAME]
    claim(out, RUN_LIKE)  # the lock file is hidden: every kind owns it


def test_lock_output_nests_in_one_thread_and_refuses_another_thread(tmp_path):
    import threading

    from blursynth.dataset.outputs import lock_output

    errors = []

    def other():
        try:
            with lock_output(tmp_path):
                pass
        except BadInputError as exc:
            errors.append(str(exc))

    with lock_output(tmp_path):
        with lock_output(tmp_path / "."):  # the writer inside a command that locked the same folder
            pass
        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert errors == [f"--out {tmp_path}: another thread of this process is writing there; "
                      "wait for it to finish or choose another --out."]
    with lock_output(tmp_path):  # released after the outer block
        t = threading.Thread(target=other)
    t.start()
    t.join()
    assert len(errors) == 1


def test_lock_output_keep_false_removes_the_file_and_a_waiting_opener_locks_a_fresh_one(tmp_path, monkeypatch):
    import fcntl
    import subprocess
    import sys

    from blursynth.dataset.outputs import LOCK_NAME, lock_output

    (tmp_path / "mine.txt").write_text("")
    with lock_output(tmp_path, keep=False):
        assert (tmp_path / LOCK_NAME).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]
    with lock_output(tmp_path, keep=False):
        with held_lock(tmp_path / "other"):  # unrelated folders do not interfere
            pass
    with held_lock(tmp_path) as pid:
        with pytest.raises(BadInputError, match=f"pid {pid}"):
            with lock_output(tmp_path, keep=False):
                pass

    # Another process holds the lock with keep=False; this one opens its lock file, and before it
    # tries the lock the holder finishes: removes the file and releases it. The lock this one then
    # gets is on a file no longer in the folder, so it must open and lock a fresh one.
    code = ("import sys; from blursynth.dataset.outputs import lock_output\n"
            "with lock_output(sys.argv[1], keep=False):\n"
            "    print('locked', flush=True); sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline() == "locked\n"
    real_flock, locked = fcntl.flock, []

    def flock_after_the_holder_finishes(fd, op):
        if not locked:
            holder.communicate("")  # it removes the file it held, and exits
        locked.append(os.fstat(fd).st_nlink)
        return real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_the_holder_finishes)
    with lock_output(tmp_path, keep=False):
        assert holder.returncode == 0
        assert locked == [0, 1]  # the removed file, then a fresh one in the folder
        assert (tmp_path / LOCK_NAME).read_text().split()[:2] == [str(os.getpid()), os.uname().nodename]
    assert not (tmp_path / LOCK_NAME).exists()


def test_lock_output_on_a_file_system_without_locks_warns_and_writes(tmp_path, monkeypatch):
    import errno
    import fcntl

    from blursynth.dataset.outputs import lock_output

    def no_locks(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="does not support locks"):
        with lock_output(tmp_path):
            (tmp_path / "x").write_text("")
    assert (tmp_path / "x").exists()


@pytest.mark.slow  # starts a subprocess
def test_a_lock_whose_recorded_holder_has_ended_says_a_process_it_started_holds_it(tmp_path):
    # A pool process shares its command's lock; should it outlive the command, the pid the lock
    # names is gone, and "wait for it to finish" would point at nothing.
    import fcntl
    import subprocess
    import sys

    from blursynth.dataset.outputs import LOCK_NAME, _lock_record, lock_output

    out = tmp_path / "out"
    out.mkdir()
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.pwrite(fd, _lock_record().replace(str(os.getpid()), str(ended.pid), 1).encode(), 0)
        with pytest.raises(BadInputError) as err:
            with lock_output(out):
                pass
    finally:
        os.close(fd)
    assert str(err.value) == (f"--out {out}: blursynth process {ended.pid} has ended, but a process it started "
                              "still holds the folder (a pool process ends within a second of its command; if "
                              f"it does not, 'fuser -v {out / LOCK_NAME}' names it); rerun then.")


@pytest.mark.slow  # starts a subprocess
@pytest.mark.parametrize("record", ["{pid}", "{pid} another-host {ns}", "{pid} {host} 1", "", "x y z"])
def test_a_lock_holder_is_said_to_have_ended_only_where_its_pid_means_a_process_here(tmp_path, record):
    # A pid recorded by an older blursynth, on another host (a network file system's lock) or in
    # another pid namespace (a container sharing the folder) names no process of ours.
    import subprocess
    import sys

    from blursynth.dataset.outputs import _holder_ended, _lock_record

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    _, host, ns = _lock_record().split()
    assert _holder_ended(f"{ended.pid} {host} {ns}")
    assert not _holder_ended(f"{os.getpid()} {host} {ns}")
    assert not _holder_ended(record.format(pid=ended.pid, host=host, ns=ns))
