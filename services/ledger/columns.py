"""Whether an entry's indexed columns say what its hashed text says.

Readers filter and group on columns — ``type`` (``replay --type``, statistics),
``event_time`` (``--since``/``--until``), ``subject`` and ``event_id`` (an
alert's trail), ``source`` and ``event_id`` (each event recorded once) — but
only the event text is hashed. So verification checks every entry's columns
against the values the writer derives from its text
(:func:`services.ledger.records.record_of_payload`), and names the seq and the
column that differ.

Both sides are put in one form, an entry's *index text* (:func:`index_text`):
the database builds it from the columns in the scan itself (:data:`INDEX_SQL`),
the verifier from the text (:func:`index_of`). Comparing them entry by entry
costs a parse of the text; so each signed checkpoint (v2) also signs
:func:`index_digest` of the index texts of the entries it covers, computed
by the signer from what it wrote, and verification compares one digest per
checkpoint — entry by entry only where no checkpoint states one (version 1
checkpoints, the unsigned tail), or to name the entry when a digest differs.

Reading the index text from canonical text needs no full parse: keys are
sorted and ``data`` comes first, so the attributes sit in the last ~250
characters in a fixed order, and one anchored regular expression reads
them. It is exact: the text is valid JSON ending in ``}``, the close of the
top-level object; read backwards from there, a string's delimiting quotes
are the ones preceded by an even run of backslashes, so the members matched
by :data:`_TAIL` — string values only, separated by ``,`` and ``:`` — are the
*last* members of the top-level object, whatever comes before them, and JSON
readers (``json``, pydantic) keep the last of duplicate keys. Anything else —
a value with an escape or a brace, another layout, a subject before the tail
— goes to the writer's own derivation.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Annotated

from pydantic import AwareDatetime, Strict, TypeAdapter, ValidationError

from services.ledger.records import record_of_payload, utc_text

COLUMNS = ("event_id", "source", "type", "event_time", "subject")
"""The indexed columns, in the order of the index text."""

_END, _NONE = "\x01", "\x02"
INDEX_SQL = (
    f"event_id || '{_END}' || source || '{_END}' || type || '{_END}' || event_time || '{_END}' || "
    f"coalesce(subject || '{_END}', '{_NONE}')"
)
"""The index text of a row, built by the database (SQLite and PostgreSQL alike)."""

_S = r'[^"\\]*(?:\\.[^"\\]*)*'  # a JSON string's content, escapes included
_V = r'([^"\\]*)'  # a value read here, captured: without escapes (else: the writer decides)
_TAIL = re.compile(
    rf',"datacontenttype":"application/json"(?:,"dataschema":"{_S}")?,"id":"{_V}"'
    rf'(?:,"piireleasableto":"{_S}")?(?:,"releasableto":"{_S}")?'
    rf',"source":"{_V}","specversion":"1\.0"(?:,"subject":"{_V}")?'
    rf',"time":"{_V}"(?:,"tlp":"{_S}")?,"type":"{_V}"\}}'
)
_SUBJECT_KEY = '"subject":'
_UTC_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_TIME = TypeAdapter(Annotated[AwareDatetime, Strict()])  # as records.Envelope reads ``time``


def index_text(event_id: str, source: str, type_: str, event_time: str, subject: str | None) -> str:
    """An entry's indexed columns as one text: each value followed by U+0001, an absent subject
    by U+0002 alone (no honest value holds either: ids and subjects exclude control
    characters). A column holding one of them changes their count, so two different sets of
    columns never give one index text."""
    end = _END
    tail = _NONE if subject is None else subject + end
    return f"{event_id}{end}{source}{end}{type_}{end}{event_time}{end}{tail}"


def index_of(text: str) -> str | None:
    """The index text the writer derives from an event's stored text; None if it is no event."""
    # the tail starts after data's closing brace: the last "}" but the text's own, unless a
    # value after data holds one (then the match fails and the writer decides)
    tail = _TAIL.fullmatch(text, text.rfind("}", 0, -1) + 1)
    if tail is None or (tail[3] is None and _SUBJECT_KEY in text):
        try:
            record = record_of_payload(text.encode())
        except (ValidationError, ValueError):
            return None  # hashed, yet no event: only a writer other than the ledger makes that
        return index_text(
            record.event_id, record.source, record.type, record.event_time, record.subject
        )
    event_id, source, subject, time, type_ = tail.groups()
    if _UTC_TEXT.fullmatch(time) is None:
        try:
            time = utc_text(_TIME.validate_json(json.dumps(time)))
        except (ValidationError, OverflowError):
            return None
    return index_text(event_id, source, type_, time, subject)


def index_digest(index_texts: Iterable[str]) -> str:
    """SHA-256 (hex) of the index texts of consecutive entries, concatenated."""
    return hashlib.sha256("".join(index_texts).encode()).hexdigest()


def differing(expected: str | None, stored: str | None) -> list[str]:
    """The columns whose values differ between two index texts (all of them if one is
    malformed: a column holding a separator)."""
    if expected is None:
        return ["event"]
    if stored is None:
        return list(COLUMNS)
    ours, theirs = _split(expected), _split(stored)
    if theirs is None or ours is None:
        return list(COLUMNS)
    return [name for name, a, b in zip(COLUMNS, ours, theirs, strict=True) if a != b]


def _split(index: str) -> tuple[str | None, ...] | None:
    if index.endswith(_NONE) and index.count(_END) == 4 and _NONE not in index[:-1]:
        return (*index[:-1].split(_END)[:4], None)
    parts = index.split(_END)
    if len(parts) != 6 or parts[5] or _NONE in index:
        return None
    return tuple(parts[:5])
