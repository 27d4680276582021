"""Service configuration: one Settings object, read from ``OPTIREC_*`` environment variables.

A bad value refuses to start the service with a message naming the variable.
"""

from __future__ import annotations

from functools import cache
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


class Settings(BaseSettings):
    """Everything the service can be told, with safe defaults (SQLite, loopback)."""

    model_config = SettingsConfigDict(env_prefix="OPTIREC_", extra="ignore", frozen=True)

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    max_body_bytes: int = Field(default=1_000_000, ge=1024, le=100_000_000, description="Largest request body.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS (JSON list).")


@cache
def get_settings() -> Settings:
    return Settings()
