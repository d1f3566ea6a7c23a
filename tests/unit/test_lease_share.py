"""The fair share of IMAP sources per live instance (SPEC §10, maild.intake.leases)."""

from __future__ import annotations

import pytest

from maild.intake.leases import LIVE_COUNT_SECONDS, LeaseShare, fair_share


@pytest.mark.parametrize(
    ("sources", "instances", "share"),
    [
        (4, 1, 4),
        (4, 2, 2),
        (4, 3, 2),
        (4, 4, 1),
        (4, 5, 1),
        (3, 2, 2),
        (1, 2, 1),
        (0, 2, 0),
        (5, 0, 5),  # no count (yet): this instance alone
    ],
)
def test_fair_share_is_the_ceiling_of_sources_per_instance(
    sources: int, instances: int, share: int
) -> None:
    assert fair_share(sources, instances) == share


def test_every_source_fits_in_the_shares_of_the_live_instances() -> None:
    for sources in range(0, 12):
        for instances in range(1, 8):
            assert fair_share(sources, instances) * instances >= sources
            # and nobody is asked to hold two more than another could
            assert fair_share(sources, instances) <= sources // instances + 1


class Counter:
    def __init__(self, answers: list[int | None]) -> None:
        self.answers = answers
        self.asked = 0

    def __call__(self) -> int | None:
        self.asked += 1
        return self.answers[min(self.asked, len(self.answers)) - 1]


def test_the_share_follows_the_live_count_asked_at_most_once_a_second() -> None:
    now = [100.0]
    live = Counter([1, 2, 2, None])
    share = LeaseShare("host-a:1", 4, live, monotonic=lambda: now[0])

    assert share.limit() == 4
    assert share.limit() == 4  # the count is trusted for a moment
    assert live.asked == 1

    now[0] += LIVE_COUNT_SECONDS
    assert share.limit() == 2  # a second instance joined
    now[0] += LIVE_COUNT_SECONDS
    assert share.limit() == 2
    now[0] += LIVE_COUNT_SECONDS
    assert share.limit() is None  # cannot tell (or one host): no limit
    assert live.asked == 4
