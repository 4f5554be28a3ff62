"""Alert ids in URL paths: how a link or a client puts an id into one path segment.

Ids may hold any character but control characters (``BT-2024/0091``,
``50%``, ``what?``, non-ASCII, ``..``). The server decodes a path once
before routing, and routes that end in an id take everything up to their
fixed suffix (``…/alerts/{alert_id:path}/ack``), so the encoded form below
always comes back as the id. Links the API and the console write use it.
"""

from __future__ import annotations

from urllib.parse import quote


def path_segment(alert_id: str) -> str:
    """``alert_id`` as one percent-encoded path segment (``BT-2024/0091`` → ``BT-2024%2F0091``).

    Every reserved character is encoded, ``/`` too; an id made only of dots
    is encoded whole (``%2E%2E``), since clients and proxies remove the dot
    segments ``.`` and ``..`` before a request is sent.
    """
    segment = quote(alert_id, safe="")
    return segment.replace(".", "%2E") if not segment.strip(".") else segment
