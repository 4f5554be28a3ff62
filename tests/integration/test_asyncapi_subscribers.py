"""The AsyncAPI document describes the streams a running runtime reads, no more, no fewer.

Every (stream, consumer group) the broker of a running ``Runtime`` subscribes to — each
publisher's ingress stream as the document's ``{publisher}`` template — is a ``receive``
operation of the document, and every ``receive`` operation is subscribed; the API serves the
committed document at ``/asyncapi.json``.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from services.bootstrap import Runtime
from services.core import asyncapi, streams

TEMPLATE = streams.ingress_stream(asyncapi.PUBLISHER)


def _subscribed(runtime: Runtime) -> set[tuple[str, str]]:
    pairs = set()
    for subscriber in runtime.broker.subscribers:
        sub: Any = subscriber
        stream: str = sub.stream_sub.name
        publisher = streams.publisher_of_ingress(stream)
        assert publisher is None or publisher in runtime.publishers
        pairs.add((TEMPLATE if publisher is not None else stream, sub.stream_sub.group))
    return pairs


def _documented() -> set[tuple[str, str]]:
    doc = asyncapi.document()
    pairs = set()
    for operation in doc["operations"].values():
        if operation["action"] != "receive":
            continue
        channel = doc["channels"][operation["channel"]["$ref"].rsplit("/", 1)[1]]
        pairs.add((channel["address"], channel["bindings"]["redis"]["groupName"]))
    return pairs


async def test_document_matches_the_running_subscribers(runtime: Runtime) -> None:
    assert runtime.publishers  # the ingress streams are subscribed only with publishers
    ingress = {
        s.stream_sub.name
        for s in runtime.broker.subscribers  # type: ignore[attr-defined]
        if streams.publisher_of_ingress(s.stream_sub.name)
    }
    assert ingress == set(runtime.ingress_streams)
    assert _subscribed(runtime) == _documented()


async def test_api_serves_the_committed_document(api: httpx.AsyncClient) -> None:
    response = await api.get("/asyncapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == json.loads(asyncapi.PATH.read_text(encoding="utf-8"))
