"""What every ``maild`` command gets besides its arguments: where "now" comes from
and how to open the App (SPEC §7), and the exit codes the commands share.

``maild.cli`` fills a :class:`CliEnv` for each command; the ``*_cli`` modules take
it. It lives here, not in ``maild.cli``, so that those modules need not import the
module that imports them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

from maild.app import App, build_app
from maild.clock import Clock
from maild.config import Settings
from maild.storage.binding import bind_context

EX_OK = 0
EX_ERROR = 1
EX_USAGE = 2  # what argparse exits with on a usage error
EX_NOINPUT = 66
EX_TEMPFAIL = 75  # an MTA keeps the message and retries
EX_CONFIG = 78

AppFactory = Callable[[Settings, Clock], App]


@dataclass(frozen=True)
class CliEnv:
    """What a command needs besides its arguments: where 'now' comes from and how to
    open the App. ``maild`` passes the system clock; tests pass a frozen one."""

    settings: Settings
    clock: Clock
    app_factory: AppFactory

    def open_app(self) -> App:
        """The command's App, bound for the rest of the command (``run_cli`` runs
        each command in a context of its own)."""
        app = self.app_factory(self.settings, self.clock)
        bind_context(app.db)
        return app


def default_app_factory(settings: Settings, clock: Clock) -> App:
    return build_app(settings, clock)


# Every command handler: ``cmd_x(args, settings, out, err, env) -> exit code``.
Handler = Callable[[argparse.Namespace, Settings, TextIO, TextIO, CliEnv], int]
