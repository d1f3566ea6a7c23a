"""``maild run``: the daemon (SPEC §2), on the command's clock."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from maild.cli_env import CliEnv
from maild.config import Settings


def add_parser(sub: Any) -> None:
    sub.add_parser("run", help="run the daemon")


def cmd_run(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    # Imported here, for start-up time rather than a cycle: the daemon's stack
    # (aiohttp, aiosmtpd, imapclient, the web view: some 165 ms to import) loads for
    # `maild run` only, so the MTA's `maild ingest` pipe, which imports every
    # command's module, starts without it (tests/unit/test_cli_imports.py).
    from maild.daemon import run_daemon

    return run_daemon(settings, env.clock)
