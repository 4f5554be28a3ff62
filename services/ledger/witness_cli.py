"""``liaison witness …``: a second organisation cosigns the ledger's checkpoints.

``cosign`` takes the latest checkpoint (over the HTTP API as a witness principal, or from
an exported bundle), checks the operator's signature with the ledger key the witness was
given, recomputes the hash chain from the head it cosigned last (its state file) to the new
one, and only then signs (:mod:`services.ledger.witness`), records the new head in its
state, and hands the cosignature in (HTTP) or writes it out (bundle: the operator stores it
with ``liaison ledger cosignature``). A ledger that went back, or whose entries up to the
last cosigned head changed, is refused: exit 1 ``FORK``, nothing signed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.core.config import ConfigError
from services.core.terminal import printable
from services.ledger import audit, witness
from services.ledger.chain import GENESIS, entry_hash
from services.ledger.checkpoints import Checkpoint
from services.ledger.signing import load_public_keys, signature_valid
from services.ledger.verify import VerifyReport
from services.ledger.witness import Cosignature, Witnessed, WitnessKey

app = typer.Typer(no_args_is_help=True, help="Cosign the ledger's checkpoints as a witness.")


class Fork(Exception):
    """The ledger does not extend what this witness cosigned: it must not cosign."""


@app.command("new-key")
def new_key(
    name: Annotated[str, typer.Option(help="The witness's name, e.g. niac.uz/witness.")],
    key: Annotated[Path, typer.Argument(help="Where to write the private key (PEM, 0600).")],
) -> None:
    """Make a witness key; prints its vkey, for the operator's configuration and auditors."""
    if not witness.NAME.match(name):
        raise ConfigError(f"--name {name!r}: printable ASCII without spaces or '+', up to 200")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    typer.echo(witness.WitnessKey(name, private.public_key()).vkey())


def _private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the witness key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an Ed25519 private key")
    return key


def _ledger_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    try:
        return load_public_keys(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the ledger's public key: {exc}") from None


def read_state(path: Path) -> dict[str, Any]:
    """The witness's state: per origin, the last head it cosigned (``{}`` before the first)."""
    if not path.exists():
        return {}
    try:
        state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the witness state: {exc}") from None
    return state


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Replace the state file atomically (0600), before the cosignature leaves the witness."""
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(state, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _checked(checkpoint: Checkpoint, keys: dict[str, Ed25519PublicKey]) -> Checkpoint:
    key = keys.get(checkpoint.key_id)
    if key is None or not signature_valid(key, checkpoint.message(), checkpoint.signature):
        raise Fork(
            f"the checkpoint of {checkpoint.size} entries is not signed by the ledger key "
            "you were given"
        )
    return checkpoint


def _last(state: dict[str, Any], origin: str) -> tuple[int, str]:
    mine = state.get(origin)
    return (int(mine["size"]), str(mine["head_hash"])) if mine else (0, GENESIS)


def extends(last: tuple[int, str], target: tuple[int, str], entries: Iterator[Any]) -> None:
    """Recompute the chain from ``last`` (size, head) over ``entries`` (the ones after it, in
    order: ``seq``, ``recorded_at``, ``event`` text, ``prev_hash``, ``hash``) up to ``target``;
    :class:`Fork` unless it ends in ``target``'s head."""
    (size, head), (new_size, new_head) = last, target
    if new_size < size:
        raise Fork(f"the ledger went back: {new_size} entries, you cosigned {size}")
    for seq, recorded_at, text, prev_hash, digest in entries:
        if seq != size + 1 or prev_hash != head:
            raise Fork(
                f"entry {seq} does not follow the head you cosigned at {size} entries: "
                "the ledger was rewritten or forked"
            )
        head, size = entry_hash(head, seq, recorded_at, text), seq
        if head != digest:
            raise Fork(f"entry {seq}'s hash does not match its content")
        if size == new_size:
            break
    if (size, head) != (new_size, new_head):
        raise Fork(
            f"the chain from the head you cosigned does not reach the checkpoint "
            f"({new_size} entries): the ledger was rewritten or forked"
        )


def _pages(api: httpx.Client, after: int, upto: int) -> Iterator[Any]:
    """The entries after ``after`` up to ``upto``, with the stored text as the API embeds it
    (canonical JSON, re-serialised the ledger's way: sorted keys, no spaces, UTF-8)."""
    while after < upto:
        response = api.get("/v1/ledger/events", params={"after": after, "limit": 1000})
        _ok(response)
        events = response.json()["events"]
        if not events:
            return
        for e in events:
            text = json.dumps(e["event"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
            yield e["seq"], e["recorded_at"], text, e["prev_hash"], e["hash"]
        after = events[-1]["seq"]


def _ok(response: httpx.Response) -> None:
    if response.status_code >= 400:
        detail = response.json().get("detail", "") if response.content else ""
        raise ConfigError(
            f"{response.request.method} {response.request.url.path}: "
            f"HTTP {response.status_code} {printable(str(detail))}"
        )


@app.command()
def cosign(
    key: Annotated[Path, typer.Option(help="The witness's private key (PEM).")],
    name: Annotated[str, typer.Option(help="The witness's name (as in its vkey).")],
    ledger_key: Annotated[
        Path, typer.Option(help="The ledger's public key(s) (PEM), as its operator gave them.")
    ],
    state: Annotated[Path, typer.Option(help="This witness's state file (created 0600).")],
    url: Annotated[str | None, typer.Option(help="The exchange's HTTP API.")] = None,
    token_file: Annotated[
        Path | None, typer.Option(help="A file holding this witness's bearer token (HTTP).")
    ] = None,
    bundle: Annotated[
        Path | None, typer.Option(help="Cosign an exported bundle's last checkpoint instead.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Also write the cosigned checkpoint (C2SP note) here.")
    ] = None,
) -> None:
    """Cosign the latest checkpoint if the ledger extends what this witness cosigned before:
    exit 0 with the cosigned note on stdout, 1 ``FORK`` (nothing signed), 2 when it cannot run."""
    if (url is None) == (bundle is None):
        raise ConfigError("give --url (with --token-file) or --bundle")
    private, keys = _private_key(key), _ledger_keys(ledger_key)
    remembered = read_state(state)
    api = _client(url, token_file) if url is not None else None
    try:
        try:
            if bundle is not None:
                origin, head = _from_bundle(bundle, keys, remembered)
            else:
                assert api is not None
                origin, head = _from_api(api, keys, remembered)
        except Fork as exc:
            typer.echo(f"FORK: {printable(str(exc))}: not cosigned", err=True)
            raise typer.Exit(1) from None
        cosignature = witness.cosign(private, name, origin, head, int(time.time()))
        # recorded before the cosignature leaves: a witness never cosigns two histories
        remembered[origin] = cosignature.to_dict()
        write_state(state, remembered)
        note = cosignature.note(origin)
        if out is not None:
            out.write_text(note, encoding="utf-8")
        if api is not None:
            _ok(api.post("/v1/ledger/cosignatures", json={"note": note}))
    except httpx.HTTPError as exc:
        raise ConfigError(f"{url}: {type(exc).__name__}: {printable(str(exc))}") from None
    finally:
        if api is not None:
            api.close()
    typer.echo(note, nl=False)
    typer.echo(f"cosigned {head[0]} entries of {printable(origin)}", err=True)


def _client(url: str, token_file: Path | None) -> httpx.Client:
    if token_file is None:
        raise ConfigError("--url needs --token-file (the witness principal's bearer token)")
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{token_file}: cannot read: {exc.strerror}") from None
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def _from_api(
    api: httpx.Client, keys: dict[str, Ed25519PublicKey], remembered: dict[str, Any]
) -> tuple[str, tuple[int, str]]:
    response = api.get("/v1/ledger/checkpoint")
    _ok(response)
    doc = response.json()
    origin = str(doc["origin"])
    checkpoint = _checked(Checkpoint.from_dict(doc["checkpoint"]), keys)
    last = _last(remembered, origin)
    target = (checkpoint.size, checkpoint.head_hash)
    extends(last, target, _pages(api, last[0], checkpoint.size))
    return origin, target


def _from_bundle(
    path: Path, keys: dict[str, Ed25519PublicKey], remembered: dict[str, Any]
) -> tuple[str, tuple[int, str]]:
    try:
        read = audit.read_bundle(path, keys, want=[int(s["size"]) for s in remembered.values()])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: cannot read the bundle: {exc}") from None
    if not read.report.ok:
        raise Fork(f"the bundle does not verify: {'; '.join(read.report.problems)}")
    last = _last(remembered, read.origin)
    target = (read.report.count, read.report.head)  # a bundle ends at a signed checkpoint
    if not target[0]:
        raise ConfigError(f"{path}: the bundle holds no entry to cosign")
    if target[0] < last[0]:
        raise Fork(f"the ledger went back: {target[0]} entries, you cosigned {last[0]}")
    if last[0] and read.heads.get(last[0]) != last[1]:
        raise Fork(
            f"its first {last[0]} entries are not what you cosigned: "
            "the ledger was rewritten or forked"
        )
    return read.origin, target


# --- for `liaison ledger verify` ---------------------------------------------------------------


def trusted_witnesses(files: list[Path] | None, pinned: Path | None) -> dict[str, WitnessKey]:
    """The witness keys given with --witness-key, else those in ``LIAISON_WITNESS_KEYS``."""
    keys: dict[str, WitnessKey] = {}
    for path in files or ([pinned] if pinned else []):
        try:
            keys |= witness.load_witness_keys(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read a witness key: {exc}") from None
    return keys


def cosigned_notes(files: list[Path] | None) -> list[Cosignature]:
    """The cosignatures in cosigned checkpoint notes an auditor holds (e.g. a witness's)."""
    found: list[Cosignature] = []
    for path in files or []:
        try:
            found += witness.parse_note(path.read_text(encoding="utf-8"))[1]
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: cannot read a cosigned checkpoint: {exc}") from None
    return found


def judge(report: VerifyReport, seen: Witnessed, keys: dict[str, WitnessKey]) -> list[str]:
    """Fail ``report`` where the ledger does not match a trusted witness's cosignature; the
    witnesses without any matching cosignature (the verdict is then UNWITNESSED)."""
    for seq, problem in seen.problems:
        report.fail(seq, problem)
    return sorted(set(keys) - set(seen.upto))


def witnessed_lines(seen: Witnessed, count: int) -> list[str]:
    """One line per trusted witness: up to which size it cosigned, and when."""
    lines = []
    for name, c in sorted(seen.upto.items()):
        at = datetime.fromtimestamp(c.timestamp, UTC).isoformat().replace("+00:00", "Z")
        rest = f"; entries {c.size + 1}-{count} not yet" if c.size < count else ""
        lines.append(f"witness {printable(name)} cosigned up to {c.size} entries at {at}{rest}")
    return lines
