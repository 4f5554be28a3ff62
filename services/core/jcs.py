"""RFC 8785 JSON Canonicalization Scheme (JCS): the one byte form of a JSON value.

A publisher's signature covers ``data`` as these bytes (docs/provenance.md), so that any
re-serialisation on the way — the ledger's, Redis', a recipient's — leaves the signed bytes
reproducible. Differences from ``json.dumps(sort_keys=True)`` that matter: numbers are written
as ECMAScript does (``1.0`` → ``1``, ``1e21`` → ``1e+21``, ``1e-7``), object members are
sorted by their UTF-16 code units, not code points. Checked against the ``rfc8785`` package
in the tests.
"""

from __future__ import annotations

import json
import math
from typing import Any

_STRING = json.JSONEncoder(ensure_ascii=False)  # escapes exactly ", \\ and U+0000-U+001F


class NotCanonicalisable(ValueError):
    """A value JCS cannot write (NaN, an infinity, a lone surrogate, a non-JSON type)."""


def canonical(value: Any) -> bytes:
    """The RFC 8785 bytes (UTF-8) of a JSON value made of dict, list, str, int, float,
    bool and None."""
    parts: list[str] = []
    _write(value, parts)
    try:
        return "".join(parts).encode()
    except UnicodeEncodeError:
        raise NotCanonicalisable("a string holds a lone surrogate: not valid Unicode") from None


def _write(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_STRING.encode(value))
    elif isinstance(value, int):
        if abs(value) > 2**53 - 1:  # I-JSON: beyond it a reader's double loses digits
            raise NotCanonicalisable(f"{value} is beyond the integers JSON numbers hold exactly")
        out.append(str(value))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16)):
            if not isinstance(key, str):
                raise NotCanonicalisable(f"an object key is {type(key).__name__}, not a string")
            if i:
                out.append(",")
            out.append(_STRING.encode(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    else:
        raise NotCanonicalisable(f"{type(value).__name__} is not a JSON value")


def _utf16(key: Any) -> bytes:
    return str(key).encode("utf-16-be", "surrogatepass")


def _number(value: float) -> str:
    """ECMAScript's Number.prototype.toString (ECMA-262 7.1.12.1), from Python's shortest
    round-trip digits (the same digits: both are the shortest that read back exactly)."""
    if math.isnan(value) or math.isinf(value):
        raise NotCanonicalisable(f"{value} is not a JSON number")
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mantissa, _, exp_text = repr(abs(value)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction.rstrip("0")).lstrip("0") or "0"
    # the decimal point's position n: value = 0.digits x 10^n
    n = len(whole.lstrip("0")) if whole.strip("0") else -(len(fraction) - len(fraction.lstrip("0")))
    n += int(exp_text or 0)
    k = len(digits)
    if k <= n <= 21:
        text = digits + "0" * (n - k)
    elif 0 < n <= 21:
        text = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        text = "0." + "0" * -n + digits
    else:
        exponent = n - 1
        text = digits[0] + ("." + digits[1:] if k > 1 else "")
        text += "e" + ("+" if exponent >= 0 else "-") + str(abs(exponent))
    return sign + text
