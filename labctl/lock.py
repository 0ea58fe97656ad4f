"""One owner per station: an OS lock on the station's instrument addresses.

The process that connects to a station's instruments holds an exclusive
``flock`` on a lock file named after the backend and the set of VISA addresses,
for as long as it stays connected.  A second process (another run, a ``station
check``, a second GUI) finds the lock taken and is told who holds it::

    station in use by run 20261129-141502-protocol (pid 4242, labctl run protocol, since 14:15:02)

The kernel releases the lock when the holder dies, however it dies, so a
stale lock never blocks a station.  The in-process virtual lab needs no lock:
each process has its own.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from labctl.errors import LabctlError

try:
    import fcntl
except ImportError:  # Windows: msvcrt below
    fcntl = None


class StationBusy(LabctlError):
    """Another process owns the station's instruments (exit 2: nothing was sent)."""

    exit_code = 2


def lock_dir() -> Path:
    return Path(os.environ.get("LABCTL_LOCK_DIR") or Path(tempfile.gettempdir()) / "labctl-locks")


def lock_path(backend: str, addresses: list[str]) -> Path:
    key = "\n".join([backend or "system-visa", *sorted(a.upper() for a in addresses)])
    return lock_dir() / f"station-{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"


class StationLock:
    """Exclusive, non-blocking; ``describe()`` updates what others are told."""

    def __init__(self, backend: str, addresses: list[str], name: str = ""):
        self.path = lock_path(backend, addresses)
        self.name = name
        self._fd: int | None = None
        self.info = {"pid": os.getpid(), "command": " ".join(["labctl", *sys.argv[1:3]]),
                     "since": time.strftime("%H:%M:%S"), "station": name, "run": None}

    def acquire(self) -> "StationLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            _lock(fd)
        except OSError:
            os.close(fd)
            raise StationBusy(f"station {self.name!r} is in use by {self.holder()}; nothing was sent to its "
                              "instruments. Wait for that run to end (or stop it there), then try again") from None
        self._fd = fd
        self._write()
        return self

    def describe(self, **info) -> None:
        self.info.update(info)
        if self._fd is not None:
            self._write()

    def _write(self) -> None:
        data = json.dumps(self.info).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if not info:
            return "another process"
        what = f"run {info['run']}" if info.get("run") else info.get("command", "labctl")
        return f"{what} (pid {info.get('pid', '?')}, {info.get('command', 'labctl')}, since {info.get('since', '?')})"

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        except OSError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _lock(fd: int) -> None:
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    else:  # pragma: no cover - Windows
        import msvcrt

        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
