"""`exodrive serve` as a subprocess for end-to-end tests.

It listens on port 0 and the test reads the ports it bound from its "serving" log line: a port
probed free by the test and handed over stays free only until any process's outgoing connection
takes it as its local port, and serve binds only after seconds of start-up (embedded servers,
migrations, seed; longer on a loaded machine): that race made it exit during start-up.

Its stderr (the JSON logs) goes to a file, never to a pipe nobody reads (a full pipe would block the
server's logging), and every failed assertion about the process shows the file's tail.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

EXODRIVE = Path(sys.executable).parent / "exodrive"
START_TIMEOUT_SECONDS = 150.0  # beyond the embedded servers' own start-up limit (120 s)
STOP_TIMEOUT_SECONDS = 30.0


def zero_config_env(**extra: str) -> dict[str, str]:
    """This environment without database, Redis or EXODRIVE_* settings: the zero-config default,
    but for the metrics port, a free one (tests never take fixed ports)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env = {k: v for k, v in env.items() if not k.startswith("EXODRIVE_")}
    env["EXODRIVE_METRICS_PORT"] = "0"
    env.update(extra)
    return env


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    port: int
    http_port: int
    data_dir: Path
    stderr_path: Path
    started_seconds: float = 0.0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        """The end of the server's stderr, for assertion messages."""
        return f"--- serve stderr (tail) ---\n{self.stderr()[-chars:]}"


def launch_serve(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> Served:
    """Starts `exodrive serve` on free ports (0) without waiting for it."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    stderr_path = data_dir.parent / f"serve-{uuid.uuid4().hex[:8]}.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [str(EXODRIVE), "serve", "--data-dir", str(data_dir), "--port", "0", "--http-port", "0", *extra],
            env=env if env is not None else zero_config_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    return Served(process, 0, 0, data_dir, stderr_path)


def bound_ports(served: Served) -> tuple[int, int] | None:
    """(gRPC port, HTTP port or 0) from the first "serving" log line, once there is one."""
    for line in served.stderr().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("message") == "serving" and record.get("grpc_address"):
            http_url = record.get("http_url")
            http_port = int(http_url.rsplit(":", 1)[1]) if http_url else 0
            return int(record["grpc_address"].rsplit(":", 1)[1]), http_port
    return None


def wait_serving(served: Served, within: float = START_TIMEOUT_SECONDS) -> None:
    """Until serve logs its ports and gRPC health says SERVING; an exit or the deadline fails
    with the server's stderr."""
    started = time.monotonic()
    deadline = started + within
    while True:
        code = served.process.poll()
        assert code is None, f"serve exited during start-up with {code}\n{served.tail()}"
        assert time.monotonic() < deadline, f"serve not SERVING within {within:.0f}s\n{served.tail()}"
        ports = bound_ports(served)
        if ports is not None:
            served.port, served.http_port = ports
            break
        time.sleep(0.05)
    with grpc.insecure_channel(served.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            code = served.process.poll()
            assert code is None, f"serve exited during start-up with {code}\n{served.tail()}"
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    served.started_seconds = time.monotonic() - started
                    return
            except grpc.RpcError:
                pass
            assert time.monotonic() < deadline, f"serve not SERVING within {within:.0f}s\n{served.tail()}"
            time.sleep(0.05)


def start_serve(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> Served:
    served = launch_serve(data_dir, *extra, env=env)
    try:
        wait_serving(served)
    except BaseException:
        kill(served)
        raise
    return served


def stop_serve(served: Served, timeout: float = STOP_TIMEOUT_SECONDS) -> str:
    """SIGTERM, then its stderr; it must exit 0 within `timeout`."""
    served.process.send_signal(signal.SIGTERM)
    try:
        served.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill(served)
        raise AssertionError(
            f"serve did not exit within {timeout:.0f}s of SIGTERM\n{served.tail()}"
        ) from None
    assert served.process.returncode == 0, f"serve exited with {served.process.returncode}\n{served.tail()}"
    return served.stderr()


def kill(served: Served) -> None:
    """SIGTERM, then SIGKILL: a failed test still stops what it started."""
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
        try:
            served.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait()


def leftovers(data_dir: Path) -> list[str]:
    """Processes still running on the data folder, and sockets left in it."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(process.info["cmdline"] or [])
        if str(data_dir) in command:
            found.append(f"{process.info['pid']}: {command}")
    found += [str(path) for path in data_dir.rglob("*") if path.is_socket()]
    return found
