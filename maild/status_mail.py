"""Queue the customer's mail about a ticket's status change (SPEC §4: status_changed / resolved).

Sole purpose: given a status change that was just applied, decide whether the
customer hears about it and queue that mail into the outbox (in the caller's
transaction) through ``maild.outbound.queue_mail``. Nothing is sent from here.

Which change sends what:

* new status ``resolved`` -> the ``resolved`` mail with the 1-5 rating links
  (``{base_url}/t/{number}/{key}?rate=N``; the page opens with the stars
  pre-selected and a POST confirms, so a link scanner records nothing);
* any other real change -> ``status_changed`` with the old and new labels;
* nothing at all when:

  - the status did not change (``old == new``);
  - the ticket was ``closed`` (closed is final: a closed ticket is not reopened
    by mail, and a later administrative change is no news to the customer);
  - ``resolved`` -> ``closed``: the customer already got the ``resolved`` mail,
    closing it afterwards is bookkeeping;
  - the change was made by the customer (``actor`` is the requester or a CC) and
    the new status is not ``resolved``: they know, they did it. A customer who
    resolves their own ticket still gets the ``resolved`` mail, which carries the
    rating request.

The mail goes to the requester and the CCs, is automatic (``Auto-Submitted``,
counted against the per-recipient hourly cap, suppressed on a bounce cool-down)
and threads under the ticket's latest customer message.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from maild.app import App
from maild.outbound import queue_customer_update
from maild.render import LANGUAGES, STATUS_LABELS
from maild.storage.models import TICKET_STATUSES, Outbox, Ticket
from maild.storage.queries import (
    RATING_STARS,
    customer_recipients,
    rating_links,
)

__all__ = ["RATING_STARS", "queue_status_change", "rating_links", "should_mail"]


def should_mail(old_status: str, new_status: str, *, by_customer: bool = False) -> bool:
    """Whether a change from ``old_status`` to ``new_status`` is mailed to the customer."""
    for status in (old_status, new_status):
        if status not in TICKET_STATUSES:
            raise ValueError(f"unknown ticket status {status!r}")
    if old_status == new_status or old_status == "closed":
        return False
    if old_status == "resolved" and new_status == "closed":
        return False
    return not (by_customer and new_status != "resolved")


def queue_status_change(
    app: App,
    ticket: Ticket,
    old_status: str,
    new_status: str,
    now: datetime,
    idem_key: str,
    actor: str,
) -> Outbox | None:
    """Queue the customer's mail about ``old_status`` -> ``new_status``; None when none is due.

    Call it inside the transaction that changed the status. ``idem_key`` makes a
    replay of the same change queue nothing new (e.g. ``status:<inbound id>``).
    ``actor`` is the address (or ``"system"``/``"web"``) that made the change.
    When every recipient is over the hourly cap or cooling down after a bounce,
    the row is still stored (status ``suppressed``, never sent) and returned.
    """
    requester, ccs = customer_recipients(ticket)
    by_customer = actor.lower() in {requester.lower(), *(c.lower() for c in ccs)}
    if not should_mail(old_status, new_status, by_customer=by_customer):
        return None
    settings = app.settings

    # The customer's language, chosen when the ticket was opened (issue 12).
    language = ticket.language if ticket.language in LANGUAGES else settings.daemon.language
    department = settings.department(ticket.department) or settings.default_department
    if new_status == "resolved":
        template = "resolved"
        context: dict[str, Any] = {
            "rating_links": rating_links(settings.daemon.base_url, ticket),
        }
    else:
        labels = STATUS_LABELS[language]
        template = "status_changed"
        context = {
            "old_status_label": labels[old_status],
            "new_status_label": labels[new_status],
        }
    return queue_customer_update(
        settings,
        app.renderer,
        ticket,
        (requester, ccs),
        idem_key=idem_key,
        template=template,
        department=department,
        context=context,
        now=now,
    )
