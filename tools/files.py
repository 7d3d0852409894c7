"""Files written atomically (temp file in the same folder, fsync, rename) and the temp files a killed writer leaves.

The run store sweeps those temp files when it opens (images, reports, the score table all write this way).
Nothing here knows about runs, so the store, the image writer and the pipeline can all build on it.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import StoreError

logger = logging.getLogger(__name__)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (it may belong to another user)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock for ``path`` (on ``.NAME.lock`` beside it) while the block runs, so two
    processes' read-modify-write of the same file happen one after the other. Where the platform has no
    ``fcntl`` (Windows) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd: int | None = None
    try:
        fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as e:  # a file system without locks (some network and FUSE mounts): as before, unlocked
        logger.debug("no lock for %s (%s): writing without one", path, e)
        if fd is not None:
            os.close(fd)
            fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)  # closing releases the lock


def write_atomic(path: Path, data: bytes, *, durable: bool = True, sync_dir: bool = False) -> None:
    """Write bytes to ``path`` atomically: temp file in the same folder, fsync (``durable``), rename.

    The rename makes the write all-or-nothing for readers and against a crash or kill of this process.
    ``durable`` also fsyncs the data before the rename, so after a power loss the name never points at
    an empty or partial file; ``sync_dir`` additionally fsyncs the folder so the rename itself survives
    a power loss (one more fsync, ~5 ms on a network block device).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        if sync_dir:
            dfd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StoreError(f"disk full while writing {path}; the image was not saved",
                             hint="free disk space (or point COMFYGEN_HOME at a larger disk) and retry") from e
        raise StoreError(f"cannot write {path}: {e.strerror or e}",
                         hint="check that COMFYGEN_HOME is writable") from e


def remove_stale_temp(root: Path | str) -> list[Path]:
    """Delete temp files left by writers that were killed mid-write (their pid is gone); return them."""
    removed = []
    for tmp in Path(root).rglob(".*.tmp"):
        parts = tmp.name.rsplit(".", 3)  # .<name>.<pid>.<rand>.tmp
        try:
            pid = int(parts[-3])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not pid_alive(pid):
            try:
                tmp.unlink()
                removed.append(tmp)
            except OSError:
                pass
    return removed
