"""The OAuth2 keys of an [[imap]] source or [smtp] (SPEC §14): read by the schema of
``schema.OAuthKeys``, endpoints and scopes filled per provider."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from maild.config import checks as c
from maild.config.schema import OAUTH_KEYS, OAuthKeys, OAuthSettings

if TYPE_CHECKING:
    from maild.config.reader import Reader

Values = dict[str, Any]


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}"


# Well-known endpoints and the scopes IMAP and SMTP need (docs/oauth.md). Google offers
# no device flow for the mail scope, so its authorization is a loopback redirect.
_GOOGLE = {
    "token_endpoint": "https://oauth2.googleapis.com/token",
    "authorization_endpoint": "https://accounts.google.com/o/oauth2/v2/auth",
    "device_authorization_endpoint": "",
    "scopes": ("https://mail.google.com/",),
}
_MICROSOFT_BASE = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
_MICROSOFT_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
    "offline_access",
)
_ENDPOINTS = ("token_endpoint", "authorization_endpoint", "device_authorization_endpoint")


def read_auth(r: Reader, v: Values, t: Mapping[str, Any], p: str) -> OAuthSettings | None:
    """OAuthSettings with ``auth = "xoauth2"``; else the OAuth2 keys are errors."""
    if v["auth"] == "xoauth2":
        return _oauth(r, r.section(OAuthKeys, t, p, check_unknown=False), p)
    for key in sorted(OAUTH_KEYS - {"auth"}):
        if key in t:
            r.error(_join(p, key), "only applies with auth = 'xoauth2'")
    return None


def _oauth(r: Reader, v: Values, p: str) -> OAuthSettings | None:
    provider, tenant = v["oauth_provider"], v["tenant"]
    if tenant and provider != "microsoft":
        r.error(_join(p, "tenant"), "only applies to oauth_provider = 'microsoft'")
    tenant = tenant or ("common" if provider == "microsoft" else "")
    if provider == "google":
        defaults: dict[str, Any] = dict(_GOOGLE)
    elif provider == "microsoft":
        base = _MICROSOFT_BASE.format(tenant=tenant)
        defaults = {
            "token_endpoint": f"{base}/token",
            "authorization_endpoint": f"{base}/authorize",
            "device_authorization_endpoint": f"{base}/devicecode",
            "scopes": _MICROSOFT_SCOPES,
        }
    else:
        defaults = {"authorization_endpoint": "", "device_authorization_endpoint": ""}
    urls = {k: v[k] if v[k] is not None else defaults.get(k) for k in _ENDPOINTS}
    if provider == "generic" and not urls["token_endpoint"]:
        r.error(_join(p, "token_endpoint"), "is required for oauth_provider = 'generic'")
    if provider == "generic" and not (
        urls["authorization_endpoint"] or urls["device_authorization_endpoint"]
    ):
        r.error(
            _join(p, "authorization_endpoint"),
            "is required (or device_authorization_endpoint) for oauth_provider = 'generic'",
        )
    scopes = v["scopes"] if v["scopes"] is not None else defaults.get("scopes", ())
    key = _fernet_key(r, v["oauth_key_file"], p)
    if provider is None or v["client_id"] is None or not urls["token_endpoint"]:
        return None
    return OAuthSettings(
        provider=provider,
        client_id=v["client_id"],
        token_endpoint=urls["token_endpoint"],
        authorization_endpoint=urls["authorization_endpoint"] or "",
        device_authorization_endpoint=urls["device_authorization_endpoint"] or "",
        scopes=scopes,
        tenant=tenant,
        client_secret=v["client_secret"],
        key=key,
    )


def _fernet_key(r: Reader, name: str | None, p: str) -> bytes:
    key_path = r.path(name)
    if key_path is None:
        return b""
    try:
        key = key_path.read_bytes().strip()
    except OSError as exc:
        r.error(_join(p, "oauth_key_file"), f"cannot read {str(key_path)!r}: {exc.strerror}")
        return b""
    problem = c.fernet_key_problem(key)
    if problem:
        r.error(_join(p, "oauth_key_file"), problem)
    return key
