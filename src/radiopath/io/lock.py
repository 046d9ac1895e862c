"""A folder lock that names its holder and cannot go stale.

A run folder is locked while a run writes it (``RUN/.lock``). The lock is an exclusive
``flock`` on that file, held for as long as the process lives: the kernel releases it when the
process ends in any way — finished, crashed, ``kill -9`` — so a lock left by a killed run is
simply taken over by the next one, with no stale-lock heuristics. The file's content says who
holds it (process id, host, start time, command), so a second run into the same folder is
refused with a message that names the holder.

``flock`` is per host; on a network file system shared by several machines it may not see a
lock held elsewhere (NFS maps it to byte-range locks on most current servers, which do work).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from radiopath.errors import RadiopathError


class FolderLockedError(RadiopathError):
    """Another live process holds the folder's lock; the message names it."""


def holder(path: str | Path) -> dict[str, Any]:
    """What a lock file says about its holder ({} when unreadable)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def folder_lock(folder: str | Path, name: str = ".lock", what: str = "run") -> Iterator[Path]:
    """Hold ``folder/name`` exclusively for the block (the folder is created if needed).

    Raises:
        FolderLockedError: a live process holds it (pid, host, start time and command named).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            h = holder(path)
            raise FolderLockedError(
                f"{folder} is in use by another {what}: process {h.get('pid', '?')} on {h.get('host', '?')}, "
                f"started {h.get('started', '?')} ({h.get('command', '?')}); wait for it to finish, or "
                "choose another --out"
            ) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": " ".join(sys.argv)[:300],
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
