"""Tests for parsers.authresults: agent authentication from Authentication-Results."""

from __future__ import annotations

import pytest
from maild.parsers.authresults import agent_authenticated

TRUSTED = "mx.example.com"

DKIM_PASS = (
    "mx.example.com; dkim=pass (2048-bit key; unprotected) header.d=example.com "
    "header.i=@example.com header.s=sel1 header.b=AbCdEf12; spf=pass "
    "(mx.example.com: domain of ana@example.com designates 192.0.2.1 as permitted sender) "
    "smtp.mailfrom=ana@example.com"
)
DMARC_PASS = (
    "mx.example.com; spf=fail smtp.mailfrom=example.com; "
    "dmarc=pass (p=REJECT) header.from=example.com"
)
ALL_FAIL = "mx.example.com; dkim=fail header.d=example.com; dmarc=fail header.from=example.com"


@pytest.mark.parametrize(
    ("headers", "domain", "expected"),
    [
        ([DKIM_PASS], "example.com", True),
        ([DMARC_PASS], "example.com", True),
        ([ALL_FAIL], "example.com", False),
        ([DKIM_PASS], "other.example", False),
        # header.i alone
        (["mx.example.com; dkim=pass header.i=ana@example.com"], "example.com", True),
        # case and spacing
        (["MX.Example.COM ; DKIM = Pass header.d = Example.COM"], "example.com", True),
        # quoted values and a version after the authserv-id
        (['mx.example.com 1; dkim=pass header.d="example.com"'], "example.com", True),
        # a pass for some other domain (a mailing list re-signed it)
        (["mx.example.com; dkim=pass header.d=lists.example.net"], "example.com", False),
        # a subdomain does not match (strict alignment)
        (["mx.example.com; dkim=pass header.d=mail.example.com"], "example.com", False),
        # the word pass inside a comment does not count
        (
            ["mx.example.com; dkim=fail (dkim=pass header.d=example.com) header.d=example.com"],
            "example.com",
            False,
        ),
        # nested comments
        (
            ["mx.example.com (a (nested) comment); dmarc=pass header.from=example.com"],
            "example.com",
            True,
        ),
        # folded header
        (["mx.example.com;\r\n\tdkim=pass\r\n header.d=example.com"], "example.com", True),
        (["mx.example.com; none"], "example.com", False),
        # spf alone is not enough
        (["mx.example.com; spf=pass smtp.mailfrom=ana@example.com"], "example.com", False),
        ([], "example.com", False),
        ([DKIM_PASS], "", False),
    ],
)
def test_single_header(headers: list[str], domain: str, expected: bool) -> None:
    assert agent_authenticated(headers, TRUSTED, domain) is expected


def test_only_topmost_trusted_header_counts() -> None:
    forged_below = "mx.example.com; dkim=pass header.d=example.com"
    assert agent_authenticated([ALL_FAIL, forged_below], TRUSTED, "example.com") is False
    assert agent_authenticated([DKIM_PASS, ALL_FAIL], TRUSTED, "example.com") is True


def test_untrusted_authserv_ids_are_ignored() -> None:
    other = "relay.example.org; dkim=pass header.d=example.com"
    assert agent_authenticated([other], TRUSTED, "example.com") is False
    assert agent_authenticated([other, DKIM_PASS], TRUSTED, "example.com") is True
    assert agent_authenticated([other, ALL_FAIL], TRUSTED, "example.com") is False


def test_empty_trusted_id_never_authenticates() -> None:
    assert agent_authenticated([DKIM_PASS], "", "example.com") is False
