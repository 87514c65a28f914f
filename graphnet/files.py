"""Writing outputs so that no file is ever destroyed or left half-written.

- `atomic_write`: a regular file, or a path where nothing is, is written under a temporary name in
  the target's folder and renamed over it only when complete, so a failure leaves the old file or
  none. A character device or a FIFO that has a reader (`/dev/null`, `/dev/stdout`) cannot be
  replaced that way and must not be (renaming over /dev/null as root turns it into a plain file):
  it is written through. A folder, a block device, a socket or a FIFO with no reader is refused.
- `atomic_pair`: a file and its companion data file (an ONNX model and its external data),
  committed so that the target never names a data file that is not its own (see its docstring).
- New files get the usual `0o666 & ~umask`; a replaced file keeps its mode.
- `command`: while a command of the CLI runs, every file it reads is noted, and an output that is
  the same file as one of them (by device and inode, so through links too) is refused before it
  is touched; SIGTERM and SIGHUP unwind the command as Ctrl-C does, so its temporary files go.
  Python runs a signal handler only between bytecodes, so a signal that arrives inside a long
  NumPy call would wait for it: a watchdog thread, woken by the signal itself, gives the command
  `SIGNAL_GRACE_S` seconds to unwind, then removes its temporary files and ends the process.
"""

from __future__ import annotations

import errno
import io
import os
import re
import secrets
import shutil
import signal
import stat
import threading
import time
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import IO, Iterable, Iterator


from .errors import Location, SpecError

# (st_dev, st_ino) -> how the running command named the file, for the files it reads
_inputs: ContextVar[dict | None] = ContextVar("graphnet_command_inputs", default=None)

SIGNALS = ("SIGTERM", "SIGHUP")      # unwound like Ctrl-C (SIGKILL cannot be caught)


@contextmanager
def command(inputs: Iterable[str | Path | None] = (), outputs: Iterable[str | Path | None] = ()) -> Iterator[None]:
    """The scope of one CLI command: `inputs` (and every file read through `note_input` while it
    runs) may not be written; `outputs` are checked against the inputs known at the start, so a
    run is refused before it is done rather than after."""
    token = _inputs.set({})
    previous = _catch_signals()
    try:
        for path in inputs:
            if path:
                note_input(path)
        for path in outputs:
            if path:
                _refuse_input(Path(path))
        yield
    finally:
        _restore_signals(previous)
        _inputs.reset(token)


def note_input(path: str | Path) -> None:
    """Record a file the running command reads (nothing outside a command)."""
    seen = _inputs.get()
    if seen is None:
        return
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return
    seen.setdefault((st.st_dev, st.st_ino), str(path))


def _refuse_input(path: Path) -> None:
    seen = _inputs.get()
    if not seen:
        return
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return
    if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) in seen:
        given = seen[(st.st_dev, st.st_ino)]
        same = "" if os.path.abspath(given) == os.path.abspath(path) else f" (the same file as '{given}')"
        raise SpecError.at(Location(str(path)), f"this file is an input of the command{same}; "
                                                "writing the output here would destroy it")


SIGNAL_GRACE_S = 3.0
# the temporary files and folders being written now, for the watchdog to remove
_staged: set[str] = set()


class _Terminated(SystemExit):
    """A SIGTERM or SIGHUP, raised where the program is so that every cleanup runs; the exit
    status is the shell's for a signal, 128 + its number."""


def _on_signal(signum, frame):
    raise _Terminated(128 + signum)


def _catch_signals() -> dict:
    previous = {}
    for name in SIGNALS:
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        try:
            previous[sig] = signal.signal(sig, _on_signal)
        except ValueError:      # not the main thread: signals go to the main thread's handlers
            return previous
    read, write = os.pipe()
    os.set_blocking(write, False)
    ended = threading.Event()
    previous["wakeup"] = (signal.set_wakeup_fd(write, warn_on_full_buffer=False), write, ended)
    threading.Thread(target=_watchdog, args=(read, ended), daemon=True, name="graphnet-signals").start()
    return previous


def _watchdog(read: int, ended: threading.Event) -> None:
    """Wait for a signal's byte on the wakeup pipe (end-of-file when the command ends); if the
    command has not ended within the grace period, clean up and end the process as the signal
    would have."""
    try:
        got = os.read(read, 1)
    finally:
        os.close(read)
    if not got or ended.wait(SIGNAL_GRACE_S):
        return
    for name in list(_staged):
        if os.path.isdir(name):
            shutil.rmtree(name, ignore_errors=True)
        else:
            try:
                os.unlink(name)
            except OSError:
                pass
    os._exit(128 + got[0])


def _restore_signals(previous: dict) -> None:
    wakeup = previous.pop("wakeup", None)
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    if wakeup:
        old, write, ended = wakeup
        ended.set()
        signal.set_wakeup_fd(old)
        os.close(write)                 # the watchdog reads end-of-file and stops


def check_output(path: str | Path) -> os.stat_result | None:
    """What is at an output path, or None for nothing; refuses what can be neither replaced nor
    written through, and an input of the running command."""
    return _existing(Path(path))


def _existing(path: Path) -> os.stat_result | None:
    """What is at `path` (following links, as opening it would), or None; refuses what can be
    neither replaced nor written through."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise SpecError.at(Location(str(path)), f"cannot write here: {getattr(e, 'strerror', None) or e}") from None
    kind = _refused_kind(st.st_mode)
    if kind:
        raise SpecError.at(Location(str(path)), f"this is {kind}, not a file; the output needs a file name")
    _refuse_input(path)
    return st


def _refused_kind(mode: int) -> str | None:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return None


def _named(e: OSError, path: Path, tmp: str | None = None) -> OSError:
    """The error naming the file the user asked for, not a temporary one (or none: disk full)."""
    if e.errno is not None and e.filename in (None, tmp):
        return type(e)(e.errno, e.strerror, str(path))
    return e


def _create_beside(path: Path, name: str) -> tuple[int, str]:
    """A new file in `path`'s folder, created 0666 less the umask (mkstemp would make it 0600)."""
    folder = path.parent
    for _ in range(100):
        tmp = str(folder / name.format(secrets.token_hex(6)))
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666), tmp
        except FileExistsError:
            continue
        except OSError as e:
            raise _named(e, path, tmp) from None
    raise FileExistsError(f"no free temporary name beside {path}")


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb") -> Iterator[IO]:
    path = Path(path)
    st = _existing(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        with _write_through(path, st, mode) as f:
            yield f
        return
    fd, tmp = _create_beside(path, f".{path.name}.{{}}.tmp")
    _staged.add(tmp)
    try:
        if st is not None:
            os.fchmod(fd, stat.S_IMODE(st.st_mode))
        with os.fdopen(fd, mode) as f:
            try:
                yield f
                f.flush()
                os.fsync(f.fileno())
            except OSError as e:
                raise _named(e, path, tmp) from None
        _refuse_input(path)            # a library read while the output was being made
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise _named(e, path, tmp) from None
    except BaseException:
        _remove(tmp)
        raise
    finally:
        _staged.discard(tmp)


@contextmanager
def _write_through(path: Path, st: os.stat_result, mode: str) -> Iterator[IO]:
    """A character device or a FIFO, written in place as a stream. A FIFO is opened without
    blocking first: with no reader that fails at once, where a plain open would wait forever."""
    flags = os.O_WRONLY | getattr(os, "O_CLOEXEC", 0)
    try:
        if stat.S_ISFIFO(st.st_mode):
            fd = os.open(path, flags | os.O_NONBLOCK)
            os.set_blocking(fd, True)
        else:
            fd = os.open(path, flags)
    except OSError as e:
        if stat.S_ISFIFO(st.st_mode) and e.errno == errno.ENXIO:
            raise SpecError.at(Location(str(path)), "this is a FIFO with no reader; the output needs a file "
                                                    "name or a FIFO that is being read") from None
        raise _named(e, path) from None
    raw = _Stream(fd)
    f = io.BufferedWriter(raw) if "b" in mode else io.TextIOWrapper(io.BufferedWriter(raw), encoding="utf-8")
    try:
        yield f
        f.flush()
    except OSError as e:
        raise _named(e, path) from None
    finally:
        try:
            f.close()
        except OSError:
            pass


class _Stream(io.RawIOBase):
    """A file descriptor written as a stream that cannot seek or tell, whatever the device says:
    /dev/null accepts seeks and answers 0 to every tell, on which zipfile writes a broken archive."""

    def __init__(self, fd: int):
        self.fd = fd

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        return os.write(self.fd, data)

    def close(self) -> None:
        if not self.closed:
            os.close(self.fd)
        super().close()


def _remove(name: str | Path) -> None:
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass


# -- a file and its data file -------------------------------------------------------------------

@contextmanager
def atomic_pair(path: str | Path, suffix: str = ".data") -> Iterator[tuple[Path, Path]]:
    """Stage a file and its companion data file, then commit them together.

    Yields (file, data): paths in a temporary folder beside `path`, for the caller to write; the
    file must refer to the data by `data.name`. Two renames cannot be one atomic step, so the
    data is never renamed over a data file in use: it goes to `path + suffix` when nothing is
    there, else to `path.<random>` + suffix, and is linked into place without replacing anything.
    Only then is the file renamed over `path`, the one step that switches from the old pair to the
    new. A failure or a signal before it leaves the old pair as it was; after it, the data files
    of the old pair (`path + suffix` or `path.*` + suffix, never an input of the command) are
    removed.
    """
    path = Path(path)
    st = _existing(path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise SpecError.at(Location(str(path)), "a file with a separate data file must be written to a regular "
                                                "file, not a device or a FIFO")
    plain = path.with_name(path.name + suffix)
    data_name = plain.name if not os.path.lexists(plain) else f"{path.name}.{secrets.token_hex(6)}{suffix}"
    staging = Path(_mkdtemp_beside(path))
    _staged.add(str(staging))
    staged_file, staged_data = staging / path.name, staging / data_name
    try:
        yield staged_file, staged_data
        for staged in (staged_data, staged_file):
            _fsync(staged)
        data = path.with_name(data_name)
        _refuse_input(data)
        _refuse_input(path)
        try:
            os.link(staged_data, data)       # fails, rather than replaces, if the name was taken since
        except OSError as e:
            raise _named(e, data, str(staged_data)) from None
        try:
            if st is not None:
                os.chmod(staged_file, stat.S_IMODE(st.st_mode))
            os.replace(staged_file, path)
        except BaseException as e:
            _remove(data)
            raise (_named(e, path, str(staged_file)) if isinstance(e, OSError) else e) from None
        _remove_old_data(path, suffix, keep=data_name)
    finally:
        for leftover in staging.iterdir():
            _remove(leftover)
        staging.rmdir()
        _staged.discard(str(staging))


def _mkdtemp_beside(path: Path) -> str:
    # a folder that honours the umask like the files in it (mkdtemp makes it 0700)
    for _ in range(100):
        name = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.mkdir(name, 0o777)
            return name
        except FileExistsError:
            continue
        except OSError as e:
            raise _named(e, path, name) from None
    raise FileExistsError(f"no free temporary name beside {path}")


def _fsync(name: Path) -> None:
    fd = os.open(name, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_old_data(path: Path, suffix: str, keep: str) -> None:
    pattern = re.compile(re.escape(path.name) + r"(\.[0-9a-f]{12})?" + re.escape(suffix) + r"\Z")
    seen = _inputs.get() or {}
    for entry in os.scandir(path.parent):
        if entry.name == keep or not pattern.match(entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
            _remove(entry.path)
