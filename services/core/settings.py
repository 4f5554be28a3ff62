"""Configuration: the ``LIAISON_*`` environment variables (docs/configuration.md).

Built once at start-up (:func:`settings_from_env`) and passed down; nothing reads the
environment anywhere else. The file they point to is :mod:`services.core.config`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.core.config import ConfigError, ConsoleOptions, Duration, Sha256Hex

DEFAULT_LEDGER_ORIGIN = "liaison.exchange/ledger"
"""The ledger's name in the checkpoints witnesses cosign (``LIAISON_LEDGER_ORIGIN``)."""


class Settings(BaseSettings):
    """Environment variables, prefix ``LIAISON_`` (docs/configuration.md)."""

    model_config = SettingsConfigDict(env_prefix="LIAISON_", frozen=True)

    redis_url: str | None = Field(
        default=None,
        description="Unset: start an embedded server (unless REDIS_SENTINELS is set). With "
        "REDIS_SENTINELS: only its scheme, credentials and database number are used.",
    )
    redis_sentinels: str | None = Field(
        default=None,
        pattern=r"^[^:,\s]+:\d{1,5}(,[^:,\s]+:\d{1,5})*$",
        description="host:port,… of the Sentinels that name the primary: every client and "
        "reader follows a failover.",
    )
    redis_sentinel_master: str = Field(
        default="liaison", min_length=1, description="The primary's name in the Sentinels."
    )
    redis_replicas: int | None = Field(
        default=None,
        ge=1,
        description="replicated durability: how many replicas must hold an event before it is "
        "acknowledged (every replica the deployment has).",
    )
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
    witness_keys: Path | None = Field(
        default=None,
        description="`liaison ledger verify`: a file of the witness keys (C2SP vkeys) this "
        "auditor trusts and requires, used when no --witness-key is given.",
    )
    ledger_origin: str = Field(
        default=DEFAULT_LEDGER_ORIGIN,
        pattern=r"^[\x21-\x7e]{1,200}$",
        description="The ledger's name (C2SP checkpoint origin) in what witnesses cosign: "
        "give each deployment its own, e.g. exchange.niac.uz/ledger.",
    )
    tls_cert: Path | None = Field(
        default=None,
        description="Serve the API over HTTPS with this certificate chain (PEM); with TLS_KEY.",
    )
    tls_key: Path | None = Field(default=None, description="The API certificate's private key.")
    tls_client_ca: Path | None = Field(
        default=None,
        description="Ask clients for a certificate chaining to these CAs (PEM): mutual TLS; "
        "principals are then known by their certificate's SHA-256 or SAN URI.",
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
    inbox_retention: Duration = Field(
        default=timedelta(days=90),
        gt=timedelta(0),
        description="How long an alert stays in the inboxes after its last delivery, change or "
        "acknowledgement (the ledger keeps it for good).",
    )
    dedupe_window: Duration = Field(
        default=timedelta(days=7),
        description="How long a re-published (source, id) is answered as a duplicate.",
    )
    durability: Literal["standard", "strict", "replicated"] = Field(
        default="standard",
        description="standard: acknowledge once the server has the event (AOF fsynced every "
        "second); strict: only once the server has fsynced it (WAITAOF; the embedded server "
        "runs appendfsync always); replicated: only once every replica (REDIS_REPLICAS) has it "
        "and the primary has fsynced it (WAIT + WAITAOF).",
    )
    access_purpose: Literal["optional", "required"] = Field(
        default="optional",
        description="required: a read that shows personal data (the API's inbox and ledger "
        "pages, the console's alert page, `ledger replay`/`export`) without a purpose is "
        "refused (428; the console asks for one); optional: the purpose is recorded when given.",
    )
    access_index_key: Path | None = Field(
        default=None,
        description="The secret key of the access record's index of document numbers (32 bytes, "
        "created on first use, mode 0600); unset: DATA_DIR/access-index-key. Every process that "
        "serves the API, and `liaison access report`, must share it.",
    )
    health_addr: str | None = Field(
        default=None,
        pattern=r"^[^:\s]+:\d{1,5}$",
        description="Serve /healthz, /readyz and /metrics here, open to whoever reaches it "
        "(a private address): `serve ingest|ledger|notifier` only here, `up` and `serve api` "
        "besides the API.",
    )
    metrics_token_sha256: Sha256Hex | None = Field(
        default=None,
        description="SHA-256 hex of the bearer token that may read /metrics and the readiness "
        "checks on the API's address; unset: only HEALTH_ADDR serves them.",
    )
    live_heartbeat: Duration = Field(
        default=timedelta(seconds=15),
        gt=timedelta(0),
        description="A live stream's keep-alive comment after this long without an event.",
    )
    live_streams_per_principal: int = Field(
        default=10, ge=1, description="Live streams one principal may hold open (429 beyond)."
    )
    http_header_timeout: Duration = Field(
        default=timedelta(seconds=10),
        gt=timedelta(0),
        description="A request's line and headers must arrive within this (else closed).",
    )
    http_body_timeout: Duration = Field(
        default=timedelta(seconds=60),
        gt=timedelta(0),
        description="A request's body must arrive within this after its headers.",
    )
    http_keep_alive: Duration = Field(
        default=timedelta(seconds=5),
        gt=timedelta(0),
        description="An idle keep-alive connection is closed after this.",
    )
    http_max_connections: int = Field(
        default=500,
        ge=1,
        description="Connections the API holds at once: requests beyond are answered 503, "
        "connections beyond are closed on arrival.",
    )
    backlog_high: int = Field(
        default=200_000,
        ge=1,
        description="Back-pressure: events the slowest consumer (ledger, notifier) may be "
        "behind before ingest answers 503…",
    )
    backlog_low: int = Field(
        default=100_000, ge=0, description="…until it is back at or below this."
    )
    memory_high: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="Back-pressure: the server's used_memory as a share of its maxmemory "
        "(when set) at which ingest answers 503…",
    )
    memory_low: float = Field(default=0.7, gt=0, le=1, description="…until it is back below.")
    console_idle: Duration = Field(
        default=timedelta(minutes=30),
        description="A console session ends after this long without the officer doing anything.",
    )
    console_absolute: Duration = Field(
        default=timedelta(hours=12),
        description="A console session ends this long after sign-in, whatever happens.",
    )

    @model_validator(mode="after")
    def _water_marks(self) -> Settings:
        if self.backlog_low >= self.backlog_high:
            raise ValueError("LIAISON_BACKLOG_LOW must be below LIAISON_BACKLOG_HIGH")
        if self.memory_low >= self.memory_high:
            raise ValueError("LIAISON_MEMORY_LOW must be below LIAISON_MEMORY_HIGH")
        return self

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
    def access_index_key_path(self) -> Path:
        """Where the access record's index key lives (never in the database)."""
        return self.access_index_key or self.data_dir / "access-index-key"

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
    def replicas(self) -> int:
        """How many replicas an acknowledgement waits for (0 unless ``replicated``)."""
        return (self.redis_replicas or 0) if self.durability == "replicated" else 0

    @property
    def publisher_options(self) -> dict[str, Any]:
        """How this deployment's publishers behave (``RedisPublisher`` keyword arguments)."""
        return {
            "durable": self.durability != "standard",
            "replicas": self.replicas,
            "dedupe_window": int(self.dedupe_window.total_seconds()),
        }

    @property
    def sentinel_nodes(self) -> tuple[tuple[str, int], ...]:
        """``REDIS_SENTINELS`` as (host, port) pairs; empty without Sentinels."""
        if not self.redis_sentinels:
            return ()
        return tuple(_split(node) for node in self.redis_sentinels.split(","))

    @model_validator(mode="after")
    def _replicated_names_its_replicas(self) -> Settings:
        if self.durability == "replicated" and self.redis_replicas is None:
            raise ValueError(
                "LIAISON_DURABILITY=replicated needs LIAISON_REDIS_REPLICAS (how many replicas "
                "must hold an event before it is acknowledged)"
            )
        return self

    @property
    def console(self) -> ConsoleOptions:
        """How the web console keeps its sessions."""
        return ConsoleOptions(idle=self.console_idle, absolute=self.console_absolute)

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
        if not first["loc"]:  # a rule between settings: its message names them
            raise ConfigError(str(first["msg"]).removeprefix("Value error, ")) from None
        raise ConfigError(f"LIAISON_{str(first['loc'][0]).upper()}: {first['msg']}") from None
