"""Service configuration: one Settings object, read from ``OPTIREC_*`` environment variables.

A bad value refuses to start the service with a message naming the variable.
"""

from __future__ import annotations

import ipaddress
from functools import cache
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .trials.ray_address import parse_ray_address, ray_missing, unreachable

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Everything the service can be told, with safe defaults (SQLite, loopback)."""

    model_config = SettingsConfigDict(env_prefix="OPTIREC_", extra="ignore", frozen=True)

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    max_body_bytes: int = Field(default=1_000_000, ge=1024, le=100_000_000, description="Largest request body.")
    recommend_cache_size: int = Field(
        default=1024,
        ge=0,
        le=1_000_000,
        description="Rendered /recommend answers kept for repeated profiles (about 6 KB each; at most "
        "recommend_cache_bytes in all); 0 turns the cache off.",
    )
    recommend_cache_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=0,
        le=16 * 1024**3,
        description="Most bytes of rendered answers the /recommend cache holds (least recently used go first); "
        "0 turns the cache off.",
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        description="Largest request line + headers; a larger head is a 431 and the connection is closed.",
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a whole request head (from connecting, or from its first byte "
        "on a kept-alive connection); then 408 and disconnected.",
    )
    body_timeout: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a whole request body after its head, however it trickles in; "
        "then 408 and disconnected.",
    )
    keep_alive_timeout: int = Field(
        default=5,
        ge=1,
        le=3600,
        description="Seconds an idle kept-alive connection stays open (uvicorn config.py timeout_keep_alive, "
        "whose default this is).",
    )
    forwarded_allow_ips: list[str] = Field(
        default_factory=list,
        description="Proxies (IP addresses or networks, JSON list) whose X-Forwarded-For/-Proto are believed; "
        "empty: none, the client is the peer address.",
    )
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS (JSON list).")
    api_key: SecretStr | None = Field(
        default=None, description="When set, the /trials endpoints require it (X-API-Key or Authorization: Bearer)."
    )
    trial_store: str = Field(
        default="./optirec-trials.sqlite3",
        min_length=1,
        description="SQLite file of the trial queue and results (':memory:' keeps them only while the process runs).",
    )
    trial_concurrency: int = Field(
        default=1, ge=0, le=64, description="Trials run at the same time (one worker process each); 0 = queue only."
    )
    trial_queue_size: int = Field(default=8, ge=1, le=10_000, description="Queued trials before POST /trials is 429.")
    trial_retry_after: int = Field(default=30, ge=1, le=3600, description="Retry-After seconds of a 429.")
    trial_max_steps: int = Field(default=2000, ge=1, le=1_000_000, description="Most optimizer steps per trial.")
    trial_max_seconds: float = Field(default=300.0, gt=0, le=86_400, description="Wall-clock budget of one trial.")
    trial_max_parameters: int = Field(default=50_000_000, ge=1, description="Largest proxy model a trial may build.")
    trial_max_size: int = Field(default=8, ge=1, le=64, description="Largest workload size a trial may ask for.")
    trial_max_memory_mb: int | None = Field(
        default=None,
        ge=0,
        le=16_777_216,
        description="Most resident memory (MiB) a trial worker process may hold while it runs a trial, torch and "
        "the workload's libraries included (a CPU worker holds about 300-650 MiB before any big tensor). A trial "
        "whose estimated peak (service/trials/envelope.py) is over it is refused with a 422 naming both; a worker "
        "that passes it anyway is killed and its trial fails naming the limit (Linux: read from /proc). "
        "Unset: trial_memory_fraction of this machine's memory (RAM, or the cgroup limit) over trial_concurrency "
        "workers. 0 = no limit.",
    )
    trial_memory_fraction: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the machine's memory the trial workers may use together when trial_max_memory_mb "
        "is unset.",
    )

    trial_backend: Literal["process", "ray"] = Field(
        default="process",
        description="Where trials run: 'process' (worker processes on this machine, the default) or 'ray' (tasks "
        "on the Ray cluster at ray_address; needs the optirec[ray] extra). See service/trials/ray_backend.py.",
    )
    ray_address: str = Field(
        default="auto",
        validate_default=True,
        description="The Ray cluster trials run on when trial_backend is 'ray': 'auto' (RAY_ADDRESS, else the "
        "cluster `ray start` last started on this machine), 'host:port' (its GCS) or 'ray://host:port' (Ray "
        "Client). Checked at start-up: a cluster that does not answer refuses to start the service.",
    )

    @field_validator("trial_backend")
    @classmethod
    def _ray_is_installed(cls, value: str) -> str:
        if value == "ray":
            missing = ray_missing()
            if missing:
                raise ValueError(missing)
        return value

    @field_validator("ray_address")
    @classmethod
    def _ray_answers(cls, value: str, info: ValidationInfo) -> str:
        """The address's form always; that a cluster answers there only when trials run on Ray."""
        parsed = parse_ray_address(value)
        if info.data.get("trial_backend") == "ray":
            trouble = unreachable(parsed)
            if trouble:
                raise ValueError(trouble)
        return value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _proxy_addresses(cls, value: list[str]) -> list[str]:
        """Addresses uvicorn's ProxyHeadersMiddleware can match (uvicorn/middleware/proxy_headers.py
        _TrustedHosts): IPs or networks; its "*" (trust everyone) is refused, as any client could then lie."""
        for item in value:
            try:
                ipaddress.ip_network(item)  # strict, as _TrustedHosts parses a network
            except ValueError:
                raise ValueError(f"{item[:80]!r} is not an IP address or network (host bits clear)") from None
        return value

    @field_validator("api_key", mode="before")
    @classmethod
    def _blank_key_is_no_key(cls, value: object) -> object:
        """``OPTIREC_API_KEY=`` (empty) means no key, never "the empty string is the key"."""
        if isinstance(value, str) and not value.strip():
            return None
        return value


@cache
def get_settings() -> Settings:
    return Settings()
