"""The publisher toolkit: ``liaison keys new`` and ``liaison sign FILE`` (docs/provenance.md).

An agency integrator makes a key pair once, sends the public key to the exchange's operator
(it goes into the publisher's ``keys`` in the configuration) and signs each event before it
publishes it. ``sign`` first puts the event into the exchange's canonical form (what ingest
would store: units normalised, defaults filled in), because the signature must cover exactly
what is stored.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from schemas.events import CloudEvent
from services.core import dsse
from services.core.config import ConfigError

keys_app = typer.Typer(no_args_is_help=True, help="Publisher signing keys.")
UNSIGNED = ("dssematerial", "piidisclosures", "piidigests")


def canonical_event(raw: dict[str, Any]) -> dict[str, Any]:
    """The event as the exchange stores it (pydantic ``ValidationError`` when it is invalid),
    without any earlier signature."""
    unsigned = {k: v for k, v in raw.items() if k not in UNSIGNED}
    event = CloudEvent.model_validate(unsigned)
    doc: dict[str, Any] = json.loads(event.to_json())
    return doc


def sign_event(raw: dict[str, Any], key: Ed25519PrivateKey, keyid: str) -> dict[str, Any]:
    """``raw`` in canonical form, signed by ``key`` as ``keyid`` (``<publisher>/<key id>``)."""
    return dsse.sign(canonical_event(raw), key, keyid)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PEM file, or :class:`ConfigError`."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an Ed25519 private key")
    return key


@keys_app.command("new")
def new_key(
    path: Annotated[Path, typer.Argument(help="Where to write the private key (PEM, mode 0600).")],
) -> None:
    """Make an Ed25519 key pair: the private key into PATH (never overwritten), the public key
    (Base64 of its 32 raw bytes, for the configuration's ``public_key``) on stdout."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"{path}: exists already; a key is never overwritten") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    typer.echo(dsse.raw_b64(key.public_key()))


def sign_command(
    file: Annotated[Path, typer.Argument(help="A CloudEvent (JSON); '-' reads stdin.")],
    key: Annotated[Path, typer.Option("--key", help="The private key (PEM) to sign with.")],
    keyid: Annotated[
        str, typer.Option("--keyid", help="'<publisher>/<key id>' as the configuration names it.")
    ],
) -> None:
    """Print FILE's event in canonical form, signed (``dssematerial``, and ``piidisclosures``
    for its persons), ready to publish."""
    private = load_private_key(key)
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        raw = json.loads(text)
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: one CloudEvent (a JSON object) per file")
    signed = sign_event(raw, private, keyid)
    typer.echo(json.dumps(signed, ensure_ascii=False, separators=(",", ":")))
