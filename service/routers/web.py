"""The web form at ``/``, its static assets under ``/static`` and ``GET /profile/fields``.

The page is static HTML + JavaScript (no CDN, works offline); it reads the Profile's fields and
their valid options from ``GET /profile/fields``, which is derived from the live :class:`Profile`
model and the rulebook vocabulary, so a new field or value shows up in the form without an edit here.
Page and assets carry a strict Content-Security-Policy (no inline script, same origin only).
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal

import annotated_types
from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from pydantic.fields import FieldInfo
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from optirec.rules import Rulebook, default_rulebook
from optirec.rules.profile import ENUM_FIELDS, Profile, profile_field_options

from ..deps import RulebookDep

__all__ = ["SECURITY_HEADERS", "STATIC_DIR", "FieldOption", "ProfileField", "install", "profile_fields", "router"]

#: The page and its assets: ``service/static``.
STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

#: Sent with ``/`` and everything under ``/static``.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

FieldType = Literal["enum", "multi_enum", "integer", "number", "boolean", "string"]

router = APIRouter()


class FieldOption(BaseModel):
    """One valid value of an enumerated field."""

    value: str = Field(description="The canonical name the API expects.")
    label: str = Field(description="A human label (from rules/data/vocabulary.toml).")
    description: str = ""
    source: str = Field(default="", description="Seed citation of the value.")


class ProfileField(BaseModel):
    """One Profile field, as a form renders it."""

    name: str
    label: str = Field(description="A human label derived from the name.")
    type: FieldType
    description: str = ""
    options: list[FieldOption] = Field(default_factory=list, description="Valid values (enum and multi_enum).")
    minimum: int | float | None = None
    maximum: int | float | None = None
    exclusive_minimum: int | float | None = None
    exclusive_maximum: int | float | None = None
    max_items: int | None = None
    examples: list[Any] = Field(default_factory=list)


_WORDS = {"rl": "RL", "gb": "GB", "num": "Number of"}


def _label(name: str) -> str:
    words = [_WORDS.get(w, w) for w in name.split("_")]
    text = " ".join(words)
    return text[0].upper() + text[1:] if text else text


def _scalar_type(annotation: Any) -> Any:
    """``int | None`` -> int, ``Annotated[bool, Strict()] | None`` -> bool, ``list[str]`` -> list."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _scalar_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _scalar_type(args[0]) if len(args) == 1 else str
    if origin in (list, tuple, set, frozenset):
        return list
    return annotation


def _field_type(name: str, info: FieldInfo) -> FieldType:
    scalar = _scalar_type(info.annotation)
    if name in ENUM_FIELDS:
        return "multi_enum" if scalar is list else "enum"
    if scalar is bool:
        return "boolean"
    if scalar is int:
        return "integer"
    if scalar is float:
        return "number"
    return "string"


def _bounds(info: FieldInfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for meta in info.metadata:
        if isinstance(meta, annotated_types.Ge):
            out["minimum"] = meta.ge
        elif isinstance(meta, annotated_types.Gt):
            out["exclusive_minimum"] = meta.gt
        elif isinstance(meta, annotated_types.Le):
            out["maximum"] = meta.le
        elif isinstance(meta, annotated_types.Lt):
            out["exclusive_maximum"] = meta.lt
        elif isinstance(meta, annotated_types.MaxLen):
            out["max_items"] = meta.max_length
    return out


def profile_fields(book: Rulebook | None = None) -> list[ProfileField]:
    """Every Profile field, in model order, with its type, valid options and bounds."""
    book = book or default_rulebook()
    valid = profile_field_options()
    fields: list[ProfileField] = []
    for name, info in Profile.model_fields.items():
        options: list[FieldOption] = []
        if name in ENUM_FIELDS:
            kind = ENUM_FIELDS[name]
            allowed = set(valid[name])
            # vocabulary order (the seed tables' order) reads better than alphabetical
            ordered = [t.name for t in book.vocabulary[kind] if t.name in allowed]
            ordered += sorted(allowed - set(ordered))
            terms = book.terms.get(kind, {})
            for value in ordered:
                term = terms.get(value)
                options.append(
                    FieldOption(
                        value=value,
                        label=term.label if term else value,
                        description=term.description if term else "",
                        source=term.source if term else "",
                    )
                )
        fields.append(
            ProfileField(
                name=name,
                label=_label(name),
                type=_field_type(name, info),
                description=info.description or "",
                options=options,
                examples=list(info.examples or []),
                **_bounds(info),
            )
        )
    return fields


@router.get(
    "/profile/fields",
    response_model=list[ProfileField],
    tags=["knowledge base"],
    summary="The Profile's fields with their valid options (what the web form renders)",
)
async def get_profile_fields(book: RulebookDep) -> list[ProfileField]:
    """Derived from the live Profile model and the rulebook vocabulary: nothing is duplicated by hand."""
    return profile_fields(book)


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


class SecureStaticFiles(StaticFiles):
    """StaticFiles that adds the security headers and asks browsers to revalidate."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        response.headers.setdefault("Cache-Control", "no-cache")
        return response


def install(app: FastAPI) -> None:
    """Add the page, ``/profile/fields`` and the ``/static`` mount to ``app``."""
    app.include_router(router)
    app.mount("/static", SecureStaticFiles(directory=STATIC_DIR), name="static")
