"""The audit log of a served model: one JSON line per prediction, safe under concurrent requests.

Each record says when, which bundle (name, version, fingerprint), which runtime and precision,
the sha256 of every input file, and what came out (per model: probability and decision) or
why it failed — never a file name, a patient identifier or an image. Lines are appended with
one ``write`` on a file opened ``O_APPEND`` while holding an exclusive ``flock``, so records
of concurrent requests (threads or several server processes) never interleave; the file is
created readable by its owner only.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import threading
from pathlib import Path
from typing import Any


class AuditLog:
    """Append-only JSON-lines log at ``path`` (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write ``record`` (with ``time`` added, UTC) as one line; returns what was written."""
        entry = {"time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds"), **record}
        line = (json.dumps(entry, separators=(",", ":"), allow_nan=False, default=str) + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    view = memoryview(line)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        return entry

    def records(self) -> list[dict[str, Any]]:
        """Every record so far (for tests and reviews)."""
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line]
