"""``maild ingest`` is the MTA's pipe: it starts once per message, so the command
line must not load what only other commands need (maild/daemon_cli.py and
maild/oauth_cli.py import those two stacks when their command runs)."""

from __future__ import annotations

import json
import subprocess
import sys

# Measured on top of what ``maild ingest`` needs anyway: the daemon's stack some
# 165 ms, authlib with requests some 90 ms.
NOT_FOR_INGEST = ("maild.daemon", "maild.web", "aiohttp", "aiosmtpd", "authlib", "requests")


def test_the_command_line_loads_neither_the_daemon_nor_the_oauth_client() -> None:
    code = (
        "import json, sys\n"
        "import maild.__main__\n"
        f"print(json.dumps(sorted(m for m in {NOT_FOR_INGEST!r} if m in sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(done.stdout) == []
