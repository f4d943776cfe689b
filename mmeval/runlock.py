"""One `mmeval run` at a time per run folder: an exclusive lock on `<run>/.lock`.

Two runs appending to one samples file do the work twice and interleave their lines; the second
one therefore stops at once, before reading or writing anything there, with one line naming the
holder's process id (it does not wait: a queue of runs on one folder is better made explicit, and
a wait would look like a hang). The lock is `flock(2)` on the open file: the kernel drops it when
the holder exits, kill -9 included, so a stale lock file never blocks a later run. It holds
between processes of one machine; on network file systems without flock support it may not.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
from pathlib import Path

from mmeval.errors import RunError

LOCK_NAME = ".lock"


class RunLock:
    """`with RunLock(run_dir):` holds the run folder for this process (created if missing)."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.path = run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunError(f"{self.run_dir}: cannot create the run folder's lock file ({exc.strerror})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunError(f"{self.run_dir}: in use by another mmeval run ({self.holder()}); wait for it to finish, "
                           "or choose another --run-name or --output") from None
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd

    def holder(self) -> str:
        """'pid 1234 on host, since ...' as the holder wrote it (it may not have yet)."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        if not info.get("pid"):
            return "pid not yet recorded"
        return f"pid {info['pid']} on {info.get('host', '?')}, since {info.get('since', '?')}"

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # no stale holder for the next run to name
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
