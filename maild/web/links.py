"""The URLs of a ticket's quick-access page, for pages and for mail (rating links).

Pure string building: no aiohttp and no outbound imports, so the mail side can
use ``rating_links`` without pulling in the web server.
"""

from __future__ import annotations

from typing import Any

from storage.models import Ticket
from storage.queries import ticket_link

RATING_STARS: tuple[int, ...] = (1, 2, 3, 4, 5)


def page_path(ticket: Ticket) -> str:
    """The site-relative path of the ticket page: ``/t/592110/<key>``."""
    return f"/t/{ticket.number}/{ticket.access_key}"


def rating_links(base_url: str, ticket: Ticket) -> list[dict[str, Any]]:
    """One ``{stars, url}`` per star count, for the ``resolved`` mail.

    The URL only opens the page with the stars pre-selected (mail scanners
    prefetch links, so a GET never records anything); a POST there confirms.
    """
    link = ticket_link(base_url, ticket)
    return [{"stars": n, "url": f"{link}?rate={n}"} for n in RATING_STARS]
