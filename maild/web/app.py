"""The aiohttp application of the quick-access web view, and how the daemon starts it.

aiohttp rather than Starlette: it is already a dependency, brings its own HTTP
server (no ASGI server to add), and runs inside the daemon's event loop with
``AppRunner``/``TCPSite``. Security headers are added to every response, error
pages included, by the ``on_response_prepare`` signal; every 404, routed or not,
is the one page from ``views.not_found``. The access log is off: request paths
carry the ticket key, and a key in a log file is a leaked link.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from maild.app import App
from maild.web import health, views
from maild.web.access import NO_STORE, SECURITY_HEADERS, SERVER_NAME
from maild.web.reply import max_upload_bytes

HERE = Path(__file__).resolve().parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
STYLESHEET = "maild.css"
FAVICON = "favicon.svg"
STATIC_PREFIX = "/static/"
STATIC_CACHE = "public, max-age=86400"


@web.middleware
async def _uniform_not_found(
    request: web.Request, handler: web.RequestHandler
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return views.not_found(request.app[views.STATE])


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = SERVER_NAME
    if request.path.startswith(STATIC_PREFIX) and response.status == 200:
        response.headers["Cache-Control"] = STATIC_CACHE
    else:
        response.headers["Cache-Control"] = NO_STORE


def _static_handler(name: str, content_type: str) -> web.RequestHandler:
    """A handler for one file of ``static/``, read once (no directory is served)."""
    body = (STATIC_DIR / name).read_bytes()

    async def static_file(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type, charset="utf-8")

    return static_file


def create_web_app(app: App, *, secret: bytes | None = None) -> web.Application:
    """The web application for ``app``.

    ``secret`` keys the form tokens; by default a random one per process, so a
    page rendered before a restart needs a reload before it can post.
    """
    web_app = web.Application(
        middlewares=[_uniform_not_found],
        client_max_size=max_upload_bytes(app.settings.attachments.max_message_bytes),
    )
    web_app[views.STATE] = views.new_state(app, TEMPLATES_DIR, secret)
    web_app.on_response_prepare.append(_security_headers)
    web_app.add_routes(
        [
            web.get("/healthz", health.healthz),
            web.get("/metrics", health.metrics),
            web.get(f"{STATIC_PREFIX}{STYLESHEET}", _static_handler(STYLESHEET, "text/css")),
            web.get(f"{STATIC_PREFIX}{FAVICON}", _static_handler(FAVICON, "image/svg+xml")),
            web.get("/t/{number}/{key}", views.ticket_page),
            web.get("/c/{key}", views.customer_list),
            web.post("/t/{number}/{key}/reply", views.reply),
            web.post("/t/{number}/{key}/close", views.close),
            web.post("/t/{number}/{key}/rate", views.rate),
            web.get("/t/{number}/{key}/a/{attachment_id}/{filename}", views.download),
        ]
    )
    return web_app


async def start_web(app: App) -> web.AppRunner:
    """Serve the web view on ``[web] host/port``; the caller awaits ``runner.cleanup()``."""
    # A slow client must not hold SIGTERM past the 10 s budget (SPEC §9).
    runner = web.AppRunner(create_web_app(app), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, app.settings.web.host, app.settings.web.port)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
