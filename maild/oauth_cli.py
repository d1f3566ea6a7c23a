"""``maild oauth ...`` and ``maild sources list``: the person's side of XOAUTH2 (SPEC §7, §14).

``oauth authorize ACCOUNT`` obtains a refresh token once and stores it (encrypted)
for the daemon; its flows are in ``maild.oauth_authorize``. ``oauth generate-key``
prints a key for ``oauth_key_file``; ``sources list`` shows each source's state.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, TextIO

from cryptography.fernet import Fernet

from maild.app import App
from maild.cli_env import EX_OK, CliEnv
from maild.config import Settings
from maild.storage.models import ImapState, aware

SMTP_ACCOUNT = "smtp"  # maild.oauth.SMTP_ACCOUNT, without loading the OAuth client stack
DEFAULT_WAIT_SECONDS = 300  # how long the person has to consent


def add_parsers(sub: Any) -> None:
    """The ``sources`` and ``oauth`` commands, added to ``maild``'s subparsers."""
    s = sub.add_parser("sources", help="IMAP sources and their state")
    s_sub = s.add_subparsers(dest="sources_command", metavar="SUBCOMMAND", required=True)
    sl = s_sub.add_parser("list", help="state, lease holder, last UID, needs_authorization")
    sl.add_argument("--json", action="store_true")

    o = sub.add_parser("oauth", help="OAuth2 (XOAUTH2) authorization of sources and smtp")
    o_sub = o.add_subparsers(dest="oauth_command", metavar="SUBCOMMAND", required=True)
    oa = o_sub.add_parser("authorize", help="authorize an [[imap]] source (by name) or smtp")
    oa.add_argument("source", metavar="SOURCE")
    oa.add_argument(
        "--refresh-token-file",
        metavar="PATH",
        help="import a refresh token obtained elsewhere instead of asking a person",
    )
    oa.add_argument(
        "--loopback",
        action="store_true",
        help="use the browser redirect to 127.0.0.1 even where a device code is offered",
    )
    oa.add_argument(
        "--wait",
        type=int,
        default=DEFAULT_WAIT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for the consent (default {DEFAULT_WAIT_SECONDS})",
    )
    o_sub.add_parser("generate-key", help="print a new key for oauth_key_file")


def cmd_oauth(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    if args.oauth_command == "generate-key":
        print(Fernet.generate_key().decode(), file=out)
        return EX_OK
    # authorize: imported here, for start-up time rather than a cycle. The OAuth client
    # stack (authlib, requests: some 90 ms to import) loads for this command only, so
    # the MTA's `maild ingest` pipe, which imports every command's module, starts
    # without it (tests/unit/test_cli_imports.py).
    from maild.oauth_authorize import cmd_authorize

    return cmd_authorize(args, settings, out, err, env)


def cmd_sources(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    """Each [[imap]] source (and an XOAUTH2 smtp) as the database knows it."""
    app = env.open_app()
    try:
        now = app.clock.now()
        rows = []
        states = {s.source: s for s in ImapState.select()}
        for source in settings.imap:
            state = states.get(source.name)
            lease_until = aware(state.lease_until) if state is not None else None
            holder = state.lease_owner if state is not None and lease_until else None
            active = holder is not None and lease_until is not None and lease_until > now
            rows.append(
                _source_row(
                    app,
                    source.name,
                    "imap",
                    source.auth,
                    "active" if active else "inactive",
                    holder if active else None,
                    int(state.last_uid or 0) if state is not None else None,
                )
            )
        if settings.smtp is not None and settings.smtp.auth == "xoauth2":
            rows.append(_source_row(app, SMTP_ACCOUNT, "smtp", "xoauth2", "-", None, None))
        if args.json:
            out.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
            return EX_OK
        if not rows:
            print("no [[imap]] sources configured", file=out)
            return EX_OK
        columns = ("name", "kind", "auth", "state", "lease_holder", "last_uid")
        table = [[str(r[c]) if r[c] is not None else "-" for c in columns] for r in rows]
        widths = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(columns)]
        print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)), file=out)
        for t in table:
            print("  ".join(v.ljust(w) for v, w in zip(t, widths, strict=True)).rstrip(), file=out)
        return EX_OK
    finally:
        app.close()


def _source_row(
    app: App,
    name: str,
    kind: str,
    auth: str,
    state: str,
    holder: str | None,
    last_uid: int | None,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "auth": auth,
        "state": state,
        "lease_holder": holder,
        "last_uid": last_uid,
        "needs_authorization": False,
        "error": "",
    }
    if auth == "xoauth2":
        status = app.oauth.status(name)
        row["needs_authorization"] = status.needs_authorization
        row["error"] = status.error
        if status.needs_authorization:
            row["state"] = "needs_authorization"
    return row
