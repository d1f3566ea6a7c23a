"""``maild run`` as a real process, the way the integration tests start it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.shipped_settings import REPO

SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def start_maild_run(config: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """``maild --config CONFIG run`` with stdout and stderr appended to ``log_path``,
    outside any systemd notify socket this test process may have inherited."""
    env = {k: v for k, v in os.environ.items() if k not in SYSTEMD_ENV}
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "maild", "--config", str(config), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
