"""The URLs of a ticket's quick-access page, for pages and for mail (rating links).

Pure string building: no aiohttp and no outbound imports, so the mail side can
use ``rating_links`` without pulling in the web server.
"""

from __future__ import annotations

from maild.storage.models import Ticket
from maild.storage.queries import RATING_STARS, rating_links, ticket_link

__all__ = ["RATING_STARS", "page_path", "rating_links", "ticket_link"]


def page_path(ticket: Ticket) -> str:
    """The site-relative path of the ticket page: ``/t/592110/<key>``."""
    return f"/t/{ticket.number}/{ticket.access_key}"
