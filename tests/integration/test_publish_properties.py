"""Property: whatever is thrown at ``POST /v1/events``, no 5xx and nothing invalid accepted."""

from __future__ import annotations

import copy
import json
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from schemas.events import CloudEvent
from services.core import streams
from tests.integration.conftest import auth

TEMPLATES: list[dict[str, Any]] = [
    {
        "specversion": "1.0", "source": "/units/BLO-OYBEK", "type": "alert.raised",
        "time": "2026-05-01T10:00:00+05:00", "releasableto": "UZ,TJ", "piireleasableto": "UZ",
        "data": {"severity": "flash", "summary": "KAMAZ truck", "route": ["TJ", "UZ", "KZ"],
                 "persons": [{"name": "A. Driver", "nationality": "TJ", "document": "P-1"}],
                 "vehicles": [{"plate": "01 A 123 BC", "description": "blue KAMAZ"}]},
    },
    {
        "specversion": "1.0", "source": "/units/BLO-AYRITOM", "type": "seizure.reported",
        "time": "2026-05-01T10:00:00Z",
        "data": {"occurred_at": "2026-05-01T09:00:00Z", "agencies": ["SCC"],
                 "drugs": [{"substance": "heroin", "quantity": 1500, "measure": "g"}],
                 "location": {"unit": "BLO-AYRITOM", "lat": 37.2, "lon": 67.2}},
    },
    {
        "specversion": "1.0", "source": "/units/BLO-OYBEK", "type": "alert.closed",
        "time": "2026-05-01T10:00:00Z", "subject": "a-1", "data": {"reason": "seized"},
    },
]  # fmt: skip

leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event, then up to three changes: a member dropped, replaced or added."""
    event = copy.deepcopy(draw(st.sampled_from(TEMPLATES)))
    event["id"] = str(draw(st.uuids()))
    for _ in range(draw(st.integers(0, 3))):
        target = (
            event["data"] if draw(st.booleans()) and isinstance(event.get("data"), dict) else event
        )
        key = draw(st.sampled_from([*target, "extra", "quantity"]))
        if draw(st.booleans()) and key in target:
            del target[key]
        else:
            target[key] = draw(json_values)
    return event


bodies = st.one_of(
    json_values,
    mutated_events(),
    st.lists(mutated_events(), min_size=1, max_size=5),
)


async def _accepted_are_valid(redis: Redis) -> None:
    for stream in streams.CANONICAL_STREAMS:
        for _, fields in await redis.xrange(stream):
            CloudEvent.from_json(fields[b"__data__"])  # raises if anything invalid got in


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    body=bodies, content_type=st.sampled_from(["application/json", "application/cloudevents+json"])
)
async def test_no_5xx_and_nothing_invalid_is_accepted(
    api: httpx.AsyncClient, redis: Redis, body: Any, content_type: str
) -> None:
    response = await api.post(
        "/v1/events",
        content=json.dumps(body).encode(),
        headers={"content-type": content_type, **auth("customs")},
    )
    assert response.status_code < 500, response.text
    if response.status_code == 202:
        assert isinstance(body, dict | list)
        await _accepted_are_valid(redis)
    else:
        assert response.headers["content-type"] == "application/problem+json"
