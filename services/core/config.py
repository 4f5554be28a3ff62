"""The configuration file (principals, webhooks, deadlines, topology) that ``LIAISON_CONFIG``
points to, and what both it and the environment's settings (:mod:`services.core.settings`)
share: :class:`ConfigError`, durations, redaction of secrets in URLs."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    model_validator,
)

from schemas.alerts import Name
from schemas.topology import Topology, TopologyError, default_topology, load_topology
from schemas.vocabulary import Severity
from services.core.dsse import public_key


class ConfigError(ValueError):
    """The configuration is unusable; the message says where and why — never a secret.

    The message is passed through :func:`redact` so that no error, whatever it
    quotes, prints a webhook secret or a URL's credentials.
    """

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


_SECRET_PATTERNS = (
    (re.compile(r"whsec_[A-Za-z0-9+/=]+"), "whsec_…"),
    (re.compile(r"whsk_[A-Za-z0-9+/=]+"), "whsk_…"),
    (re.compile(r"(?<=://)[^/?#@\s'\"]*@"), "…@"),  # URL user:password@
    (
        re.compile(
            r"(?i)((?:key|token|secret|passw(?:or)?d|pwd|sig(?:nature)?|auth)[^=&\s'\"]*=)"
            r"[^&#\s'\"]+"
        ),
        r"\1…",
    ),  # query parameters such as api_key=…, token=…
)


def redact(text: str) -> str:
    """``text`` with webhook secrets, URL credentials and secret-looking parameters blanked."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_url(url: str) -> str:
    """The URL without credentials, query or fragment (a name that may be shown and stored)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # not a number: no port is shown
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: object) -> timedelta:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"2d"`` (or a number of seconds) → timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration such as 90s, 15m, 1h or 2d")
    return timedelta(seconds=float(match[1]) * _UNIT_SECONDS[match[2]])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class Role(StrEnum):
    """What a principal may do (docs/configuration.md, "Principals")."""

    PUBLISHER = "publisher"
    OFFICER = "officer"
    AUDITOR = "auditor"
    WITNESS = "witness"


PUBLISHER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A publisher's name: it is part of its ingress stream's key and of its ACL key pattern."""


class Signatures(StrEnum):
    """Whether a publisher's events must carry its signature (docs/provenance.md)."""

    REQUIRED = "required"
    OPTIONAL = "optional"


KEY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class PublisherKey(BaseModel):
    """One Ed25519 public key a publisher signs its events with, and when it may."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="The key's name; its DSSE keyid is '<publisher>/<id>'.")
    public_key: str = Field(
        min_length=1, description="The public key: PEM, or Base64 of its 32 raw bytes."
    )
    not_before: AwareDatetime | None = Field(None, description="Valid from (default: always).")
    not_after: AwareDatetime | None = Field(None, description="Valid until (default: always).")
    revoked_at: AwareDatetime | None = Field(
        None, description="Revoked: events recorded from this moment on are refused."
    )

    @model_validator(mode="after")
    def _valid(self) -> PublisherKey:
        if not KEY_NAME.fullmatch(self.id):
            raise ValueError(f"key id {self.id!r}: letters, digits, '.', '_' or '-' (up to 64)")
        try:
            public_key(self.public_key)
        except ValueError as exc:
            raise ValueError(f"key {self.id!r}: {exc}") from None
        if self.not_before and self.not_after and self.not_after <= self.not_before:
            raise ValueError(f"key {self.id!r}: not_after must come after not_before")
        return self


class PublisherLimits(BaseModel):
    """A publisher's fair share of ``POST /v1/events``, enforced across every API process
    (a token bucket in Redis): at most ``events_per_second`` on average, ``burst`` at once,
    ``max_batch`` per request. Over it: 429 with ``Retry-After``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events_per_second: float = Field(gt=0, description="Events per second on average.")
    burst: int = Field(ge=1, description="Events accepted at once after a quiet spell.")
    max_batch: int | None = Field(
        default=None, ge=1, le=1000, description="Events per request (default: burst, ≤ 1000)."
    )

    @model_validator(mode="after")
    def _batch_fits(self) -> PublisherLimits:
        if self.max_batch is not None and self.max_batch > self.burst:
            # such a batch could never be admitted: say so now rather than 429 it forever
            raise ValueError(f"max_batch ({self.max_batch}) is more than burst ({self.burst})")
        return self

    @property
    def batch(self) -> int:
        """The most events one request may carry."""
        return min(self.max_batch or self.burst, self.burst, 1000)


class Principal(BaseModel):
    """A caller of the HTTP API, identified by the SHA-256 of its bearer token, or by its TLS
    client certificate (mutual TLS: its SHA-256 pin and/or a SAN URI)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Who this is, for audit trails.")
    role: Role
    token_sha256: Sha256Hex | None = Field(
        default=None, description="Hex SHA-256 of the bearer token; never the token."
    )
    client_cert_sha256: Sha256Hex | None = Field(
        default=None,
        description="Mutual TLS: hex SHA-256 of the client certificate (DER) it presents.",
    )
    client_cert_uri: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z][A-Za-z0-9+.-]*:[\x21-\x7e]+$",
        max_length=300,
        description="Mutual TLS: a URI its client certificate names in subjectAltName, e.g. "
        "urn:liaison:agency:uz-customs (with client_cert_sha256 too, both must match).",
    )
    units: tuple[str, ...] = Field(default=(), description="Units a publisher may publish for.")
    unit: str | None = Field(default=None, description="The unit an officer belongs to.")
    person: Name | None = Field(
        default=None,
        description="The person this token was issued to (one token per person, for officers): "
        "acknowledgements record it beside the principal's name.",
    )
    signatures: Signatures = Field(
        default=Signatures.OPTIONAL,
        description="A publisher's events must be signed (required) or may be (optional).",
    )
    keys: tuple[PublisherKey, ...] = Field(
        default=(), description="A publisher's Ed25519 public keys (docs/provenance.md)."
    )

    limits: PublisherLimits | None = Field(
        default=None, description="A publisher's rate limit and batch size (none: unlimited)."
    )
    witness_key: str | None = Field(
        default=None,
        pattern=r"^[\x21-\x7e]{1,200}\+[0-9a-fA-F]{8}\+[A-Za-z0-9+/]+=*$",
        description="A witness's public key, a C2SP vkey (name+keyid+base64): the ledger keeps "
        "only cosignatures it made.",
    )

    @property
    def by_certificate(self) -> bool:
        """Whether a TLS client certificate identifies it (mutual TLS)."""
        return self.client_cert_sha256 is not None or self.client_cert_uri is not None

    @model_validator(mode="after")
    def _role_fields(self) -> Principal:
        if self.limits is not None and self.role is not Role.PUBLISHER:
            raise ValueError(f"{self.name!r}: only a publisher has 'limits'")
        if self.token_sha256 is None and not self.by_certificate:
            raise ValueError(
                f"principal {self.name!r} needs 'token_sha256', or a client certificate "
                "('client_cert_sha256' and/or 'client_cert_uri')"
            )
        if (self.role is Role.WITNESS) != (self.witness_key is not None):
            raise ValueError(
                f"principal {self.name!r}: a witness needs 'witness_key' (its vkey), "
                "and only a witness has one"
            )
        if self.role is Role.PUBLISHER and not self.units:
            raise ValueError(f"publisher {self.name!r} needs 'units'")
        if self.role is Role.PUBLISHER and not PUBLISHER_NAME.fullmatch(self.name):
            # it names the publisher's ingress stream, and the ACL rule that lets it append
            raise ValueError(
                f"publisher {self.name!r}: a publisher's name is letters, digits, '.', '_' or"
                " '-' (up to 64, from a letter or digit): it names its Redis ingress stream"
            )
        if self.role is Role.OFFICER and not self.unit:
            raise ValueError(f"officer {self.name!r} needs 'unit'")
        if self.keys and self.role is not Role.PUBLISHER:
            raise ValueError(f"{self.name!r}: only a publisher has signing keys")
        if self.signatures is Signatures.REQUIRED and not self.keys:
            raise ValueError(f"publisher {self.name!r} requires signatures but has no 'keys'")
        if len({key.id for key in self.keys}) != len(self.keys):
            raise ValueError(f"publisher {self.name!r}: two keys with one id")
        return self


class Webhook(BaseModel):
    """An HTTP endpoint that receives a unit's deliveries.

    Only its :attr:`endpoint` name is ever shown or stored in Redis: the URL
    may carry credentials (``user:pass@``, ``?api_key=``) and stays in the
    configuration, like the secret.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: str
    url: str = Field(pattern=r"^https?://")
    secret: str | None = Field(
        default=None,
        pattern=r"^whsec_[A-Za-z0-9+/=]+$",
        description="Standard Webhooks symmetric secret: deliveries carry a v1 (HMAC) signature.",
    )
    signing_key: str | None = Field(
        default=None,
        pattern=r"^whsk_[A-Za-z0-9+/=]+$",
        description="Standard Webhooks asymmetric key (Ed25519, 32-byte seed in base64): "
        "deliveries carry a v1a signature the receiver checks with the whpk_ public key alone.",
    )
    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="How the endpoint is shown (inbox, ledger, logs); default: the URL "
        "without credentials, query or fragment.",
    )
    allow_http: bool = Field(
        default=False,
        description="Accept a plain http:// URL (deliveries carry personal data: https only "
        "unless explicitly allowed).",
    )

    @model_validator(mode="after")
    def _https_only(self) -> Webhook:
        if self.secret is None and self.signing_key is None:
            raise ValueError(
                "an endpoint needs 'secret' (v1 signatures), 'signing_key' (v1a), or both"
            )
        if self.signing_key is not None and _key_length(self.signing_key) not in (32, 64):
            raise ValueError(
                "signing_key: a whsk_ key is the base64 of a 32-byte Ed25519 seed "
                "(or of 64 bytes: seed and public key)"
            )
        if self.url.startswith("http://") and not self.allow_http:
            raise ValueError(
                "plain http:// would send personal data unencrypted: use https://, "
                "or set allow_http: true for this endpoint"
            )
        return self

    @property
    def endpoint(self) -> str:
        """The endpoint's name: what the inbox, Redis, the ledger and logs show."""
        return self.name or redact_url(self.url)


def _key_length(text: str) -> int:
    """Bytes in a ``whsk_…`` key's base64 (-1: not base64); the notifier decodes it in full."""
    encoded = text.split("_", 1)[1].rstrip("=")
    try:
        return len(base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True))
    except binascii.Error:
        return -1


class AckDeadlines(BaseModel):
    """How long a unit has to acknowledge a delivery, per severity."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    flash: Duration = timedelta(minutes=15)
    urgent: Duration = timedelta(hours=1)
    routine: Duration = timedelta(hours=24)

    def for_severity(self, severity: Severity) -> timedelta:
        """The deadline of one severity."""
        value: timedelta = getattr(self, severity.value)
        return value


class ConsoleOptions(BaseModel):
    """The web console's session lifetimes (``LIAISON_CONSOLE_IDLE`` / ``_ABSOLUTE``)."""

    model_config = ConfigDict(frozen=True)

    idle: timedelta = timedelta(minutes=30)
    absolute: timedelta = timedelta(hours=12)


class FileConfig(BaseModel):
    """The YAML file named by ``LIAISON_CONFIG``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    principals: tuple[Principal, ...] = ()
    webhooks: tuple[Webhook, ...] = ()
    ack_deadlines: AckDeadlines = AckDeadlines()
    topology: Path | None = None
    _source: Path | None = PrivateAttr(default=None)
    """The file it was read from, for errors found later (:func:`resolve_topology`)."""

    @property
    def source(self) -> str:
        """Where this configuration came from, as errors name it."""
        return str(self._source) if self._source is not None else "configuration"


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _yaml_error(path: Path, exc: yaml.YAMLError) -> ConfigError:
    """One line: where the YAML breaks and why — never PyYAML's excerpt of the file."""
    mark = getattr(exc, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context, problem = getattr(exc, "context", None), getattr(exc, "problem", None)
    reason = ", ".join(p for p in (context, problem) if p) or str(exc).splitlines()[0]
    return ConfigError(f"{path}: {where}not valid YAML: {reason}")


def read_file_config(path: Path | None) -> FileConfig:
    """Parse and validate the YAML configuration file (none → defaults)."""
    if path is None:
        return FileConfig()
    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        raise _yaml_error(path, exc) from None
    try:
        config = FileConfig.model_validate(doc or {})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_format_errors(exc)}") from None
    if config.topology is not None and not config.topology.is_absolute():
        config = config.model_copy(update={"topology": path.parent / config.topology})
    config._source = path
    _check_unique(config)
    return config


def _check_unique(config: FileConfig) -> None:
    """Refuse two principals with one token (the last would win) and two endpoints with one name."""
    tokens: dict[str, int] = {}
    for i, principal in enumerate(config.principals):
        if principal.token_sha256 is None:
            continue
        first = tokens.setdefault(principal.token_sha256, i)
        if first != i:
            raise ConfigError(
                f"{config.source}: principals.{i}.token_sha256: the same token digest as "
                f"principals.{first} ({config.principals[first].name!r}): "
                "give each principal its own token"
            )
    names: dict[tuple[str, str], int] = {}
    for i, hook in enumerate(config.webhooks):
        first = names.setdefault((hook.unit, hook.endpoint), i)
        if first != i:
            raise ConfigError(
                f"{config.source}: webhooks.{i}.name: {hook.unit} already has an endpoint "
                f"named {hook.endpoint!r} (webhooks.{first}): give each its own name"
            )


def resolve_topology(config: FileConfig) -> Topology:
    """The configured topology, checked against the principals and webhooks that name units."""
    try:
        topology = load_topology(config.topology) if config.topology else default_topology()
    except TopologyError as exc:
        raise ConfigError(str(exc)) from None
    named: list[tuple[str, str | None, str]] = []
    for i, p in enumerate(config.principals):
        named += [
            (f"principals.{i}.units.{j}", u, f"principal {p.name!r}") for j, u in enumerate(p.units)
        ]
        named.append((f"principals.{i}.unit", p.unit, f"principal {p.name!r}"))
    named += [
        (f"webhooks.{i}.unit", w.unit, f"endpoint {w.endpoint!r}")
        for i, w in enumerate(config.webhooks)
    ]
    for field, unit, who in named:
        if unit is not None and unit not in topology:
            raise ConfigError(f"{config.source}: {field}: unknown unit {unit!r} ({who})")
    return topology
