"""Properties of the inbound pipeline (hypothesis).

- Ingesting the same message a second time changes nothing: no ticket, thread
  entry, outbox row, event or attachment is added, whatever the message is.
- ``decide()`` answers every combination of facts with an outcome of SPEC §3.
"""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from maild.parsers.types import ParsedMessage
from maild.storage.models import Attachment, Event, Outbox, ThreadEntry, Ticket

from maild.pipeline import ingest
from maild.policy.table import decide
from maild.policy.types import OUTCOMES, CheckedAttachment, Classified, PolicyContext, TicketView

PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

SENDERS = ["mariana@padaria.example.com.br", "joao@padaria.example.com.br", "x@gmail.com"]
RECIPIENTS = ["suporte@example.com", "comercial@example.com", "financeiro@example.com"]
PREFIXES = ["", "Re: ", "RES: ", "Fwd: ", "ENC: "]
HEADER_SETS = [
    {},
    {"Auto-Submitted": "auto-replied"},
    {"Importance": "high"},
    {"List-Id": "<l.example.org>"},
    {"X-Maild-Loop": "example.com"},
]
text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=0, max_size=80)


def _counts() -> tuple[int, ...]:
    return tuple(m.select().count() for m in (Ticket, ThreadEntry, Outbox, Event, Attachment))


@st.composite
def messages(draw) -> bytes:
    msg = EmailMessage()
    msg["From"] = draw(st.sampled_from(SENDERS))
    msg["To"] = draw(st.sampled_from(RECIPIENTS))
    subject = draw(st.sampled_from(PREFIXES)) + draw(st.sampled_from(["", "NF-e", "Não consigo"]))
    number = draw(st.sampled_from([None, "existing", 123456]))
    if number is not None:
        existing = Ticket.select().order_by(Ticket.id).first()
        value = existing.number if number == "existing" and existing else 123456
        subject = f"{subject} [#{value}]"
    msg["Subject"] = subject
    if draw(st.booleans()):
        msg["Message-ID"] = f"<p-{draw(st.integers(0, 10**9))}@cliente.example>"
    for name, value in draw(st.sampled_from(HEADER_SETS)).items():
        msg[name] = value
    msg.set_content(draw(text))
    return msg.as_bytes()


@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
@PROPERTY
@given(raw=st.one_of(messages(), st.binary(max_size=300)))
def test_ingesting_twice_changes_nothing(app, raw):
    first = ingest(app, raw)
    before = _counts()

    second = ingest(app, raw)

    assert second.outcome == "duplicate_message", (first, second)
    assert _counts() == before


# ---------------------------------------------------------------------------
# decide(): total over its inputs
# ---------------------------------------------------------------------------

PARSED = ParsedMessage(message_id="m@x", subject="s", from_addr="a@b.example", from_name="")
STATUSES = ["open", "in_progress", "waiting_customer", "resolved", "closed"]
ADDRESSES = ["", "a@b.example", "c@b.example", "d@gmail.com"]

tickets = st.builds(
    TicketView,
    number=st.just(123456),
    status=st.sampled_from(STATUSES),
    department=st.sampled_from(["suporte", "comercial"]),
    requester=st.sampled_from(ADDRESSES[1:]),
    ccs=st.lists(st.sampled_from(ADDRESSES[1:]), max_size=2).map(tuple),
)
attachments = st.builds(
    CheckedAttachment,
    filename=st.just("f.png"),
    content_type=st.just("image/png"),
    payload=st.just(b"x"),
    accepted=st.booleans(),
)
classified = st.builds(
    Classified,
    parsed=st.just(PARSED),
    department=st.sampled_from(["suporte", "comercial", "financeiro"]),
    sender=st.sampled_from(ADDRESSES),
    sender_name=st.just(""),
    is_agent=st.booleans(),
    token_number=st.none() | st.just(123456),
    plus_number=st.none() | st.just(123456),
    footer_number=st.none(),
    reference_ids=st.just(()),
    has_reply_prefix=st.booleans(),
    normalized_subject=st.sampled_from(["", "nf-e"]),
    stripped_text=st.sampled_from(["", "  ", "texto"]),
    priority=st.none() | st.just("high"),
    loop_reason=st.none() | st.just("auto-submitted"),
    is_bounce=st.booleans(),
    too_large=st.booleans(),
    attachments=st.lists(attachments, max_size=2).map(tuple),
)
contexts = st.builds(
    PolicyContext,
    already_seen=st.booleans(),
    ticket=st.none() | tickets,
    thread_via=st.sampled_from([None, "token", "references", "plus", "footer", "subject"]),
    duplicate_of=st.none() | tickets,
    successor=st.none() | tickets,
    sender_recent_count=st.integers(0, 40),
    max_per_hour=st.integers(1, 30),
    allow_same_domain=st.booleans(),
    followup_policy=st.sampled_from(["reject", "reopen", "new_ticket"]),
)


@settings(max_examples=500, deadline=None)
@given(msg=classified, ctx=contexts)
def test_decide_always_answers_with_a_known_outcome(msg, ctx):
    decision = decide(msg, ctx)
    assert decision.outcome in OUTCOMES
    if decision.outcome in ("appended", "reopened", "followup_rejected", "unauthorized"):
        assert decision.ticket is not None
    if ctx.already_seen:
        assert decision.outcome == "duplicate_message"
