"""``maild oauth authorize ACCOUNT``: the person's side of XOAUTH2 (SPEC §7, §14).

A refresh token is obtained once and stored (encrypted) for the daemon: the
device-code flow (RFC 8628) where the provider offers it -- a code to type on any
device's browser -- otherwise the authorization-code flow with PKCE and a loopback
redirect to ``127.0.0.1`` (RFC 8252 §7.3); ``--refresh-token-file`` imports one
obtained elsewhere. Either way the token is tried at once with a refresh, so a wrong
client id or secret shows now rather than in the daemon's log.

This module loads the OAuth client stack (authlib, requests); ``maild.oauth_cli``
imports it only when ``authorize`` runs.
"""

from __future__ import annotations

import argparse
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuthError

from maild.cli_env import EX_ERROR, EX_OK, CliEnv
from maild.config import OAuthSettings, Settings
from maild.errors import TransientError, UsageError
from maild.oauth import SMTP_ACCOUNT, NeedsAuthorizationError, new_session

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
HTTP_TIMEOUT_SECONDS = 30.0
# Google hands out a refresh token only with these (docs/oauth.md).
GOOGLE_AUTHORIZATION_PARAMS = {"access_type": "offline", "prompt": "consent"}
LOOPBACK_PAGE = (
    b"<!doctype html><meta charset=utf-8><title>maild</title>"
    b"<p>maild received the authorization. You can close this window.</p>"
)


def cmd_authorize(
    args: argparse.Namespace, settings: Settings, out: TextIO, err: TextIO, env: CliEnv
) -> int:
    accounts = oauth_accounts(settings)
    oauth = accounts.get(args.source)
    if oauth is None:
        known = ", ".join(sorted(accounts)) or "none"
        raise UsageError(f"{args.source!r} is not a source with auth = 'xoauth2' (those: {known})")
    app = env.open_app()
    try:
        try:
            token = _obtain(args, oauth, out)
        except (OAuthError, requests.RequestException, ValueError, KeyError) as exc:
            raise UsageError(f"authorization failed: {_describe(exc)}") from exc
        app.oauth.store(args.source, oauth, token)
        try:
            app.oauth.discard_access_token(args.source)
            app.oauth.access_token(args.source, oauth)  # proves the refresh token works
        except (NeedsAuthorizationError, TransientError) as exc:
            print(f"error: stored, but a refresh with it failed: {exc}", file=err)
            return EX_ERROR
        expires = app.oauth.expires_at(args.source)
        until = expires.astimezone(app.tz).isoformat() if expires else "unknown"
        print(f"{args.source}: authorized; access token valid until {until}", file=out)
        return EX_OK
    finally:
        app.close()


def oauth_accounts(settings: Settings) -> dict[str, OAuthSettings]:
    """Every XOAUTH2 account of the settings: source names, and ``smtp``."""
    accounts = {s.name: s.oauth for s in settings.imap if s.oauth is not None}
    if settings.smtp is not None and settings.smtp.oauth is not None:
        accounts[SMTP_ACCOUNT] = settings.smtp.oauth
    return accounts


def _obtain(args: argparse.Namespace, oauth: OAuthSettings, out: TextIO) -> dict[str, Any]:
    if args.refresh_token_file:
        text = Path(args.refresh_token_file).read_text(encoding="utf-8").strip()
        if not text:
            raise UsageError(f"{args.refresh_token_file}: empty")
        return {"refresh_token": text}
    if oauth.device_authorization_endpoint and not args.loopback:
        return device_flow(oauth, out, args.wait)
    if not oauth.authorization_endpoint:
        raise UsageError("no authorization_endpoint for a loopback redirect")
    return loopback_flow(oauth, out, args.wait)


def device_flow(oauth: OAuthSettings, out: TextIO, wait_seconds: int) -> dict[str, Any]:
    """RFC 8628: show a code, poll the token endpoint until the person has consented."""
    session = new_session(oauth)
    try:
        reply = session.post(
            oauth.device_authorization_endpoint,
            data={"client_id": oauth.client_id, "scope": " ".join(oauth.scopes)},
            withhold_token=True,
            timeout=HTTP_TIMEOUT_SECONDS,
        )
        data = reply.json()
        if reply.status_code != 200 or "device_code" not in data:
            raise UsageError(f"device authorization refused: {_error_body(data)}")
        uri = data.get("verification_uri") or data.get("verification_url")
        print(
            f"To authorize, open {uri} in any browser and enter the code {data['user_code']}",
            file=out,
        )
        out.flush()
        interval = max(1, int(data.get("interval", 5)))
        pause = threading.Event()
        waited = 0
        limit = min(wait_seconds, int(data.get("expires_in", wait_seconds)))
        while waited < limit:
            pause.wait(interval)  # a pause between polls, as RFC 8628 §3.5 asks
            waited += interval
            try:
                return dict(
                    session.fetch_token(
                        oauth.token_endpoint,
                        grant_type=DEVICE_GRANT,
                        device_code=data["device_code"],
                        timeout=HTTP_TIMEOUT_SECONDS,
                    )
                )
            except OAuthError as exc:
                if exc.error == "authorization_pending":
                    continue
                if exc.error == "slow_down":
                    interval += 5
                    continue
                raise
        raise UsageError(f"no consent within {limit} s; run the command again")
    finally:
        session.close()


def loopback_flow(oauth: OAuthSettings, out: TextIO, wait_seconds: int) -> dict[str, Any]:
    """Authorization code with PKCE; the browser comes back to 127.0.0.1 (RFC 8252)."""
    received: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # not on the CLI's stderr
            return

        def do_GET(self) -> None:
            query = parse_qs(urlsplit(self.path).query)
            if "code" in query or "error" in query:
                received["path"] = self.path
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(LOOPBACK_PAGE)))
            self.end_headers()
            self.wfile.write(LOOPBACK_PAGE)

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.timeout = 1.0
    # Exactly as Google's and RFC 8252's examples spell a loopback redirect (no path).
    redirect_uri = f"http://127.0.0.1:{server.server_address[1]}"
    session = new_session(oauth, redirect_uri=redirect_uri, code_challenge_method="S256")
    try:
        verifier = generate_token(64)
        extra = GOOGLE_AUTHORIZATION_PARAMS if oauth.provider == "google" else {}
        url, state = session.create_authorization_url(
            oauth.authorization_endpoint, code_verifier=verifier, **extra
        )
        print(
            "To authorize, open this address in a browser on this machine "
            f"(or through an SSH tunnel to port {server.server_address[1]}):\n{url}",
            file=out,
        )
        out.flush()
        for _ in range(max(1, wait_seconds)):  # handle_request waits at most 1 s each
            server.handle_request()
            if "path" in received:
                break
        else:
            raise UsageError(f"no consent within {wait_seconds} s; run the command again")
        query = parse_qs(urlsplit(received["path"]).query)
        if "error" in query:
            raise UsageError(f"authorization refused: {query['error'][0]}")
        return dict(
            session.fetch_token(
                oauth.token_endpoint,
                authorization_response=redirect_uri + received["path"],
                state=state,
                code_verifier=verifier,
                timeout=HTTP_TIMEOUT_SECONDS,
            )
        )
    finally:
        session.close()
        server.server_close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OAuthError):
        return f"{exc.error}: {exc.description}" if exc.description else str(exc.error)
    return f"{type(exc).__name__}: {exc}"


def _error_body(data: Any) -> str:
    if isinstance(data, dict):
        return f"{data.get('error')}: {data.get('error_description', '')}".strip(": ")
    return repr(data)
