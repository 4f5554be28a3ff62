"""The ``liaison`` command as a user runs it."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from services.core.redis_server import free_port
from services.core.settings import Settings
from services.ledger.open import open_ledger
from tests import factories

LIAISON = str(Path(sys.executable).parent / "liaison")


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``liaison`` with a clean LIAISON_* environment plus ``env`` (in ``cwd`` if given)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    return subprocess.run(
        [LIAISON, *args], env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout,
        check=False, cwd=cwd,
    )  # fmt: skip


def test_demo_plays_the_seed_scenario() -> None:
    result = run("demo")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for unit in ("IMT-TASHKENT", "IMT-GULISTAN", "BLO-FOTEHOBOD", "NIAC-UZ"):
        assert unit in out
    fotehobod = next(line for line in out.splitlines() if "BLO-FOTEHOBOD" in line)
    assert "non-nominal" in fotehobod
    assert "1 withheld" in fotehobod
    gulistan = next(line for line in out.splitlines() if "│ IMT-GULISTAN" in line)
    assert "Dilshod Karimov" in gulistan  # the person the officer's token was issued to
    assert "closed" in gulistan
    assert "20.032 kg of heroin" in out
    assert "chain OK" in out
    assert "liaison demo --serve" in out  # how to keep it running for the web console
    assert "Traceback" not in result.stderr


def test_demo_serve_prints_the_console_and_tokens_that_sign_in() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    command = [LIAISON, "demo", "--serve"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("auditor (audit-office), access token:" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        out = "".join(lines)
        url = re.search(r"Web console: (http://127\.0\.0\.1:\d+/console/)", out)
        officer = re.search(r"\(gulistan-duty\), access token: (\S+)", out)
        assert url, out
        assert officer, out
        with httpx.Client(base_url=url[1].removesuffix("/console/"), follow_redirects=False) as web:
            form = web.get("/console/login")
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
            assert csrf
            signed = web.post("/console/login", data={"csrf_token": csrf[1], "token": officer[1]},
                              headers={"Origin": str(web.base_url).rstrip("/")})  # fmt: skip
            assert signed.headers["location"] == "/console/units/IMT-GULISTAN"
            inbox = web.get("/console/units/IMT-GULISTAN")
            assert "Grey Chevrolet Cobalt" in inbox.text
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0


def test_route_dry_run_json(tmp_path: Path) -> None:
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps(factories.alert()))
    result = run("route", str(alert), "--json")
    assert result.returncode == 0, result.stderr
    recipients = {r["unit"]: r for r in json.loads(result.stdout)["recipients"]}
    assert set(recipients) == {"IMT-TASHKENT", "IMT-GULISTAN", "BLO-FOTEHOBOD", "NIAC-UZ"}
    assert recipients["BLO-FOTEHOBOD"] == {
        "unit": "BLO-FOTEHOBOD", "reasons": ["counterpart"], "view": "non-nominal",
    }  # fmt: skip


def test_invalid_alert_file_is_a_located_error(tmp_path: Path) -> None:
    alert = factories.alert()
    del alert["data"]["summary"]
    path = tmp_path / "alert.json"
    path.write_text(json.dumps(alert))
    result = run("route", str(path))
    assert result.returncode == 2
    assert "data.summary" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_config_file_is_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "liaison.yaml"
    config.write_text("principals:\n  - {name: x, role: emperor, token_sha256: abc}\n")
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps(factories.alert()))
    result = run("route", str(alert), env={"LIAISON_CONFIG": str(config)})
    assert result.returncode == 2
    assert str(config) in result.stderr
    assert "role" in result.stderr
    assert "token_sha256" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_naming_an_unknown_unit_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "liaison.yaml"
    config.write_text(
        f"principals:\n  - {{name: x, role: officer, token_sha256: {'a' * 64}, unit: IMT-ATLANTIS}}\n"
    )
    alert = tmp_path / "alert.json"
    alert.write_text(json.dumps(factories.alert()))
    result = run("route", str(alert), env={"LIAISON_CONFIG": str(config)})
    assert result.returncode == 2
    assert "IMT-ATLANTIS" in result.stderr


def test_ledger_verify_on_an_empty_ledger(tmp_path: Path) -> None:
    async def create() -> None:
        ledger = open_ledger(Settings(data_dir=tmp_path, redis_url=None, database_url=None))
        await ledger.create_schema()
        await ledger.close()

    asyncio.run(create())
    result = run("ledger", "verify", env={"LIAISON_DATA_DIR": str(tmp_path)})
    assert result.returncode == 0
    assert result.stdout.startswith("OK 0 entries")


def test_up_serves_until_sigterm_and_leaves_nothing_running(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env |= {"LIAISON_DATA_DIR": str(tmp_path), "LIAISON_HTTP_ADDR": f"127.0.0.1:{port}"}
    command, pipe = [LIAISON, "up"], subprocess.PIPE
    with subprocess.Popen(command, env=env, stdout=pipe, stderr=pipe, text=True) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        ready = proc.stdout.readline()
        assert f"ready at http://127.0.0.1:{port}" in ready
        assert f"web console at http://127.0.0.1:{port}/console/" in ready
        login = httpx.get(f"http://127.0.0.1:{port}/console/login")
        assert login.status_code == 200
        assert "Access token" in login.text
        redis_url = (tmp_path / "redis" / "url").read_text()
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["ready"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        warnings = proc.stderr.read()
    # Issue 12.8: no configuration, no principals: every request will be refused — say so.
    [warning] = [line for line in warnings.splitlines() if "principals" in line]
    assert "LIAISON_CONFIG" in warning
    assert not (tmp_path / "redis" / "url").exists()
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()


def test_serve_ledger_exposes_metrics_on_the_health_address(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env |= {"LIAISON_DATA_DIR": str(tmp_path), "LIAISON_HEALTH_ADDR": f"127.0.0.1:{port}"}
    command = [LIAISON, "serve", "ledger"]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        assert f"health at http://127.0.0.1:{port}" in proc.stdout.readline()
        response = httpx.get(f"http://127.0.0.1:{port}/metrics")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert response.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    assert samples[("liaison_ledger_appended_total", ())] == 0
    assert samples[("liaison_ready", (("check", "database"),))] == 1
    assert samples[("liaison_redis_scrape_ok", ())] == 1
