"""The seed scenario of ``liaison demo`` (docs/architecture.md): Oybek alert to Gulistan seizure."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from services.core.auth import token_digest
from services.core.config import FileConfig, Principal, Role

ALERT_ORIGIN = "BLO-OYBEK"
SEIZING_UNIT = "IMT-GULISTAN"


def demo_tokens() -> dict[str, str]:
    """Fresh bearer tokens for the demo's principals (never reused, never a default)."""
    return {
        name: secrets.token_urlsafe(24)
        for name in ("uz-customs", "uz-mia", "gulistan-duty", "audit-office")
    }


def demo_config(tokens: dict[str, str]) -> FileConfig:
    """The demo's own principals: two agency systems, one duty officer, one auditor."""
    return FileConfig(
        principals=(
            Principal(
                name="uz-customs",
                role=Role.PUBLISHER,
                token_sha256=token_digest(tokens["uz-customs"]),
                units=("BLO-OYBEK", "BLO-AYRITOM", "BLO-DUSTLIK", "BLO-SARIOSIYO"),
            ),
            Principal(
                name="uz-mia",
                role=Role.PUBLISHER,
                token_sha256=token_digest(tokens["uz-mia"]),
                units=(SEIZING_UNIT,),
            ),
            Principal(
                name="gulistan-duty",
                role=Role.OFFICER,
                person="Dilshod Karimov",
                token_sha256=token_digest(tokens["gulistan-duty"]),
                unit=SEIZING_UNIT,
            ),
            Principal(
                name="audit-office",
                role=Role.AUDITOR,
                token_sha256=token_digest(tokens["audit-office"]),
            ),
        )
    )


def _event(type_: str, unit: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": f"/units/{unit}",
        "type": type_,
        "time": datetime.now(UTC).isoformat(),
        "datacontenttype": "application/json",
        "data": data,
        **extra,
    }


def alert_raised() -> dict[str, Any]:
    """BLO-OYBEK: a truck from Tajikistan heading for Kazakhstan through Uzbekistan."""
    now = datetime.now(UTC)
    return _event(
        "alert.raised",
        ALERT_ORIGIN,
        {
            "severity": "urgent",
            "summary": "Truck suspected of carrying heroin, entered from Tajikistan, "
            "heading for Kazakhstan through Syrdarya region",
            "route": ["TJ", "UZ", "KZ"],
            "persons": [
                {"name": "Example Driver", "nationality": "TJ", "document": "TJ-PASSPORT-0000"}
            ],
            "vehicles": [
                {"plate": "01 TJ 000 AA", "description": "white KAMAZ truck, cotton bales"}
            ],
            "window": {"from": now.isoformat(), "until": (now + timedelta(hours=12)).isoformat()},
        },
        tlp="amber",
        releasableto="UZ,TJ",
    )


def seizure_reported(alert_id: str) -> dict[str, Any]:
    """IMT-GULISTAN: 20 kg 32 g of heroin, reported in grams, stored as 20.032 kg."""
    return _event(
        "seizure.reported",
        SEIZING_UNIT,
        {
            "occurred_at": datetime.now(UTC).isoformat(),
            "agencies": ["MIA", "SSS", "SCC"],
            "location": {"unit": SEIZING_UNIT, "region": "Syrdarya"},
            "drugs": [{"substance": "heroin", "quantity": 20032, "measure": "g"}],
            "route": ["TJ", "UZ", "KZ"],
            "transport": "truck",
            "concealment": "inside cotton bales",
            "detained": 1,
            "alert_id": alert_id,
        },
        subject=alert_id,
    )


def alert_closed(alert_id: str, seizure_id: str) -> dict[str, Any]:
    """BLO-OYBEK closes its alert: the consignment was seized."""
    return _event(
        "alert.closed",
        ALERT_ORIGIN,
        {"reason": "consignment seized by IMT Gulistan", "seizure_id": seizure_id},
        subject=alert_id,
        releasableto="UZ,TJ",
    )


def waiting_alerts() -> list[dict[str, Any]]:
    """Two alerts left for the demo's duty officer to acknowledge in the web console."""
    now = datetime.now(UTC)
    flash = _event(
        "alert.raised",
        ALERT_ORIGIN,
        {
            "severity": "flash",
            "summary": "Grey Chevrolet Cobalt left the Oybek crossing at speed, heading for Gulistan",
            "route": ["TJ", "UZ"],
            "vehicles": [{"plate": "10 A 123 BC", "description": "grey Chevrolet Cobalt"}],
            "window": {"from": now.isoformat(), "until": (now + timedelta(hours=2)).isoformat()},
        },
        tlp="amber",
        releasableto="UZ,TJ",
    )
    routine = _event(
        "alert.raised",
        ALERT_ORIGIN,
        {
            "severity": "routine",
            "summary": "Tramadol parcels sent through the Bekabad post office",
            "route": ["TJ", "UZ"],
        },
        tlp="green",
    )
    return [routine, flash]
