"""Content-addressed file stores for raw messages and attachments.

Files live at ``<root>/<aa>/<bb>/<sha256>``. A write goes to a temporary file in
the same folder, is fsynced, then renamed into place (and the folder fsynced),
so a crash leaves either the whole file or nothing, never half of one. Writing
the same bytes twice is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


class StoreError(OSError):
    """The bytes could not be stored durably."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ContentStore:
    """A folder of immutable blobs named by their SHA-256."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def put(self, data: bytes) -> str:
        """Store ``data`` durably; return its SHA-256 hex digest."""
        digest = sha256_hex(data)
        target = self.path_for(digest)
        if target.exists() and target.stat().st_size == len(data):
            return digest
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
            except BaseException:
                with _suppress_oserror():
                    os.unlink(tmp)
                raise
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StoreError(exc.errno, f"cannot store blob {digest}: {exc.strerror}") from exc
        return digest

    def get(self, digest: str) -> bytes:
        return self.path_for(digest).read_bytes()

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).exists()


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return isinstance(exc, OSError)


def raw_store(data_dir: Path) -> ContentStore:
    return ContentStore(Path(data_dir) / "raw")


def attachment_store(data_dir: Path) -> ContentStore:
    return ContentStore(Path(data_dir) / "attachments")
