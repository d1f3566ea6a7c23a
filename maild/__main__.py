"""Entry point of the ``maild`` command; the only place that exits the process."""

from __future__ import annotations

import os
import sys

from maild.cli import run_cli

EX_SIGPIPE = 141  # what a shell reports for a reader that went away (128 + SIGPIPE)


def main() -> None:
    try:
        code = run_cli(sys.argv[1:])
        sys.stdout.flush()
    except BrokenPipeError:
        # Piped into `head`: stop quietly. (SIGPIPE itself stays ignored, as Python
        # sets it: the daemon must survive a client that hangs up on a socket.)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = EX_SIGPIPE
    sys.exit(code)


if __name__ == "__main__":
    main()
