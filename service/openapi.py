"""``openapi.yaml``: the service's OpenAPI document, generated from the app (``optirec openapi``, ``make openapi``).

The document is built from ``create_app()`` with the default settings (the environment is not read), so the
same code always gives the same bytes; a test fails when the committed file drifts from the app.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HEADER", "openapi_document", "render_openapi"]

#: First lines of the generated file.
HEADER = (
    "# Generated from optirec.service.app.create_app() by `make openapi` (optirec openapi --output openapi.yaml).\n"
    "# Do not edit by hand: a test fails when this file and the app drift apart.\n"
)


def openapi_document() -> dict[str, Any]:
    """The app's OpenAPI schema as a plain dict (default settings, environment ignored)."""
    from .app import create_app
    from .settings import Settings

    return create_app(Settings.model_construct()).openapi()


def render_openapi(document: dict[str, Any] | None = None) -> str:
    """The schema as YAML text: keys in the app's order, unicode kept, stable across runs."""
    import yaml

    body = yaml.safe_dump(
        document if document is not None else openapi_document(),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=120,
    )
    return HEADER + body
