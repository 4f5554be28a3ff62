"""``liaison up`` keeps its figures off the API's address and serves them on HEALTH_ADDR."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx

from services.core.auth import token_digest
from services.core.redis_server import free_port
from tests.e2e.test_cli import LIAISON


def test_up_serves_figures_on_the_health_address_or_to_the_metrics_token(
    tmp_path: Path,
) -> None:
    api, health = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIAISON_")}
    env |= {
        "LIAISON_DATA_DIR": str(tmp_path),
        "LIAISON_HTTP_ADDR": f"127.0.0.1:{api}",
        "LIAISON_HEALTH_ADDR": f"127.0.0.1:{health}",
        "LIAISON_METRICS_TOKEN_SHA256": token_digest("scraper-token"),
    }
    with subprocess.Popen([LIAISON, "up"], env=env, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        started = proc.stdout.readline()
        try:
            assert f"health at http://127.0.0.1:{health}" in started
            on_api = f"http://127.0.0.1:{api}"
            assert httpx.get(f"{on_api}/readyz").json() == {"ready": True}
            assert httpx.get(f"{on_api}/metrics").status_code == 401
            token = {"Authorization": "Bearer scraper-token"}
            assert httpx.get(f"{on_api}/metrics", headers=token).status_code == 200
            assert "checks" in httpx.get(f"{on_api}/readyz", headers=token).json()
            on_health = f"http://127.0.0.1:{health}"
            assert httpx.get(f"{on_health}/metrics").status_code == 200
            assert "checks" in httpx.get(f"{on_health}/readyz").json()
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
