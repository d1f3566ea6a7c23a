"""Quick-access web view (SPEC §6): the customer's private page behind every ticket link.

``rating_links`` is importable without aiohttp or the outbound code (the mail
side uses it); ``create_web_app`` and ``start_web`` are loaded on first use so
that ``maild.outbound`` may import this package without an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from maild.web.links import page_path, rating_links

if TYPE_CHECKING:
    from maild.web.app import create_web_app, start_web

__all__ = ["create_web_app", "page_path", "rating_links", "start_web"]


def __getattr__(name: str) -> Any:
    if name in ("create_web_app", "start_web"):
        from maild.web import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
