"""Exceptions raised by the rules side of optirec.

Domain code raises these; only ``service/`` turns them into HTTP status codes or exit codes.

    OptirecError
     ├── RulebookError        a knowledge-base file is malformed (names file, rule and field)
     ├── ProfileError         a Profile is invalid (names each field, the bad value, the valid values)
     └── UnknownNameError     an optimizer / rule / symptom name is not in the catalog
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FieldIssue",
    "OptirecError",
    "ProfileError",
    "RulebookError",
    "UnknownNameError",
    "suggest",
]


def suggest(value: object, candidates: Iterable[str]) -> str | None:
    """The closest candidate to ``value`` ("did you mean"), or None when nothing is close."""
    if not isinstance(value, str):
        return None
    key = value.strip().lower().replace("-", "_").replace(" ", "_")
    matches = difflib.get_close_matches(key, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


class OptirecError(Exception):
    """Base class of every error optirec raises on purpose."""


class RulebookError(OptirecError):
    """A knowledge-base file failed validation at load time."""

    def __init__(self, file: str, rule: str | None, field: str | None, message: str) -> None:
        self.file = file
        self.rule = rule
        self.field = field
        self.message = message
        where = file
        if rule:
            where += f": rule {rule!r}"
        if field:
            where += f": field {field!r}"
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class FieldIssue:
    """One problem with one field of a submitted document."""

    field: str
    message: str
    value: Any = None
    valid: Sequence[str] | None = None
    suggestion: str | None = None

    def sentence(self) -> str:
        text = f"{self.field}: {self.message}"
        if self.suggestion:
            text += f" (did you mean {self.suggestion!r}?)"
        if self.valid:
            text += f"; valid values: {', '.join(self.valid)}"
        return text

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.value is not None:
            out["value"] = self.value
        if self.valid:
            out["valid"] = list(self.valid)
        if self.suggestion:
            out["suggestion"] = self.suggestion
        return out


class ProfileError(OptirecError, ValueError):
    """A Profile (or another submitted document) did not validate."""

    def __init__(self, issues: Sequence[FieldIssue]) -> None:
        self.issues = list(issues)
        super().__init__("; ".join(i.sentence() for i in self.issues))

    def first_line(self) -> str:
        """One line for a CLI: the first issue, and how many more there are."""
        line = self.issues[0].sentence() if self.issues else "invalid input"
        if len(self.issues) > 1:
            line += f" (and {len(self.issues) - 1} more problem(s))"
        return line


class UnknownNameError(OptirecError, LookupError):
    """A name (optimizer, rule, symptom) is not in the knowledge base."""

    def __init__(self, kind: str, name: str, valid: Sequence[str]) -> None:
        self.kind = kind
        self.name = name
        self.valid = list(valid)
        self.suggestion = suggest(name, valid)
        self.issue = FieldIssue(
            field=kind, message=f"unknown {kind} {name!r}", value=name, valid=self.valid, suggestion=self.suggestion
        )
        super().__init__(self.issue.sentence())
