"""Bad input never raises and is never lost: every message gets an outcome
(``quarantined`` at worst) and its raw bytes are kept under data_dir/raw/."""

from __future__ import annotations

import hashlib

import pytest
from maild.storage.models import Blob, Inbound

from maild.pipeline import ingest
from maild.policy import types as o
from tests.component.conftest import mail
from tests.conftest import read_fixture


def _garbage(n: int) -> bytes:
    out = b""
    seed = b"maild"
    while len(out) < n:
        seed = hashlib.sha256(seed).digest()
        out += seed
    return out[:n]


def _long_header() -> bytes:
    lines = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"v" * 40) for i in range(5000))
    return b"From: a@cliente.example\r\nSubject: muitos\r\n" + lines + b"\r\ncorpo\r\n"


def _folded_header() -> bytes:
    folded = b"Subject: comeco\r\n" + b"".join(b" parte %d\r\n" % i for i in range(5000))
    return b"From: a@cliente.example\r\nTo: suporte@example.com\r\n" + folded + b"\r\ncorpo\r\n"


def _nested(levels: int) -> bytes:
    inner = mail(subject="nivel 0", message_id="nest-0@c.example")
    for level in range(1, levels + 1):
        inner = (
            b"From: a@cliente.example\r\nTo: suporte@example.com\r\n"
            + b"Subject: nivel %d\r\nMessage-ID: <nest-%d-%d@c.example>\r\n"
            % (level, levels, level)
            + b"MIME-Version: 1.0\r\nContent-Type: message/rfc822\r\n\r\n"
            + inner
        )
    return inner


GENERATED = {
    "zero-bytes": b"",
    "only-newlines": b"\n\n\n",
    "no-headers": b"just a body, no header block at all\n",
    "no-from": b"Subject: sem remetente\n\nTexto\n",
    "garbage-8bit": _garbage(4096),
    "nul-and-high-bytes": bytes(range(256)) * 8,
    "header-5000-lines": _long_header(),
    "header-folded-5000": _folded_header(),
    "nested-rfc822-50": _nested(50),
    "multipart-no-parts": (
        b"From: a@cliente.example\nSubject: x\nMIME-Version: 1.0\n"
        b'Content-Type: multipart/mixed; boundary="b"\n\n'
    ),
    "bad-encoded-words": (
        b"From: =?utf-8?B?!!!?= <a@cliente.example>\nSubject: =?x-unknown?Q?=FF=FE?=\n\nTexto\n"
    ),
    "bad-address-list": b'From: <<<@@>>>\nTo: ,,,;;;\nCc: "unterminated\nSubject: x\n\nTexto\n',
    "bad-charset-in-part": (
        b"From: a@cliente.example\nSubject: x\nMIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=no-such-charset\n"
        b"Content-Transfer-Encoding: base64\n\n!!!not base64!!!\n"
    ),
}

FIXTURES = [
    "broken-mime-missing-end-boundary.eml",
    "broken-mime-no-boundary-param.eml",
    "broken-base64-padding.eml",
    "crlf-8bit-nul-bytes.eml",
    "headers-raw-8bit-latin1.eml",
    "utf8-nondecodable.eml",
    "date-invalid-and-folded-headers.eml",
    "nested-rfc822-10-levels.eml",
    "attachment-path-traversal-filename.eml",
    "no-from.eml",
    "empty.eml",
    "winmail-dat-tnef.eml",
    "smime-signed.eml",
]

CASES = [pytest.param(raw, id=name) for name, raw in GENERATED.items()] + [
    pytest.param(read_fixture(name), id=name) for name in FIXTURES
]


@pytest.mark.parametrize("raw", CASES)
def test_bad_input_gets_an_outcome_and_is_kept(app, raw):
    result = ingest(app, raw)

    assert result.outcome in o.OUTCOMES
    row = Inbound.get_by_id(result.inbound_id)
    assert row.outcome == result.outcome
    assert row.state in ("processed", "quarantined", "held")
    kept = app.raw_store.get(row.raw.sha256)
    if row.raw.headers_only:
        # Over limits.max_header_bytes (header-5000-lines is 275 KB of headers): the
        # message is too_large and its headers are kept, cut at the limit.
        assert row.outcome == o.TOO_LARGE
        assert raw.startswith(kept.rstrip(b"\r\n"))
    else:
        assert kept == raw  # raw kept, byte for byte
    assert Blob.get_by_id(row.raw.sha256).size == len(kept)  # in the database (SPEC §2)


@pytest.mark.parametrize("name", ["zero-bytes", "no-headers", "garbage-8bit", "no-from"])
def test_unanswerable_input_is_quarantined_and_listed(app, name):
    result = ingest(app, GENERATED[name])
    assert result.outcome == o.QUARANTINED
    assert Inbound.get_by_id(result.inbound_id).state == "quarantined"


def test_nested_ten_levels_keeps_the_outer_text(app):
    result = ingest(app, read_fixture("nested-rfc822-10-levels.eml"))
    assert result.outcome == o.CREATED


def test_bad_input_through_the_cli_never_shows_a_traceback(app, write_config, cli, tmp_path):
    config = write_config(app)
    files = []
    for name, raw in GENERATED.items():
        path = tmp_path / f"{name}.eml"
        path.write_bytes(raw)
        files.append(str(path))

    code, out, err = cli(app, config, "ingest", *files)

    assert code == 0, err
    assert "Traceback" not in err and "Traceback" not in out
    assert len(out.splitlines()) == len(files)
