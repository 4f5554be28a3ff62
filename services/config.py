"""Configuration: ``LIAISON_*`` environment variables and the YAML file they point to.

Built once at start-up (``Settings.from_env()``) and passed down; nothing
reads the environment anywhere else.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.topology import Topology, TopologyError, default_topology, load_topology
from schemas.vocabulary import Severity


class ConfigError(ValueError):
    """The configuration is unusable; the message says where and why."""


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
    """What a principal may do (DESIGN §4)."""

    PUBLISHER = "publisher"
    OFFICER = "officer"
    AUDITOR = "auditor"


class Principal(BaseModel):
    """A caller of the HTTP API, identified by the SHA-256 of its bearer token."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, description="Who this is, for audit trails.")
    role: Role
    token_sha256: Sha256Hex = Field(description="Hex SHA-256 of the bearer token; never the token.")
    units: tuple[str, ...] = Field(default=(), description="Units a publisher may publish for.")
    unit: str | None = Field(default=None, description="The unit an officer belongs to.")

    @model_validator(mode="after")
    def _role_fields(self) -> Principal:
        if self.role is Role.PUBLISHER and not self.units:
            raise ValueError(f"publisher {self.name!r} needs 'units'")
        if self.role is Role.OFFICER and not self.unit:
            raise ValueError(f"officer {self.name!r} needs 'unit'")
        return self


class Webhook(BaseModel):
    """An HTTP endpoint that receives a unit's deliveries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: str
    url: str = Field(pattern=r"^https?://")
    secret: str = Field(pattern=r"^whsec_[A-Za-z0-9+/=]+$")


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


class FileConfig(BaseModel):
    """The YAML file named by ``LIAISON_CONFIG``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    principals: tuple[Principal, ...] = ()
    webhooks: tuple[Webhook, ...] = ()
    ack_deadlines: AckDeadlines = AckDeadlines()
    topology: Path | None = None


class Settings(BaseSettings):
    """Environment variables, prefix ``LIAISON_`` (DESIGN §4, "Configuration")."""

    model_config = SettingsConfigDict(env_prefix="LIAISON_", frozen=True)

    redis_url: str | None = Field(default=None, description="Unset: start an embedded server.")
    database_url: str | None = Field(default=None, description="Unset: SQLite in DATA_DIR.")
    data_dir: Path = Path("./var")
    http_addr: str = Field(default="127.0.0.1:8700", pattern=r"^[^:\s]+:\d{1,5}$")
    config: Path | None = Field(default=None, description="The YAML configuration file.")
    claim_idle: Duration = Field(
        default=timedelta(seconds=30),
        description="How long an entry stays pending before a claimer takes it over.",
    )
    retry_cap: int = Field(default=5, ge=1, description="Deliveries before dead-lettering.")
    signing_key: Path | None = Field(
        default=None,
        description="The ledger's Ed25519 key (PEM); unset: DATA_DIR/ledger-signing-key.pem.",
    )
    trusted_keys: Path | None = Field(
        default=None,
        description="`liaison ledger verify`: a PEM file of the ledger public keys this auditor "
        "trusts (pinned), used when no --public-key is given.",
    )
    checkpoint_every: int = Field(
        default=1000, ge=1, description="Sign a checkpoint every N entries…"
    )
    checkpoint_interval: Duration = Field(
        default=timedelta(seconds=60), description="…or this long after new entries."
    )
    stream_retention: Duration = Field(
        default=timedelta(0),
        description="How long stream entries every group acknowledged are kept (the ledger "
        "is the record).",
    )
    dedupe_window: Duration = Field(
        default=timedelta(days=7),
        description="How long a re-published (source, id) is answered as a duplicate.",
    )
    durability: Literal["standard", "strict"] = Field(
        default="standard",
        description="standard: acknowledge once the server has the event (AOF fsynced every "
        "second); strict: only once the server has fsynced it (WAITAOF; the embedded server "
        "runs appendfsync always).",
    )
    health_addr: str | None = Field(
        default=None,
        pattern=r"^[^:\s]+:\d{1,5}$",
        description="`serve ledger`/`serve notifier`: serve /healthz and /readyz here.",
    )

    @property
    def sqlite_url(self) -> str:
        """The default database: a SQLite file in the data directory."""
        return f"sqlite+aiosqlite:///{(self.data_dir / 'ledger.sqlite3').resolve()}"

    @property
    def effective_database_url(self) -> str:
        """The database the ledger writes to."""
        return self.database_url or self.sqlite_url

    @property
    def signing_key_path(self) -> Path:
        """Where the ledger's private key lives (never in the database)."""
        return self.signing_key or self.data_dir / "ledger-signing-key.pem"

    @property
    def host_port(self) -> tuple[str, int]:
        """``HTTP_ADDR`` split into host and port."""
        return _split(self.http_addr)

    @property
    def health_host_port(self) -> tuple[str, int] | None:
        """``HEALTH_ADDR`` split into host and port, if set."""
        return _split(self.health_addr) if self.health_addr else None

    @property
    def strict(self) -> bool:
        """Whether acknowledgements wait for the server's fsync."""
        return self.durability == "strict"

    @property
    def publisher_options(self) -> dict[str, Any]:
        """How this deployment's publishers behave (``RedisPublisher`` keyword arguments)."""
        return {"durable": self.strict, "dedupe_window": int(self.dedupe_window.total_seconds())}

    @property
    def appendfsync(self) -> str:
        """The embedded server's fsync policy for this durability mode."""
        return "always" if self.strict else "everysec"


def _split(addr: str) -> tuple[str, int]:
    host, _, port = addr.rpartition(":")
    return host, int(port)


def settings_from_env() -> Settings:
    """The ``LIAISON_*`` settings, or a :class:`ConfigError` naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ConfigError(f"LIAISON_{str(first['loc'][0]).upper()}: {first['msg']}") from None


def _format_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def read_file_config(path: Path | None) -> FileConfig:
    """Parse and validate the YAML configuration file (none → defaults)."""
    if path is None:
        return FileConfig()
    try:
        doc: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        config = FileConfig.model_validate(doc or {})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_format_errors(exc)}") from None
    if config.topology is not None and not config.topology.is_absolute():
        config = config.model_copy(update={"topology": path.parent / config.topology})
    return config


def resolve_topology(config: FileConfig) -> Topology:
    """The configured topology, checked against the principals and webhooks that name units."""
    try:
        topology = load_topology(config.topology) if config.topology else default_topology()
    except TopologyError as exc:
        raise ConfigError(str(exc)) from None
    named = [(f"principal {p.name!r}", u) for p in config.principals for u in (*p.units, p.unit)]
    named += [(f"webhook {w.url}", w.unit) for w in config.webhooks]
    for who, unit in named:
        if unit is not None and unit not in topology:
            raise ConfigError(f"{who} names unknown unit {unit!r}")
    return topology
