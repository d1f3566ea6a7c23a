"""Pytest plugin whose sole purpose is to play an OAuth2 provider, and the mail servers that
trust it, for the XOAUTH2 tests.

* ``oauth_provider`` (session): :class:`OAuthProvider`, a small HTTP server on
  ``127.0.0.1`` with a token endpoint (RFC 6749: ``refresh_token`` and
  ``authorization_code`` with PKCE grants; RFC 8628 device code), a device
  authorization endpoint and an authorization endpoint that consents at once as
  :attr:`OAuthProvider.consenting_user`. Access tokens are JWTs signed HS256 with a key
  made at test time, valid for :attr:`OAuthProvider.lifetime` seconds of real time.
* ``dovecot_oauth`` (session): a real Dovecot whose ``oauth2`` passdb validates those
  JWTs itself (``introspection_mode = local``, the key in a dict under its temp dir).
* ``xoauth2_smtp`` (function): the aiosmtpd sink of ``tests.plugins.smtpsink`` offering
  only ``AUTH XOAUTH2`` (over plain TCP), checking tokens with the provider.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiosmtpd.smtp import SMTP, AuthResult
from imapclient import IMAPClient

from tests.plugins.dovecot import DovecotServer, DovecotUnavailable, find_dovecot, unavailable
from tests.plugins.smtpsink import SmtpSink

__all__ = ["OAuthDovecot", "OAuthProvider", "XOAuth2Sink"]

CLIENT_ID = "maild-test-client"
KEY_ID = "test"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class OAuthProvider:
    """The provider's state; every method is safe from any thread."""

    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    lifetime: int = 3600
    rotate_refresh_tokens: bool = False
    token_delay: float = 0.0  # seconds the token endpoint takes, to widen races
    consenting_user: str = ""
    refreshes: Counter[str] = field(default_factory=Counter)  # per user
    _refresh_tokens: dict[str, str] = field(default_factory=dict)  # token -> user
    _codes: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    _devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    # -- what tests call ---------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def refresh_token_for(self, user: str) -> str:
        token = "rt-" + secrets.token_urlsafe(24)
        with self._lock:
            self._refresh_tokens[token] = user
        return token

    def revoke_all(self, user: str) -> None:
        """What an admin (or a password change) does: every refresh token of ``user`` dies."""
        with self._lock:
            for token in [t for t, u in self._refresh_tokens.items() if u == user]:
                del self._refresh_tokens[token]

    def access_token(self, user: str, lifetime: int | None = None) -> str:
        now = int(time.time())  # what the mail servers check the JWT against
        header = {"alg": "HS256", "typ": "JWT", "kid": KEY_ID}
        claims = {"sub": user, "email": user, "iat": now, "exp": now + (lifetime or self.lifetime)}
        signing = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = hmac.new(self.key, signing.encode(), hashlib.sha256).digest()
        return f"{signing}.{_b64url(signature)}"

    def user_of(self, token: str) -> str | None:
        """The user an unexpired, well-signed access token is for (what a server checks)."""
        try:
            signing, _, signature = token.rpartition(".")
            expected = hmac.new(self.key, signing.encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _b64url_decode(signature)):
                return None
            claims = json.loads(_b64url_decode(signing.split(".")[1]))
        except (ValueError, IndexError):
            return None
        return claims["email"] if claims.get("exp", 0) > time.time() else None

    def approve_device(self, user_code: str, user: str) -> None:
        """The person enters ``user_code`` on the verification page and consents."""
        with self._lock:
            for device in self._devices.values():
                if device["user_code"] == user_code:
                    device["user"] = user
                    return
        raise KeyError(user_code)

    # -- the endpoints -----------------------------------------------------------------

    def _token_response(self, user: str) -> dict[str, Any]:
        return {
            "access_token": self.access_token(user),
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "refresh_token": self.refresh_token_for(user),
            "scope": "mail",
        }

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        # A confidential client posts its secret; a public one (Microsoft's device flow
        # for an app with "Allow public client flows") sends none at all.
        secret = form.get("client_secret")
        if form.get("client_id") != CLIENT_ID or secret not in (None, self.client_secret):
            return 401, {"error": "invalid_client"}
        grant = form.get("grant_type")
        if self.token_delay:
            time.sleep(self.token_delay)  # a slow provider, not a wait for another thread
        if grant == "refresh_token":
            with self._lock:
                user = self._refresh_tokens.get(form.get("refresh_token", ""))
                if user is not None and self.rotate_refresh_tokens:
                    del self._refresh_tokens[form["refresh_token"]]
            if user is None:
                return 400, {"error": "invalid_grant", "error_description": "token revoked"}
            self.refreshes[user] += 1
            body = {
                "access_token": self.access_token(user),
                "token_type": "Bearer",
                "expires_in": self.lifetime,
                "scope": "mail",
            }
            if self.rotate_refresh_tokens:
                body["refresh_token"] = self.refresh_token_for(user)
            return 200, body
        if grant == "authorization_code":
            with self._lock:
                entry = self._codes.pop(form.get("code", ""), None)
            if entry is None:
                return 400, {"error": "invalid_grant"}
            user, redirect_uri, challenge = entry
            verifier = form.get("code_verifier", "")
            if _b64url(hashlib.sha256(verifier.encode()).digest()) != challenge:
                return 400, {"error": "invalid_grant", "error_description": "PKCE"}
            if form.get("redirect_uri") != redirect_uri:
                return 400, {"error": "invalid_grant", "error_description": "redirect_uri"}
            return 200, self._token_response(user)
        if grant == DEVICE_GRANT:
            with self._lock:
                device = self._devices.get(form.get("device_code", ""))
                if device is None:
                    return 400, {"error": "expired_token"}
                if device["user"] is None:
                    return 400, {"error": "authorization_pending"}
                del self._devices[form["device_code"]]
            return 200, self._token_response(device["user"])
        return 400, {"error": "unsupported_grant_type"}

    def device(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("client_id") != CLIENT_ID:
            return 401, {"error": "invalid_client"}
        device_code = secrets.token_urlsafe(16)
        user_code = secrets.token_hex(4).upper()
        with self._lock:
            self._devices[device_code] = {"user_code": user_code, "user": None}
        return 200, {
            "device_code": device_code,
            "user_code": user_code,
            "verification_uri": f"{self.url}/device/verify",
            "expires_in": 60,
            "interval": 1,
        }

    def authorize(self, query: dict[str, str]) -> str:
        """Consents as :attr:`consenting_user`; the redirect location."""
        assert query.get("client_id") == CLIENT_ID and query.get("response_type") == "code"
        assert query.get("code_challenge_method") == "S256"
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = (
                self.consenting_user,
                query["redirect_uri"],
                query["code_challenge"],
            )
        return f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                pairs = parse_qs(self.rfile.read(length).decode(), keep_blank_values=True)
                form = {k: v[0] for k, v in pairs.items()}
                path = urlsplit(self.path).path
                if path == "/token":
                    self._json(*provider.token(form))
                elif path == "/device":
                    self._json(*provider.device(form))
                else:
                    self._json(404, {"error": "not_found"})

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != "/authorize":
                    self._json(404, {"error": "not_found"})
                    return
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                self.send_response(302)
                self.send_header("Location", provider.authorize(query))
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def settings_table(self, tmp_path: Path, **extra: Any) -> dict[str, Any]:
        """The XOAUTH2 keys of an [[imap]] source or [smtp] pointing at this provider;
        the client secret and a fresh encryption key are written under ``tmp_path``."""
        from cryptography.fernet import Fernet

        secret = tmp_path / "oauth-client-secret"
        secret.write_text(self.client_secret)
        key = tmp_path / "oauth.key"
        if not key.exists():
            key.write_bytes(Fernet.generate_key())
        return {
            "auth": "xoauth2",
            "oauth_provider": "generic",
            "client_id": CLIENT_ID,
            "client_secret_file": str(secret),
            "token_endpoint": f"{self.url}/token",
            "authorization_endpoint": f"{self.url}/authorize",
            "scopes": ["mail"],
            "oauth_key_file": str(key),
        } | extra


class OAuthDovecot(DovecotServer):
    """Dovecot with an ``oauth2`` passdb for XOAUTH2/OAUTHBEARER (tokens checked locally
    against ``provider``'s key) next to the usual passwd-file one for PLAIN/LOGIN."""

    def __init__(self, binary: str, root: Path, provider: OAuthProvider) -> None:
        self.provider = provider
        super().__init__(binary, root)

    def _prepare(self) -> None:
        # Lookup key shared/<azp or "default">/<alg>/<kid>; the fs dict drops "shared/".
        keys = self.root / "oauth-keys"
        key_file = keys / "default" / "HS256" / KEY_ID
        key_file.parent.mkdir(parents=True)
        key_file.write_text(base64.b64encode(self.provider.key).decode())
        for path in (keys, keys / "default", key_file.parent):
            path.chmod(0o755)  # read by the auth process (the internal user when root)
        key_file.chmod(0o644)
        conf = self.root / "dovecot-oauth2.conf.ext"
        conf.write_text(
            "introspection_mode = local\n"
            f"local_validation_key_dict = fs:posix:prefix={keys}/\n"
            "username_attribute = email\n"
        )
        conf.chmod(0o644)
        super()._prepare()
        text = self.config_path.read_text()
        text = text.replace(
            "auth_mechanisms = plain login", "auth_mechanisms = plain login xoauth2 oauthbearer"
        )
        text = text.replace(
            "passdb {\n  driver = passwd-file\n",
            "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
            f"  args = {conf}\n}}\n"
            "passdb {\n  driver = passwd-file\n  mechanisms = plain login\n",
            1,
        )
        self.config_path.write_text(text)

    def oauth_client(self, user: str) -> IMAPClient:
        """A client logged in with XOAUTH2 as ``user`` (the test's own token)."""
        imap = IMAPClient(self.host, port=self.port, ssl=False, timeout=10.0)
        imap.oauth2_login(user, self.provider.access_token(user))
        self._clients.append(imap)
        return imap

    def oauth_append(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        imap = IMAPClient(self.host, port=self.port, ssl=False, timeout=10.0)
        try:
            imap.oauth2_login(user, self.provider.access_token(user))
            imap.append(folder, raw)
        finally:
            with contextlib.suppress(Exception):
                imap.logout()


class XOAuth2Sink(SmtpSink):
    """The SMTP sink with ``AUTH XOAUTH2`` only (aiosmtpd calls ``auth_XOAUTH2`` of the
    handler); a refused token gets the 334 JSON error challenge, then 535."""

    def __init__(self, provider: OAuthProvider) -> None:
        super().__init__()
        self.provider = provider
        self.logins: list[str] = []

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        if len(args) > 1:
            blob = args[1].encode()
        else:
            answer = await server.challenge_auth("", encode_to_b64=False)
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            blob = answer
        fields = dict(
            part.split("=", 1) for part in base64.b64decode(blob).decode().split("\x01") if part
        )
        token = fields.get("auth", "").removeprefix("Bearer ")
        user = self.provider.user_of(token)
        if user is None or user != fields.get("user"):
            error = json.dumps({"status": "401", "schemes": "bearer", "scope": "mail"})
            await server.challenge_auth(error)
            return AuthResult(success=False, handled=False)
        self.logins.append(user)
        return AuthResult(success=True, auth_data=user)

    def start_xoauth2(self) -> None:
        from aiosmtpd.controller import Controller

        from tests.plugins.smtpsink import _PortZeroController

        controller: Controller = _PortZeroController(
            self,
            hostname=self.host,
            port=0,
            # Not auth_required: aiosmtpd warns (an error here) when AUTH is required
            # without TLS; the tests check ``logins`` instead.
            auth_require_tls=False,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
        )
        controller.start()
        self._controller = controller
        self.port = controller.port


@pytest.fixture(scope="session")
def oauth_provider() -> Iterator[OAuthProvider]:
    provider = OAuthProvider()
    provider.start()
    try:
        yield provider
    finally:
        provider.stop()


@pytest.fixture(scope="session")
def dovecot_oauth(oauth_provider: OAuthProvider) -> Iterator[OAuthDovecot]:
    binary = find_dovecot()
    if binary is None:
        unavailable("dovecot binary not found (run scripts/install-test-deps.sh)")
    root = Path(tempfile.mkdtemp(prefix="maild-dovecot-oauth-"))
    server = OAuthDovecot(binary, root, oauth_provider)
    atexit.register(server.stop)
    try:
        server.start()
    except DovecotUnavailable as exc:
        server.cleanup()
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.cleanup()
        atexit.unregister(server.stop)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def xoauth2_smtp(oauth_provider: OAuthProvider) -> Iterator[XOAuth2Sink]:
    sink = XOAuth2Sink(oauth_provider)
    sink.start_xoauth2()
    try:
        yield sink
    finally:
        sink.stop()
