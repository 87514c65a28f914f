"""files.py: outputs never destroy a file. What is at the target decides how it is written (a
regular file is replaced, a device or a read FIFO written through, anything else refused); modes
follow the umask and the replaced file; no output may be one of the command's inputs; a signal
unwinds like Ctrl-C; a file and its data file are switched in one step; .npz names are just names."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import textwrap
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest

from graphnet.errors import SpecError
from graphnet.files import atomic_pair, atomic_write, command, note_input
from graphnet.weights import save_npz

ROOT = Path(__file__).resolve().parents[1]


def _write(path, data: bytes = b"new") -> None:
    with atomic_write(path) as f:
        f.write(data)


# -- what is at the target ---------------------------------------------------------------------

def test_dev_null_is_written_through_not_replaced():
    before = os.stat("/dev/null")
    _write("/dev/null", b"x" * 100_000)
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and (after.st_rdev, after.st_ino) == (before.st_rdev, before.st_ino)


def test_an_npz_written_through_a_pipe_is_whole(tmp_path):
    # /dev/stdout into a pipe is a FIFO; zipfile must not trust a device's tell() (/dev/null says 0)
    script = textwrap.dedent("""
        import numpy as np
        from graphnet.weights import save_npz
        save_npz('/dev/stdout', {'a': np.arange(5.0), 'b': np.ones((2, 3), np.float32)})
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    (tmp_path / "got.npz").write_bytes(done.stdout)
    with np.load(tmp_path / "got.npz") as got:
        np.testing.assert_array_equal(got["a"], np.arange(5.0))
        np.testing.assert_array_equal(got["b"], np.ones((2, 3), np.float32))


def test_a_fifo_with_no_reader_is_refused_at_once(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(SpecError, match="a FIFO with no reader") as info:
        _write(fifo)
    assert str(info.value).startswith(f"{fifo}:1:1: error:")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_fifo_with_a_reader_is_written_through(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    try:
        for _ in range(1000):           # open(2) for reading blocks until the writer opens too
            try:
                _write(fifo, b"through the pipe")
                break
            except SpecError:           # the reader has not opened its end yet
                threading.Event().wait(0.01)
    finally:
        reader.join(10)
    assert got == [b"through the pipe"]


def test_a_folder_is_refused_naming_it(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(SpecError, match="this is a folder, not a file") as info:
        _write(folder)
    assert str(info.value).startswith(f"{folder}:1:1: error:")
    assert list(folder.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_symlink_to_dev_null_leaves_the_device_alone(tmp_path):
    link = tmp_path / "sink"
    link.symlink_to("/dev/null")
    _write(link, b"abc")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode) and link.is_symlink()


# -- modes -------------------------------------------------------------------------------------

def test_new_files_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        _write(tmp_path / "a.bin")
        with atomic_pair(tmp_path / "m.onnx") as (model, data):
            model.write_bytes(b"model")
            data.write_bytes(b"data")
    finally:
        os.umask(old)
    for name in ("a.bin", "m.onnx", "m.onnx.data"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o640, name


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o664, 0o444])
def test_a_replaced_file_keeps_its_mode(tmp_path, mode):
    target = tmp_path / "w.npz"
    target.write_bytes(b"old")
    os.chmod(target, mode)
    _write(target)
    assert target.read_bytes() == b"new" and stat.S_IMODE(os.stat(target).st_mode) == mode


# -- errors name the user's file -----------------------------------------------------------------

def test_disk_full_names_the_target_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "out.npz"
    target.write_bytes(b"old")

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        _write(target)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.npz"]


def test_a_missing_folder_names_the_target(tmp_path):
    target = tmp_path / "no" / "such" / "x.onnx"
    for write in (lambda: _write(target), lambda: atomic_pair(target).__enter__()):
        with pytest.raises(FileNotFoundError) as info:
            write()
        assert info.value.filename == str(target)


# -- outputs that are inputs -----------------------------------------------------------------------

def test_an_input_of_the_command_is_never_an_output(tmp_path):
    spec, other = tmp_path / "spec.yaml", tmp_path / "out.npz"
    spec.write_bytes(b"spec")
    (tmp_path / "hard.yaml").hardlink_to(spec)
    (tmp_path / "soft.yaml").symlink_to(spec)
    with command([spec]):
        _write(other)                       # anything else is fine
        for name in ("spec.yaml", "hard.yaml", "soft.yaml"):
            with pytest.raises(SpecError, match="this file is an input of the command") as info:
                _write(tmp_path / name)
            assert str(info.value).startswith(f"{tmp_path / name}:1:1: error:")
    assert spec.read_bytes() == b"spec" and other.read_bytes() == b"new"
    _write(spec)                            # outside a command, the Python API may write anything
    assert spec.read_bytes() == b"new"


def test_an_output_named_at_the_start_is_refused_before_the_command_runs(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(b"spec")
    ran = []
    with pytest.raises(SpecError, match="an input of the command"):
        with command([spec], [tmp_path / "spec.yaml"]):
            ran.append(True)
    assert ran == []


def test_a_file_read_during_the_command_is_guarded_too(tmp_path):
    lib = tmp_path / "lib.yaml"
    lib.write_bytes(b"blocks")
    with command():
        note_input(lib)                     # as source.read_text does for every spec and library
        with pytest.raises(SpecError, match="an input of the command"):
            _write(lib)
        with pytest.raises(SpecError, match="an input of the command"):
            with atomic_pair(tmp_path / "lib.yaml") as (model, data):
                model.write_bytes(b"m")
                data.write_bytes(b"d")
    assert lib.read_bytes() == b"blocks" and sorted(p.name for p in tmp_path.iterdir()) == ["lib.yaml"]


# -- signals -------------------------------------------------------------------------------------

@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("writer", ["atomic_write", "atomic_pair"])
def test_a_signal_mid_write_unwinds_and_leaves_no_temporary_file(tmp_path, signame, writer):
    # the process signals itself half way through writing, so the moment is exact
    script = textwrap.dedent(f"""
        import os, signal
        from graphnet.files import atomic_pair, atomic_write, command
        with command():
            if "{writer}" == "atomic_write":
                with atomic_write("out.bin") as f:
                    f.write(b"half")
                    os.kill(os.getpid(), signal.{signame})
                    f.write(b"never")
            else:
                with atomic_pair("m.onnx") as (model, data):
                    data.write_bytes(b"data")
                    os.kill(os.getpid(), signal.{signame})
                    model.write_bytes(b"model")
        print("not reached")
    """)
    (tmp_path / "out.bin").write_bytes(b"old")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    import signal
    assert done.returncode == 128 + getattr(signal, signame), done.stderr
    assert "not reached" not in done.stdout and "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    assert (tmp_path / "out.bin").read_bytes() == b"old"


@pytest.mark.parametrize("writer", ["atomic_write", "atomic_pair"])
def test_a_signal_inside_a_long_numpy_call_still_ends_the_command_and_cleans_up(tmp_path, writer):
    # Python runs its handler only when the call returns: here, minutes later (a NumPy run at
    # --max-compute none). The watchdog ends it after the grace period, removing the temporary files.
    from graphnet.files import SIGNAL_GRACE_S
    script = textwrap.dedent(f"""
        import numpy as np, sys
        from graphnet.files import atomic_pair, atomic_write, command
        v = np.ones(400, np.float32)
        with command():
            if "{writer}" == "atomic_write":
                with atomic_write("out.bin") as f:
                    f.write(b"half")
                    print("started", flush=True)
                    np.einsum("i,j,k,l->", v, v, v, v)          # 25.6 G iterations in C
            else:
                with atomic_pair("m.onnx") as (model, data):
                    data.write_bytes(b"data")
                    print("started", flush=True)
                    np.einsum("i,j,k,l->", v, v, v, v)
        print("not reached")
    """)
    (tmp_path / "out.bin").write_bytes(b"old")
    import signal
    import time
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout.readline() == "started\n"
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert time.monotonic() - sent >= SIGNAL_GRACE_S * 0.9      # it waited for the command first
    assert "not reached" not in out and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    assert (tmp_path / "out.bin").read_bytes() == b"old"


def test_a_command_that_ends_after_a_signal_is_not_ended_by_the_watchdog():
    # in a library caller's process (this one), Ctrl-C caught by the caller must not end it later
    import signal
    import time
    from graphnet.files import SIGNAL_GRACE_S
    with pytest.raises(KeyboardInterrupt):
        with command():
            signal.raise_signal(signal.SIGINT)
    import threading
    time.sleep(SIGNAL_GRACE_S + 0.5)
    # still running, and no watchdog is left waiting to end the process
    assert not any(t.name == "graphnet-signals" for t in threading.enumerate())


def test_command_restores_the_signal_handlers():
    import signal
    before = signal.getsignal(signal.SIGTERM)
    with command():
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


# -- a file and its data file ------------------------------------------------------------------------

def _pair(path, model: bytes, data: bytes) -> None:
    with atomic_pair(path) as (staged_model, staged_data):
        staged_data.write_bytes(data)
        staged_model.write_bytes(model + b" -> " + staged_data.name.encode())


def _referenced(path: Path) -> Path:
    return path.with_name(path.read_bytes().split(b" -> ")[1].decode())


def test_a_pair_is_switched_whole_and_the_old_data_goes(tmp_path):
    path = tmp_path / "m.onnx"
    _pair(path, b"one", b"data one")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]
    for n in ("two", "three", "four"):
        _pair(path, n.encode(), f"data {n}".encode())
        assert _referenced(path).read_bytes() == f"data {n}".encode()
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["m.onnx", _referenced(path).name])


def test_a_failed_switch_leaves_the_old_pair_whole(tmp_path, monkeypatch):
    path = tmp_path / "m.onnx"
    _pair(path, b"old", b"old data")
    real = os.replace

    def broken(src, dst):
        if Path(dst) == path:
            raise OSError(errno.EIO, "I/O error")
        return real(src, dst)
    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError) as info:
        _pair(path, b"new", b"new data")
    assert info.value.filename == str(path)
    assert path.read_bytes().startswith(b"old") and _referenced(path).read_bytes() == b"old data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx", "m.onnx.data"]


def test_a_failure_while_staging_leaves_nothing(tmp_path):
    path = tmp_path / "m.onnx"
    with pytest.raises(RuntimeError):
        with atomic_pair(path) as (model, data):
            data.write_bytes(b"data")
            raise RuntimeError("the checker says no")
    assert list(tmp_path.iterdir()) == []


def test_a_pair_is_not_written_through_a_device():
    with pytest.raises(SpecError, match="must be written to a regular file"):
        atomic_pair("/dev/null").__enter__()


def test_old_data_that_is_an_input_is_kept(tmp_path):
    path = tmp_path / "m.onnx"
    _pair(path, b"one", b"data one")
    with command([tmp_path / "m.onnx.data"]):
        _pair(path, b"two", b"data two")
    assert (tmp_path / "m.onnx.data").read_bytes() == b"data one"


# -- .npz ----------------------------------------------------------------------------------------

def test_npz_names_that_are_numpy_savez_parameters_are_kept(tmp_path):
    arrays = {"file": np.arange(3), "allow_pickle": np.ones(2, np.float32), "args": np.zeros((1, 2)),
              "kwds": np.array(True), "x.y/z": np.arange(4, dtype=np.int8).reshape(2, 2)}
    save_npz(tmp_path / "a.npz", arrays)
    with np.load(tmp_path / "a.npz", allow_pickle=False) as got:
        assert sorted(got.files) == sorted(arrays)
        for name, value in arrays.items():
            assert got[name].dtype == value.dtype
            np.testing.assert_array_equal(got[name], value)


def test_npz_layout_is_numpy_savez_s(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.array(7)}
    save_npz(tmp_path / "ours.npz", arrays)
    np.savez(tmp_path / "numpys.npz", **arrays)
    with zipfile.ZipFile(tmp_path / "ours.npz") as ours, zipfile.ZipFile(tmp_path / "numpys.npz") as theirs:
        assert [(i.filename, i.compress_type) for i in ours.infolist()] == \
               [(i.filename, i.compress_type) for i in theirs.infolist()]
        for name in ours.namelist():
            assert ours.read(name) == theirs.read(name)
