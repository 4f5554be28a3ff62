"""The ledger's write health: failing after an outage, stalled while a write waits too long."""

from __future__ import annotations

import pytest

from services.core.bus import Unavailable
from services.ledger.health import WriteHealth


async def test_an_outage_makes_it_failing_until_a_write_succeeds() -> None:
    health = WriteHealth()
    with pytest.raises(Unavailable):
        async with health.watch():
            raise Unavailable("database down")
    assert not health.ok
    async with health.watch():
        pass
    assert health.ok


async def test_other_failures_say_nothing_about_the_database() -> None:
    health = WriteHealth()
    with pytest.raises(ValueError, match="bad record"):
        async with health.watch():
            raise ValueError("a bad record")
    assert health.ok


async def test_a_write_waiting_longer_than_the_limit_is_a_stall() -> None:
    health = WriteHealth(stall_after=0.0)
    async with health.watch():
        assert health.stalled
        assert not health.ok
    assert not health.stalled
    assert health.ok
