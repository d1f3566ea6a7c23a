"""The scheduler (SPEC §11): what time alone does to tickets.

``plan`` says what each ticket is owed and when (pure); ``runner`` does what is
due at a given ``now`` (``maild tick`` and the daemon call the same function);
``mail`` renders each step's message into the outbox; ``report`` reads the
month's figures for ``maild report``.
"""

from maild.scheduler.runner import Action, TickResult, next_due, run_due

__all__ = ["Action", "TickResult", "next_due", "run_due"]
