"""Agency adapters: each agency's export format → candidate canonical events.

``liaison import --adapter NAME FILE`` picks one by name; samples of each
format are in ``samples/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from services.ingest.adapters.base import Adapter
from services.ingest.adapters.border_xml import BorderXml
from services.ingest.adapters.customs_csv import CustomsCsv
from services.ingest.adapters.mia_jsonl import MiaJsonl

ADAPTERS: Mapping[str, Adapter] = MappingProxyType(
    {a.name: a for a in (CustomsCsv(), MiaJsonl(), BorderXml())}
)
"""Every adapter by name."""


def adapter_named(name: str) -> Adapter:
    """The adapter called ``name``, or ValueError naming the choices."""
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ValueError(f"unknown adapter {name!r}: choose {', '.join(ADAPTERS)}") from None
