"""Entry point of the ``maild`` command; the only place that exits the process."""

from __future__ import annotations

import signal
import sys

from maild.cli import run_cli


def main() -> None:
    # Behave like a Unix filter when piped into `head`: die quietly on SIGPIPE.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(run_cli(sys.argv[1:]))


if __name__ == "__main__":
    main()
