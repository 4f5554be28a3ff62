"""Configuration: durations, the YAML file, and its clear errors."""

from __future__ import annotations

import base64
from datetime import timedelta
from pathlib import Path

import pytest

from schemas.vocabulary import Severity
from services.core.config import ConfigError, parse_duration, read_file_config, resolve_topology


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
    with pytest.raises(ConfigError, match=r"principals\.0\.unit: unknown unit .IMT-X."):
        resolve_topology(read_file_config(path))


# --- Mistakes that used to pass, and errors that used to echo secrets (issues 12.8, 13.10, 13.12)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "liaison.yaml"
    path.write_text(text)
    return path


def _error(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        resolve_topology(read_file_config(path))
    return str(caught.value)


def test_two_principals_with_one_token_digest_are_refused(tmp_path: Path) -> None:
    digest = "d" * 64
    path = _write(tmp_path, f"""
principals:
  - {{name: uz-customs, role: publisher, token_sha256: {digest}, units: [BLO-OYBEK]}}
  - {{name: gulistan-duty, role: officer, token_sha256: {digest}, unit: IMT-GULISTAN}}
""")  # fmt: skip
    message = _error(path)
    assert message.startswith(f"{path}: principals.1.token_sha256: ")
    assert "principals.0" in message
    assert "uz-customs" in message
    assert digest not in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (f"principals:\n  - {{name: a, role: officer, token_sha256: {'a' * 64}, unit: IMT-X}}",
         "principals.0.unit"),
        (f"principals:\n  - {{name: a, role: publisher, token_sha256: {'a' * 64}, "
         "units: [BLO-OYBEK, IMT-X]}", "principals.0.units.1"),
        ("webhooks:\n  - {unit: IMT-X, url: 'https://hooks:hunter2@example.invalid/h?api_key=K1',"
         f" secret: {SECRET}}}", "webhooks.0.unit"),
    ],
)  # fmt: skip
def test_an_unknown_unit_names_file_and_field_and_no_secret(
    tmp_path: Path, text: str, field: str
) -> None:
    message = _error(_write(tmp_path, text))
    assert message.startswith(f"{tmp_path / 'liaison.yaml'}: {field}: unknown unit 'IMT-X'")
    for secret in ("hunter2", "K1", SECRET):
        assert secret not in message
    assert "\n" not in message


def test_a_yaml_syntax_error_is_one_line_without_the_secret(tmp_path: Path) -> None:
    path = _write(tmp_path, f"""
webhooks:
  - {{unit: IMT-GULISTAN, url: "https://example.invalid/hook", secret: "{SECRET}}}
""")  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        read_file_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: line ")
    assert "not valid YAML" in message
    assert SECRET[6:14] not in message


@pytest.mark.parametrize(
    "text",
    [
        # a secret where a key belongs (pydantic names the extra key)
        f"webhooks:\n  - {{unit: IMT-GULISTAN, url: 'https://example.invalid/h', {SECRET}: 1}}",
        # a secret where the URL belongs
        f"webhooks:\n  - {{unit: IMT-GULISTAN, url: {SECRET}, secret: {SECRET}}}",
        # a URL with credentials where a unit list belongs
        "principals:\n  - {name: a, role: publisher, token_sha256: " + "a" * 64
        + ", units: {'https://u:hunter2@x.invalid/?token=K1': 1}}",
    ],
)  # fmt: skip
def test_validation_errors_echo_no_secret(tmp_path: Path, text: str) -> None:
    message = _error(_write(tmp_path, text))
    for secret in (SECRET[6:], "hunter2", "K1"):
        assert secret not in message


def test_webhook_endpoints_are_named_without_credentials(tmp_path: Path) -> None:
    path = _write(tmp_path, f"""
webhooks:
  - {{unit: IMT-GULISTAN, url: "https://hooks:hunter2@example.invalid/in?api_key=K1", secret: {SECRET}}}
  - {{unit: IMT-GULISTAN, name: gulistan-siem, url: "https://siem.invalid/in", secret: {SECRET}}}
""")  # fmt: skip
    first, second = read_file_config(path).webhooks
    assert first.endpoint == "https://example.invalid/in"
    assert second.endpoint == "gulistan-siem"


def test_two_endpoints_of_a_unit_with_one_name_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, f"""
webhooks:
  - {{unit: IMT-GULISTAN, name: siem, url: "https://a.invalid/in", secret: {SECRET}}}
  - {{unit: IMT-GULISTAN, name: siem, url: "https://b.invalid/in", secret: {SECRET}}}
""")  # fmt: skip
    message = _error(path)
    assert message.startswith(f"{path}: webhooks.1.name: ")
    assert "webhooks.0" in message


def test_plain_http_endpoints_need_allow_http(tmp_path: Path) -> None:
    hook = f"{{unit: IMT-GULISTAN, url: 'http://siem.invalid/in', secret: {SECRET}"
    message = _error(_write(tmp_path, f"webhooks:\n  - {hook}}}"))
    assert message.startswith(f"{tmp_path / 'liaison.yaml'}: webhooks.0")
    assert "https" in message
    assert "allow_http" in message
    [allowed] = read_file_config(
        _write(tmp_path, f"webhooks:\n  - {hook}, allow_http: true}}")
    ).webhooks
    assert allowed.allow_http


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


SIGNING_KEY = "whsk_" + base64.b64encode(b"liaison-v1a-test-seed-32-bytes!!").decode()


def test_an_endpoint_may_sign_with_a_key_pair_instead_of_a_secret(tmp_path: Path) -> None:
    path = _write(tmp_path, f"""
webhooks:
  - {{unit: IMT-GULISTAN, url: "https://siem.invalid/in", signing_key: {SIGNING_KEY}}}
""")  # fmt: skip
    [hook] = read_file_config(path).webhooks
    assert (hook.secret, hook.signing_key) == (None, SIGNING_KEY)


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("{unit: IMT-GULISTAN, url: 'https://x.invalid/h'}", "needs 'secret'"),
        ("{unit: IMT-GULISTAN, url: 'https://x.invalid/h', signing_key: whsk_c2hvcnQ=}",
         "32-byte Ed25519 seed"),
    ],
)  # fmt: skip
def test_an_endpoint_without_a_usable_secret_or_key_is_refused(
    tmp_path: Path, entry: str, reason: str
) -> None:
    message = _error(_write(tmp_path, f"webhooks:\n  - {entry}"))
    assert "webhooks.0" in message
    assert reason in message


def test_a_signing_key_is_never_echoed_in_an_error(tmp_path: Path) -> None:
    # the key where the URL belongs: the error quotes the value, redacted
    message = _error(
        _write(
            tmp_path,
            f"webhooks:\n  - {{unit: IMT-GULISTAN, url: {SIGNING_KEY}, signing_key: {SIGNING_KEY}}}",
        )
    )
    assert "webhooks.0.url" in message
    assert SIGNING_KEY[5:] not in message
    assert SIGNING_KEY[5:20] not in message


def test_a_principal_may_be_known_by_its_certificate_instead_of_a_token(tmp_path: Path) -> None:
    path = _write(tmp_path, f"""
principals:
  - {{name: uz-customs, role: publisher, units: [BLO-OYBEK], client_cert_uri: "urn:liaison:agency:uz-customs"}}
  - {{name: audit, role: auditor, client_cert_sha256: {"c" * 64}}}
""")  # fmt: skip
    customs, audit = read_file_config(path).principals
    assert (customs.token_sha256, customs.client_cert_uri) == (
        None,
        "urn:liaison:agency:uz-customs",
    )
    assert audit.by_certificate


def test_a_principal_with_neither_token_nor_certificate_is_refused(tmp_path: Path) -> None:
    message = _error(_write(tmp_path, "principals:\n  - {name: a, role: auditor}"))
    assert "principals.0" in message
    assert "needs 'token_sha256', or a client certificate" in message


def test_a_witness_needs_its_key_and_only_a_witness_has_one(tmp_path: Path) -> None:
    vkey = "niac.uz/witness+becf2fe9+BJ759ogBWQFd1VOiCEe0YRr8M0TcKP8F0QFKhzPT7LuO"
    missing = _error(
        _write(tmp_path, f"principals:\n  - {{name: w, role: witness, token_sha256: {'d' * 64}}}")
    )
    assert "a witness needs 'witness_key'" in missing
    stray = _error(
        _write(
            tmp_path,
            f"principals:\n  - {{name: a, role: auditor, token_sha256: {'d' * 64}, witness_key: '{vkey}'}}",
        )
    )
    assert "only a witness has one" in stray
