"""settings.toml for XOAUTH2 (SPEC §14): provider presets, required keys, the key file.

Tables of (keys, exact errors), like tests/unit/test_config.py; files in tmp_path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from maild.config import ConfigError, OAuthSettings, parse_settings

DEPARTMENTS = [{"key": "suporte", "addresses": ["suporte@example.com"]}]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "oauth.key"
    path.write_bytes(Fernet.generate_key() + b"\n")
    return path


def imap(key_file: Path, **keys: Any) -> dict[str, Any]:
    return {
        "name": "gmail",
        "host": "imap.gmail.com",
        "username": "suporte@example.com",
        "auth": "xoauth2",
        "oauth_key_file": str(key_file),
    } | keys


def parse(tmp_path: Path, **tables: Any):  # type: ignore[no-untyped-def]
    return parse_settings(
        {"departments": DEPARTMENTS, **tables},
        base_dir=tmp_path,
        env={"SECRET": "s3cret"},
    )


def errors(tmp_path: Path, **tables: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(tmp_path, **tables)
    return info.value.errors


def test_google_fills_endpoints_and_scope_and_asks_no_password(
    tmp_path: Path, key_file: Path
) -> None:
    table = imap(key_file, oauth_provider="google", client_id="id", client_secret_env="SECRET")
    source = parse(tmp_path, imap=[table]).imap[0]

    assert source.auth == "xoauth2" and source.password == ""
    assert source.oauth == OAuthSettings(
        provider="google",
        client_id="id",
        token_endpoint="https://oauth2.googleapis.com/token",
        authorization_endpoint="https://accounts.google.com/o/oauth2/v2/auth",
        device_authorization_endpoint="",  # Google offers no device flow for mail
        scopes=("https://mail.google.com/",),
        tenant="",
        client_secret="s3cret",
        key=key_file.read_bytes().strip(),
    )
    assert "s3cret" not in repr(source) and "key=" not in repr(source.oauth)


def test_microsoft_endpoints_follow_the_tenant(tmp_path: Path, key_file: Path) -> None:
    table = imap(key_file, oauth_provider="microsoft", client_id="app", tenant="contoso.com")
    smtp = {
        "host": "smtp.office365.com",
        "username": "suporte@contoso.com",
        "auth": "xoauth2",
        "oauth_provider": "microsoft",
        "client_id": "app",
        "oauth_key_file": str(key_file),
    }
    s = parse(tmp_path, imap=[table], smtp=smtp)
    oauth = s.imap[0].oauth
    assert oauth is not None
    base = "https://login.microsoftonline.com/contoso.com/oauth2/v2.0"
    assert oauth.token_endpoint == f"{base}/token"
    assert oauth.device_authorization_endpoint == f"{base}/devicecode"
    assert "offline_access" in oauth.scopes
    assert oauth.client_secret is None  # a public client
    assert s.smtp is not None and s.smtp.auth == "xoauth2" and s.smtp.password is None
    assert s.smtp.oauth is not None and s.smtp.oauth.tenant == "common"


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            {},
            ["imap[0].oauth_provider: is required", "imap[0].client_id: is required"],
        ),
        (
            {"oauth_provider": "yahoo", "client_id": "x"},
            ["imap[0].oauth_provider: 'yahoo' is not one of: google, microsoft, generic"],
        ),
        (
            {"oauth_provider": "generic", "client_id": "x"},
            [
                "imap[0].token_endpoint: is required for oauth_provider = 'generic'",
                "imap[0].authorization_endpoint: is required (or device_authorization_endpoint)"
                " for oauth_provider = 'generic'",
            ],
        ),
        (
            {"oauth_provider": "google", "client_id": "x", "tenant": "t"},
            ["imap[0].tenant: only applies to oauth_provider = 'microsoft'"],
        ),
        (
            {"oauth_provider": "google", "client_id": "x", "client_secret": "inline"},
            [
                "imap[0].client_secret: secrets are not kept in settings.toml; "
                "use client_secret_file or client_secret_env"
            ],
        ),
        (
            {"oauth_provider": "google", "client_id": "x", "token_endpoint": "ftp://x"},
            ["imap[0].token_endpoint: 'ftp://x' is not an http(s) URL"],
        ),
        (
            {"oauth_provider": "google", "client_id": "x", "name": "smtp"},
            ["imap[0].name: 'smtp' names the [smtp] tokens; choose another name"],
        ),
    ],
)
def test_broken_oauth_keys_are_named(
    tmp_path: Path, key_file: Path, keys: dict[str, Any], expected: list[str]
) -> None:
    assert errors(tmp_path, imap=[imap(key_file, **keys)]) == expected


def test_key_file_must_exist_and_hold_a_fernet_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.key"
    bad.write_text("not a key")
    base = {"oauth_provider": "google", "client_id": "x"}
    missing = imap(tmp_path / "missing.key", **base)
    assert errors(tmp_path, imap=[missing, imap(bad, name="other", **base)]) == [
        f"imap[0].oauth_key_file: cannot read {str(tmp_path / 'missing.key')!r}: "
        "No such file or directory",
        "imap[1].oauth_key_file: is not a Fernet key (32 url-safe base64-encoded bytes); "
        "make one with `maild oauth generate-key`",
    ]


def test_oauth_keys_on_a_password_source_are_errors(tmp_path: Path, key_file: Path) -> None:
    table = imap(key_file, auth="password", password_env="SECRET", client_id="x")
    assert errors(tmp_path, imap=[table]) == [
        "imap[0].client_id: only applies with auth = 'xoauth2'",
        "imap[0].oauth_key_file: only applies with auth = 'xoauth2'",
    ]


def test_smtp_xoauth2_needs_a_username(tmp_path: Path, key_file: Path) -> None:
    smtp = {
        "host": "smtp.gmail.com",
        "auth": "xoauth2",
        "oauth_provider": "google",
        "client_id": "x",
        "client_secret_env": "SECRET",
        "oauth_key_file": str(key_file),
    }
    assert errors(tmp_path, smtp=smtp) == ["smtp.username: is required when smtp.auth = 'xoauth2'"]
