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
from typing import TYPE_CHECKING, TextIO

from maild.config import Settings
from maild.errors import StorageUnavailableError
from maild.wakeup import poke

if TYPE_CHECKING:
    from maild.cli import CliEnv

EX_OK = 0
EX_NOINPUT = 66
EX_TEMPFAIL = 75


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


def ingest_command(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    from maild.pipeline import dry_run, ingest

    try:
        app = env.open_app()
    except Exception as exc:
        print(f"error: cannot open the database: {exc}", file=err)
        return EX_TEMPFAIL
    status = EX_OK
    try:
        for name, raw in _inputs(args.files, err):
            if raw is None:
                status = max(status, EX_NOINPUT) if status != EX_TEMPFAIL else status
                continue
            try:
                result = dry_run(app, raw) if args.dry_run else ingest(app, raw, args.source)
            except StorageUnavailableError as exc:
                print(f"error: {name}: not stored, try again later: {exc}", file=err)
                status = EX_TEMPFAIL
                continue
            line = result.as_json()
            if args.dry_run:
                line["dry_run"] = True
            else:
                poke(settings.daemon.data_dir)  # a daemon sends what this queued, now
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
            out.flush()
    finally:
        app.close()
    return status
