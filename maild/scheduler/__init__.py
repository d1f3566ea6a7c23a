"""The scheduler (SPEC §11): what time alone does to tickets.

``plan`` says what each ticket is owed and when (pure); ``runner`` does what is
due at a given ``now`` (``maild tick`` and the daemon call the same function);
``mail`` renders each step's message into the outbox; ``report`` reads the
month's figures for ``maild report``.

The package imports none of its modules, so that ``maild.due_times`` may use
``plan`` without loading the runner: import ``maild.scheduler.runner`` by name.
"""
