"""Integration tests whose sole purpose is to prove XOAUTH2 (SPEC §14) against real servers.

A real Dovecot validates the provider's JWTs itself (``oauth2`` passdb,
``introspection_mode = local``); an aiosmtpd server accepts only ``AUTH XOAUTH2``; the
test's :class:`~tests.plugins.oauth.OAuthProvider` plays Google or Microsoft (refresh
grant, device code, authorization code with PKCE). maild's expiry decisions run on the
test's frozen clock; the mail servers check tokens against real time.
"""

from __future__ import annotations

import io
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import structlog
from maild.storage.models import OAuthToken, Ticket

from maild.app import App
from maild.cli import run_cli
from maild.clock import FrozenClock
from maild.intake.imap import ImapRunner
from maild.metrics import SOURCE_NEEDS_AUTHORIZATION
from maild.oauth import SMTP_ACCOUNT, NeedsAuthorizationError
from maild.records import IngestResult
from maild.transports import make_transport
from tests.plugins.oauth import OAuthDovecot, OAuthProvider, XOAuth2Sink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

WAIT = 15.0


def mail(subject: str) -> bytes:
    return (
        "From: Cliente <customer@example.com>\r\n"
        "To: suporte@example.com\r\n"
        f"Subject: {subject}\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 -0300\r\n"
        f"Message-ID: <oauth-{random.getrandbits(48)}@example.com>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Olá.\r\n"
    ).encode()


def new_user() -> str:
    return f"o-{secrets.token_hex(4)}@example.com"


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Polls a condition another thread makes true (bounded; no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Collector:
    def __init__(self) -> None:
        self.results: list[IngestResult] = []
        self._cond = threading.Condition()

    def __call__(self, result: IngestResult) -> None:
        with self._cond:
            self.results.append(result)
            self._cond.notify_all()

    def wait_for(self, n: int) -> list[IngestResult]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.results) >= n, WAIT), (
                f"only {len(self.results)} of {n} messages ingested"
            )
            return list(self.results)


class Runners:
    """Runner threads for one test, stopped and joined at its end."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.items: list[tuple[ImapRunner, threading.Thread]] = []

    def start(self, app: App, index: int, collector: Collector) -> ImapRunner:
        runner = ImapRunner(
            app,
            app.settings.imap[index],
            owner="instance-a",
            stop_event=self.stop,
            on_ingested=collector,
            rng=random.Random(3),
            backoff_base=0.05,
            backoff_cap=0.2,
        )
        thread = threading.Thread(target=runner.run, daemon=True)
        thread.start()
        self.items.append((runner, thread))
        return runner

    def close(self) -> None:
        self.stop.set()
        for _, thread in self.items:
            thread.join(10)


@pytest.fixture
def runners() -> Iterator[Runners]:
    r = Runners()
    try:
        yield r
    finally:
        r.close()


def oauth_source(
    provider: OAuthProvider, server: OAuthDovecot, tmp_path: Path, user: str, **extra: Any
) -> dict[str, Any]:
    return provider.settings_table(
        tmp_path,
        name=extra.pop("name", "gmail"),
        host=server.host,
        port=server.port,
        security="none",
        username=user,
        poll_seconds=extra.pop("poll_seconds", 30),
        **extra,
    )


def test_imap_xoauth2_fetches_refreshes_early_and_reauthenticates_idle_without_losing_mail(
    make_app: Callable[..., App],
    clock: FrozenClock,
    oauth_provider: OAuthProvider,
    dovecot_oauth: OAuthDovecot,
    runners: Runners,
    tmp_path: Path,
) -> None:
    user = new_user()
    # A message that lands between a pass's SEARCH and the IDLE is found by the next
    # pass at the latest: a short poll keeps the test short either way.
    table = oauth_source(oauth_provider, dovecot_oauth, tmp_path, user, poll_seconds=3)
    app = make_app(imap=[table])
    source = app.settings.imap[0]
    assert source.oauth is not None
    refresh = oauth_provider.refresh_token_for(user)
    app.oauth.store(source.name, source.oauth, {"refresh_token": refresh})
    stored = OAuthToken.get(OAuthToken.account == source.name)
    assert refresh not in stored.refresh_token  # encrypted at rest

    dovecot_oauth.oauth_append(user, mail("primeira"))
    collector = Collector()
    with structlog.testing.capture_logs() as logs:
        runners.start(app, 0, collector)
        collector.wait_for(1)
        assert oauth_provider.refreshes[user] == 1  # the first access token
        wait_until(lambda: _in_idle(dovecot_oauth, user), "the runner to IDLE")

        # 56 minutes later by maild's clock: the 60-minute token has less than the
        # 5-minute margin left, so the runner leaves IDLE and logs in again with a new one.
        clock.advance(minutes=56)
        dovecot_oauth.oauth_append(user, mail("durante a troca"))
        wait_until(lambda: oauth_provider.refreshes[user] == 2, "a refresh before expiry")
        dovecot_oauth.oauth_append(user, mail("depois"))
        results = collector.wait_for(3)

    assert [r.outcome for r in results] == ["created"] * 3
    assert Ticket.select().count() == 3
    events = [e["event"] for e in logs]
    assert "oauth.refreshed" in events
    assert any(
        e["event"] == "imap.disconnected" and e.get("reason") == "reauthenticate" for e in logs
    )
    assert all("rt-" not in str(e) for e in logs)  # no token in the log


def _in_idle(server: OAuthDovecot, user: str) -> bool:
    log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    return f"user=<{user}>" in log and "method=XOAUTH2" in log


def test_revoked_token_marks_only_that_source_and_authorize_brings_it_back(
    make_app: Callable[..., App],
    clock: FrozenClock,
    oauth_provider: OAuthProvider,
    dovecot_oauth: OAuthDovecot,
    runners: Runners,
    tmp_path: Path,
) -> None:
    user = new_user()
    plain_user, plain_password = dovecot_oauth.add_user()
    (tmp_path / "plain-password").write_text(plain_password)
    app = make_app(
        imap=[
            oauth_source(oauth_provider, dovecot_oauth, tmp_path, user, poll_seconds=1),
            {
                "name": "plain",
                "host": dovecot_oauth.host,
                "port": dovecot_oauth.port,
                "security": "none",
                "username": plain_user,
                "password_file": str(tmp_path / "plain-password"),
                "poll_seconds": 1,
            },
        ]
    )
    source = app.settings.imap[0]
    assert source.oauth is not None
    app.oauth.store(source.name, source.oauth, {"refresh_token": "rt-revoked-long-ago"})
    collector = Collector()
    with structlog.testing.capture_logs() as logs:
        runners.start(app, 0, collector)
        runners.start(app, 1, collector)
        wait_until(
            lambda: (
                app.metrics.sources().get("gmail") is not None
                and app.metrics.sources()["gmail"].state == SOURCE_NEEDS_AUTHORIZATION
            ),
            "gmail to need authorization",
        )
        # The other source goes on.
        dovecot_oauth.append(plain_user, "INBOX", mail("pela senha"))
        assert [r.outcome for r in collector.wait_for(1)] == ["created"]

    needs = [e for e in logs if e["event"] == "imap.needs_authorization"]
    assert len(needs) == 1 and needs[0]["source"] == "gmail"  # logged once, not per retry
    assert any(e["event"] == "oauth.needs_authorization" for e in logs)
    exposition = app.metrics.exposition().decode()
    assert 'maild_imap_source_state{source="gmail",state="needs_authorization"} 1.0' in exposition
    assert app.metrics.unhealthy_sources().keys() == {"gmail"}  # /healthz: degraded

    # `maild sources list` (another process would see the same rows).
    config = write_config(tmp_path, app)
    code, out, err = cli(config, clock, app, "sources", "list", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in _json(out)}
    assert rows["gmail"]["needs_authorization"] is True
    assert rows["gmail"]["state"] == "needs_authorization"
    assert "invalid_grant" in rows["gmail"]["error"]
    assert rows["plain"]["needs_authorization"] is False
    code, out, _ = cli(config, clock, app, "sources", "list")
    assert re.search(r"^gmail\s+imap\s+xoauth2\s+needs_authorization", out, re.M), out

    # The admin authorizes again (here with a token from elsewhere): the source resumes.
    token_file = tmp_path / "refresh-token"
    token_file.write_text(oauth_provider.refresh_token_for(user) + "\n")
    code, out, err = cli(
        config, clock, app, "oauth", "authorize", "gmail", "--refresh-token-file", str(token_file)
    )
    assert code == 0, err
    assert "gmail: authorized" in out
    dovecot_oauth.oauth_append(user, mail("de volta"))
    collector.wait_for(2)
    wait_until(lambda: app.metrics.sources()["gmail"].state == "connected", "gmail connected")
    assert not app.metrics.unhealthy_sources()


def test_smtp_xoauth2_sends_and_waits_for_authorization_when_revoked(
    make_app: Callable[..., App],
    clock: FrozenClock,
    oauth_provider: OAuthProvider,
    xoauth2_smtp: XOAuth2Sink,
    tmp_path: Path,
) -> None:
    user = new_user()
    app = make_app(
        smtp=oauth_provider.settings_table(
            tmp_path,
            host=xoauth2_smtp.host,
            port=xoauth2_smtp.port,
            security="none",
            username=user,
        )
    )
    assert app.settings.smtp is not None and app.settings.smtp.oauth is not None
    app.oauth.store(
        SMTP_ACCOUNT,
        app.settings.smtp.oauth,
        {"refresh_token": oauth_provider.refresh_token_for(user)},
    )
    transport = make_transport(app)
    result = transport.deliver("suporte@example.com", ["customer@example.com"], mail("oi"))
    transport.close()
    assert result.ok, result.detail
    assert xoauth2_smtp.logins == [user]
    assert len(xoauth2_smtp.wait_for(1)) == 1

    # Revoked at the provider; an hour later the access token is due for a refresh.
    oauth_provider.revoke_all(user)
    clock.advance(hours=1)
    result = transport.deliver("suporte@example.com", ["customer@example.com"], mail("de novo"))
    transport.close()
    assert not result.ok and not result.permanent  # stays in the outbox
    assert "needs" in result.detail or "refused" in result.detail
    assert app.metrics.sources()[SMTP_ACCOUNT].state == SOURCE_NEEDS_AUTHORIZATION
    with pytest.raises(NeedsAuthorizationError):  # no further calls to the provider
        app.oauth.access_token(SMTP_ACCOUNT, app.settings.smtp.oauth)


def test_smtp_refused_token_is_refreshed_on_the_next_connection(
    make_app: Callable[..., App],
    oauth_provider: OAuthProvider,
    xoauth2_smtp: XOAuth2Sink,
    tmp_path: Path,
) -> None:
    user = new_user()
    app = make_app(
        smtp=oauth_provider.settings_table(
            tmp_path, host=xoauth2_smtp.host, port=xoauth2_smtp.port, security="none", username=user
        )
    )
    assert app.settings.smtp is not None and app.settings.smtp.oauth is not None
    # A stored access token the server no longer accepts (signed with another key).
    stranger = OAuthProvider()
    app.oauth.store(
        SMTP_ACCOUNT,
        app.settings.smtp.oauth,
        {
            "refresh_token": oauth_provider.refresh_token_for(user),
            "access_token": stranger.access_token(user),
            "expires_in": 3600,
        },
    )
    transport = make_transport(app)
    first = transport.deliver("suporte@example.com", ["customer@example.com"], mail("um"))
    transport.close()
    assert not first.ok and not first.permanent and "535" in first.detail
    second = transport.deliver("suporte@example.com", ["customer@example.com"], mail("dois"))
    transport.close()
    assert second.ok, second.detail
    assert oauth_provider.refreshes[user] == 1


@pytest.fixture
def rotating(oauth_provider: OAuthProvider) -> Iterator[OAuthProvider]:
    """The provider rotating refresh tokens (as Microsoft does) and answering slowly."""
    oauth_provider.rotate_refresh_tokens, oauth_provider.token_delay = True, 0.3
    try:
        yield oauth_provider
    finally:
        oauth_provider.rotate_refresh_tokens, oauth_provider.token_delay = False, 0.0


def test_rotated_refresh_tokens_are_kept_and_instances_refresh_one_at_a_time(
    make_app: Callable[..., App],
    database_url: str,
    clock: FrozenClock,
    rotating: OAuthProvider,
    tmp_path: Path,
) -> None:
    user = new_user()
    app = make_app(
        database_url,
        smtp=rotating.settings_table(tmp_path, host="127.0.0.1", security="none", username=user),
    )
    assert app.settings.smtp is not None and app.settings.smtp.oauth is not None
    oauth = app.settings.smtp.oauth
    first = rotating.refresh_token_for(user)
    app.oauth.store(SMTP_ACCOUNT, oauth, {"refresh_token": first})

    token = app.oauth.access_token(SMTP_ACCOUNT, oauth)
    assert rotating.user_of(token) == user
    clock.advance(hours=1)  # due again; the first refresh token was rotated away
    assert rotating.user_of(app.oauth.access_token(SMTP_ACCOUNT, oauth)) == user
    assert rotating.refreshes[user] == 2

    if database_url.startswith("sqlite"):
        return  # one host: no second instance to race with
    # Two instances (threads with their own connections) find the token due at once:
    # the row lock lets one refresh; the other uses its result instead of spending the
    # rotated-away refresh token (which would mark the account needs_authorization).
    clock.advance(hours=1)
    barrier = threading.Barrier(2)
    tokens: list[str] = []
    problems: list[BaseException] = []

    def instance() -> None:
        other = App(settings=app.settings, db=app.db, clock=clock)
        barrier.wait()
        try:
            tokens.append(other.oauth.access_token(SMTP_ACCOUNT, oauth))
        except BaseException as exc:
            problems.append(exc)
        finally:
            app.db.close()

    threads = [threading.Thread(target=instance) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    assert problems == []
    assert len(tokens) == 2 and tokens[0] == tokens[1]
    assert rotating.refreshes[user] == 3
    assert app.oauth.status(SMTP_ACCOUNT).needs_authorization is False


# ---------------------------------------------------------------------------
# maild oauth authorize: device code, loopback redirect
# ---------------------------------------------------------------------------


class WatchedOutput(io.StringIO):
    """stdout of a CLI running in another thread; wakes the test when a line matches."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def write(self, text: str) -> int:
        with self.changed:
            n = super().write(text)
            self.changed.notify_all()
            return n

    def wait_for(self, pattern: str) -> re.Match[str]:
        with self.changed:
            found: list[re.Match[str]] = []

            def match() -> bool:
                m = re.search(pattern, self.getvalue())
                if m:
                    found.append(m)
                return m is not None

            assert self.changed.wait_for(match, WAIT), self.getvalue()
            return found[0]


def authorize_in_thread(
    config: Path, clock: FrozenClock, app: App, *argv: str
) -> tuple[WatchedOutput, io.StringIO, threading.Thread, list[int]]:
    out, err, codes = WatchedOutput(), io.StringIO(), []

    def run() -> None:
        codes.append(
            run_cli(
                ["--config", str(config), "oauth", "authorize", *argv],
                out,
                err,
                clock=clock,
                app_factory=lambda settings, c: App(settings=settings, db=app.db, clock=c),
            )
        )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return out, err, thread, codes


@pytest.mark.parametrize("public_client", [False, True], ids=["confidential", "public"])
def test_authorize_with_device_code(
    make_app: Callable[..., App],
    clock: FrozenClock,
    oauth_provider: OAuthProvider,
    dovecot_oauth: OAuthDovecot,
    tmp_path: Path,
    public_client: bool,
) -> None:
    user = new_user()
    table = oauth_source(
        oauth_provider,
        dovecot_oauth,
        tmp_path,
        user,
        device_authorization_endpoint=f"{oauth_provider.url}/device",
    )
    if public_client:  # as Microsoft's device flow: no secret at all
        del table["client_secret_file"]
    app = make_app(imap=[table])
    config = write_config(tmp_path, app)
    out, err, thread, codes = authorize_in_thread(config, clock, app, "gmail")
    m = out.wait_for(r"open (\S+) in any browser and enter the code (\w+)")
    assert m.group(1) == f"{oauth_provider.url}/device/verify"
    oauth_provider.approve_device(m.group(2), user)
    thread.join(WAIT)
    assert codes == [0], err.getvalue()
    assert "gmail: authorized" in out.getvalue()
    source = app.settings.imap[0]
    assert source.oauth is not None
    token = app.oauth.access_token(source.name, source.oauth)
    assert oauth_provider.user_of(token) == user
    client = dovecot_oauth.oauth_client(user)  # the token opens the real mailbox
    client.logout()


def test_authorize_with_loopback_redirect(
    make_app: Callable[..., App],
    clock: FrozenClock,
    oauth_provider: OAuthProvider,
    dovecot_oauth: OAuthDovecot,
    tmp_path: Path,
) -> None:
    user = new_user()
    app = make_app(imap=[oauth_source(oauth_provider, dovecot_oauth, tmp_path, user)])
    config = write_config(tmp_path, app)
    code, out, err = cli(config, clock, app, "check-config")
    assert code == 0 and "imap sources   gmail (xoauth2)" in out, err
    oauth_provider.consenting_user = user
    out, err, thread, codes = authorize_in_thread(config, clock, app, "gmail")
    url = out.wait_for(r"(http://\S+/authorize\?\S+)").group(1)
    assert "code_challenge=" in url and "redirect_uri=http%3A%2F%2F127.0.0.1%3A" in url
    # The person's browser: consent, then the redirect back to maild on 127.0.0.1.
    page = requests.get(url, timeout=10)
    assert page.status_code == 200 and "You can close this window" in page.text
    thread.join(WAIT)
    assert codes == [0], err.getvalue()
    status = app.oauth.status("gmail")
    assert status.authorized and not status.needs_authorization


def test_authorize_rejects_unknown_and_password_sources(
    make_app: Callable[..., App], clock: FrozenClock, oauth_provider: OAuthProvider, tmp_path: Path
) -> None:
    app = make_app()
    config = write_config(tmp_path, app)
    code, _, err = cli(config, clock, app, "oauth", "authorize", "nope")
    assert code == 1 and "'nope' is not a source with auth = 'xoauth2'" in err
    code, out, _ = cli(config, clock, app, "oauth", "generate-key")
    assert code == 0 and len(out.strip()) == 44


# ---------------------------------------------------------------------------
# helpers: a settings file matching an App, and the CLI in-process
# ---------------------------------------------------------------------------


def write_config(tmp_path: Path, app: App) -> Path:
    """A settings.toml equivalent to the App's settings (the parts these tests use)."""
    s = app.settings
    lines = [
        "[daemon]",
        f'data_dir = "{s.daemon.data_dir}"',
        "[listener]",
        "enabled = false",
        "[web]",
        "enabled = false",
        "[[departments]]",
        'key = "suporte"',
        'addresses = ["suporte@example.com"]',
    ]
    key_file = tmp_path / "oauth.key"
    secret_file = tmp_path / "oauth-client-secret"

    def oauth_lines(oauth: Any) -> list[str]:
        out = [
            'auth = "xoauth2"',
            'oauth_provider = "generic"',
            f'client_id = "{oauth.client_id}"',
            f'token_endpoint = "{oauth.token_endpoint}"',
            f'authorization_endpoint = "{oauth.authorization_endpoint}"',
            f'oauth_key_file = "{key_file}"',
            'scopes = ["mail"]',
        ]
        if oauth.client_secret is not None:
            out.append(f'client_secret_file = "{secret_file}"')
        if oauth.device_authorization_endpoint:
            out.append(f'device_authorization_endpoint = "{oauth.device_authorization_endpoint}"')
        return out

    for source in s.imap:
        lines += [
            "[[imap]]",
            f'name = "{source.name}"',
            f'host = "{source.host}"',
            f"port = {source.port}",
            'security = "none"',
            f'username = "{source.username}"',
        ]
        if source.oauth is not None:
            lines += oauth_lines(source.oauth)
        else:
            lines.append(f'password_file = "{tmp_path / "plain-password"}"')
    path = tmp_path / "settings.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def cli(config: Path, clock: FrozenClock, app: App, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_cli(
        ["--config", str(config), *argv],
        out,
        err,
        clock=clock,
        app_factory=lambda settings, c: App(settings=settings, db=app.db, clock=c),
    )
    return code, out.getvalue(), err.getvalue()


def _json(text: str) -> Any:
    import json

    return json.loads(text)


# ---------------------------------------------------------------------------
# maild run: the daemon wired for XOAUTH2 end to end
# ---------------------------------------------------------------------------


def test_maild_run_reads_and_replies_over_xoauth2_and_reports_a_revoked_source(
    oauth_provider: OAuthProvider,
    dovecot_oauth: OAuthDovecot,
    xoauth2_smtp: XOAuth2Sink,
    tmp_path: Path,
) -> None:
    import json
    import os
    import signal
    import subprocess
    import sys

    from tests.plugins.dovecot import free_port
    from tests.shipped_settings import REPO

    user, other = new_user(), new_user()
    web_port = free_port()
    table = oauth_provider.settings_table(tmp_path)  # writes the secret and key files

    def oauth_keys() -> str:
        return (
            "\n".join(f"{k} = {json.dumps(v)}" for k, v in table.items() if k not in ("scopes",))
            + '\nscopes = ["mail"]\n'
        )

    config = tmp_path / "settings.toml"
    config.write_text(
        f"""
[daemon]
data_dir = "{tmp_path / "var"}"
[listener]
enabled = false
[web]
port = {web_port}
[[imap]]
name = "gmail"
host = "127.0.0.1"
port = {dovecot_oauth.port}
security = "none"
username = "{user}"
poll_seconds = 5
{oauth_keys()}
[[imap]]
name = "revoked"
host = "127.0.0.1"
port = {dovecot_oauth.port}
security = "none"
username = "{other}"
poll_seconds = 5
{oauth_keys()}
[smtp]
host = "127.0.0.1"
port = {xoauth2_smtp.port}
security = "none"
username = "{user}"
{oauth_keys()}
[[departments]]
key = "suporte"
addresses = ["suporte@example.com"]
"""
    )
    for account, refresh in (
        ("gmail", oauth_provider.refresh_token_for(user)),
        ("smtp", oauth_provider.refresh_token_for(user)),
        ("revoked", "rt-never-issued"),
    ):
        token_file = tmp_path / f"{account}.token"
        token_file.write_text(refresh)
        out, err = io.StringIO(), io.StringIO()
        code = run_cli(
            [
                "--config",
                str(config),
                "oauth",
                "authorize",
                account,
                "--refresh-token-file",
                str(token_file),
            ],
            out,
            err,
        )
        assert code == (1 if account == "revoked" else 0), err.getvalue()

    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    with (tmp_path / "daemon.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "maild", "--config", str(config), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    try:
        dovecot_oauth.oauth_append(user, mail("pelo daemon"))
        (ack,) = xoauth2_smtp.wait_for(1, timeout=30)
        assert str(ack.message["Subject"]).startswith("[#")
        assert xoauth2_smtp.logins == [user]

        def health() -> dict[str, Any]:
            try:
                reply = requests.get(f"http://127.0.0.1:{web_port}/healthz", timeout=5)
            except requests.ConnectionError:
                return {}
            return dict(reply.json())

        wait_until(
            lambda: (
                health().get("sources", {}).get("revoked", {}).get("state") == "needs_authorization"
            ),
            "/healthz to show the revoked source",
            timeout=30,
        )
        body = health()
        assert body["status"] == "degraded"
        assert body["sources"]["gmail"]["state"] == "connected"
        assert body["sources"]["smtp"]["state"] == "connected"
        metrics = requests.get(f"http://127.0.0.1:{web_port}/metrics", timeout=5).text
        assert (
            'maild_imap_source_state{source="revoked",state="needs_authorization"} 1.0' in metrics
        )
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    logged = (tmp_path / "daemon.log").read_text()
    assert "imap.needs_authorization" in logged
    assert "rt-" not in logged and oauth_provider.client_secret not in logged


# ---------------------------------------------------------------------------
# what goes wrong: unreachable provider, another key, refused login, no consent
# ---------------------------------------------------------------------------


def test_unreachable_provider_is_transient_and_another_key_needs_authorization(
    make_app: Callable[..., App], oauth_provider: OAuthProvider, tmp_path: Path
) -> None:
    from cryptography.fernet import Fernet

    from maild.errors import TransientError
    from tests.plugins.dovecot import free_port

    down = f"http://127.0.0.1:{free_port()}/token"
    app = make_app(
        smtp=oauth_provider.settings_table(
            tmp_path, host="127.0.0.1", security="none", username="a@example.com"
        )
        | {"token_endpoint": down}
    )
    assert app.settings.smtp is not None and app.settings.smtp.oauth is not None
    oauth = app.settings.smtp.oauth
    app.oauth.store(SMTP_ACCOUNT, oauth, {"refresh_token": "rt-x"})
    with pytest.raises(TransientError) as info:
        app.oauth.access_token(SMTP_ACCOUNT, oauth)
    assert not isinstance(info.value, NeedsAuthorizationError)  # retried, not given up
    assert app.oauth.status(SMTP_ACCOUNT).needs_authorization is False

    other_key = type(oauth)(**{**oauth.__dict__, "key": Fernet.generate_key()})
    with pytest.raises(NeedsAuthorizationError, match="cannot be decrypted"):
        app.oauth.access_token(SMTP_ACCOUNT, other_key)


def test_imap_login_refused_with_an_unexpired_token_refreshes_and_goes_on(
    make_app: Callable[..., App],
    oauth_provider: OAuthProvider,
    dovecot_oauth: OAuthDovecot,
    runners: Runners,
    tmp_path: Path,
) -> None:
    user = new_user()
    app = make_app(imap=[oauth_source(oauth_provider, dovecot_oauth, tmp_path, user)])
    source = app.settings.imap[0]
    assert source.oauth is not None
    app.oauth.store(
        source.name,
        source.oauth,
        {
            "refresh_token": oauth_provider.refresh_token_for(user),
            "access_token": OAuthProvider().access_token(user),  # Dovecot does not trust it
            "expires_in": 3600,
        },
    )
    dovecot_oauth.oauth_append(user, mail("depois da recusa"))
    collector = Collector()
    runners.start(app, 0, collector)
    assert [r.outcome for r in collector.wait_for(1)] == ["created"]
    assert oauth_provider.refreshes[user] == 1


def test_authorize_without_consent_or_with_an_empty_token_file_fails_plainly(
    make_app: Callable[..., App], clock: FrozenClock, oauth_provider: OAuthProvider, tmp_path: Path
) -> None:
    table = oauth_provider.settings_table(
        tmp_path,
        name="gmail",
        host="127.0.0.1",
        security="none",
        username="a@example.com",
        device_authorization_endpoint=f"{oauth_provider.url}/device",
    )
    app = make_app(imap=[table])
    config = write_config(tmp_path, app)
    code, out, err = cli(config, clock, app, "oauth", "authorize", "gmail", "--wait", "1")
    assert code == 1 and "no consent within 1 s" in err, err
    assert "enter the code" in out
    empty = tmp_path / "empty"
    empty.write_text("\n")
    code, _, err = cli(
        config, clock, app, "oauth", "authorize", "gmail", "--refresh-token-file", str(empty)
    )
    assert code == 1 and "empty" in err
    code, _, err = cli(
        config, clock, app, "oauth", "authorize", "gmail", "--loopback", "--wait", "1"
    )
    assert code == 1 and "no consent within 1 s" in err
    assert app.oauth.status("gmail").authorized is False
