"""``maild run``: the long-running process that ties the pipeline to the world.

One asyncio loop runs the LMTP/SMTP listener, the web view, the outbox sender
and the scheduler; each IMAP source works in a thread of its own (imapclient
blocks). The sender wakes when a commit queued mail, not on a fixed sleep.
SIGTERM stops taking work, finishes what is in hand and exits 0 within 10 s;
SIGHUP reloads settings and templates (a broken file is refused, the old
settings stay).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from maild.agents import agent_trust_warning
from maild.allocator import return_large_blocks
from maild.app import App, build_app
from maild.clock import Clock
from maild.config import ConfigError, Settings, load_settings
from maild.intake.imap import ImapRunner
from maild.intake.imap_client import DefaultImapConnector
from maild.intake.leases import LeaseShare
from maild.intake.lmtp import start_listener
from maild.liveness import Liveness
from maild.notify import Notifier, watchdog_interval
from maild.records import IngestResult
from maild.recovery import recover, retry_stranded
from maild.render import SHIPPED_TEMPLATES_DIR, Renderer
from maild.scheduler.runner import next_due, run_due
from maild.sender import OutboxSender
from maild.storage.models import OUTBOX_PENDING, Outbox, aware
from maild.storage_health import probe_storage
from maild.takeover import recover_imap_leases, recover_outbox
from maild.transports import make_transport
from maild.wakeup import WakeListener
from maild.web.app import start_web

log = structlog.get_logger("maild.daemon")

SHUTDOWN_GRACE_SECONDS = 8.0  # systemd's default stop timeout is longer; the SPEC asks 10 s
SENDER_IDLE_SECONDS = 30.0  # safety-net pass even when nothing woke the sender
SENDER_BATCH = 20  # rows one connection claims per pass
IMAP_TIMEOUT_SECONDS = 8.0
# The scheduler sleeps until the nearest due step, but never longer than this (a
# ticket changed by another instance), nor shorter (a step left to another instance).
SCHEDULER_MAX_SLEEP = 300.0
SCHEDULER_MIN_SLEEP = 5.0
SCHEDULER_SETTLE_SECONDS = 2.0  # after a wake-up: let a burst of mail settle first
STORAGE_RETRY_SECONDS = 5.0  # stored messages a resource fault interrupted are retried
# How often a live instance looks for dead ones' outbox claims and IMAP leases. With
# the IMAP standby retry (intake.leases.STANDBY_RETRY_SECONDS) this keeps a takeover
# inside SPEC §10's 10 s.
LIVENESS_SECONDS = 3.0


@dataclass
class Counters:
    ingested: int = 0
    sent: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def status_line(self) -> str:
        top = ", ".join(f"{k}={v}" for k, v in sorted(self.outcomes.items()))
        return f"ingested={self.ingested} sent={self.sent}" + (f" ({top})" if top else "")


class Daemon:
    def __init__(self, app: App, config_path: Path | None = None) -> None:
        self.app = app
        self.config_path = config_path
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.counters = Counters()
        self.notifier = Notifier()
        self.stop_event = threading.Event()  # for IMAP threads
        self._stopping: asyncio.Event | None = None
        self._wake_sender: asyncio.Event | None = None
        self._wake_scheduler: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._imap_threads: list[threading.Thread] = []
        self._listener: Any = None
        self._listener_handler: Any = None
        self._web_runner: Any = None
        # [smtp] connections senders, each with its own connection, claiming their own
        # rows; the first also settles deliveries a crash cut (recover_outbox).
        count = app.settings.smtp.connections if app.settings.smtp is not None else 1
        self._senders = [
            OutboxSender(app, make_transport(app), owner=self.owner) for _ in range(count)
        ]
        self._sender = self._senders[0]
        self.liveness = Liveness(app.db, self.owner, imap=bool(app.settings.imap))
        self.wakeup = WakeListener(app.db, app.settings.daemon.data_dir, self.wake_sender)
        app.outbox_listeners.append(self.wake_sender)

    # -- wiring ---------------------------------------------------------------
    def on_ingested(self, result: IngestResult) -> None:
        """Called after each commit, from any thread."""
        self.counters.ingested += 1
        self.counters.outcomes[result.outcome] = self.counters.outcomes.get(result.outcome, 0) + 1
        self.wake_sender()

    def wake_sender(self) -> None:
        if self._loop is not None and self._wake_sender is not None:
            self._loop.call_soon_threadsafe(self._wake_sender.set)
        # A commit that queued mail changed a ticket: its due times may be nearer.
        if self._loop is not None and self._wake_scheduler is not None:
            self._loop.call_soon_threadsafe(self._wake_scheduler.set)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self._stopping is None:
            self._stopping = asyncio.Event()
        self._wake_sender = asyncio.Event()
        self._wake_scheduler = asyncio.Event()
        # Messages stored by a previous run whose outcome never committed.
        recovered = await asyncio.to_thread(recover, self.app)
        for result in recovered:
            self.on_ingested(result)
        if recovered:
            log.info("daemon.recovered", count=len(recovered))
        await asyncio.to_thread(self.liveness.start)
        self.wakeup.start(self._loop)
        await self._listen_for_queued_mail()
        await asyncio.to_thread(self.take_over_dead_instances)
        settings = self.app.settings
        if settings.listener.enabled:
            self._listener, self._listener_handler = await start_listener(
                self.app, self.on_ingested
            )
        if settings.web.enabled:
            self._web_runner = await start_web(self.app)
        self._start_imap()

        warning = agent_trust_warning(settings)
        if warning:
            log.warning("config.agents_trusted_by_from", detail=warning)

    def _start_imap(self) -> None:
        if not self.app.settings.imap:
            return

        # A connect or fetch in progress must not hold SIGTERM past the 10 s budget.
        connector = DefaultImapConnector(timeout=IMAP_TIMEOUT_SECONDS, tokens=self.app.oauth)
        # The sources spread across the live instances (SPEC §10).
        share = LeaseShare(self.owner, len(self.app.settings.imap), self.liveness.imap_instances)
        for source in self.app.settings.imap:
            runner = ImapRunner(
                self.app,
                source,
                connector,
                owner=self.owner,
                stop_event=self.stop_event,
                on_ingested=self.on_ingested,
                share=share,
            )
            thread = self.app.thread(runner.run, name=f"imap-{source.name}")
            thread.start()
            self._imap_threads.append(thread)

    def take_over_dead_instances(self) -> int:
        """Free the outbox claims and IMAP leases of instances that are gone."""
        alive = self.liveness.is_alive
        released = recover_outbox(self.app, self._sender.transport, alive)
        if released:
            log.info("outbox.claims_released", count=released)
            self.wake_sender()
        leases = recover_imap_leases(self.app, alive)
        if leases:
            log.info("imap.leases_released", count=leases)
        return released + leases

    async def _listen_for_queued_mail(self) -> None:
        """(Re)connect the PostgreSQL LISTEN that wakes the sender; failures are logged
        and retried by the liveness loop, the sender's safety pass covers meanwhile."""
        if not self.wakeup.needs_connection:
            return
        try:
            conn = await asyncio.to_thread(self.wakeup.connect)
        except Exception as exc:
            log.warning("wakeup.listen_failed", error=f"{type(exc).__name__}: {exc}")
            return
        self.wakeup.attach(conn)

    # -- loops ----------------------------------------------------------------
    async def liveness_loop(self) -> None:
        assert self._stopping is not None
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=LIVENESS_SECONDS)
            if self._stopping.is_set():
                break
            await self._listen_for_queued_mail()
            try:
                if await asyncio.to_thread(self.liveness.check):
                    await asyncio.to_thread(self.take_over_dead_instances)
            except Exception as exc:  # a database outage: the next round tries again
                log.warning("liveness.pass_failed", error=f"{type(exc).__name__}: {exc}")

    async def sender_loop(self) -> None:
        assert self._wake_sender is not None and self._stopping is not None
        while not self._stopping.is_set():
            self._wake_sender.clear()
            try:
                passes = [asyncio.to_thread(s.run_once, SENDER_BATCH) for s in self._senders]
                sent = sum(await asyncio.gather(*passes))
                self.counters.sent += sent
            except Exception as exc:  # the loop must survive a bad pass
                log.error("outbox.pass_failed", error=f"{type(exc).__name__}: {exc}")
                sent = 0
            if sent:
                continue  # more may be due right away
            delay = await asyncio.to_thread(self._next_due_in)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_sender.wait(), timeout=delay)

    def _next_due_in(self) -> float:
        row = (
            Outbox.select(Outbox.next_attempt_at)
            .where(Outbox.status == OUTBOX_PENDING)
            .order_by(Outbox.next_attempt_at)
            .first()
        )
        if row is None:
            return SENDER_IDLE_SECONDS
        due = aware(row.next_attempt_at)
        assert due is not None
        seconds = (due - self.app.clock.now()).total_seconds()
        return max(0.05, min(SENDER_IDLE_SECONDS, seconds))

    async def scheduler_loop(self) -> None:
        """SPEC §11: run what is due, then sleep until the nearest due step (or a
        commit that changed tickets wakes us to look again)."""
        assert self._wake_scheduler is not None and self._stopping is not None
        due_at = None  # unknown: a first pass catches up on what fell due while down
        while not self._stopping.is_set():
            self._wake_scheduler.clear()
            try:
                now = self.app.clock.now()
                if due_at is None or due_at <= now:
                    result = await asyncio.to_thread(run_due, self.app, now)
                    if result.actions:
                        log.info("scheduler.ran", steps=len(result.actions))
                due_at = await asyncio.to_thread(next_due, self.app, self.app.clock.now())
            except Exception as exc:  # the loop must survive a bad pass
                log.error("scheduler.pass_failed", error=f"{type(exc).__name__}: {exc}")
                due_at = None
            delay = SCHEDULER_MAX_SLEEP
            if due_at is not None:
                seconds = (due_at - self.app.clock.now()).total_seconds()
                delay = max(SCHEDULER_MIN_SLEEP, min(SCHEDULER_MAX_SLEEP, seconds))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_scheduler.wait(), timeout=delay)
            if self._wake_scheduler.is_set() and not self._stopping.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), SCHEDULER_SETTLE_SECONDS)

    async def storage_retry_loop(self) -> None:
        """After a resource fault (a full disk): finish the messages that were stored
        but not processed (their sources were told to retry, but the row in hand must
        not wait for a restart), else probe until there is room again."""
        assert self._stopping is not None
        while not self._stopping.is_set():
            storage = self.app.metrics.storage
            try:
                if storage.stranded():
                    for result in await asyncio.to_thread(retry_stranded, self.app):
                        self.on_ingested(result)
                elif storage.current() is not None:
                    # Nothing stored to finish: see whether there is room again, so
                    # /healthz recovers even when no mail comes (a balancer took us out).
                    await asyncio.to_thread(probe_storage, self.app)
            except Exception as exc:  # the loop must survive a bad pass
                log.error("storage.retry_failed", error=f"{type(exc).__name__}: {exc}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=STORAGE_RETRY_SECONDS)

    async def watchdog_loop(self) -> None:
        assert self._stopping is not None
        interval = watchdog_interval() or 15.0
        while not self._stopping.is_set():
            self.notifier.watchdog()
            self.notifier.status(self.counters.status_line())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval)

    # -- control --------------------------------------------------------------
    def request_stop(self) -> None:
        if self._stopping is not None and not self._stopping.is_set():
            log.info("daemon.stopping")
            self.notifier.stopping()
            self._stopping.set()
            self.stop_event.set()
            for sender in self._senders:
                sender.stop()
            if self._wake_sender is not None:
                self._wake_sender.set()
            if self._wake_scheduler is not None:
                self._wake_scheduler.set()

    def reload(self) -> None:
        """SIGHUP: re-read settings and templates; keep the old ones if invalid."""
        if self.config_path is None:
            return
        self.notifier.reloading()
        try:
            new = load_settings(self.config_path)

            problems = Renderer(
                SHIPPED_TEMPLATES_DIR, new.daemon.templates_dir, new.daemon.language
            ).check()
            if problems:
                raise ConfigError([f"daemon.templates_dir: {p}" for p in problems])
        except ConfigError as exc:
            log.error("config.reload_rejected", errors=exc.errors)
        else:
            self.app.settings = new
            self.app.__dict__.pop("renderer", None)  # templates are re-read on next use
            # [smtp] changes take effect with the next batch; the listener, web and
            # IMAP sources keep their sockets until a restart (documented).
            for sender in self._senders:
                sender.transport.close()
                sender.transport = make_transport(self.app)
            log.info("config.reloaded")
        self.notifier.ready(self.counters.status_line())

    async def shutdown(self, deadline: float) -> None:
        """Close everything by ``deadline`` (monotonic): SPEC §9 gives 10 s in all."""

        def left(cap: float) -> float:
            return max(0.1, min(cap, deadline - time.monotonic()))

        if self._listener is not None:
            self._listener.close()
            # Let a DATA in hand finish storing (its MTA gets its reply).
            limit = time.monotonic() + left(5.0)
            while self._listener_handler.in_flight and time.monotonic() < limit:
                await asyncio.sleep(0.05)
        if self._web_runner is not None:
            await asyncio.wait_for(self._web_runner.cleanup(), timeout=left(3.0))
        for thread in self._imap_threads:
            await asyncio.to_thread(thread.join, left(8.0))
        for sender in self._senders:
            sender.transport.close()
        self.liveness.close()
        self.wakeup.close()
        log.info("daemon.stopped", **self.counters.outcomes)

    async def run(self) -> int:
        """Serve until stopped, bound to the App's database: the loop's tasks (listener,
        web, sender, scheduler, liveness, storage retry) and their ``to_thread`` work
        inherit the binding; the IMAP threads get it from ``App.thread``."""
        with self.app.bound():
            return await self._serve()

    async def _serve(self) -> int:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        # Handlers before start(): the listener accepts as soon as it is bound, and
        # a SIGTERM or SIGHUP arriving then must not kill us with the default action.
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        await self.start()
        tasks = [
            asyncio.create_task(self.sender_loop(), name="sender"),
            asyncio.create_task(self.watchdog_loop(), name="watchdog"),
            asyncio.create_task(self.scheduler_loop(), name="scheduler"),
            asyncio.create_task(self.storage_retry_loop(), name="storage-retry"),
            asyncio.create_task(self.liveness_loop(), name="liveness"),
        ]
        self.notifier.ready(self.counters.status_line())
        log.info("daemon.ready", owner=self.owner)
        await self._stopping.wait()
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        try:
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=SHUTDOWN_GRACE_SECONDS / 2)
        except TimeoutError:
            # The message in hand hangs (an SMTP server that stopped answering):
            # cut its connection so the sender thread returns, then go on.
            for sender in self._senders:
                sender.stop(abort=True)
            for task in tasks:
                task.cancel()
        with contextlib.suppress(TimeoutError):
            await self.shutdown(deadline)
        return 0


def run_daemon(settings: Settings, clock: Clock | None = None) -> int:
    return_large_blocks()  # peak RSS with large messages: see maild.allocator
    app = build_app(settings, clock)
    try:
        return asyncio.run(Daemon(app, settings.source_path).run())
    finally:
        app.close()


__all__ = ["Daemon", "run_daemon"]
