"""A request body as CloudEvents, in every mode the CloudEvents HTTP binding 1.0 defines.

* **structured** — ``application/cloudevents+json``: the body is one event;
* **batch** — ``application/cloudevents-batch+json``: the body is an array of events;
* **binary** — ``ce-*`` headers carry the attributes and the body is ``data``,
  as the official SDKs send by default. ``Content-Type`` *is* ``datacontenttype``
  (binding §3.1.1): ``application/json``, or absent when the event has no
  ``datacontenttype`` — JSON then, the spec's default;
* plain ``application/json`` — one event object or an array of them.

The mode is chosen as the binding says (§3): an ``application/cloudevents``
media type is structured (``-batch``: batched) even when ``ce-*`` headers come
too (§3.2.3); otherwise any ``ce-*`` header makes it binary.
Everything else is refused with 415; a body that is not UTF-8 JSON with 400.
The result is raw JSON-ready values: validation is :mod:`services.ingest.intake`'s.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from services.core.problems import Problem
from services.ingest.intake import Rejected, Rejection

JSON = "application/json"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
ACCEPTED = (STRUCTURED, BATCH, JSON)
CE_PREFIX = "ce-"
_CE_MEDIA = "application/cloudevents"
BINARY_HINT = "or binary mode: ce-specversion and the other ce-* headers, data as the body"


@dataclass(frozen=True, slots=True)
class Decoded:
    """What the body holds: one event (a dict) or a batch (a list), and how it came."""

    body: Any
    binary: bool = False


def decode(headers: Mapping[str, str], body: bytes) -> Decoded:
    """The body's events in raw form; :class:`Problem` (400, 415) or :class:`Rejected`."""
    media_type = _media_type(headers.get("content-type"))
    structured = media_type is not None and media_type.startswith(_CE_MEDIA)
    attributes = [
        (name.lower(), value)
        for name, value in headers.items()
        if name.lower().startswith(CE_PREFIX)
    ]
    if attributes and not structured:
        if media_type not in (None, JSON):
            raise _unsupported(media_type, "in binary mode the body is data, as application/json")
        return Decoded({**_attributes(attributes), "data": _json(body)}, binary=True)
    if media_type not in ACCEPTED:
        hint = f"send one of {', '.join(ACCEPTED)}, {BINARY_HINT}"
        raise (
            _unsupported(media_type, hint) if media_type else _unsupported("no Content-Type", hint)
        )
    value = _json(body)
    if media_type == STRUCTURED and not isinstance(value, dict):
        raise _body_error(f"{STRUCTURED} carries one event object; send batches as {BATCH}")
    if media_type == BATCH and not isinstance(value, list):
        raise _body_error(f"{BATCH} carries an array of events")
    return Decoded(value)


def maybe_batch(headers: Mapping[str, str]) -> bool:
    """Whether :func:`decode` reads the body as a batch, or as JSON that may be one (a plain
    ``application/json`` body without ``ce-*`` headers); raises the 415 that it raises for a
    charset other than UTF-8."""
    media_type = _media_type(headers.get("content-type"))
    if media_type == BATCH:
        return True
    return media_type == JSON and not any(name.lower().startswith(CE_PREFIX) for name in headers)


def _attributes(headers: list[tuple[str, str]]) -> dict[str, str]:
    """``ce-*`` headers → attributes, decoded as binding §3.1.3.2 says: a double-quoted value
    unquoted, then one round of percent-decoding whose bytes must be UTF-8."""
    attributes: dict[str, str] = {}
    rejections: list[Rejection] = []
    for header, raw in headers:
        value = raw.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = _unquote_http(value[1:-1])
        try:
            attributes[header[len(CE_PREFIX) :]] = unquote_to_bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            rejections.append(
                Rejection(None, header, f"not UTF-8 once percent-decoded: {exc.reason}")
            )
    if rejections:
        raise Rejected(rejections)
    return attributes


def _unquote_http(quoted: str) -> str:
    """The content of an RFC 9110 quoted-string: ``\\x`` stands for ``x``."""
    out, escaped = [], False
    for char in quoted:
        if escaped or char != "\\":
            out.append(char)
            escaped = False
        else:
            escaped = True
    return "".join(out)


def located_in(headers: Mapping[str, str], body: bytes) -> tuple[bool, bool]:
    """Of a request :func:`decode` accepted: whether it was binary mode, and a batch (an
    error's ``index`` is then the event's position, else None)."""
    structured = (_media_type(headers.get("content-type")) or "").startswith(_CE_MEDIA)
    binary = not structured and any(name.lower().startswith(CE_PREFIX) for name in headers)
    return binary, not binary and body.lstrip()[:1] == b"["


def locate(rejection: Rejection, binary: bool) -> Rejection:
    """In binary mode an attribute's error names its header (``ce-source``), not a field."""
    if not binary or rejection.field == "data" or rejection.field.startswith("data."):
        return rejection
    return Rejection(rejection.index, f"{CE_PREFIX}{rejection.field}", rejection.message)


def _media_type(header: str | None) -> str | None:
    if header is None or not header.strip():
        return None
    media_type, *params = (part.strip() for part in header.split(";"))
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip('" ').lower() not in ("utf-8", "utf8"):
            raise Problem(415, "Unsupported media type", f"charset {value}: only UTF-8 is accepted")
    return media_type.lower()


def _unsupported(media_type: str, hint: str) -> Problem:
    return Problem(415, "Unsupported media type", f"{media_type}: {hint}")


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
    except ValueError as exc:  # an integer of over 4,300 digits (Python's guard)
        raise Problem(400, "Malformed JSON", str(exc).split(";")[0]) from None
