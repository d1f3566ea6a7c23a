"""``maild check-config``: the settings read, checked and summed up (SPEC §7).

Errors in the file itself are reported by ``maild.cli`` before any command runs;
this command adds the checks that need more than the file (the templates) and
prints what the daemon would run with.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, TextIO

from maild.cli_env import EX_ERROR, EX_OK, CliEnv
from maild.config import Settings
from maild.render import SHIPPED_TEMPLATES_DIR, Renderer


def add_parser(sub: Any) -> None:
    sub.add_parser("check-config", help="validate settings.toml")


def cmd_check_config(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    renderer = Renderer(
        SHIPPED_TEMPLATES_DIR, settings.daemon.templates_dir, settings.daemon.language
    )
    errors = [f"daemon.templates_dir: {e}" for e in renderer.check()]
    if errors:
        print(f"{settings.source_path}: {len(errors)} error(s)", file=err)
        for line in errors:
            print(f"error: {line}", file=err)
        return EX_ERROR
    print("\n".join(summary(settings)), file=out)
    return EX_OK


def summary(settings: Settings) -> list[str]:
    """What the daemon would run with, one line per part, secrets left out."""
    d = settings.daemon
    lines = [
        f"{settings.source_path}: OK",
        f"  instance       {d.instance} ({d.language}, {d.timezone})",
        f"  base_url       {d.base_url}",
        f"  data_dir       {d.data_dir}",
        f"  database       {_redact_url(settings.database_url)}",
        "  imap sources   "
        + (
            ", ".join(f"{s.name}{' (xoauth2)' * (s.auth == 'xoauth2')}" for s in settings.imap)
            or "none"
        ),
        "  listener       "
        + (
            f"{settings.listener.protocol} on {settings.listener.host}:{settings.listener.port}"
            if settings.listener.enabled
            else "disabled"
        ),
        "  outbound       "
        + (
            f"smtp {settings.smtp.host}:{settings.smtp.port} ({settings.smtp.security}"
            f"{', xoauth2' * (settings.smtp.auth == 'xoauth2')})"
            if settings.smtp
            else f"Maildir {d.data_dir / 'outbox'}"
        ),
        "  web            "
        + (f"{settings.web.host}:{settings.web.port}" if settings.web.enabled else "disabled"),
        "  departments    "
        + ", ".join(
            f"{x.key}{'*' if x is settings.default_department else ''} ({', '.join(x.addresses)})"
            for x in settings.departments
        ),
        f"  agents         {', '.join(a.email for a in settings.agents) or 'none'}",
        f"  agents_auth    {settings.agents_auth.require}",
    ]
    if settings.agents and settings.agents_auth.require == "from":
        lines.append(
            "  warning        agents are trusted by their From address alone; "
            "consider agents_auth.require = 'authentication-results'"
        )
    return lines


def _redact_url(url: str) -> str:
    return re.sub(r"(://[^:/@]*):[^@/]+@", r"\1:***@", url)
