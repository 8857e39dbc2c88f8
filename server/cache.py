"""Redis cache-aside store with tag invalidation and single flight across processes.

Invalidation never lets a stale entry out: each tag has a version number in Redis; an entry is
stored with the versions of its tags read *before* its value was computed, and served only while
they are still current (checked in the same Lua script that reads it). `invalidate()` increments
the versions, so once it returns no process can serve an entry computed before it.

Concurrent misses of one key compute once: in a process they share one future; across processes
the first takes a short Redis lock and the others poll for its entry. Every key shares one hash
tag (`{<prefix>:cache}`) because the scripts touch an entry and its tags together; that keeps
them Redis Cluster safe, at the price of one slot for the whole cache.

Redis down or slow: lookups bypass the cache (counted), never fail.

An invalidation that fails (Redis down, paused, timing out) is not lost: its tags are kept in the
process and replayed, by a retry loop and before any cached read of this process, once Redis
answers; until then this process bypasses the cache. What that guarantees: this process never
serves an entry older than one of its own writes. Another process sharing the Redis may serve
such an entry from when Redis returns until the writer's replay (at most one retry interval),
or, should the writer die before replaying, until the entry's TTL runs out.

Tag versions expire `tag_ttl_seconds` after their last invalidation (entries live no longer than
that, so none stamped before a tag existed can outlive it). A tag created anew starts at Redis's
clock in microseconds, so it never again reaches a version some older entry was stamped with.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum

import redis.asyncio

from server.metrics import Metrics
from server.redis_guard import RedisGuard, RedisUnavailableError

log = logging.getLogger(__name__)

# KEYS: entry, lock, tag versions...; ARGV: lock token, lock ms, try to lock ("1"/"0").
# Returns {1, stamp, value} on a hit, else {0, stamp, 1 if this caller now holds the lock}.
READ = """
local versions = {}
for i = 3, #KEYS do versions[#versions + 1] = redis.call('GET', KEYS[i]) or '0' end
local stamp = table.concat(versions, ',')
local entry = redis.call('GET', KEYS[1])
if entry then
  local sep = string.find(entry, '|', 1, true)
  if sep and string.sub(entry, 1, sep - 1) == stamp then
    return {1, stamp, string.sub(entry, sep + 1)}
  end
end
local leader = 0
if ARGV[3] == '1' and redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then leader = 1 end
return {0, stamp, leader}
"""

# KEYS: entry, lock, tag versions...; ARGV: stamp read before computing, value, ttl ms, lock token.
# Stores only if no tag moved since that read (a write racing an invalidation is dropped).
STORE = """
local versions = {}
for i = 3, #KEYS do versions[#versions + 1] = redis.call('GET', KEYS[i]) or '0' end
if table.concat(versions, ',') == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[2], 'PX', ARGV[3])
end
if redis.call('GET', KEYS[2]) == ARGV[4] then redis.call('DEL', KEYS[2]) end
return 1
"""

# A stamp no entry can have: STORE with it only releases the lock.
NEVER_CURRENT = "-"

# KEYS: tag versions; ARGV: tag ttl ms. A missing tag starts at Redis's clock (microseconds).
INVALIDATE = """
local now = redis.call('TIME')
local start = now[1] .. string.format('%06d', tonumber(now[2]))
for i = 1, #KEYS do
  if not redis.call('SET', KEYS[i], start, 'NX', 'PX', ARGV[1]) then
    redis.call('INCR', KEYS[i])
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
end
return #KEYS
"""

# Tag versions outlive every entry: one day after a tag's last invalidation.
TAG_TTL_SECONDS = 86_400.0
# How often failed invalidations are retried while Redis is unavailable.
REPLAY_INTERVAL_SECONDS = 1.0


class Outcome(StrEnum):
    HIT = "HIT"
    MISS = "MISS"
    BYPASS = "BYPASS"


@dataclass(frozen=True)
class Lookup:
    value: bytes
    outcome: Outcome


Compute = Callable[[], Awaitable[bytes]]


class RedisCache:
    """Implements `services.changes.ChangeNotifier` (invalidate after commit)."""

    def __init__(
        self,
        client: redis.asyncio.Redis | None,
        guard: RedisGuard,
        metrics: Metrics,
        *,
        key_prefix: str,
        fill_wait_seconds: float = 2.0,
        jitter: float = 0.1,
        poll_seconds: float = 0.005,
        tag_ttl_seconds: float = TAG_TTL_SECONDS,
        replay_interval_seconds: float = REPLAY_INTERVAL_SECONDS,
    ) -> None:
        self._client = client
        self._guard = guard
        self._metrics = metrics
        self._base = f"{{{key_prefix}:cache}}"
        self._fill_wait = fill_wait_seconds
        self._lock_ms = int(fill_wait_seconds * 1000)
        # Lock tokens: unique per lookup across processes without a system call per lookup.
        self._token_prefix = os.urandom(8).hex()
        self._tokens = itertools.count()
        self._jitter = jitter
        self._poll = poll_seconds
        self._read = client.register_script(READ) if client is not None else None
        self._store = client.register_script(STORE) if client is not None else None
        self._invalidate = client.register_script(INVALIDATE) if client is not None else None
        self._inflight: dict[str, asyncio.Future[bytes]] = {}
        self._tag_ttl_ms = int(tag_ttl_seconds * 1000)
        self._replay_interval = replay_interval_seconds
        # Tags whose invalidation failed, replayed once Redis answers; while any are left this
        # process bypasses the cache.
        self._pending: set[str] = set()
        self._replay_lock = asyncio.Lock()
        self._replay_task: asyncio.Task[None] | None = None

    @property
    def redis_healthy(self) -> bool:
        return self._client is not None and self._guard.healthy

    @property
    def pending_invalidations(self) -> int:
        """Tags whose invalidation failed and is not yet replayed."""
        return len(self._pending)

    def entry_key(self, digest: str) -> str:
        return f"{self._base}:entry:{digest}"

    def tag_key(self, tag: str) -> str:
        return f"{self._base}:tag:{tag}"

    async def invalidate(self, tags: Collection[str]) -> None:
        if not tags:
            return
        if await self._send(set(tags)):
            self._metrics.cache_invalidations.labels("ok").inc()
            return
        # The entries would otherwise stay current until their TTL: keep the tags for a replay.
        self._pending.update(tags)
        self._metrics.cache_pending_invalidations.set(len(self._pending))
        self._metrics.cache_invalidations.labels("failed").inc()
        log.error("cache invalidation failed; kept for replay", extra={"tags": len(tags)})
        if self._replay_task is None or self._replay_task.done():
            self._replay_task = asyncio.create_task(self._replay_until_done())

    async def _send(self, tags: set[str]) -> bool:
        script = self._invalidate
        if script is None:
            return False
        keys = [self.tag_key(tag) for tag in sorted(tags)]
        try:
            await self._guard.run(lambda: script(keys=keys, args=[self._tag_ttl_ms]))
        except RedisUnavailableError:
            return False
        return True

    async def replay(self) -> bool:
        """Sends the failed invalidations again; True when none is left."""
        async with self._replay_lock:
            if not self._pending:
                return True
            batch = set(self._pending)
            if not await self._send(batch):
                return False
            # Tags that failed again meanwhile stay (they are in this batch or a later one).
            self._pending -= batch
            self._metrics.cache_pending_invalidations.set(len(self._pending))
            self._metrics.cache_invalidations.labels("replayed").inc()
            log.info("cache invalidations replayed", extra={"tags": len(batch)})
            return not self._pending

    async def _replay_until_done(self) -> None:
        while True:
            if await self.replay():
                return
            await asyncio.sleep(self._replay_interval)

    async def aclose(self) -> None:
        """Stops the replay loop (whatever is still pending is lost with the process)."""
        task, self._replay_task = self._replay_task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def get_or_compute(
        self, digest: str, tags: Sequence[str], ttl_seconds: float, compute: Compute
    ) -> Lookup:
        """The cached value of `digest`, else `compute()`'s, stored for `ttl_seconds` (jittered)."""
        shared = self._inflight.get(digest)
        if shared is not None:
            try:
                return Lookup(await asyncio.shield(shared), Outcome.HIT)
            except asyncio.CancelledError:
                if not shared.cancelled():
                    raise  # this call is being cancelled, not the one it waited for
            except Exception:  # noqa: S110 - the leader's failure is its own; compute ours
                pass
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            lookup = await self._lookup(digest, tags, ttl_seconds, compute)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as error:
            future.set_exception(error)
            future.exception()  # followers handle it; never "exception was never retrieved"
            raise
        finally:
            if self._inflight.get(digest) is future:
                del self._inflight[digest]
        future.set_result(lookup.value)
        return lookup

    async def _lookup(self, digest: str, tags: Sequence[str], ttl_seconds: float, compute: Compute) -> Lookup:
        read, store = self._read, self._store
        if read is None or store is None or (self._pending and not await self.replay()):
            return await self._bypass(compute)
        keys = [self.entry_key(digest), f"{self._base}:lock:{digest}", *(self.tag_key(tag) for tag in tags)]
        token = f"{self._token_prefix}{next(self._tokens)}"
        lock_ms = self._lock_ms
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._fill_wait
        try:
            while True:
                hit, stamp, value = await self._guard.run(lambda: read(keys=keys, args=[token, lock_ms, "1"]))
                if hit:
                    return Lookup(bytes(value), Outcome.HIT)
                if value == 1 or loop.time() >= deadline:
                    break  # we hold the lock (or waited long enough): compute
                await asyncio.sleep(self._poll)
        except RedisUnavailableError:
            return await self._bypass(compute)
        try:
            produced = await compute()
        except BaseException:
            # Release the lock at once so that other processes stop waiting for this value.
            with contextlib.suppress(RedisUnavailableError):
                await self._guard.run(lambda: store(keys=keys, args=[NEVER_CURRENT, b"", 1, token]))
            raise
        ttl_ms = max(1, int(min(ttl_seconds * 1000, self._tag_ttl_ms) * (1 - random.random() * self._jitter)))
        # Without Redis the value was computed anyway; the next call tries to store again.
        with contextlib.suppress(RedisUnavailableError):
            await self._guard.run(lambda: store(keys=keys, args=[stamp, produced, ttl_ms, token]))
        return Lookup(produced, Outcome.MISS)

    async def _bypass(self, compute: Compute) -> Lookup:
        return Lookup(await compute(), Outcome.BYPASS)
