"""Defect notes: what was wrong with a message, collected while parsing it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Notes:
    """Ordered, de-duplicated defect notes collected while parsing one message."""

    items: list[str] = field(default_factory=list)

    def add(self, note: str) -> None:
        if note not in self.items:
            self.items.append(note)
