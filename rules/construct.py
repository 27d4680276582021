"""Build output models from values the engine already guarantees, without re-validating them."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

__all__ = ["new"]

_M = TypeVar("_M", bound=BaseModel)

# BaseModel's slots, set through their descriptors (``new`` runs about ten times per recommendation)
_object_new = object.__new__
_set_attr = object.__setattr__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def new(cls: type[_M], **values: Any) -> _M:
    """The same as ``cls.model_construct(**values)`` for a model whose every field is given, at a fraction of the
    cost; tests round-trip every answer through ``model_validate``."""
    obj = _object_new(cls)
    _set_attr(obj, "__dict__", values)
    _set_fields_set(obj, set(values))
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj
