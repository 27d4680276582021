"""Reading and validating the knowledge base's TOML files: one error shape (file, entry, field) for all of them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .errors import RulebookError

__all__ = ["read_toml", "validate_entry"]


def read_toml(path: Path) -> dict[str, Any]:
    """A TOML file's tables; a file that is not valid TOML or not UTF-8 raises RulebookError naming it."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise RulebookError(path.name, None, None, f"not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise RulebookError(path.name, None, None, f"not UTF-8 text (byte {exc.start}): {exc.reason}") from None


def _location(error: ErrorDetails) -> str:
    return ".".join(str(p) for p in error["loc"])


def validate_entry(model: type[BaseModel], raw: Any, file: str, what: str, index: int) -> Any:
    """``raw`` validated as ``model``; the first problem raises RulebookError naming file, entry and field."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = raw.get("id") or raw.get("name") if isinstance(raw, dict) else None
        label = str(name) if name else f"{what} #{index + 1}"
        raise RulebookError(file, label, _location(err) or None, err["msg"]) from None
