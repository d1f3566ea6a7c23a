"""The embedded LMTP/SMTP listener: bytes in from an MTA, raw stored first.

RCPT is accepted only for department addresses (plus-addresses included);
DATA is answered 250 only once the message is durably stored (451 when it
cannot be, so the MTA keeps it and retries). LMTP gets one reply per recipient.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import structlog
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from maild.app import App
from maild.errors import StorageUnavailableError
from maild.faults import DATABASE_FULL, DISK_FULL
from maild.inbound_store import Incoming, split_headers
from maild.parsers.subject import extract_plus_number
from maild.pipeline import ingest_batch
from maild.records import IngestResult

log = structlog.get_logger("maild.lmtp")

FULL_REASONS = frozenset({DISK_FULL, DATABASE_FULL})  # RFC 3463 X.3.1: mail system full

OK_250 = "250 2.0.0 OK: stored"
ERR_451 = "451 4.3.0 Temporary failure: message not stored, try again later"
ERR_451_FULL = "451 4.3.1 Mail system full: message not stored, try again later"
ERR_550 = "550 5.1.1 No such mailbox here"
ERR_554_EMPTY = "554 5.6.0 Empty message"


class _GroupCommit:
    """Deliveries that arrive while a batch is being stored wait for the next batch
    and commit together (SPEC §2.3), up to ``[storage] batch_messages`` and
    ``batch_bytes``. With ``batch_wait_ms = 0`` (the default) a delivery arriving
    alone is processed at once: nothing waits on a timer, so latency does not suffer
    when mail comes one by one; a wait gathers the stragglers of a burst first."""

    def __init__(self, app: App, source: str) -> None:
        self.app = app
        self.source = source
        self.pending: list[tuple[Incoming, asyncio.Future[IngestResult]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, item: Incoming) -> IngestResult:
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work())
        return await future

    async def _work(self) -> None:
        limits = self.app.settings.storage
        # Deliveries ready in this same loop turn (or within the wait) join the first batch.
        await asyncio.sleep(limits.batch_wait_ms / 1000)
        while self.pending:
            batch: list[tuple[Incoming, asyncio.Future[IngestResult]]] = []
            held = 0
            while self.pending and len(batch) < limits.batch_messages and held < limits.batch_bytes:
                item, future = self.pending.pop(0)
                batch.append((item, future))
                held += len(item.raw)
            items = [item for item, _ in batch]
            try:
                results = await asyncio.to_thread(ingest_batch, self.app, items)
            except BaseException as exc:  # every delivery of the batch gets the answer
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class IntakeHandler:
    """aiosmtpd handler: small hooks, the blocking work runs in a thread."""

    def __init__(
        self,
        app: App,
        on_ingested: Callable[[IngestResult], None] | None = None,
        source: str = "lmtp",
    ) -> None:
        self.app = app
        self.on_ingested = on_ingested
        self.source = source
        self.in_flight = 0
        self._group = _GroupCommit(app, source)

    def _is_ours(self, address: str) -> bool:
        address = address.lower()
        settings = self.app.settings
        if settings.department_for_address(address) is not None:
            return True
        plus = extract_plus_number(address)
        return plus is not None and settings.department_for_address(plus[0]) is not None

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if not self._is_ours(address):
            return ERR_550
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        count = max(1, len(envelope.rcpt_tos))
        lmtp = isinstance(server, LMTP)
        if not raw.strip():
            return _per_recipient(ERR_554_EMPTY, count, lmtp)
        # Keep the envelope recipient: a Bcc'd department is otherwise invisible.
        delivered = "".join(f"Delivered-To: {rcpt}\r\n" for rcpt in envelope.rcpt_tos[:1]).encode()
        size = len(delivered) + getattr(envelope, "maild_size", len(raw))
        if size > self.app.settings.attachments.max_message_bytes:
            # too_large keeps only the headers: no second whole copy of a huge body.
            item = Incoming(delivered + split_headers(raw), self.source, None, size)
        else:
            item = Incoming(delivered + raw, self.source)
        self.in_flight += 1
        try:
            result = await self._group.submit(item)
        except StorageUnavailableError as exc:
            log.warning("lmtp.tempfail", error=str(exc))
            full = exc.fault is not None and exc.fault.reason in FULL_REASONS
            return _per_recipient(ERR_451_FULL if full else ERR_451, count, lmtp)
        except Exception as exc:
            # Anything unexpected must still be temporary: aiosmtpd would answer 500
            # and the MTA would bounce the customer's mail instead of retrying it.
            log.error("lmtp.failed", error=f"{type(exc).__name__}: {exc}")
            return _per_recipient(ERR_451, count, lmtp)
        finally:
            self.in_flight -= 1
        if self.on_ingested is not None:
            try:
                self.on_ingested(result)
            except Exception as exc:  # the message is stored: its 250 stands
                log.error("lmtp.callback_failed", error=f"{type(exc).__name__}: {exc}")
        return _per_recipient(OK_250, count, lmtp)


def _per_recipient(reply: str, count: int, lmtp: bool) -> str:
    return "\r\n".join([reply] * count) if lmtp else reply


# RFC 5321 caps lines at 1,000 octets, but real senders exceed it and a 500 here
# would bounce a customer's mail: be liberal in what we accept.
MAX_LINE_BYTES = 1 << 20


HEADERS_WITHOUT_END = 65536  # kept of a too_large message whose headers never end


class _BoundedData:
    """DATA read into one buffer, and never more of it than maild can use.

    aiosmtpd keeps a message as one object per line, then joins them: about three
    times its size at the peak (a 50 MB delivery raised the daemon past 290 MB).
    Here the lines go into one buffer; once it passes ``attachments.max_message_bytes``
    the message is ``too_large`` whatever follows, so only its header block is kept
    and the rest is counted (``envelope.maild_size``), not held.
    """

    async def smtp_DATA(self, arg: str) -> None:
        server: Any = self
        if await server.check_helo_needed() or await server.check_auth_needed("DATA"):
            return
        envelope = server.envelope
        if not envelope.rcpt_tos:
            await server.push("503 Error: need RCPT command")
            return
        if arg:
            await server.push("501 Syntax: DATA")
            return
        await server.push("354 End data with <CR><LF>.<CR><LF>")
        keep = server.event_handler.app.settings.attachments.max_message_bytes
        buffer = bytearray()
        size = 0
        overflow = False
        at_line_start = True
        while True:
            try:
                chunk = await server._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as exc:  # a very long line: take it in parts
                chunk = await server._reader.read(exc.consumed)
            if at_line_start and chunk == b".\r\n":
                break
            if at_line_start and chunk.startswith(b"."):
                chunk = chunk[1:]  # RFC 5321 4.5.2 dot-stuffing
            at_line_start = chunk.endswith(b"\r\n")
            size += len(chunk)
            if overflow:
                continue
            buffer += chunk
            if len(buffer) > keep:
                overflow = True
                found = [(i, sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := buffer.find(sep)) >= 0]
                end = min(i + len(sep) for i, sep in found) if found else HEADERS_WITHOUT_END
                buffer = buffer[:end]  # a copy of the headers only
        content = bytes(buffer)
        del buffer
        envelope.content = envelope.original_content = content
        envelope.maild_size = size
        status = await server._call_handler_hook("DATA")
        server._set_post_data_state()
        await server.push(status)


class _LenientLMTP(_BoundedData, LMTP):
    line_length_limit = MAX_LINE_BYTES


class _LenientSMTP(_BoundedData, SMTP):
    line_length_limit = MAX_LINE_BYTES


async def start_listener(
    app: App, on_ingested: Callable[[IngestResult], None] | None = None
) -> tuple[asyncio.AbstractServer, IntakeHandler]:
    """Bind the ``[listener]`` socket on the running loop."""
    cfg = app.settings.listener
    handler = IntakeHandler(app, on_ingested, source=cfg.protocol)
    server_class: Any = _LenientLMTP if cfg.protocol == "lmtp" else _LenientSMTP
    # No cap here: aiosmtpd would answer an oversized DATA with one 552 (not one
    # reply per LMTP recipient) and the MTA would bounce it. The pipeline keeps
    # the headers and answers too_large with a notice. Cap sizes in the MTA.
    limit = None

    def factory() -> SMTP:
        return server_class(
            handler,
            hostname=app.settings.message_id_domain,
            data_size_limit=limit,
            enable_SMTPUTF8=True,
            decode_data=False,
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, host=cfg.host, port=cfg.port)
    log.info("listener.started", protocol=cfg.protocol, host=cfg.host, port=cfg.port)
    return server, handler
