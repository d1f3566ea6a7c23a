"""OAuth2 tokens whose sole purpose is to hand IMAP and SMTP a valid XOAUTH2 access token.

One row of ``OAuthToken`` per account (an ``[[imap]]`` source's name, or ``"smtp"``):
the refresh token and the current access token, both encrypted with the Fernet key of
``oauth_key_file``, and the access token's expiry computed with the App's clock. An
access token is refreshed (RFC 6749 §6, through authlib) when less than
``REFRESH_MARGIN`` of it is left. A provider that refuses the refresh token
(``invalid_grant``: revoked, expired, password changed) marks the account
``needs_authorization``; nothing is retried against the provider until
``maild oauth authorize`` stores a new one (SPEC §14).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import requests
import structlog
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from cryptography.fernet import Fernet, InvalidToken

from maild.config import OAuthSettings
from maild.errors import TransientError
from maild.storage.db import for_update, is_postgres
from maild.storage.models import OAuthToken, aware, to_storage

if TYPE_CHECKING:
    from maild.app import App

log = structlog.get_logger("maild.oauth")

SMTP_ACCOUNT = "smtp"  # the account name of [smtp]'s tokens (also in maild.oauth_cli)
REFRESH_MARGIN = timedelta(minutes=5)  # refresh (and re-authenticate IDLE) this early
HTTP_TIMEOUT_SECONDS = 30.0
DEFAULT_EXPIRES_IN = 3600  # RFC 6749 §5.1 makes expires_in optional; assume an hour
# Token endpoint answers (RFC 6749 §5.2) that no retry can cure: a person must authorize.
AUTHORIZATION_ERRORS = frozenset({"invalid_grant", "invalid_client", "unauthorized_client"})


class NeedsAuthorizationError(TransientError):
    """No usable refresh token: run ``maild oauth authorize ACCOUNT``."""


@dataclass(frozen=True)
class TokenStatus:
    account: str
    authorized: bool
    needs_authorization: bool
    expires_at: datetime | None
    error: str


def new_session(oauth: OAuthSettings, **kwargs: Any) -> OAuth2Session:
    """An authlib session for ``oauth``: a confidential client posts its secret, a
    public one (Microsoft's device flow) sends only its id."""
    return OAuth2Session(
        oauth.client_id,
        oauth.client_secret,
        scope=" ".join(oauth.scopes) or None,
        token_endpoint_auth_method="client_secret_post" if oauth.client_secret else "none",
        **kwargs,
    )


class OAuthTokens:
    """Reads, refreshes and stores the tokens of every XOAUTH2 account of one App."""

    def __init__(self, app: App, timeout: float = HTTP_TIMEOUT_SECONDS) -> None:
        self.app = app
        self.timeout = timeout

    # -- what IMAP and SMTP call -------------------------------------------------------

    def access_token(self, account: str, oauth: OAuthSettings) -> str:
        """A token valid for at least ``REFRESH_MARGIN``; refreshed when needed.

        Raises :class:`NeedsAuthorizationError` (a person must act) or
        :class:`TransientError` (the provider could not be reached; retry later).
        """
        fernet = Fernet(oauth.key)
        row = OAuthToken.get_or_none(OAuthToken.account == account)
        current = self._usable(row, account, fernet)
        return current if current is not None else self._refresh(account, oauth, fernet)

    def _usable(self, row: OAuthToken | None, account: str, fernet: Fernet) -> str | None:
        """The stored access token if it has time left; None when a refresh is due."""
        if row is None or not row.refresh_token:
            raise NeedsAuthorizationError(
                f"{account}: not authorized yet; run `maild oauth authorize {account}`"
            )
        if row.needs_authorization:
            raise NeedsAuthorizationError(f"{account}: {row.error}")
        expires = aware(row.expires_at)
        fresh = expires is not None and expires - REFRESH_MARGIN > self.app.clock.now()
        return _decrypt(fernet, row.access_token, account) if row.access_token and fresh else None

    def expires_at(self, account: str) -> datetime | None:
        row = OAuthToken.get_or_none(OAuthToken.account == account)
        return aware(row.expires_at) if row is not None else None

    def reauthenticate_at(self, account: str) -> datetime | None:
        """When a connection logged in with the current token should log in again."""
        expires = self.expires_at(account)
        return expires - REFRESH_MARGIN if expires is not None else None

    def discard_access_token(self, account: str) -> None:
        """The server refused the token we hold: the next use refreshes it first."""
        OAuthToken.update(access_token=None, expires_at=None).where(
            OAuthToken.account == account
        ).execute()

    # -- what ``maild oauth authorize`` calls ------------------------------------------

    def store(self, account: str, oauth: OAuthSettings, token: dict[str, Any]) -> None:
        """Keep a token response (or an imported refresh token); clears needs_authorization."""
        refresh = token.get("refresh_token")
        if not refresh:
            raise TransientError(
                "the provider returned no refresh token (Google: access_type=offline and "
                "prompt=consent; Microsoft: the offline_access scope)"
            )
        fernet = Fernet(oauth.key)
        now = self.app.clock.now()
        values: dict[str, Any] = {
            "refresh_token": fernet.encrypt(refresh.encode()).decode(),
            "access_token": None,
            "expires_at": None,
            "needs_authorization": False,
            "error": "",
            "updated_at": to_storage(now),
        }
        if token.get("access_token"):
            values["access_token"] = fernet.encrypt(token["access_token"].encode()).decode()
            values["expires_at"] = to_storage(now + _lifetime(token))
        with self.app.db.atomic():
            if not OAuthToken.update(**values).where(OAuthToken.account == account).execute():
                OAuthToken.create(account=account, **values)
        log.info("oauth.authorized", account=account)

    def status(self, account: str) -> TokenStatus:
        row = OAuthToken.get_or_none(OAuthToken.account == account)
        if row is None:
            return TokenStatus(account, False, True, None, "not authorized yet")
        return TokenStatus(
            account,
            bool(row.refresh_token),
            bool(row.needs_authorization or not row.refresh_token),
            aware(row.expires_at),
            row.error or "",
        )

    # -- refresh -----------------------------------------------------------------------

    def _refresh(self, account: str, oauth: OAuthSettings, fernet: Fernet) -> str:
        """Refresh with the row locked on PostgreSQL: instances sharing the database
        refresh one at a time, and the later ones use the token the first one got
        (a provider that rotates refresh tokens would refuse a second use of the old
        one). SQLite is one host, where each account is worked by one thread, and its
        transactions take the database's write lock: no HTTP request inside one."""
        refused: OAuthError | None = None
        db = self.app.db
        with db.atomic() if is_postgres(db) else contextlib.nullcontext():
            query = OAuthToken.select().where(OAuthToken.account == account)
            row = for_update(query, db).first()
            current = self._usable(row, account, fernet)
            if current is not None:
                return current  # refreshed by another instance meanwhile
            assert row is not None
            refresh = _decrypt(fernet, row.refresh_token, account)
            try:
                token = self._request(oauth, refresh)
            except OAuthError as exc:
                refused = exc
            else:
                return self._keep(account, fernet, refresh, token)
        # Outside the transaction, so that the mark is not rolled back with the raise.
        detail = f"{refused.error}: {refused.description or ''}".strip(": ")
        self._needs_authorization(account, detail)
        raise NeedsAuthorizationError(f"{account}: refresh token refused: {refused.error}")

    def _request(self, oauth: OAuthSettings, refresh: str) -> dict[str, Any]:
        """RFC 6749 §6 through authlib; OAuthError only for answers that need a person."""
        session = new_session(oauth)
        try:
            return dict(
                session.refresh_token(
                    oauth.token_endpoint, refresh_token=refresh, timeout=self.timeout
                )
            )
        except OAuthError as exc:
            if exc.error in AUTHORIZATION_ERRORS:
                raise
            raise TransientError(f"token endpoint: {exc.error}: {exc.description}") from exc
        except (requests.RequestException, ValueError) as exc:
            raise TransientError(f"token endpoint: {type(exc).__name__}: {exc}") from exc
        finally:
            session.close()

    def _keep(self, account: str, fernet: Fernet, refresh: str, token: dict[str, Any]) -> str:
        access = token.get("access_token")
        if not access:
            raise TransientError("token endpoint answered without an access_token")
        now = self.app.clock.now()
        values: dict[str, Any] = {
            "access_token": fernet.encrypt(access.encode()).decode(),
            "expires_at": to_storage(now + _lifetime(token)),
            "updated_at": to_storage(now),
        }
        if token.get("refresh_token") and token["refresh_token"] != refresh:
            # Rotated (Microsoft does): the old one may stop working at any time.
            values["refresh_token"] = fernet.encrypt(token["refresh_token"].encode()).decode()
        OAuthToken.update(**values).where(OAuthToken.account == account).execute()
        expires_in = int(_lifetime(token).total_seconds())
        log.info("oauth.refreshed", account=account, expires_in=expires_in)
        return str(access)

    def _needs_authorization(self, account: str, error: str) -> None:
        OAuthToken.update(
            needs_authorization=True,
            access_token=None,
            expires_at=None,
            error=error,
            updated_at=to_storage(self.app.clock.now()),
        ).where(OAuthToken.account == account).execute()
        log.warning("oauth.needs_authorization", account=account, error=error)


def _lifetime(token: dict[str, Any]) -> timedelta:
    try:
        seconds = int(token.get("expires_in") or DEFAULT_EXPIRES_IN)
    except (TypeError, ValueError):
        seconds = DEFAULT_EXPIRES_IN
    return timedelta(seconds=max(0, seconds))


def _decrypt(fernet: Fernet, value: str, account: str) -> str:
    try:
        return fernet.decrypt(value.encode()).decode()
    except InvalidToken:
        # A different oauth_key_file than the one the token was stored with.
        raise NeedsAuthorizationError(
            f"{account}: stored token cannot be decrypted with oauth_key_file; "
            f"run `maild oauth authorize {account}` again"
        ) from None


def xoauth2_string(user: str, access_token: str) -> str:
    """The SASL XOAUTH2 initial response (before base64), as Google and Microsoft spell it."""
    return f"user={user}\x01auth=Bearer {access_token}\x01\x01"
