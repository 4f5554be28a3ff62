"""A request body as CloudEvents, in every mode the CloudEvents HTTP binding 1.0 defines.

* **structured** — ``application/cloudevents+json``: the body is one event;
* **batch** — ``application/cloudevents-batch+json``: the body is an array of events;
* **binary** — ``ce-*`` headers carry the attributes and the body is ``data``
  (``Content-Type: application/json``), as the official SDKs send by default;
* plain ``application/json`` — one event object or an array of them.

Everything else is refused with 415; a body that is not UTF-8 JSON with 400.
The result is raw JSON-ready values: validation is :mod:`services.ingest.intake`'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from services.ingest.intake import Rejected, Rejection
from services.problems import Problem

JSON = "application/json"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
ACCEPTED = (STRUCTURED, BATCH, JSON)
CE_PREFIX = "ce-"


@dataclass(frozen=True, slots=True)
class Decoded:
    """What the body holds: one event (a dict) or a batch (a list), and how it came."""

    body: Any
    binary: bool = False


def decode(headers: Mapping[str, str], body: bytes) -> Decoded:
    """The body's events in raw form; :class:`Problem` (400, 415) or :class:`Rejected`."""
    media_type = _media_type(headers.get("content-type"))
    attributes = {
        name[len(CE_PREFIX) :]: unquote(value)  # percent-encoded per the binding, §3.1.3.2
        for name, value in headers.items()
        if name.lower().startswith(CE_PREFIX)
    }
    if attributes:
        if media_type != JSON:
            raise _unsupported(media_type, "in binary mode the body is data, as application/json")
        return Decoded({**attributes, "data": _json(body)}, binary=True)
    if media_type not in ACCEPTED:
        raise _unsupported(media_type, "send one of " + ", ".join(ACCEPTED))
    value = _json(body)
    if media_type == STRUCTURED and not isinstance(value, dict):
        raise _body_error(f"{STRUCTURED} carries one event object; send batches as {BATCH}")
    if media_type == BATCH and not isinstance(value, list):
        raise _body_error(f"{BATCH} carries an array of events")
    return Decoded(value)


def locate(rejection: Rejection, binary: bool) -> Rejection:
    """In binary mode an attribute's error names its header (``ce-source``), not a field."""
    if not binary or rejection.field == "data" or rejection.field.startswith("data."):
        return rejection
    return Rejection(rejection.index, f"{CE_PREFIX}{rejection.field}", rejection.message)


def _media_type(header: str | None) -> str:
    if header is None:
        raise Problem(415, "Unsupported media type", "no Content-Type: send " + ", ".join(ACCEPTED))
    media_type, *params = (part.strip() for part in header.split(";"))
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip('" ').lower() not in ("utf-8", "utf8"):
            raise Problem(415, "Unsupported media type", f"charset {value}: only UTF-8 is accepted")
    return media_type.lower()


def _unsupported(media_type: str, hint: str) -> Problem:
    return Problem(415, "Unsupported media type", f"{media_type or '(empty)'}: {hint}")


def _body_error(message: str) -> Rejected:
    return Rejected([Rejection(None, "(body)", message)])


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_no_constant)  # NaN and Infinity are not JSON
    except UnicodeDecodeError as exc:
        raise Problem(
            400, "Malformed JSON", f"not UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    except json.JSONDecodeError as exc:
        raise Problem(400, "Malformed JSON", str(exc)) from None
    except RecursionError:
        raise Problem(400, "Malformed JSON", "nested too deeply") from None
