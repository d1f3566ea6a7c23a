"""aiohttp handlers of the quick-access pages: thin glue between requests and ``data``.

Each handler checks what the request carries, runs one unit of work from
``maild.web.data`` (reading) or ``maild.web.actions`` (changing a ticket) in a
worker thread and renders or redirects. A wrong number and a wrong key give the
very same 404 response; POSTs need the page's form token and a same-site
request, else 403; GET never changes anything. ``/healthz`` and ``/metrics``
are in ``maild.web.health``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
import structlog
from aiohttp import web

from maild.app import App
from maild.errors import StorageUnavailableError
from maild.render import LANGUAGES, format_filesize
from maild.web import actions, data
from maild.web.access import (
    DOWNLOAD_CSP,
    FormTokens,
    content_disposition,
    cross_site,
    parse_number,
    safe_content_type,
)
from maild.web.customer_list import load_list
from maild.web.reply import MAX_REPLY_CHARS, MAX_REQUEST_BYTES, max_upload_bytes

log = structlog.get_logger("maild.web")

# Outcomes and action results the page explains after a redirect (``?m=``).
FLASH_CODES = frozenset(
    {
        "appended",
        "reopened",
        "created",
        "followup_rejected",
        "rate_limited",
        "quarantined",
        "duplicate_message",
        "unauthorized",
        "empty_rejected",
        "too_large",
        "reply_empty",
        "reply_too_long",
        "unavailable",
        "closed",
        "already_closed",
        "rated",
        "rate_not_allowed",
        "rate_invalid",
        "processed",
        "files_refused",
        "files_refused_empty",
    }
)
FLASH_ERRORS = frozenset(
    {
        "followup_rejected",
        "rate_limited",
        "quarantined",
        "unauthorized",
        "empty_rejected",
        "too_large",
        "reply_empty",
        "reply_too_long",
        "unavailable",
        "rate_not_allowed",
        "rate_invalid",
        "files_refused",
        "files_refused_empty",
    }
)
DATE_FORMATS = {"pt_BR": "%d/%m/%Y %H:%M", "en": "%Y-%m-%d %H:%M"}


@dataclass(frozen=True)
class WebState:
    """What every handler needs, kept on the aiohttp application."""

    app: App
    env: jinja2.Environment
    tokens: FormTokens
    not_found_body: bytes
    # One environment per shipped language: a page is in its ticket's (customer's) language.
    envs: dict[str, jinja2.Environment] = field(default_factory=dict)

    def env_for(self, language: str | None) -> jinja2.Environment:
        return self.envs.get(language or "", self.env)


STATE: web.AppKey[WebState] = web.AppKey("maild_web", WebState)


def make_environment(templates_dir: Any, language: str, tz: ZoneInfo) -> jinja2.Environment:
    """Jinja2 for the pages: autoescape on everything, undefined names are errors."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir / language)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def when(value: datetime | None) -> str:
        if value is None:
            return ""
        return value.astimezone(tz).strftime(DATE_FORMATS.get(language, DATE_FORMATS["en"]))

    def iso(value: datetime | None) -> str:
        return value.astimezone(tz).isoformat() if value is not None else ""

    env.filters["when"] = when
    env.filters["iso"] = iso
    env.filters["filesize"] = lambda size: format_filesize(int(size), language)
    return env


def new_state(app: App, templates_dir: Any, secret: bytes | None = None) -> WebState:
    envs = {lang: make_environment(templates_dir, lang, app.tz) for lang in LANGUAGES}
    env = envs.get(app.settings.daemon.language) or make_environment(
        templates_dir, app.settings.daemon.language, app.tz
    )
    body = env.get_template("not_found.html.j2").render(instance=app.settings.daemon.instance)
    return WebState(
        app=app,
        env=env,
        tokens=FormTokens(secret or secrets.token_bytes(32)),
        not_found_body=body.encode("utf-8"),
        envs=envs,
    )


def _state(request: web.Request) -> WebState:
    return request.app[STATE]


def not_found(state: WebState) -> web.Response:
    """The one 404 response: same body and headers whatever was wrong."""
    return web.Response(
        body=state.not_found_body, status=404, content_type="text/html", charset="utf-8"
    )


def _html(
    state: WebState, template: str, status: int = 200, language: str | None = None, **context: Any
) -> web.Response:
    context.setdefault("instance", state.app.settings.daemon.instance)
    text = state.env_for(language).get_template(template).render(**context)
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def _forbidden(state: WebState) -> web.Response:
    return _html(state, "forbidden.html.j2", status=403)


def _redirect(path: str, code: str) -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"{path}?{urlencode({'m': code})}")


async def ticket_page(request: web.Request) -> web.Response:
    state = _state(request)
    number, key = request.match_info["number"], request.match_info["key"]
    page = await data.run_db(state.app, data.load_page, number, key)
    if page is None:
        return not_found(state)
    flash = request.query.get("m", "")
    flash = flash if flash in FLASH_CODES else ""
    preselect = actions.parse_stars(request.query.get("rate", "")) or page.rating
    return _html(
        state,
        "ticket.html.j2",
        language=page.language,
        page=page,
        form_token=state.tokens.issue(page.number, page.key),
        flash=flash,
        flash_is_error=flash in FLASH_ERRORS,
        preselect=preselect,
        max_reply=MAX_REPLY_CHARS,
        max_comment=actions.MAX_RATING_COMMENT,
        allowed_extensions=state.app.settings.attachments.allowed_extensions,
        max_file=state.app.settings.attachments.max_bytes,
        max_upload=max_upload_bytes(state.app.settings.attachments.max_message_bytes),
    )


async def customer_list(request: web.Request) -> web.Response:
    """``GET /c/{key}``: the customer's tickets (SPEC §12); a wrong key is the one 404."""
    state = _state(request)
    key = request.match_info["key"]
    page = await data.run_db(
        state.app,
        load_list,
        key,
        request.query.get("tab", ""),
        request.query.get("month", ""),
    )
    if page is None:
        return not_found(state)

    def list_url(tab: str, month: str) -> str:
        query = {"tab": tab, **({"month": month} if month else {})}
        return f"/c/{page.key}?{urlencode(query)}"

    return _html(state, "tickets.html.j2", language=page.language, page=page, list_url=list_url)


async def _checked_form(
    request: web.Request, *, uploads: bool = False
) -> tuple[WebState, dict[str, str]] | web.Response:
    """The POSTed form, or a 403 when it is cross-site or lacks this page's token.

    Only the reply form takes files (kept aside in ``request[FILES]`` as name, bytes);
    the others stay within the few kilobytes a text form needs."""
    state = _state(request)
    if cross_site(request.headers, request.host, state.app.settings.daemon.base_url):
        log.info("web.post_refused", reason="cross_site")
        return _forbidden(state)
    if not uploads and (request.content_length or 0) > MAX_REQUEST_BYTES:
        return await _upload_too_large(state, request)
    try:
        form = await request.post()
    except web.HTTPRequestEntityTooLarge:
        return await _upload_too_large(state, request)
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    request[FILES] = tuple(
        (f.filename, f.file.read())
        for f in form.getall("files", [])
        if isinstance(f, web.FileField) and f.filename
    )
    number = parse_number(request.match_info["number"])
    token = fields.get("token", "")
    if number is None or not state.tokens.check(token, number, request.match_info["key"]):
        log.info("web.post_refused", reason="form_token")
        return _forbidden(state)
    return state, fields


FILES: web.RequestKey[tuple[tuple[str, bytes], ...]] = web.RequestKey("maild_files", tuple)


async def _upload_too_large(state: WebState, request: web.Request) -> web.Response:
    """A clear page, in the ticket's language, instead of aiohttp's bare 413 text."""
    number, key = request.match_info.get("number", ""), request.match_info.get("key", "")
    page = await data.run_db(state.app, data.find_ticket_language, number, key)
    if page is None:
        return not_found(state)
    log.info("web.post_refused", reason="too_large")
    limit = max_upload_bytes(state.app.settings.attachments.max_message_bytes)
    return _html(
        state,
        "too_large.html.j2",
        status=413,
        language=page,
        back=f"/t/{number}/{key}",
        limit=limit,
        max_file=state.app.settings.attachments.max_bytes,
    )


async def reply(request: web.Request) -> web.StreamResponse:
    checked = await _checked_form(request, uploads=True)
    if isinstance(checked, web.Response):
        return checked
    state, fields = checked
    number, key = request.match_info["number"], request.match_info["key"]
    # Browsers submit line breaks as CRLF but count them as one character for
    # maxlength: count them the same way here.
    text = fields.get("text", "").replace("\r\n", "\n")
    files = request.get(FILES, ())
    back = f"/t/{number}/{key}"
    if not text.strip() and not files:
        raise _redirect(back, "reply_empty")
    if len(text) > MAX_REPLY_CHARS:
        raise _redirect(back, "reply_too_long")
    try:
        outcome = await data.run_db(state.app, actions.post_reply, number, key, text, files)
        state.app.outbox_changed()
    except StorageUnavailableError as exc:
        log.error("web.reply_failed", ticket=parse_number(number), error=str(exc))
        raise _redirect(back, "unavailable") from None
    if outcome is None:
        return not_found(state)
    code = outcome.result.outcome
    log.info("web.reply", ticket=outcome.result.ticket, outcome=code)
    if outcome.refused_files:
        # The page lists each refused file with its reason under the message; say so.
        code = "files_refused_empty" if code == "empty_rejected" else "files_refused"
    raise _redirect(outcome.path, code if code in FLASH_CODES else "processed")


async def close(request: web.Request) -> web.StreamResponse:
    checked = await _checked_form(request)
    if isinstance(checked, web.Response):
        return checked
    state, _fields = checked
    number, key = request.match_info["number"], request.match_info["key"]
    code = await data.run_db(state.app, actions.close_ticket, number, key)
    state.app.outbox_changed()
    if code is None:
        return not_found(state)
    log.info("web.close", ticket=parse_number(number), result=code)
    raise _redirect(f"/t/{number}/{key}", code)


async def rate(request: web.Request) -> web.StreamResponse:
    checked = await _checked_form(request)
    if isinstance(checked, web.Response):
        return checked
    state, fields = checked
    number, key = request.match_info["number"], request.match_info["key"]
    code = await data.run_db(
        state.app,
        actions.rate_ticket,
        number,
        key,
        fields.get("stars", ""),
        fields.get("comment", ""),
    )
    state.app.outbox_changed()
    if code is None:
        return not_found(state)
    log.info("web.rate", ticket=parse_number(number), result=code)
    raise _redirect(f"/t/{number}/{key}", code)


async def download(request: web.Request) -> web.Response:
    state = _state(request)
    info = request.match_info
    found = await data.run_db(
        state.app, data.load_attachment, info["number"], info["key"], info["attachment_id"]
    )
    if found is None:
        return not_found(state)
    response = web.Response(body=found.content)
    response.headers["Content-Type"] = safe_content_type(found.content_type)
    response.headers["Content-Disposition"] = content_disposition(found.filename)
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    return response
