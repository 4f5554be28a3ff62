"""The failover suite: a replicated deployment on simulated hosts, broken under load.

Seven hosts (:mod:`tests.integration.failover_deployment`): three Valkey servers with a
Sentinel each, two service hosts (``api``, ``ledger``, ``notifier`` on each, real
``liaison serve`` processes), a PostgreSQL primary and its synchronous standby. Two
publishers (the test process) send a bounded load, half to each service host's API, each
batch re-sent until it is answered 202. Meanwhile one fault, then healing:

* the Valkey primary's server SIGKILLed; or SIGSTOPped past the Sentinels' timeout, then
  resumed; or its host cut off together with service host ``s2`` (a client still attached),
  healed after the failover;
* service host ``s1`` crashed (every process SIGKILLed) and started again;
* PostgreSQL's primary host crashed and the standby promoted.

Afterwards: every event answered 202 is in the ledger exactly once (``replicated``: no loss
allowed; ``standard``: the loss is measured and printed, duplicates are never allowed); every
alert in the ledger was delivered once to each recipient; the chain verifies; ``/readyz`` was
red during the fault where it must be and is green after.

Needs root (network namespaces). Outside CI without it the suite skips, saying why; under
``CI`` it fails. ``FAILOVER_SEED=N`` replays a run's random moments (printed first).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from services.core import streams
from services.core.redis_client import connect
from services.ledger.engine import create_engine
from services.ledger.store import SqlLedger
from tests.integration import netns
from tests.integration.failover_deployment import SERVICE_HOSTS, SERVICES, HaDeployment, Readiness
from tests.integration.fault_load import Expected, Load, make_events, recorded
from tests.integration.processes import wait_for

pytestmark = pytest.mark.slow

TOTAL = 2_000
RATE = 200.0
"""Events per second and per publisher pair: about ten seconds of load."""
SEED = int(os.environ.get("FAILOVER_SEED") or random.randrange(1 << 32))

Fault = Callable[[HaDeployment, list[Load]], Awaitable[list[set[str]]]]
"""Injects one fault and heals it; returns groups of services of which at least one must
have been red meanwhile (a failover may be over before a service's next probe, so not every
process is caught red; some process of each group is)."""


def _per_host(d: HaDeployment) -> list[set[str]]:
    return [{name for name in d.urls if name.startswith(f"{host}/")} for host in SERVICE_HOSTS]


@pytest.fixture(scope="module", autouse=True)
def _privileges() -> None:
    reason = netns.unavailable()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the failover suite: {reason}")
        pytest.skip(f"FAILOVER SUITE SKIPPED — {reason} (it runs in CI, as root)")
    netns.sweep()


@pytest.fixture
async def make_deployment(tmp_path: Path) -> AsyncIterator[Callable[[str], HaDeployment]]:
    """A deployment factory; whatever was made is torn down, the hosts removed, even when
    the test failed half-way."""
    made: list[HaDeployment] = []

    def make(durability: str) -> HaDeployment:
        made.append(HaDeployment(tmp_path, durability))
        return made[-1]

    try:
        yield make
    finally:
        for deployment in made:
            deployment.close()


async def _until_sent(loads: list[Load], fraction: float) -> None:
    while sum(load.sent for load in loads) < fraction * TOTAL:
        if all(load.done.is_set() for load in loads):
            return
        await asyncio.sleep(0.01)


async def primary_killed(d: HaDeployment, loads: list[Load]) -> set[str]:
    """SIGKILL of the primary's server; the Sentinels promote a replica; the old one is
    started again from its AOF (the Sentinels make it a replica of the new one)."""
    await _until_sent(loads, 0.2 + 0.3 * random.Random(SEED).random())
    old = d.valkey.primary()
    old.signal(signal.SIGKILL)
    await d.valkey.failed_over_from(old)
    await asyncio.to_thread(d.valkey.restart, old)
    return _per_host(d)


async def primary_hung(d: HaDeployment, loads: list[Load]) -> set[str]:
    """SIGSTOP of the primary's server past the Sentinels' timeout; resumed after the
    failover (it then learns it was demoted)."""
    await _until_sent(loads, 0.2 + 0.3 * random.Random(SEED).random())
    old = d.valkey.primary()
    old.signal(signal.SIGSTOP)
    try:
        await d.valkey.failed_over_from(old)
        await asyncio.sleep(1.0)  # hung a while longer than the failover took
    finally:
        old.signal(signal.SIGCONT)
    return _per_host(d)


async def primary_cut_off(d: HaDeployment, loads: list[Load]) -> set[str]:
    """The primary's host and service host ``s2`` (its publisher still sending) cut off
    from everyone else; healed 3 s after the majority side elected a new primary."""
    await _until_sent(loads, 0.2 + 0.3 * random.Random(SEED).random())
    old = d.valkey.primary()
    host = next(name for name, h in d.hosts.items() if h.address == old.host)
    d.network.partition(host, "s2")
    try:
        await d.valkey.failed_over_from(old)
        await asyncio.sleep(3.0)  # the old primary keeps its clients a while
    finally:
        d.network.heal()
    red = _per_host(d)[:1]  # the majority side lost its primary
    if d.durability == "replicated":  # the cut-off side cannot reach its replicas
        red.append({"s2/api"})
    return red


async def service_host_crashed(d: HaDeployment, loads: list[Load]) -> set[str]:
    """Every process of service host ``s1`` SIGKILLed at once, then started again."""
    await _until_sent(loads, 0.2 + 0.3 * random.Random(SEED).random())
    d.crash_host("s1")
    await asyncio.sleep(2.0)  # the survivors' claimers take over s1's pending entries
    for service in SERVICES:
        d.start_service("s1", service)
    return [{name} for name in d.urls if name.startswith("s1/")]


async def postgres_failed_over(d: HaDeployment, loads: list[Load]) -> set[str]:
    """PostgreSQL's primary host crashed; the synchronous standby promoted."""
    await _until_sent(loads, 0.2 + 0.3 * random.Random(SEED).random())
    d.hosts["pg0"].crash()
    await asyncio.sleep(1.0)  # the ledgers notice
    await asyncio.to_thread(d.pg.promote_standby)
    return [{f"{host}/ledger"} for host in SERVICE_HOSTS]


async def _drained(redis: Redis) -> bool:
    """Every group read and acknowledged everything on every stream."""
    for stream, groups in streams.GROUPS.items():
        for group in await redis.xinfo_groups(stream):
            if group["name"].decode() in groups and (group["pending"] or group["lag"]):
                return False
    return True


async def _run(d: HaDeployment, fault: Fault) -> None:
    print(f"\nseed {SEED} (FAILOVER_SEED={SEED} replays it); durability {d.durability}")
    started = time.monotonic()
    await d.start()
    print(f"deployment started in {time.monotonic() - started:.1f}s")
    events = make_events(TOTAL)
    expected = Expected.of(events)
    half = len(events) // 2
    loads = [Load(d.api("s1"), events[:half], RATE / 2), Load(d.api("s2"), events[half:], RATE / 2)]
    readiness = Readiness(d.urls)
    redis = connect(d.valkey.target)
    try:
        with readiness.polling():
            publishing = [asyncio.create_task(load.run()) for load in loads]
            began = time.monotonic()
            must_be_red = await fault(d, loads)
            healed = time.monotonic()
            done = lambda: all(task.done() for task in publishing)  # noqa: E731
            await wait_for(done, "load published", d.processes, 180)
            for task in publishing:
                task.result()  # a 500 or a 503 without Retry-After failed the load
            for name in d.urls:
                await d.wait_ready(name, timeout=60)
            await wait_for(lambda: _drained(redis), "streams drained", d.processes, 120)
            if d.durability == "replicated":
                await wait_for(lambda: _recorded_all(d, expected), "all recorded", d.processes, 60)
            after = time.monotonic()
            print(f"fault and healing {healed - began:.1f}s, then settled in {after - healed:.1f}s")

            def probed_again() -> bool:  # one more verdict on each, to be checked green below
                return all(readiness.seen(name, after) for name in d.urls)

            await wait_for(probed_again, "one more readiness round", d.processes, 30)
        await _check(d, expected, loads)
    finally:
        await redis.aclose()
    red = {name for name in d.urls
           if readiness.seen(name, began, healed + 10) & {"not ready", "down", "slow"}}  # fmt: skip
    for group in must_be_red:
        assert red & group, f"none of {sorted(group)} was red during the fault (red: {red})"
    for name in d.urls:
        assert readiness.seen(name, after) == {"ready"}, name
    print(f"publisher retries: {[dict(load.failures) for load in loads]}")


async def _recorded_all(d: HaDeployment, expected: Expected) -> bool:
    found = await recorded(d.pg.url)
    return all(key in found.counts for key in expected.events) and set(found.delivered) >= {
        delivery for delivery in expected.deliveries
    }


async def _check(d: HaDeployment, expected: Expected, loads: list[Load]) -> None:
    acknowledged = set().union(*(load.acknowledged for load in loads))
    assert acknowledged == {event_id for _, event_id in expected.events}
    found = await recorded(d.pg.url)
    doubled = {key: n for key, n in found.counts.items() if n > 1}
    assert not doubled, f"recorded more than once: {doubled}"
    lost = [key for key in expected.events if key not in found.counts]
    print(f"LOSS durability={d.durability}: {len(lost)} of {len(expected.events)} "
          "acknowledged events not in the ledger")  # fmt: skip
    if d.durability == "replicated":
        assert not lost, f"{len(lost)} acknowledged events lost, e.g. {lost[:3]}"
    recorded_alerts = {event_id for (_, event_id), kind in expected.events.items()
                       if kind == "alert.raised" and (_, event_id) in found.counts}  # fmt: skip
    wanted = {(a, unit) for a, unit in expected.deliveries if a in recorded_alerts}
    delivered = Counter({k: n for k, n in found.delivered.items() if k[0] in recorded_alerts})
    assert delivered == Counter(dict.fromkeys(wanted, 1)), "an alert not delivered exactly once"
    ledger = SqlLedger(create_engine(d.pg.url))
    try:
        report = await ledger.verify()
    finally:
        await ledger.close()
    assert report.ok, report


REPLICATED_FAULTS = [primary_killed, primary_hung, primary_cut_off, service_host_crashed]
STANDARD_FAULTS = [primary_killed]
UNVERIFIED = [postgres_failed_over]
"""Written, not yet run to a pass (issue 18): not collected until it passes. ``standard``
under the hung and cut-off primary is not collected yet either."""


@pytest.mark.timeout(420)
@pytest.mark.parametrize("fault", REPLICATED_FAULTS, ids=lambda f: f.__name__)
async def test_replicated_loses_nothing_acknowledged(
    make_deployment: Callable[[str], HaDeployment], fault: Fault
) -> None:
    await _run(make_deployment("replicated"), fault)


@pytest.mark.timeout(420)
@pytest.mark.parametrize("fault", STANDARD_FAULTS, ids=lambda f: f.__name__)
async def test_standard_loss_is_measured(
    make_deployment: Callable[[str], HaDeployment], fault: Fault
) -> None:
    await _run(make_deployment("standard"), fault)
