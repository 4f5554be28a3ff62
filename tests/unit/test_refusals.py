"""A publisher's allowance of event-loop time for refused requests (services/ingest/refusals.py)."""

from __future__ import annotations

from services.ingest.refusals import Allowance


class Clock:
    """Seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_refused_requests_use_it_up_and_it_grows_back_at_its_rate() -> None:
    clock = Clock()
    allowance = Allowance(rate=0.1, burst=0.5, clock=clock)
    assert allowance.open()
    allowance.charge(0.3)
    assert allowance.open()  # 0.2 left
    allowance.charge(0.5)  # one request may take more than is left
    assert not allowance.open()
    assert abs(allowance.left + 0.3) < 1e-9
    clock.now += 2.9  # 0.29 s back: still short
    assert not allowance.open()
    clock.now += 0.2
    assert allowance.open()


def test_it_saves_up_no_more_than_its_burst() -> None:
    clock = Clock()
    allowance = Allowance(rate=0.1, burst=0.5, clock=clock)
    clock.now += 3600  # an hour without a refusal
    assert allowance.left == 0.5
    allowance.charge(0.5)
    assert not allowance.open()
