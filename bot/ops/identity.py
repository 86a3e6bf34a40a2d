"""A stable name for this process's job leases, so that a restarted process takes its own
jobs back at once instead of waiting for their leases to expire.

The name is ``WHISPER_IT_WORKER_ID`` if set, else ``host:role:slot``, where the slot is
the lowest one no live process of that role holds on this host. A slot is held with an
exclusive lock on a file in ``DATA_DIR/run``: the operating system releases it when the
process dies however it dies, so a restarted process finds its old slot free, while two
live processes never share a name (two names: two sets of leases honoured).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

LOCK_SUBDIR = "run"
MAX_SLOTS = 256
_UNSAFE_FILE_CHARS = re.compile(r"[^A-Za-z0-9._-]")


class IdentityTaken(ValueError):
    """The configured worker id is held by another live process."""


@dataclass(frozen=True)
class WorkerIdentity:
    name: str
    _lock: IO[bytes] | None  # None where the file system has no locks

    def release(self) -> None:
        """Give the name back (also happens when the process exits)."""
        if self._lock is not None and not self._lock.closed:
            self._lock.close()


def claim_identity(data_dir: Path, role: str, configured: str | None = None) -> WorkerIdentity:
    """This process's lease owner name, held until ``release`` or exit."""
    lock_dir = data_dir / LOCK_SUBDIR
    lock_dir.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    try:
        if configured:
            lock = _try_lock(lock_dir, configured)
            if lock is None:
                raise IdentityTaken(f"another running process uses the worker id {configured!r}")
            return WorkerIdentity(configured, lock)
        for slot in range(MAX_SLOTS):
            name = f"{host}:{role}:{slot}"
            lock = _try_lock(lock_dir, name)
            if lock is not None:
                return WorkerIdentity(name, lock)
    except UnsupportedLocking as exc:
        # A file system without locks (some network shares): no name can be proven
        # unused, so a fresh one (or the configured one, on the operator's word) is used;
        # a restart then waits for the old leases to expire, as without stable names.
        name = configured or f"{host}:{role}:{os.getpid()}-{uuid.uuid4().hex[:8]}"
        log.warning("no file locks in %s (%s): job leases named %s", lock_dir, exc, name)
        return WorkerIdentity(name, None)
    raise IdentityTaken(f"all {MAX_SLOTS} slots of {host}:{role} are held by live processes")


class UnsupportedLocking(OSError):
    """The file system of DATA_DIR cannot lock files."""


def _try_lock(lock_dir: Path, name: str) -> IO[bytes] | None:
    """The locked file, or None if a live process holds it."""
    path = lock_dir / f"{_UNSAFE_FILE_CHARS.sub('_', name)}.lock"
    handle = path.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    except OSError as exc:  # ENOLCK, EOPNOTSUPP, ...
        handle.close()
        raise UnsupportedLocking(exc.errno, exc.strerror) from exc
    return handle
