"""Content-addressed stores for raw messages and attachments: in the database
(the default, SPEC §2: every instance on every host sees every blob, and a backup of
the database is a backup of everything) or as files under ``data_dir`` (one host).

Both offer ``put(data) -> sha256``, ``get(sha256) -> bytes`` and ``exists(sha256)``;
writing the same bytes twice is a no-op.

Database blobs are written in the caller's transaction (the raw message commits with
its ``inbound`` row, an attachment with its thread entry), in chunks of
``CHUNK_BYTES``, so that neither the driver nor the server ever holds a large blob as
one escaped value.

Files live at ``<root>/<aa>/<bb>/<sha256>``. A write goes to a temporary file in
the same folder, is fsynced, then renamed into place (and the folder fsynced),
so a crash leaves either the whole file or nothing, never half of one.
"""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import peewee as pw
from maild.storage.binding import bound
from maild.storage.models import Blob, BlobChunk

CHUNK_BYTES = 1 << 20


class StoreError(OSError):
    """The bytes could not be stored durably."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobMissingError(FileNotFoundError):
    """No blob with that digest (or an incomplete one)."""


class BlobStore(Protocol):
    def put(self, data: bytes) -> str: ...

    def get(self, digest: str) -> bytes: ...

    def exists(self, digest: str) -> bool: ...


class DatabaseStore:
    """Blobs in the ``blob`` and ``blob_chunk`` tables of ``db`` (bound while it works)."""

    def __init__(self, db: pw.Database) -> None:
        self.db = db

    def put(self, data: bytes) -> str:
        """Store ``data`` in the current transaction; return its SHA-256 hex digest."""
        digest = sha256_hex(data)
        if self.exists(digest):
            return digest
        view = memoryview(data)
        count = 0
        with bound(self.db), self.db.atomic():
            for seq, start in enumerate(range(0, len(view), CHUNK_BYTES)):
                piece = bytes(view[start : start + CHUNK_BYTES])
                # Another instance may be storing the same bytes: identical rows, ignored.
                BlobChunk.insert(blob=digest, seq=seq, data=piece).on_conflict_ignore().execute()
                count = seq + 1
            Blob.insert(sha256=digest, size=len(data), chunks=count).on_conflict_ignore().execute()
        return digest

    def get(self, digest: str) -> bytes:
        with bound(self.db):
            head = Blob.get_or_none(Blob.sha256 == digest)
            if head is None:
                raise BlobMissingError(errno.ENOENT, f"no blob {digest}")
            pieces = [bytes(piece) for piece in self._chunks(digest)]
        data = b"".join(pieces)
        if len(pieces) != head.chunks or len(data) != head.size:
            raise BlobMissingError(errno.EIO, f"blob {digest} is incomplete")
        return data

    def exists(self, digest: str) -> bool:
        with bound(self.db):
            return Blob.select().where(Blob.sha256 == digest).exists()

    def _chunks(self, digest: str) -> Iterator[bytes]:
        query = (
            BlobChunk.select(BlobChunk.data)
            .where(BlobChunk.blob == digest)
            .order_by(BlobChunk.seq)
            .tuples()
        )
        for (piece,) in query.iterator():
            yield piece


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
            # The store's folder as the file name: what is full, for the log and /healthz.
            raise StoreError(
                exc.errno, f"cannot store blob {digest}: {exc.strerror}", str(self.root)
            ) from exc
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


def import_files(store: DatabaseStore, root: Path) -> tuple[int, list[str]]:
    """Copy every file of a file store under ``root`` into the database, checking that
    its content still has the SHA-256 it is named by; return (copied, problems).

    One transaction per file: a large archive never holds one huge transaction, and an
    interrupted import simply resumes (blobs already in are skipped). Files are left in
    place; the caller says they may be removed.
    """
    copied = 0
    problems: list[str] = []
    if not root.is_dir():
        return copied, problems
    for path in sorted(p for p in root.glob("??/??/*") if p.is_file()):
        if path.name.startswith(".tmp-"):
            continue  # a write cut by a crash: never recorded, nothing refers to it
        if store.exists(path.name):
            continue
        data = path.read_bytes()
        if sha256_hex(data) != path.name:
            problems.append(f"{path}: content does not match its SHA-256 name; not imported")
            continue
        with store.db.atomic():
            store.put(data)
        copied += 1
    return copied, problems
