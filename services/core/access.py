"""The access record: every read of personal data, recorded before the data is returned.

The Law Enforcement Directive (Art. 25) wants a log of every consultation — who, when, why,
what — and so do the SIS and JIT rules (research: trust.md, §6). Every process that shows
persons' identities (the API's inbox and ledger pages, the console's alert page, the
auditor's replay and export) builds one record per read: the principal and the person its
token was issued to, the channel, the purpose the reader gave, the events whose persons were
shown (``[source, id]``) and which persons — as keyed digests of their document numbers
(:class:`PersonIndex`), so a data-protection officer can find every read of a person
(``liaison access report --person DOCUMENT``) while the record copies no identity again.

The API appends the record to :data:`~services.core.streams.ACCESS` (the server's fsync
awaited in strict durability) *before* it answers; the ledger appends it to its own hash
chain and acknowledges the entry only once committed (``services/ledger/access_store.py``).
So a read whose record could not be written is answered with an error, not the data. A
record is written only when personal data was shown; the purpose is mandatory when
``LIAISON_ACCESS_PURPOSE=required`` (428 without one).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from schemas.events import canonical_json
from services.core import streams
from services.core.bus import Unavailable
from services.core.config import ConfigError, Principal
from services.core.problems import Problem

PURPOSE_MAX = 200
"""Characters of a purpose at most (a case reference and a few words)."""
PURPOSE_PATTERN = r"^[^\x00-\x1F\x7F-\x9F\u2028\u2029]*$"
"""One line: no control character, nor the Unicode line and paragraph separators."""
_ONE_LINE = re.compile(PURPOSE_PATTERN)
_SPACES = re.compile(r"[\s\-./]+")
KEY_BYTES = 32
FSYNC_TIMEOUT_MS = 5000


class PersonIndex:
    """Keyed digests of document numbers: equal for one document, useless without the key.

    An unsalted hash of a passport number can be reversed by trying them all (AEPD/EDPS);
    an HMAC under a key kept apart from the database cannot, and still lets the report find
    every read of one person.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def at(cls, path: Path, *, create: bool) -> PersonIndex:
        """The index whose key is the file ``path`` (created 0600 if missing and ``create``)."""
        try:
            return cls(_read_key(path))
        except FileNotFoundError:
            if not create:
                raise ConfigError(
                    f"no access index key at {path}: set LIAISON_ACCESS_INDEX_KEY to the key "
                    "the API uses, or run this where `liaison up` keeps its data"
                ) from None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return cls(_read_key(path))
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        return cls(_read_key(path))

    def digest(self, document: str) -> str:
        """The digest of a document number, spacing, dashes and case ignored."""
        normal = _SPACES.sub("", document).upper()
        return hmac.new(self._key, normal.encode(), hashlib.sha256).hexdigest()


def _read_key(path: Path) -> bytes:
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{path}: not an access index key ({KEY_BYTES} bytes)")
    return key


@dataclass(slots=True)
class Shown:
    """What a read showed of persons: the events and the persons' digests."""

    events: list[list[str]] = field(default_factory=list)
    """``[source, id]`` of each event whose persons were shown."""
    persons: list[str] = field(default_factory=list)
    """Digests of the documents shown (:class:`PersonIndex`), each once."""
    named: int = 0
    """Persons shown, with or without a document."""

    def __bool__(self) -> bool:
        return bool(self.events)


def _events_in(doc: Any) -> Iterator[dict[str, Any]]:
    """Every CloudEvent (as a JSON document) anywhere in ``doc``."""
    if isinstance(doc, dict):
        if "specversion" in doc and isinstance(doc.get("data"), dict):
            yield doc
        for value in doc.values():
            if isinstance(value, dict | list):
                yield from _events_in(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _events_in(item)


def shown_in(doc: Any, index: PersonIndex) -> Shown:
    """The persons' identities ``doc`` (a page, an entry, events) shows, and in which events.

    The non-nominal view has no ``persons`` (only ``persons_count``): it shows nobody.
    """
    shown = Shown()
    seen_events: set[tuple[str, str]] = set()
    digests: dict[str, None] = {}
    for event in _events_in(doc):
        persons = event["data"].get("persons")
        if not isinstance(persons, list) or not persons:
            continue
        key = (str(event.get("source")), str(event.get("id")))
        if key not in seen_events:
            seen_events.add(key)
            shown.events.append(list(key))
        for person in persons:
            shown.named += 1
            document = person.get("document") if isinstance(person, dict) else None
            if isinstance(document, str) and document.strip():
                digests[index.digest(document)] = None
    shown.persons = list(digests)
    return shown


def clean_purpose(raw: str | None, where: str = "query.purpose") -> str | None:
    """The purpose as given (stripped), None when blank; a located 422 when it is not one line
    of at most :data:`PURPOSE_MAX` characters."""
    if raw is None or not raw.strip():
        return None
    text = raw.strip()
    if len(text) > PURPOSE_MAX or not _ONE_LINE.match(text):
        message = f"one line of at most {PURPOSE_MAX} characters, no control characters"
        raise Problem(422, "Invalid request", errors=[{"field": where, "message": message}])
    return text


def access_record(
    principal: Principal | tuple[str, str, str | None],
    channel: str,
    purpose: str | None,
    shown: Shown,
    *,
    unit: str | None = None,
    at: datetime | None = None,
) -> dict[str, Any]:
    """One access record (docs/ledger.md, "The access record"); ``principal``: the caller, or
    ``(name, role, person)`` for a command-line reader."""
    name, role, person = (
        (principal.name, principal.role.value, principal.person)
        if isinstance(principal, Principal)
        else principal
    )
    return {
        "id": uuid.uuid4().hex,
        "at": (at or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="microseconds"),
        "principal": name,
        "role": role,
        "person": person,
        "channel": channel,
        "purpose": purpose,
        "unit": unit,
        "events": shown.events,
        "persons": shown.persons,
        "named": shown.named,
    }


class PurposeRequired(Problem):
    """428: a read that would show personal data, without the purpose the settings require."""

    def __init__(self) -> None:
        super().__init__(
            428,
            "Purpose required",
            "this shows personal data: say why, with the purpose query parameter "
            "(e.g. ?purpose=case 2026/114), and ask again; the read is recorded with it",
        )


class AccessLog:
    """Records reads of personal data on :data:`~services.core.streams.ACCESS`."""

    def __init__(self, redis: Redis, index: PersonIndex, *, required: bool, durable: bool) -> None:
        self._redis, self.index = redis, index
        self.required, self._durable = required, durable

    def check(self, purpose: str | None, shown: Shown) -> None:
        """:class:`PurposeRequired` when ``shown`` names persons, no purpose was given and the
        settings require one."""
        if shown and purpose is None and self.required:
            raise PurposeRequired

    async def record(
        self,
        principal: Principal,
        channel: str,
        purpose: str | None,
        shown: Shown,
        *,
        unit: str | None = None,
    ) -> dict[str, Any] | None:
        """Check the purpose, then append the record (nothing when no person was shown) and
        return once the server has it (fsynced, in strict durability)."""
        self.check(purpose, shown)
        if not shown:
            return None
        record = access_record(principal, channel, purpose, shown, unit=unit)
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(streams.ACCESS, {streams.EVENT_FIELD: canonical_json(record)})
            if self._durable:
                pipe.waitaof(1, 0, FSYNC_TIMEOUT_MS)
            results = await pipe.execute()
        if self._durable and (not results[1] or int(results[1][0]) < 1):
            raise Unavailable(
                f"the server did not fsync the access record within {FSYNC_TIMEOUT_MS} ms"
            )
        return record


PURPOSE_DOC = (
    "Why personal data is read (a case reference): recorded in the access record with the "
    "read; required (428 without it) when LIAISON_ACCESS_PURPOSE=required and the answer "
    "shows persons' identities."
)
"""The ``purpose`` parameter's description, wherever it is asked for."""


async def record_read(
    access: AccessLog | None,
    principal: Principal,
    channel: str,
    purpose: str | None,
    shown: Any,
    unit: str | None = None,
) -> None:
    """Record a read of ``shown`` (what is about to be answered) in the access record: nothing
    when it shows no person; 428 when a purpose is required and missing; 503 when there is no
    access record to write to (the data is not given out unrecorded)."""
    if access is None:
        raise Problem(503, "Access record unavailable", "reads of personal data cannot be recorded")
    await access.record(principal, channel, purpose, shown_in(shown, access.index), unit=unit)
