"""Classify one parsed message: department, sender role, thread hints, loop and
bounce signals, stripped text and checked attachments. Pure: settings and bytes
in, a frozen ``Classified`` out."""

from __future__ import annotations

from maild.config import Settings
from maild.parsers.attachments import check_attachment
from maild.parsers.authresults import agent_authenticated
from maild.parsers.autoreply import detect_auto_submitted
from maild.parsers.bounce import detect_bounce
from maild.parsers.strip import strip_message
from maild.parsers.subject import (
    extract_footer_ref,
    extract_plus_number,
    extract_token,
    has_reply_prefix,
    normalize_subject,
)
from maild.parsers.types import ParsedMessage
from maild.policy.commands import check_commands
from maild.policy.types import CheckedAttachment, Classified

HIGH_IMPORTANCE = {"high", "urgent"}


def detect_department(parsed: ParsedMessage, settings: Settings) -> tuple[str, int | None]:
    """First department address in Delivered-To, X-Original-To, To, Cc; and a plus number."""
    for group in (parsed.delivered_to, parsed.x_original_to, parsed.to, parsed.cc):
        for address in group:
            dept = settings.department_for_address(address)
            if dept is not None:
                return dept.key, None
            plus = extract_plus_number(address)
            if plus is not None:
                dept = settings.department_for_address(plus[0])
                if dept is not None:
                    return dept.key, plus[1]
    return settings.default_department.key, None


def detect_sender(parsed: ParsedMessage) -> str:
    """Who to answer: From, else Reply-To, else the envelope Return-Path."""
    if parsed.from_addr:
        return parsed.from_addr
    if parsed.reply_to:
        return parsed.reply_to[0]
    return (parsed.return_path or "").lower()


def detect_priority(parsed: ParsedMessage) -> str | None:
    importance = (parsed.header("importance") or "").strip().lower()
    priority = (parsed.header("priority") or "").strip().lower()
    x_priority = (parsed.header("x-priority") or "").strip()
    if importance in HIGH_IMPORTANCE or priority == "urgent" or x_priority[:1] in ("1", "2"):
        return "high"
    return None


def is_agent_sender(parsed: ParsedMessage, settings: Settings) -> bool:
    agent = settings.agent(parsed.from_addr)
    if agent is None:
        return False
    if settings.agents_auth.require == "from":
        return True
    domain = parsed.from_addr.rsplit("@", 1)[-1]
    return agent_authenticated(
        parsed.headers.get("authentication-results", ()),
        settings.agents_auth.trusted_authserv_id,
        domain,
    )


def check_attachments(parsed: ParsedMessage, settings: Settings) -> tuple[CheckedAttachment, ...]:
    result = []
    for part in parsed.attachments:
        verdict = check_attachment(
            part.filename,
            part.payload,
            settings.attachments.allowed_extensions,
            settings.attachments.max_bytes,
        )
        result.append(
            CheckedAttachment(
                filename=verdict.filename or part.filename or "unnamed",
                content_type=verdict.content_type or part.content_type,
                payload=part.payload,
                accepted=verdict.accepted,
                reason=verdict.reason,
                reason_code=verdict.reason_code,
                inline=part.inline,
                content_id=part.content_id,
            )
        )
    return tuple(result)


def classify(
    parsed: ParsedMessage, raw: bytes, settings: Settings, *, too_large: bool = False
) -> Classified:
    prefix = settings.tickets.token_prefix
    department, plus_number = detect_department(parsed, settings)
    loop_reason = detect_auto_submitted(
        parsed.headers,
        parsed.from_addr,
        parsed.return_path,
        settings.own_addresses,
        subject=parsed.subject,
    )
    bounce = None if too_large else detect_bounce(raw)
    stripped = strip_message(parsed)
    refs = tuple(dict.fromkeys((*parsed.in_reply_to, *reversed(parsed.references))))
    is_agent = is_agent_sender(parsed, settings)
    sender = detect_sender(parsed)
    stripped_text = stripped.strip()
    return Classified(
        parsed=parsed,
        department=department,
        sender=sender,
        sender_name=parsed.from_name,
        is_agent=is_agent,
        token_number=extract_token(parsed.subject, prefix),
        plus_number=plus_number,
        footer_number=extract_footer_ref(parsed.text, prefix) if parsed.text else None,
        reference_ids=refs,
        has_reply_prefix=has_reply_prefix(parsed.subject),
        normalized_subject=normalize_subject(parsed.subject, prefix),
        stripped_text=stripped_text,
        priority=detect_priority(parsed),
        loop_reason=loop_reason,
        is_bounce=bounce is not None,
        bounce_message_id=bounce.original_message_id if bounce else None,
        bounce_recipients=bounce.recipients if bounce else (),
        bounce_permanent=bounce.permanent if bounce else False,
        too_large=too_large,
        attachments=() if too_large else check_attachments(parsed, settings),
        commands=check_commands(stripped_text, sender, settings) if is_agent else None,
    )
