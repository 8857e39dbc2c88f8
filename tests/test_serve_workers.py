"""`exodrive serve` as a process under HTTP load: every worker of `--workers 2` serves HTTP through
its own gateway and its own gRPC server, and SIGTERM during steady load cuts no request and ends
promptly, open health Watch streams included."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from private_dirs import private_dir
from serve_process import Served, kill, leftovers, start_serve, zero_config_env

pytestmark = pytest.mark.slow

# Hundreds of calls from one address: the limiter would refuse most; limits are proven elsewhere.
UNLIMITED = zero_config_env(EXODRIVE_RATE_LIMIT_ENABLED="false")


def workers_of(served: Served) -> list[psutil.Process]:
    return [p for p in psutil.Process(served.process.pid).children() if "--child" in p.cmdline()]


def listening_ports(process: psutil.Process) -> set[int]:
    return {c.laddr.port for c in process.net_connections("tcp") if c.status == psutil.CONN_LISTEN}


def wait_listening(served: Served, workers: list[psutil.Process], within: float = 60) -> None:
    """Until every worker listens on the shared HTTP port (its gateway is up)."""
    deadline = time.monotonic() + within
    while not all(served.http_port in listening_ports(w) for w in workers):
        assert time.monotonic() < deadline, f"workers not all listening on HTTP\n{served.tail()}"
        time.sleep(0.1)


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def fresh_connection_gets(url: str, total: int, concurrency: int) -> Counter[int]:
    """`total` GETs, each on a new connection (the kernel picks a worker per connection)."""
    statuses: Counter[int] = Counter()
    remaining = iter(range(total))

    async def caller() -> None:
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(limits=limits, timeout=10) as http:
            for _ in remaining:
                statuses[(await http.get(url)).status_code] += 1

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return statuses


@pytest.fixture(scope="module")
def two_workers() -> Iterator[Served]:
    with private_dir() as folder:
        served = start_serve(folder / "data", "--workers", "2", env=UNLIMITED)
        try:
            wait_listening(served, workers_of(served))
            yield served
        finally:
            kill(served)


async def test_http_load_reaches_both_workers_each_through_its_own_grpc_server(two_workers: Served) -> None:
    served = two_workers
    workers = workers_of(served)
    assert len(workers) == 2
    parent = psutil.Process(served.process.pid)
    # The parent only supervises (and reports the workers' metrics): no gRPC, no HTTP of its own.
    assert listening_ports(parent).isdisjoint({served.port, served.http_port})
    for worker in workers:
        assert {served.port, served.http_port} <= listening_ports(worker)

    url = f"{served.http_url}/v1/cars?pageSize=5"
    await fresh_connection_gets(url, 20, 4)  # warm: caches filled, channels connected
    before = {w.pid: cpu_seconds(w) for w in [*workers, parent]}
    statuses = await fresh_connection_gets(url, 400, 8)
    spent = {w.pid: cpu_seconds(w) - before[w.pid] for w in [*workers, parent]}

    assert statuses == Counter({200: 400})
    busy = sum(spent[w.pid] for w in workers)
    shares = sorted(spent[w.pid] / busy for w in workers)
    print(f"worker CPU {busy:.2f}s, shares {[f'{s:.0%}' for s in shares]}, parent {spent[parent.pid]:.2f}s")
    # Connections hash evenly over the two listeners: 400 of them split about 50/50. Before, the
    # parent's gateway did all the HTTP work over one channel, which one worker answered.
    assert shares[0] > 0.25, (shares, served.tail())
    assert spent[parent.pid] < 0.1 * busy

    # Each worker's gateway is connected to a private loopback port of its own process.
    for worker in workers:
        own = listening_ports(worker) - {served.port, served.http_port}
        assert len(own) == 1, own
        upstream = {
            c.raddr.port
            for c in worker.net_connections("tcp")
            if c.status == psutil.CONN_ESTABLISHED and c.raddr and c.raddr.port not in (served.http_port,)
        }
        assert own <= upstream, (own, upstream)
        assert served.port not in upstream


def test_workers_stop_together_on_sigterm_with_a_watch_stream_open(two_workers: Served) -> None:
    served = two_workers
    workers = workers_of(served)
    with grpc.insecure_channel(served.address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        started = time.monotonic()
        served.process.send_signal(signal.SIGTERM)
        # The client sees the final status, then the stream ends instead of being cut at the grace.
        assert [r.status for r in watch] == [health_pb2.HealthCheckResponse.NOT_SERVING]
        assert watch.code() == grpc.StatusCode.OK
    served.process.wait(timeout=30)
    took = time.monotonic() - started
    print(f"--workers 2 exit after SIGTERM with a Watch open: {took:.2f}s (grace 10 s)")
    assert served.process.returncode == 0, served.tail()
    assert took < 5, served.tail()
    assert not any(w.is_running() and w.status() != psutil.STATUS_ZOMBIE for w in workers)
    assert leftovers(served.data_dir) == [], served.tail()


async def steady_load_then_sigterm(served: Served, clients: int, seconds_before: float) -> Counter[str]:
    """Kept-alive clients call in a loop; SIGTERM mid-way; outcomes until the server has exited.

    A refused connection is the expected end (nothing was sent); a reset or a connection closed
    under a request that was sent is a cut request."""
    outcomes: Counter[str] = Counter()
    url = f"{served.http_url}/v1/cars?pageSize=3"
    done = asyncio.Event()

    async def client() -> None:
        async with httpx.AsyncClient(timeout=10) as http:
            while not done.is_set():
                try:
                    response = await http.get(url)
                    outcomes[str(response.status_code)] += 1
                except httpx.ConnectError:
                    outcomes["refused"] += 1
                    await asyncio.sleep(0.01)
                except httpx.TransportError as error:
                    outcomes[f"cut: {type(error).__name__}: {error}"] += 1

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(seconds_before)
    served.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    with contextlib.suppress(subprocess.TimeoutExpired):
        await asyncio.to_thread(served.process.wait, 30)
    done.set()
    await asyncio.gather(*tasks)
    outcomes["exit seconds x100"] = round((time.monotonic() - signalled) * 100)
    return outcomes


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_under_steady_http_load_cuts_no_request(embedded_tmp_path: Path, workers: int) -> None:
    served = start_serve(embedded_tmp_path / "data", "--workers", str(workers), env=UNLIMITED)
    try:
        if workers > 1:
            wait_listening(served, workers_of(served))
        outcomes = await steady_load_then_sigterm(served, clients=8, seconds_before=1.5)
    finally:
        kill(served)
    print(dict(outcomes))
    cut = {k: v for k, v in outcomes.items() if k.startswith("cut") or k.startswith("5")}
    assert cut == {}, (outcomes, served.tail())
    assert outcomes["200"] > 50
    assert served.process.returncode == 0, served.tail()
    assert outcomes["exit seconds x100"] < 800, served.tail()
    assert leftovers(served.data_dir) == [], served.tail()
