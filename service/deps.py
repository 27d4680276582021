"""FastAPI dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from optirec.rules import Rulebook, default_rulebook

from .settings import Settings, get_settings

__all__ = ["RulebookDep", "SettingsDep"]

SettingsDep = Annotated[Settings, Depends(get_settings)]
RulebookDep = Annotated[Rulebook, Depends(default_rulebook)]
