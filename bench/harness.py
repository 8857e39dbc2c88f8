"""Reusable benchmark pieces: a closed-loop load generator, percentiles, and a table with ratios.

Every benchmark module drives its calls with `drive()` and prints `table()`; ratios are taken to
a baseline row of the same run, since absolute figures on shared machines vary from run to run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

Call = Callable[[int], Awaitable[object]]


@dataclass
class Result:
    name: str
    concurrency: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    @property
    def qps(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        """Latency at percentile p (0-100) in milliseconds."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
        return ordered[index] * 1000


async def drive(name: str, call: Call, *, concurrency: int, duration: float, warmup: float = 0.3) -> Result:
    """Runs `concurrency` workers calling `call(i)` back to back for `duration` seconds (after a
    warm-up whose calls are not measured); `i` numbers the calls so each can differ."""
    counter = iter(range(10**12))
    stop_at = 0.0
    measuring = False
    result = Result(name, concurrency, duration)

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                await call(next(counter))
            except Exception as error:
                if measuring:
                    result.errors += 1
                    result.first_error = result.first_error or str(error)[:300]
                continue
            if measuring:
                result.latencies.append(time.perf_counter() - started)

    stop_at = time.perf_counter() + warmup
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    measuring = True
    begin = time.perf_counter()
    stop_at = begin + duration
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - begin
    return result


def table(results: Sequence[Result], baseline: str) -> str:
    """QPS and p50/p95/p99 per row, with each row's QPS and p99 as a ratio to the baseline row of
    the same concurrency."""
    base = {r.concurrency: r for r in results if r.name == baseline}
    lines = [
        f"{'benchmark':<34}{'conc':>5}{'qps':>10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}"
        f"{'qps/base':>10}{'p99/base':>10}{'errors':>8}"
    ]
    for r in results:
        b = base.get(r.concurrency)
        qps_ratio = r.qps / b.qps if b and b.qps else float("nan")
        p99_ratio = r.percentile(99) / b.percentile(99) if b else float("nan")
        lines.append(
            f"{r.name:<34}{r.concurrency:>5}{r.qps:>10.0f}{r.percentile(50):>9.2f}{r.percentile(95):>9.2f}"
            f"{r.percentile(99):>9.2f}{qps_ratio:>10.2f}{p99_ratio:>10.2f}{r.errors:>8}"
        )
    lines += [
        f"  {r.name} (c={r.concurrency}) first error: {r.first_error}" for r in results if r.first_error
    ]
    return "\n".join(lines)


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")
