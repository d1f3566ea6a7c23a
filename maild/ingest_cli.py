"""``maild ingest``: feed raw RFC 5322 files (or stdin) through the pipeline, as an
MTA pipe would. One JSON line per message on stdout; exit 75 (EX_TEMPFAIL) when
a message could not be stored durably, so the MTA keeps it and retries."""

from __future__ import annotations

import argparse
import json
import mailbox
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from maild.app import App
from maild.cli_env import EX_NOINPUT, EX_OK, EX_TEMPFAIL, CliEnv
from maild.config import Settings
from maild.errors import StorageUnavailableError
from maild.inbound_store import Incoming
from maild.pipeline import dry_run, ingest_batch
from maild.records import IngestResult
from maild.wakeup import poke


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ingest", help="ingest raw RFC 5322 files (or stdin) as an MTA pipe would")
    p.add_argument("files", nargs="*", metavar="FILE")
    p.add_argument("--dry-run", action="store_true", help="print what would happen, change nothing")
    p.add_argument("--source", default="ingest", help=argparse.SUPPRESS)


def _is_mbox(data: bytes) -> bool:
    return data.startswith(b"From ") and b"\n" in data


def _mbox_messages(path: Path) -> Iterator[bytes]:
    box = mailbox.mbox(str(path), create=False)
    try:
        for key in box.iterkeys():
            yield box.get_bytes(key)
    finally:
        box.close()


def _inputs(files: list[str], err: TextIO) -> Iterator[tuple[str, bytes | None]]:
    if not files:
        yield "-", sys.stdin.buffer.read()
        return
    for name in files:
        if name == "-":
            yield name, sys.stdin.buffer.read()
            continue
        path = Path(name)
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"error: {name}: {exc.strerror}", file=err)
            yield name, None
            continue
        if _is_mbox(data):
            for raw in _mbox_messages(path):
                yield name, raw
        else:
            yield name, data


def cmd_ingest(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    try:
        app = env.open_app()
    except Exception as exc:
        print(f"error: cannot open the database: {exc}", file=err)
        return EX_TEMPFAIL
    status = EX_OK
    batch: list[tuple[str, bytes]] = []
    held = 0

    def flush() -> None:
        nonlocal status, held
        if batch:
            status = max(status, _ingest(app, batch, args, out, err))
            if not args.dry_run:
                poke(settings.daemon.data_dir)  # a daemon sends what this queued, now
        batch.clear()
        held = 0

    try:
        for name, raw in _inputs(args.files, err):
            if raw is None:
                status = max(status, EX_NOINPUT) if status != EX_TEMPFAIL else status
                continue
            batch.append((name, raw))
            held += len(raw)
            # Group commit (SPEC §2.3): the files of one run, bounded by [storage] batch_*.
            limits = settings.storage
            if len(batch) >= limits.batch_messages or held >= limits.batch_bytes:
                flush()
        flush()
    finally:
        app.close()
    return status


def _ingest(
    app: App, batch: list[tuple[str, bytes]], args: argparse.Namespace, out: TextIO, err: TextIO
) -> int:
    """One batch: JSON lines in input order; EX_TEMPFAIL when it could not be stored."""
    if args.dry_run:
        results: list[IngestResult | None] = []
        for name, raw in batch:
            try:
                results.append(dry_run(app, raw))
            except StorageUnavailableError as exc:
                print(f"error: {name}: not stored, try again later: {exc}", file=err)
                results.append(None)
    else:
        try:
            results = list(ingest_batch(app, [Incoming(raw, args.source) for _, raw in batch]))
        except StorageUnavailableError as exc:
            for name, _ in batch:
                print(f"error: {name}: not stored, try again later: {exc}", file=err)
            return EX_TEMPFAIL
    status = EX_OK
    for result in results:
        if result is None:
            status = EX_TEMPFAIL
            continue
        line = result.as_json()
        if args.dry_run:
            line["dry_run"] = True
        out.write(json.dumps(line, ensure_ascii=False) + "\n")
    out.flush()
    return status
