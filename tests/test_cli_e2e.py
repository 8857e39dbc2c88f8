"""The real `exodrive serve` on the zero-config default, as a subprocess: typed client, `buf curl`,
SIGTERM, and nothing left running. Also `migrate`, `token`, and `serve --workers 2`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
import psutil
import pytest
from exodrive.v1 import booking_pb2, fleet_pb2
from google.type import date_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from private_dirs import private_dir
from serve_process import EXODRIVE, Served, leftovers, start_serve, stop_serve, zero_config_env

from clients import ExoDriveSyncClient, NotFound

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / "node_modules" / ".bin" / "buf"


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    with private_dir() as folder:
        served = start_serve(folder / "data")
        print(f"cold start until SERVING: {served.started_seconds:.2f}s")
        try:
            yield served
        finally:
            if served.process.poll() is None:
                stop_serve(served)


def date_of(day: date) -> date_pb2.Date:
    return date_pb2.Date(year=day.year, month=day.month, day=day.day)


def test_client_lists_the_seeded_fleet_and_books(served: Served) -> None:
    with ExoDriveSyncClient(served.address) as client:
        cars = client.fleet.list_cars(fleet_pb2.ListCarsRequest(page_size=50)).cars
        assert len(cars) >= 8
        car = cars[0]
        start = date.today() + timedelta(days=30)
        reply = client.bookings.create_booking.with_reply(
            booking_pb2.CreateBookingRequest(
                request_id=str(uuid.uuid4()),
                car_id=car.car_id,
                start_date=date_of(start),
                end_date=date_of(start + timedelta(days=max(car.minimum_days, 3))),
                contact=booking_pb2.Contact(
                    full_name="Ada Guest", email="ada@example.com", phone="+15550100"
                ),
            ),
            trace_id="0af7651916cd43dd8448eb211c80319c",
        )
        assert reply.trace_id == "0af7651916cd43dd8448eb211c80319c"
        assert reply.response.booking.status == booking_pb2.BOOKING_STATUS_PENDING
        assert reply.response.access_token
        with pytest.raises(NotFound) as missing:
            client.fleet.get_car(fleet_pb2.GetCarRequest(car_id=str(uuid.uuid4())))
        assert missing.value.reason == "CAR_NOT_FOUND"
        assert missing.value.trace_id


def test_buf_curl_lists_services_and_creates_a_booking(served: Served) -> None:
    if not BUF.exists():
        pytest.skip("buf is installed by `make setup` (npm)")
    base = f"http://{served.address}"
    listed = subprocess.run(
        [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-services", base],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    services = set(listed.stdout.split())
    assert {"exodrive.v1.FleetService", "exodrive.v1.BookingService", "grpc.health.v1.Health"} <= services

    cars = subprocess.run(
        [
            str(BUF),
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            f"{base}/exodrive.v1.FleetService/ListCars",
            "-d",
            "{}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    car = json.loads(cars.stdout)["cars"][-1]
    start = date.today() + timedelta(days=60)
    end = start + timedelta(days=max(int(car.get("minimumDays", 1)), 2))
    body = {
        "requestId": str(uuid.uuid4()),
        "carId": car["carId"],
        "startDate": {"year": start.year, "month": start.month, "day": start.day},
        "endDate": {"year": end.year, "month": end.month, "day": end.day},
        "contact": {"fullName": "Grace Guest", "email": "grace@example.com", "phone": "+15550101"},
    }
    created = subprocess.run(
        [
            str(BUF),
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            f"{base}/exodrive.v1.BookingService/CreateBooking",
            "-d",
            json.dumps(body),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    booking = json.loads(created.stdout)["booking"]
    assert booking["carId"] == car["carId"]
    assert booking["status"] == "BOOKING_STATUS_PENDING"


def test_sigterm_leaves_nothing_running_and_a_warm_start_is_fast(served: Served) -> None:
    stderr = stop_serve(served)
    assert "shutting down" in stderr
    assert leftovers(served.data_dir) == [], served.tail()
    warm = start_serve(served.data_dir)
    print(f"warm start until SERVING: {warm.started_seconds:.2f}s")
    stop_serve(warm)
    assert leftovers(served.data_dir) == []


def test_sigkill_then_restart_recovers_and_cleans_up(embedded_tmp_path: Path) -> None:
    data_dir = embedded_tmp_path / "data"
    first = start_serve(data_dir)
    first.process.kill()
    first.process.wait()
    # The embedded servers outlive a SIGKILLed owner...
    assert leftovers(data_dir) != []
    # ...until the next start finds and stops them.
    second = start_serve(data_dir)
    stop_serve(second)
    assert leftovers(data_dir) == [], second.tail()


def test_workers_share_the_port_and_stop_together(embedded_tmp_path: Path) -> None:
    data_dir = embedded_tmp_path / "data"
    served = start_serve(data_dir, "--workers", "2", "--no-http")
    pids = set()
    for _ in range(40):
        with grpc.insecure_channel(served.address) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING
        pids = {child.pid for child in psutil.Process(served.process.pid).children()}
    workers = [p for p in psutil.Process(served.process.pid).children() if "--child" in p.cmdline()]
    assert len(workers) == 2
    stop_serve(served)
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids
    )
    assert leftovers(data_dir) == []


def test_migrate_and_token_commands(embedded_tmp_path: Path) -> None:
    data_dir = embedded_tmp_path / "data"
    env = zero_config_env()

    def exodrive(*args: str) -> str:
        done = subprocess.run(
            [str(EXODRIVE), *args, "--data-dir", str(data_dir)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.strip()

    assert exodrive("migrate", "current") == "base"
    head = exodrive("migrate", "up")
    assert head != "base"
    assert exodrive("migrate", "down") == "base"
    assert exodrive("migrate", "up") == head
    assert leftovers(data_dir) == []

    token = exodrive("token", "--role", "admin", "--sub", "ops-1", "--ttl", "60")
    secret_file = data_dir / "jwt-secret"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    claims = jwt.decode(token, secret_file.read_text().strip(), algorithms=["HS256"])
    assert claims["sub"] == "ops-1"
    assert claims["role"] == "admin"
    assert claims["exp"] - claims["iat"] == 60
    # The same secret on the next run: tokens from `token` verify against a later `serve`.
    secret = secret_file.read_text()
    later = exodrive("token", "--role", "customer", "--sub", "c-1")
    assert secret_file.read_text() == secret
    assert jwt.decode(later, secret.strip(), algorithms=["HS256"])["role"] == "customer"


def test_token_command_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from server.cli import main

    for name in ("DATABASE_URL", "REDIS_URL", "EXODRIVE_JWT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    assert main(["token", "--role", "service", "--sub", "svc-1", "--data-dir", str(tmp_path)]) == 0
    token = capsys.readouterr().out.strip()
    claims = jwt.decode(token, (tmp_path / "jwt-secret").read_text().strip(), algorithms=["HS256"])
    assert (claims["sub"], claims["role"]) == ("svc-1", "service")


def test_migrate_current_in_process_on_given_urls(
    migrated_settings: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from server import schema
    from server.cli import main

    monkeypatch.setenv("DATABASE_URL", migrated_settings.database_url)
    monkeypatch.setenv("REDIS_URL", migrated_settings.redis_url)
    assert main(["migrate", "current"]) == 0
    assert capsys.readouterr().out.strip() == schema.head()


async def test_hold_expiry_job_runs_and_survives_failures(running_server: Any) -> None:
    from server.jobs import PeriodicJob, hold_expiry_job

    job = hold_expiry_job(running_server.app.bookings.expire_overdue, interval_seconds=0.05)
    job.start()
    for _ in range(200):  # up to 2 s for two ticks
        if job.runs >= 2:
            break
        await asyncio.sleep(0.01)
    assert job.runs >= 2
    await job.stop()
    assert await job.run_once() == 0  # nothing overdue in a fresh database

    async def broken() -> int:
        raise RuntimeError("database down")

    failing = PeriodicJob("broken", broken, 0.01)
    assert await failing.run_once() == 0
    assert failing.runs == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sub", ""], "argument --sub: the subject must not be empty"),
        (["--sub", "   "], "argument --sub: the subject must not be empty"),
        (["--sub", "ops-1", "--ttl", "-5"], "argument --ttl: must be at least 1 second, got -5"),
        (["--sub", "ops-1", "--ttl", "0"], "argument --ttl: must be at least 1 second, got 0"),
        (["--sub", "ops-1", "--ttl", "soon"], "argument --ttl: not a whole number of seconds: 'soon'"),
    ],
)
def test_token_refuses_an_empty_subject_and_a_ttl_below_one_second(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    from server.cli import main

    monkeypatch.delenv("EXODRIVE_JWT_SECRET", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["token", "--role", "admin", *args, "--data-dir", str(tmp_path)])
    assert exited.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""  # no token printed
    assert message in captured.err
    assert not (tmp_path / "jwt-secret").exists()
