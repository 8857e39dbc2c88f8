"""The test session leaves nothing in the shared Redis: its prefix's keys are deleted at the end."""

from __future__ import annotations

import redis
from conftest import delete_keys

from server.settings import Settings


def test_delete_keys_removes_every_key_of_the_prefix_and_nothing_else(settings: Settings) -> None:
    assert settings.redis_url is not None
    prefix = f"{settings.redis_key_prefix}-hygiene"
    other = f"{settings.redis_key_prefix}x-hygiene-other"
    with redis.Redis.from_url(settings.redis_url) as client:
        client.set(f"{prefix}:ratelimit:{{a}}", 1)
        client.set(f"{{{prefix}:cache}}:tag:fleet", 1)
        client.set(f"{{{prefix}-derived:cache}}:entry:x", 1)
        client.set(other, 1)
        assert delete_keys(settings.redis_url, prefix) == 3
        assert client.exists(other) == 1
        client.unlink(other)
        assert list(client.scan_iter(match=f"*{prefix}*")) == []
