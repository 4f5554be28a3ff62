"""Whether an entry's indexed columns say what its hashed text says.

Readers filter and group on columns — ``type`` (``replay --type``, statistics),
``event_time`` (``--since``/``--until``), ``subject`` and ``event_id`` (an
alert's trail), ``source`` and ``event_id`` (each event recorded once) — but
only the event text is hashed. So verification checks every entry's columns
against the values the writer derives from its text
(:func:`services.ledger.records.record_of_payload`); an edited column is named
with its seq.

Parsing every event would cost verification most of its speed (``json.loads``
of a 700-byte event takes ~10 times its SHA-256). Canonical text needs no full
parse: keys are sorted and ``data`` comes first, so the attributes compared
here sit in the last ~250 characters, in a fixed order. :func:`agree` reads
them there with one anchored regular expression (~1.2 times the entry's
SHA-256), and falls back to the writer's own derivation whenever that reading
cannot be sure: a compared value with an escape or a brace, another layout.

Why the fast reading is exact: the text is valid JSON ending in ``}``, the
close of the top-level object. Read backwards from there, a string's
delimiting quotes are the ones preceded by an even run of backslashes, so
the members matched by :data:`_TAIL` — string values only, separated by
``,`` and ``:`` — are the *last* members of the top-level object, whatever
comes before them. JSON readers (``json``, pydantic) keep the last of
duplicate keys, so these are the values the writer indexed; a key the tail
does not hold (``subject``) is looked for in the rest of the text.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

from pydantic import AwareDatetime, Strict, TypeAdapter, ValidationError

from services.ledger.records import Record, record_of_payload, utc_text

COLUMNS = ("source", "event_id", "type", "subject", "event_time")
"""The indexed columns, in the order :func:`agree` takes them."""

_S = r'[^"\\]*(?:\\.[^"\\]*)*'  # a JSON string's content, escapes included
_V = r'([^"\\]*)'  # a value compared here, captured: without escapes (else: the writer decides)
_TAIL = re.compile(
    rf',"datacontenttype":"application/json"(?:,"dataschema":"{_S}")?,"id":"{_V}"'
    rf'(?:,"piireleasableto":"{_S}")?(?:,"releasableto":"{_S}")?'
    rf',"source":"{_V}","specversion":"1\.0"(?:,"subject":"{_V}")?'
    rf',"time":"{_V}"(?:,"tlp":"{_S}")?,"type":"{_V}"\}}'
)
_SUBJECT_KEY = '"subject":'
_UTC_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_TIME = TypeAdapter(Annotated[AwareDatetime, Strict()])  # as records.Envelope reads ``time``


def agree(
    text: str, source: str, event_id: str, type_: str, subject: str | None, event_time: str
) -> bool:
    """Whether the columns are exactly what the writer derives from ``text``."""
    # the tail starts after data's closing brace: the last "}" but the text's own, unless a
    # value after data holds one (then the match fails and the writer decides)
    tail = _TAIL.fullmatch(text, text.rfind("}", 0, -1) + 1)
    if tail is None or (tail[3] is None and _SUBJECT_KEY in text):
        # not the canonical layout, an escaped value, or a subject before the tail: ask the writer
        return not disagreement(text, source, event_id, type_, subject, event_time)
    found_id, found_source, found_subject, found_time, found_type = tail.groups()
    return (
        found_type == type_
        and found_id == event_id
        and found_source == source
        and found_subject == subject
        and (
            (found_time == event_time and _UTC_TEXT.fullmatch(found_time) is not None)
            or _utc(found_time) == event_time
        )
    )


def disagreement(
    text: str, source: str, event_id: str, type_: str, subject: str | None, event_time: str
) -> list[str]:
    """The columns that differ from the writer's derivation (slow: parses the whole event)."""
    try:
        record = record_of_payload(text.encode())
    except (ValidationError, ValueError):
        return ["event"]  # hashed, yet no event: only a writer other than the ledger makes that
    stored = Record(source, event_id, type_, subject, event_time, record.text)
    return [name for name, a, b in zip(COLUMNS, stored, record, strict=False) if a != b]


def _utc(time: str) -> str | None:
    """The ``event_time`` the writer derives from an event's ``time``; None if it has none."""
    try:
        return utc_text(_TIME.validate_json(json.dumps(time)))
    except (ValidationError, OverflowError):
        return None
