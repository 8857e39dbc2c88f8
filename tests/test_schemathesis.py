"""Schemathesis against `/openapi.json` of the live gateway in front of the real server (started
by the real CLI): no 5xx, and no response that breaks the document, over bounded examples."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from serve_process import START_TIMEOUT_SECONDS, kill, start_serve

from server.auth import mint_token
from server.settings import Settings
from services.principal import Role

pytestmark = pytest.mark.slow

CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    )
)


@pytest.fixture(scope="module")
def live_gateway(migrated_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert migrated_settings.jwt_secret is not None
    env = {
        **os.environ,
        "DATABASE_URL": migrated_settings.database_url or "",
        "REDIS_URL": migrated_settings.redis_url or "",
        "EXODRIVE_REDIS_KEY_PREFIX": migrated_settings.redis_key_prefix + "-st",
        "EXODRIVE_JWT_SECRET": migrated_settings.jwt_secret.get_secret_value(),
        # The sweep sends hundreds of calls from one address; limits are proven elsewhere.
        "EXODRIVE_RATE_LIMIT_ENABLED": "false",
        "EXODRIVE_SEED_DEMO_FLEET": "true",
        "EXODRIVE_METRICS_PORT": "0",
    }
    served = start_serve(tmp_path_factory.mktemp("st-data") / "data", env=env)
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                if httpx.get(f"{served.http_url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert served.process.poll() is None, f"serve exited\n{served.tail()}"
            assert time.monotonic() < deadline, f"serve did not become ready\n{served.tail()}"
            time.sleep(0.2)
        yield served.http_url
    finally:
        kill(served)


def _sweep(url: str, *headers: str) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    # The sweep tool is not code of ours: measuring its process (coverage follows subprocesses
    # through these variables) would only slow it down.
    unmeasured = {
        k: v for k, v in os.environ.items() if k not in ("COVERAGE_PROCESS_CONFIG", "COVERAGE_PROCESS_START")
    }
    return subprocess.run(
        [str(bin_dir / "st"), "run", f"{url}/openapi.json", "--checks", CHECKS, "--max-examples", "15",
         "--generation-deterministic", "--workers", "2", *headers],
        env=unmeasured,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip


def test_no_server_errors_and_no_document_violations(live_gateway: str, migrated_settings: Settings) -> None:
    anonymous = _sweep(live_gateway)
    assert anonymous.returncode == 0, anonymous.stdout[:12000]

    assert migrated_settings.jwt_secret is not None
    token = mint_token(migrated_settings.jwt_secret.get_secret_value(), role=Role.ADMIN, subject="st-admin")
    admin = _sweep(live_gateway, "--header", f"Authorization: Bearer {token}")
    assert admin.returncode == 0, admin.stdout[-6000:]
