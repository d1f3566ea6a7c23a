"""Tests for parsers.bounce: DSNs, non-standard bounces and VERP tokens."""

from __future__ import annotations

from pathlib import Path

import pytest
from maild.parsers.bounce import Bounce, detect_bounce, extract_verp_token

MAIL = Path(__file__).resolve().parents[2] / "fixtures" / "mail"

EXPECTED = {
    "bounce-postfix-dsn.eml": Bounce(
        original_message_id="out-1@maild.example.com",
        recipients=("maria.souza@example.org",),
        status="5.1.1",
        permanent=True,
        verp_token="a1b2c3d4e5",
    ),
    "bounce-postfix-delay.eml": Bounce(
        original_message_id="out-7@maild.example.com",
        recipients=("joao@example.net",),
        status="4.4.1",
        permanent=False,
        verp_token="f00dcafe01",
    ),
    "bounce-exchange-ndr-ptbr.eml": Bounce(
        original_message_id="out-3@maild.example.com",
        recipients=("compras@example.org",),
        status="5.2.2",
        permanent=True,
        verp_token="0ddba11beef",
    ),
    "bounce-gmail-dsn.eml": Bounce(
        original_message_id="out-4@maild.example.com",
        recipients=("wrong.address@example.net",),
        status="5.1.1",
        permanent=True,
        verp_token=None,
    ),
    "bounce-exim-plaintext.eml": Bounce(
        original_message_id="out-5@maild.example.com",
        recipients=("financeiro@example.org",),
        status="5.7.1",
        permanent=True,
        verp_token="5eed5eed",
    ),
    "bounce-ptbr-plaintext.eml": Bounce(
        original_message_id="out-6@maild.example.com",
        recipients=("vendas@example.org",),
        status="5.1.1",
        permanent=True,
        verp_token=None,
    ),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_bounce_fixtures(name: str) -> None:
    assert detect_bounce((MAIL / name).read_bytes()) == EXPECTED[name]


def test_every_bounce_fixture_is_in_the_table() -> None:
    assert {p.name for p in MAIL.glob("bounce-*.eml")} == set(EXPECTED)


@pytest.mark.parametrize(
    "path",
    sorted([*MAIL.glob("reply-*.eml"), *MAIL.glob("forward-*.eml"), *MAIL.glob("auto-*.eml")]),
    ids=lambda p: p.name,
)
def test_other_mail_is_not_a_bounce(path: Path) -> None:
    assert detect_bounce(path.read_bytes()) is None


def dsn(action: str, status: str, original: str = "") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.com\n"
        "To: suporte@example.com\n"
        "Subject: Delivery report\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nreport\n"
        "--b\nContent-Type: message/delivery-status\n\n"
        "Reporting-MTA: dns; mx.example.com\n\n"
        f"Final-Recipient: rfc822; Ana@Example.org\nAction: {action}\nStatus: {status}\n"
        f"{original}"
        "--b--\n"
    ).encode()


def test_success_report_is_not_a_bounce() -> None:
    assert detect_bounce(dsn("delivered", "2.0.0")) is None
    assert detect_bounce(dsn("relayed", "2.0.0")) is None


def test_dsn_without_original_part() -> None:
    bounce = detect_bounce(dsn("failed", "5.2.1 (mailbox disabled)"))
    assert bounce == Bounce(None, ("ana@example.org",), "5.2.1", True, None)


def test_dsn_with_rfc822_headers_part() -> None:
    original = (
        "--b\nContent-Type: text/rfc822-headers\n\n"
        "From: suporte@example.com\nMessage-ID: <out-9@maild.example.com>\n\n"
    )
    bounce = detect_bounce(dsn("delayed", "4.2.2", original))
    assert bounce is not None
    assert bounce.original_message_id == "out-9@maild.example.com"
    assert bounce.permanent is False


PLAIN = (
    "From: {sender}\nReturn-Path: {return_path}\nTo: suporte@example.com\nSubject: {subject}\n\n"
    "Sorry.\n\n<ana@example.org>: 550 5.1.1 no such user\n\n"
    "--- original ---\nFrom: suporte@example.com\nMessage-ID: <out-8@maild.example.com>\n"
)


@pytest.mark.parametrize(
    ("sender", "return_path", "subject", "is_bounce"),
    [
        ("MAILER-DAEMON@mx.example.org", "<>", "Undelivered Mail Returned to Sender", True),
        ("postmaster@mx.example.org", "<a@x.example>", "failure notice", True),
        ("someone@example.org", "<>", "Mail delivery failed", True),
        # a person forwarding or asking about a bounce
        ("ana@example.org", "<ana@example.org>", "Fwd: Undelivered Mail Returned to Sender", False),
        ("ana@example.org", "<ana@example.org>", "Mail delivery failed?", False),
        ("MAILER-DAEMON@mx.example.org", "<>", "Re: Undelivered Mail Returned to Sender", False),
        # a robot that is not a bounce (no failure subject, no VERP address)
        ("postmaster@mx.example.org", "<>", "Weekly report", False),
    ],
)
def test_plain_text_bounce_recognition(
    sender: str, return_path: str, subject: str, is_bounce: bool
) -> None:
    raw = PLAIN.format(sender=sender, return_path=return_path, subject=subject).encode()
    bounce = detect_bounce(raw)
    assert (bounce is not None) is is_bounce
    if bounce is not None:
        assert bounce.original_message_id == "out-8@maild.example.com"
        assert bounce.recipients == ("ana@example.org",)
        assert bounce.status == "5.1.1"
        assert bounce.permanent is True


def test_plain_robot_mail_to_verp_address_is_a_bounce() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.org\nTo: bounces+ab12@maild.example.com\n"
        b"Subject: Unzustellbar-ish, unknown language\n\nMessage-ID: <out-2@maild.example.com>\n"
    )
    bounce = detect_bounce(raw)
    assert bounce == Bounce("out-2@maild.example.com", (), None, True, "ab12")


def test_delay_subject_without_status_is_not_permanent() -> None:
    raw = b"From: MAILER-DAEMON@mx.example.org\nSubject: Delayed Mail (still being retried)\n\nx\n"
    bounce = detect_bounce(raw)
    assert bounce is not None
    assert (bounce.status, bounce.permanent) == (None, False)


def test_bounce_attached_to_a_forward_is_not_a_bounce() -> None:
    inner = dsn("failed", "5.1.1").decode()
    raw = (
        "From: ana@example.org\nTo: suporte@example.com\nSubject: Fwd: report\n"
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="outer"\n\n'
        "--outer\nContent-Type: text/plain\n\nWhy did this fail?\n"
        f"--outer\nContent-Type: message/rfc822\n\n{inner}\n--outer--\n"
    ).encode()
    assert detect_bounce(raw) is None


def test_garbage_is_not_a_bounce() -> None:
    assert detect_bounce(b"") is None
    assert detect_bounce(b"\xff\xfe not mail at all") is None


@pytest.mark.parametrize(
    ("address", "token"),
    [
        ("bounces+a1b2c3@maild.example.com", "a1b2c3"),
        ("Bounces+A1B2C3@maild.example.com", "A1B2C3"),
        ("bounce+x-9@maild.example.com", "x-9"),
        ("<bounces+a1b2c3@maild.example.com>", "a1b2c3"),
        ("Acme <bounces+a1b2c3@maild.example.com>", "a1b2c3"),
        ("bounces@maild.example.com", None),
        ("bounces+@maild.example.com", None),
        ("suporte+592110@example.com", None),
        ("not an address", None),
        ("", None),
    ],
)
def test_extract_verp_token(address: str, token: str | None) -> None:
    assert extract_verp_token(address) == token


def test_headers_decide_for_mail_that_is_no_bounce() -> None:
    # No delivery-status part and no bounce-like headers: None without a full parse.
    raw = (
        b"From: Cliente <cliente@example.com.br>\r\nTo: suporte@example.com\r\n"
        b"Subject: Falha na entrega do pedido\r\n\r\n" + b"corpo\r\n" * 200_000
    )
    assert detect_bounce(raw) is None
    # The same subject from a mailer-daemon with an empty Return-Path is one.
    robot = raw.replace(
        b"From: Cliente <cliente@example.com.br>", b"From: MAILER-DAEMON@mx.example.com"
    )
    robot = b"Return-Path: <>\r\n" + robot.replace(
        b"Falha na entrega do pedido", b"Mail delivery failed"
    )
    assert detect_bounce(robot) is not None
