"""``/healthz`` and ``/metrics``: is this daemon well, for load balancers, systemd and Prometheus.

Both read the database off the event loop (``data.run_db``) with a timeout, and
never raise: a failure is an answer (503), not a crash.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from maild.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from maild.web import data
from maild.web.views import STATE

log = structlog.get_logger("maild.web")

HEALTH_TIMEOUT_SECONDS = 5.0


async def healthz(request: web.Request) -> web.Response:
    """Liveness for load balancers and systemd: 200 while the database answers (with
    ``"status": "degraded"`` when an IMAP source is failing or needs authorization,
    which a restart would not cure), 503 when the database does not. The body says
    why, per source; see docs/operations.md."""
    state = request.app[STATE]
    sources = {
        name: {"state": s.state, **({"detail": s.detail} if s.detail else {})}
        for name, s in sorted(state.app.metrics.sources().items())
    }
    try:
        await asyncio.wait_for(data.run_db(state.app, data.ping), HEALTH_TIMEOUT_SECONDS)
    except Exception as exc:  # any failure at all means "not healthy"; say so, never crash
        log.warning("web.health_failed", error=f"{type(exc).__name__}: {exc}")
        body = {
            "status": "unavailable",
            "database": f"{type(exc).__name__}",
            "sources": sources,
            "reason": "database_unavailable",
            "target": "database",
            "error": f"{type(exc).__name__}: {exc}"[:300],
        }
        return web.json_response(body, status=503)
    fault = state.app.metrics.storage.current()
    if fault is not None:
        # The database answers reads, but the last message could not be stored
        # (a full disk, a lost connection): mail is being answered 451 right now.
        body = {
            "status": "unavailable",
            "database": "ok",
            "sources": sources,
            "reason": fault.fault.reason,
            "target": fault.fault.target,
            "error": fault.fault.error,
            "since": fault.since.isoformat(),
        }
        return web.json_response(body, status=503)
    degraded = state.app.metrics.unhealthy_sources()
    body = {"status": "degraded" if degraded else "ok", "database": "ok", "sources": sources}
    return web.json_response(body)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format (SPEC §10); the database figures are read off the loop."""
    state = request.app[STATE]
    try:
        body = await asyncio.wait_for(
            data.run_db(state.app, lambda app: app.metrics.exposition()), HEALTH_TIMEOUT_SECONDS
        )
    except Exception as exc:
        log.warning("web.metrics_failed", error=f"{type(exc).__name__}: {exc}")
        return web.Response(status=503, text="database unavailable\n")
    response = web.Response(body=body)
    response.headers["Content-Type"] = METRICS_CONTENT_TYPE
    return response
