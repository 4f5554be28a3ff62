"""Configuration: durations, the YAML file, and its clear errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from schemas.vocabulary import Severity
from services.config import ConfigError, parse_duration, read_file_config, resolve_topology


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("1h", timedelta(hours=1)),
     ("2d", timedelta(days=2)), ("250ms", timedelta(milliseconds=250)), (2, timedelta(seconds=2))],
)  # fmt: skip
def test_durations(text: object, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "15", "m15", "1 week", True])
def test_bad_durations_say_what_is_expected(text: object) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_full_file(tmp_path: Path) -> None:
    path = tmp_path / "liaison.yaml"
    path.write_text(
        f"""
principals:
  - {{name: uz-customs, role: publisher, token_sha256: {"a" * 64}, units: [BLO-OYBEK]}}
  - {{name: duty, role: officer, token_sha256: {"b" * 64}, unit: IMT-GULISTAN}}
  - {{name: audit, role: auditor, token_sha256: {"c" * 64}}}
webhooks:
  - {{unit: IMT-GULISTAN, url: "https://example.invalid/hook", secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}
ack_deadlines: {{flash: 90s, urgent: 2s}}
"""
    )
    config = read_file_config(path)
    assert [p.name for p in config.principals] == ["uz-customs", "duty", "audit"]
    assert config.ack_deadlines.for_severity(Severity.FLASH) == timedelta(seconds=90)
    assert config.ack_deadlines.for_severity(Severity.ROUTINE) == timedelta(hours=24)
    assert "IMT-GULISTAN" in resolve_topology(config)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("principals: [", "not valid YAML"),
        (
            "principals:\n  - {name: a, role: publisher, token_sha256: xyz}",
            "principals.0.token_sha256",
        ),
        (
            f"principals:\n  - {{name: a, role: publisher, token_sha256: {'a' * 64}}}",
            "needs 'units'",
        ),
        (f"principals:\n  - {{name: a, role: officer, token_sha256: {'a' * 64}}}", "needs 'unit'"),
        ("colour: blue", "colour: Extra inputs are not permitted"),
        ("ack_deadlines: {flash: soon}", "ack_deadlines.flash"),
        ("webhooks:\n  - {unit: IMT-GULISTAN, url: ftp://x, secret: whsec_abc}", "webhooks.0.url"),
    ],
)
def test_bad_files_name_the_file_and_field(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "liaison.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        read_file_config(path)
    assert str(path) in str(caught.value)
    assert fragment in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_file_config(tmp_path / "absent.yaml")


def test_unknown_unit_in_a_principal(tmp_path: Path) -> None:
    path = tmp_path / "liaison.yaml"
    path.write_text(
        f"principals:\n  - {{name: a, role: officer, token_sha256: {'a' * 64}, unit: IMT-X}}"
    )
    with pytest.raises(ConfigError, match="principal 'a' names unknown unit 'IMT-X'"):
        resolve_topology(read_file_config(path))


@pytest.mark.parametrize("name", ["uz customs", "uz-customs*", "ingress:x", "-lead", "x" * 65])
def test_a_publisher_name_must_be_fit_for_its_ingress_stream(tmp_path: Path, name: str) -> None:
    path = tmp_path / "liaison.yaml"
    path.write_text(
        f"principals:\n  - {{name: '{name}', role: publisher, units: [BLO-OYBEK], "
        f"token_sha256: '{'a' * 64}'}}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="names its Redis ingress stream"):
        read_file_config(path)
