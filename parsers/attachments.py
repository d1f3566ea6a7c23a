"""Attachment policy helpers: decide whether one file from a mail may be kept (pure).

Sole purpose: turn a sender-supplied filename and payload into an
``AttachmentCheck`` (SPEC §3 "Attachments"): a safe filename, a content type
derived from the bytes rather than from the sender's claim, and, when refused,
a machine-readable reason code plus a short English reason.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection
from dataclasses import dataclass

import filetype

REASON_EXTENSION_NOT_ALLOWED = "extension_not_allowed"
REASON_CONTENT_MISMATCH = "content_mismatch"
REASON_TOO_LARGE = "too_large"
REASON_EMPTY = "empty"
REASON_BAD_FILENAME = "bad_filename"

# Extensions naming the same format; the first of each group is the canonical one.
_SAME_FORMAT: tuple[frozenset[str], ...] = (
    frozenset({"jpg", "jpeg", "jpe", "jfif"}),
    frozenset({"png", "apng"}),
    frozenset({"tif", "tiff"}),
    frozenset({"heic", "heif"}),
    frozenset({"mpg", "mpeg"}),
    frozenset({"midi", "mid"}),
    frozenset({"jpx", "jp2"}),
)
# Office and e-book formats are ZIP containers; the sniffer may only see the ZIP.
_ZIP_CONTAINERS = frozenset({"docx", "xlsx", "pptx", "odt", "ods", "odp", "epub"})
# What Windows (or a careless viewer) would run: never accepted behind another extension.
_EXECUTABLE_EXTENSIONS = frozenset(
    {
        "exe", "com", "scr", "pif", "bat", "cmd", "msi", "msp", "dll", "cpl", "hta",
        "vbs", "vbe", "js", "jse", "wsf", "wsh", "ps1", "jar", "lnk", "reg", "sh", "apk",
    }
)  # fmt: skip
# Formats the magic-byte sniffer can recognise: a file claiming one of these must prove it.
_SNIFFABLE = frozenset(kind.extension.lower() for kind in filetype.types)
# Readers accept a PDF header anywhere in the first KiB (some generators prepend junk).
_PDF_HEADER_WINDOW = 1024

_WHITESPACE = re.compile(r"\s+")
# Content types by extension. A fixed table rather than ``mimetypes``: that module reads
# the host's /etc/mime.types, so answers (and tests) would differ between machines.
_TYPES_BY_EXTENSION = {
    "jpg": "image/jpeg", "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif",
    "webp": "image/webp", "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff",
    "heic": "image/heic", "svg": "image/svg+xml", "pdf": "application/pdf",
    "txt": "text/plain", "csv": "text/csv", "log": "text/plain", "xml": "application/xml",
    "html": "text/html", "htm": "text/html", "eml": "message/rfc822", "zip": "application/zip",
    "rar": "application/vnd.rar", "7z": "application/x-7z-compressed",
    "doc": "application/msword", "xls": "application/vnd.ms-excel",
    "ppt": "application/vnd.ms-powerpoint",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "exe": "application/x-msdownload", "msi": "application/x-msi",
}  # fmt: skip


@dataclass(frozen=True)
class AttachmentCheck:
    """Outcome of checking one attachment against the policy."""

    accepted: bool
    filename: str  # sanitized (possibly derived) name to store or to list as refused
    content_type: str  # from the bytes when they were recognised, else from the name
    reason: str | None  # short English explanation when refused
    reason_code: str | None  # one of the REASON_* constants when refused


def sanitize_filename(name: str, max_len: int = 120) -> str:
    """Return ``name`` safe to store and show: no path, no control characters, capped.

    The extension is kept when the name is shortened. Returns "" when nothing
    usable is left; the caller then names the file itself.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[/\\]", name)[-1]
    name = _WHITESPACE.sub(" ", name)
    # Control, format (right-to-left override, zero-width) and lone surrogate characters.
    name = "".join(ch for ch in name if unicodedata.category(ch) not in {"Cc", "Cf", "Cs"})
    name = name.strip()
    # Windows drops trailing dots and spaces ("fatura.exe." runs as fatura.exe); a
    # leading dot hides the file or makes it a dotfile.
    name = name.lstrip(". ").rstrip(". ")
    if max_len > 0 and len(name) > max_len:
        stem, dot, ext = name.rpartition(".")
        if dot and stem and 0 < len(ext) < max_len // 2:
            name = stem[: max_len - len(ext) - 1].rstrip(". ") + "." + ext
        else:
            name = name[:max_len].rstrip(". ")
    return name


def sniff_type(payload: bytes) -> tuple[str, str] | None:
    """(extension, mime type) recognised from the payload's magic bytes, or None."""
    if not payload:
        return None
    try:
        kind = filetype.guess(bytes(payload[:8192]))
    except Exception:  # the sniffer must never take a message down with it
        kind = None
    if kind is not None:
        return kind.extension.lower(), kind.mime.lower()
    if b"%PDF-" in payload[:_PDF_HEADER_WINDOW]:
        return "pdf", "application/pdf"
    return None


def guess_content_type(filename: str) -> str:
    """Content type implied by the filename's extension (application/octet-stream if unknown)."""
    _, dot, ext = filename.rpartition(".")
    if not dot:
        return "application/octet-stream"
    return _TYPES_BY_EXTENSION.get(ext.lower(), "application/octet-stream")


def check_attachment(
    filename: str,
    payload: bytes,
    allowed_extensions: Collection[str],
    max_bytes: int,
) -> AttachmentCheck:
    """Check one file against the allow-list, its magic bytes and the size limit."""
    name = sanitize_filename(filename)
    sniffed = sniff_type(payload)
    if not payload:
        return _refused(name, "", REASON_EMPTY, "the file is empty")
    if not name or "." not in name:
        # Inline images and scanner output often come without a (usable) name:
        # name them after what the bytes are.
        if sniffed is None:
            return _unusable_name(name)
        stem = name or ("image" if sniffed[1].startswith("image/") else "attachment")
        name = f"{stem}.{sniffed[0]}"
    declared_type = guess_content_type(name)
    refusal = _refusal(name, declared_type, len(payload), sniffed, allowed_extensions, max_bytes)
    if refusal is not None:
        return refusal
    content_type = sniffed[1] if sniffed else declared_type
    return AttachmentCheck(
        accepted=True, filename=name, content_type=content_type, reason=None, reason_code=None
    )


def _unusable_name(name: str) -> AttachmentCheck:
    """The refusal of a file without an extension whose bytes say nothing of its type."""
    if not name:
        return _refused(
            name,
            "application/octet-stream",
            REASON_BAD_FILENAME,
            "the file has no usable name and its type could not be recognised",
        )
    return _refused(
        name,
        "application/octet-stream",
        REASON_EXTENSION_NOT_ALLOWED,
        "files without an extension are not accepted",
    )


def _refusal(
    name: str,
    declared_type: str,
    size: int,
    sniffed: tuple[str, str] | None,
    allowed_extensions: Collection[str],
    max_bytes: int,
) -> AttachmentCheck | None:
    """Why a named file is refused, in the order the checks are made; None if it is not."""
    parts = name.lower().split(".")
    ext = parts[-1]
    if len(parts) > 2 and ext in _EXECUTABLE_EXTENSIONS:
        return _refused(
            name,
            declared_type,
            REASON_BAD_FILENAME,
            f"the name hides a program behind a double extension (.{parts[-2]}.{ext})",
        )
    if ext not in _expand(allowed_extensions):
        return _refused(
            name, declared_type, REASON_EXTENSION_NOT_ALLOWED, f".{ext} files are not accepted"
        )
    if size > max_bytes:
        return _refused(
            name,
            declared_type,
            REASON_TOO_LARGE,
            f"the file is larger than the limit of {_human_size(max_bytes)}",
        )
    if _content_matches(ext, sniffed):
        return None
    if sniffed is None:
        return _refused(
            name, declared_type, REASON_CONTENT_MISMATCH, f"the content is not a real .{ext} file"
        )
    return _refused(
        name,
        sniffed[1],
        REASON_CONTENT_MISMATCH,
        f"the content is a .{sniffed[0]} file, not a .{ext} file",
    )


def _refused(name: str, content_type: str, code: str, reason: str) -> AttachmentCheck:
    return AttachmentCheck(
        accepted=False,
        filename=name,
        content_type=content_type or "application/octet-stream",
        reason=reason,
        reason_code=code,
    )


def _canonical(ext: str) -> str:
    for group in _SAME_FORMAT:
        if ext in group:
            return min(group)
    return ext


def _expand(allowed_extensions: Collection[str]) -> frozenset[str]:
    """Lowercased allow-list with equivalent spellings added (jpg allows jpeg and back)."""
    result: set[str] = set()
    for raw in allowed_extensions:
        ext = raw.strip().lstrip(".").lower()
        if not ext:
            continue
        result.add(ext)
        for group in _SAME_FORMAT:
            if ext in group:
                result |= group
    return frozenset(result)


def _content_matches(ext: str, sniffed: tuple[str, str] | None) -> bool:
    if sniffed is None:
        # Nothing recognisable: fine for formats without magic bytes (txt, csv...),
        # a lie for formats that always have them (a ".png" that is HTML).
        return _canonical(ext) not in {_canonical(e) for e in _SNIFFABLE}
    sniffed_ext = sniffed[0]
    if _canonical(sniffed_ext) == _canonical(ext):
        return True
    return ext in _ZIP_CONTAINERS and sniffed_ext in _ZIP_CONTAINERS | {"zip"}


def _human_size(n: int) -> str:
    for unit, scale in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.1f}".removesuffix(".0") + f" {unit}"
    return f"{n} bytes"
