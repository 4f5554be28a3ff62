"""The schema's bounds: how long every string and list may be, and which characters text holds.

Every list and string of an event is bounded, so validating one costs at most a
known amount whatever a publisher sends (the request body's 8 MiB cap bounds a
whole batch, not what one field may make the validator do). The limits are
generous for what the fields describe and part of the public contract (docs/events.md,
"Limits of an event"); the exported JSON Schemas carry them as ``maxItems`` /
``maxLength``.

Text never holds control characters (C0, DEL, C1) nor the Unicode line and
paragraph separators: a terminal or log would act on them — an ESC sequence that
hides what follows, a carriage return or newline that forges a second line. Names,
labels and the summary are one line; notes and reasons may hold line breaks
(``\\n``; ``\\r\\n`` is read as ``\\n``) and tabs. The checks are the schema's own
``pattern`` (run by pydantic-core, nearly free); :func:`explain` turns a mismatch
into words that name the character.
"""

from __future__ import annotations

import re
from typing import Any, Final

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

MAX_TEXT: Final = 2000
"""Characters of free text: a summary, a note, a reason."""
MAX_NAME: Final = 200
"""Characters of a name, a document number, a plate, a label."""
MAX_URI: Final = 2048
"""Characters of a URI attribute (``dataschema``)."""
MAX_ROUTE: Final = 32
"""Countries on a route (origin, transit, destination)."""
MAX_RECIPIENTS: Final = 100
"""Units an alert names as explicit recipients."""
MAX_PERSONS: Final = 100
"""Persons in one alert or seizure report."""
MAX_VEHICLES: Final = 100
"""Vehicles in one alert."""
MAX_DRUGS: Final = 100
"""Substances in one seizure report."""
MAX_AGENCIES: Final = 16
"""Agencies involved in one seizure."""
MAX_COUNT: Final = 100_000
"""Largest head count (``detained``, ``persons_count``) or attempt count."""
MAX_COUNTRY_LIST: Final = 3 * 250 - 1
"""Characters of a country list (``releasableto``): every ISO 3166 code once."""

_ONE_LINE_CONTROLS = r"\x00-\x1F\x7F-\x9F\u2028\u2029"
_NOTE_CONTROLS = r"\x00-\x08\x0B-\x1F\x7F-\x9F\u2028\u2029"  # \t (09) and \n (0A) allowed

ONE_LINE_PATTERN: Final = f"^[^{_ONE_LINE_CONTROLS}]*$"
"""One line of text: no control character, no line break."""
NOTE_PATTERN: Final = f"^[^{_NOTE_CONTROLS}]*$"
"""Text over several lines: line breaks (``\\n``) and tabs, no other control character."""

_FINDERS = {
    ONE_LINE_PATTERN: (re.compile(f"[{_ONE_LINE_CONTROLS}]"), ""),
    NOTE_PATTERN: (re.compile(f"[{_NOTE_CONTROLS}]"), " (only line breaks and tabs are)"),
}


def crlf_to_lf(value: Any) -> Any:
    """A before-validator for notes: ``\\r\\n`` line endings become ``\\n``."""
    return value.replace("\r\n", "\n") if isinstance(value, str) and "\r" in value else value


def at_most(limit: int) -> BeforeValidator:
    """Refuses a list of more than ``limit`` items before its items are validated (pair with
    the field's ``max_length``, which the JSON Schema shows as ``maxItems``).

    pydantic checks a list's length only against the items that validated: a list of
    invalid items is validated to the end and reported item by item — 20,000 ``{}`` in
    60 KB of ``data.drugs`` made 60,000 errors and cost some 300 ms. Here it is one
    error, worded as pydantic words its own.
    """

    def check(value: Any) -> Any:
        if isinstance(value, list | tuple) and len(value) > limit:
            raise PydanticCustomError(
                "too_long",
                "Tuple should have at most {max_length} items after validation, "
                "not {actual_length}",
                {"field_type": "Tuple", "max_length": limit, "actual_length": len(value)},
            )
        return value

    return BeforeValidator(check)


def explain(error: Any) -> str:
    """The message of one pydantic error (``ValidationError.errors()`` item), with a text
    pattern's mismatch said in words: which control character, where."""
    if error.get("type") != "string_pattern_mismatch":
        return str(error["msg"])
    finder = _FINDERS.get(str((error.get("ctx") or {}).get("pattern")))
    value = error.get("input")
    if finder is None or not isinstance(value, str):
        return str(error["msg"])
    regex, allowed = finder
    stripped = value.strip()  # the schema strips surrounding whitespace before matching
    found = regex.search(stripped)
    if found is None:
        return str(error["msg"])
    position = value.find(stripped) + found.start()
    code = f"U+{ord(found.group()):04X}"
    return f"control character {code} at position {position}: not allowed here{allowed}"
