"""Settings from the environment: `EXODRIVE_*` variables, plus `DATABASE_URL` and `REDIS_URL`.

With neither URL set, `serve` starts embedded PostgreSQL and Redis under `data_dir` (the
zero-config default). Secrets are `SecretStr` so they never print.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EXODRIVE_", extra="ignore", populate_by_name=True)

    # --- where the data lives -------------------------------------------------------------
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "EXODRIVE_DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_URL", "EXODRIVE_REDIS_URL")
    )
    data_dir: Path = Path(".exodrive")
    db_pool_size: int = 10
    db_statement_timeout_ms: int = 5000
    # A database that refuses, hangs or has no free connection fails a call UNAVAILABLE within
    # about connect + pool timeouts (under the gateway's deadline), instead of hanging it.
    db_connect_timeout_seconds: float = 3.0
    db_pool_timeout_seconds: float = 3.0
    # The database role every transaction runs as (SET LOCAL ROLE): a non-superuser, so that row
    # level security applies. The login role must be a member of it. Empty runs as the login role.
    db_session_role: str = "exodrive_app"
    # Prefix of every Redis key, so that several deployments (or test runs) can share a server.
    redis_key_prefix: str = "exodrive"
    redis_timeout_ms: int = 50
    seed_demo_fleet: bool = True

    # --- network ------------------------------------------------------------------------
    host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_port: int = 8080
    # Prometheus metrics of `serve` (also on the gateway's /metrics): 0 picks a free port, a
    # negative value serves none. With --workers N the parent serves every worker's, aggregated.
    metrics_port: int = 9464
    shutdown_grace_seconds: float = 10.0

    # --- business rules -----------------------------------------------------------------
    business_timezone: str = "America/New_York"
    tax_rate: Decimal = Decimal("0.10")
    currency: str = "USD"
    hold_minutes: int = 30
    max_rental_days: int = 90
    # A booking or a quote starts at most this many days after today (business timezone).
    max_advance_days: int = 730
    # A guest's booking access token stays valid this many days after the rental ends.
    access_token_grace_days: int = 30

    # --- authentication -----------------------------------------------------------------
    jwt_secret: SecretStr | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None

    # --- edge: switches and limits ------------------------------------------------------
    cache_enabled: bool = True
    rate_limit_enabled: bool = True
    # Addresses or CIDRs of proxies (the gateway) whose `x-forwarded-for` is believed.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Calls per window of each rate-limit tier (design §5), and the windows.
    rate_limit_public: int = 60
    rate_limit_authenticated: int = 120
    rate_limit_admin: int = 300
    rate_limit_booking_create: int = 10
    # Per provider, over the sliding window: a burst of up to 600 deliveries is admitted at once,
    # and a refused one is retried by the provider (Svix backs off), so nothing is lost; a
    # deployment whose provider sustains more than 10/s raises this (the benchmark does).
    rate_limit_webhook: int = 600
    rate_limit_window_seconds: float = 60.0
    rate_limit_booking_window_seconds: float = 3600.0
    # Client addresses/CIDRs or token subjects that are never limited.
    rate_limit_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Keys the hashes of client addresses and subjects in Redis keys; defaults to the JWT secret.
    key_hash_secret: SecretStr | None = None
    # How long concurrent misses of one cache key wait for the process computing it.
    cache_fill_wait_ms: int = 2000
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)

    # --- HTTP gateway -------------------------------------------------------------------
    # Largest request body the gateway reads; larger ones are refused with 413.
    gateway_max_body_bytes: int = 1_048_576
    # Deadline of an upstream call when the request sends no `Grpc-Timeout`.
    gateway_timeout_seconds: float = 10.0

    # --- webhooks -----------------------------------------------------------------------
    # Several secrets may be valid at once while one is rotated.
    resend_webhook_secrets: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    # --- logs ---------------------------------------------------------------------------
    log_level: str = "INFO"

    @field_validator(
        "trusted_proxies", "cors_origins", "resend_webhook_secrets", "rate_limit_allowlist", mode="before"
    )
    @classmethod
    def _csv(cls, value: object) -> object:
        return _split_csv(value)

    @property
    def zero_config(self) -> bool:
        return self.database_url is None or self.redis_url is None
