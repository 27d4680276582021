"""Numbers from submitted documents: the one place that says whether a JSON number is usable as a float.

JSON has no limit on the size of an integer and Python's json module parses ``1`` followed by 400 zeros as an
int; ``float(n)`` and ``math.isfinite(n)`` then raise OverflowError for any ``|n| >= 2**1024`` (CPython
Objects/longobject.c PyLong_AsDouble, "int too large to convert to float"). Every range check of a submitted
number goes through :func:`finite_float`, so such a number is an issue naming its field, never an exception.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BeforeValidator, Strict

__all__ = [
    "BEYOND_FLOAT",
    "INTEGRAL",
    "JsonBool",
    "JsonFloat",
    "JsonInt",
    "beyond_float",
    "finite_float",
    "first_beyond_float",
]


def _integral(value: Any) -> Any:
    """4.0 as 4: JSON Schema counts a number with a zero fraction as an integer (and so do generated clients)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


#: 4.0 taken as 4, for an int annotation: put bounds before it (``Annotated[int, Strict(), Field(ge=0), INTEGRAL]``) so
#: that the schema says minimum/maximum (after it, pydantic writes them as unknown "ge"/"le" keys)
INTEGRAL = BeforeValidator(_integral)
#: A JSON integer as JSON Schema means it: 4 and 4.0, never "4", 4.5 or true.
JsonInt = Annotated[int, Strict(), INTEGRAL]
#: A JSON number: 0.5 and 1, never "0.5" or false.
JsonFloat = Annotated[float, Strict()]
#: A JSON boolean: true or false, never 1 or "yes".
JsonBool = Annotated[bool, Strict()]

#: The message of a number outside a 64-bit float's range (sys.float_info.max is about 1.8e308).
BEYOND_FLOAT = "is outside the range of a 64-bit float (its magnitude must be below about 1.8e308)"


def beyond_float(value: Any) -> bool:
    """True for a number (not a bool) that no 64-bit float can hold: an int of magnitude 2**1024 or more."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    try:
        float(value)
    except OverflowError:
        return True
    return False


def finite_float(value: Any) -> float | None:
    """``value`` as a finite float; None for a bool, a non-number, NaN, ±inf or a number beyond float range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    try:
        x = float(value)
    except OverflowError:
        return None
    return x if math.isfinite(x) else None


def first_beyond_float(document: Any, field: str) -> str | None:
    """The dotted path (``field.key[0]``) of the first number beyond float range in a document of dicts, lists
    and tuples, or None. Iterative, so a deeply nested document cannot exhaust the stack."""
    stack: list[tuple[Any, str]] = [(document, field)]
    while stack:
        value, where = stack.pop()
        if beyond_float(value):
            return where
        if isinstance(value, Mapping):
            stack.extend((item, f"{where}.{key}") for key, item in reversed(list(value.items())))
        elif isinstance(value, list | tuple):
            stack.extend((item, f"{where}[{i}]") for i, item in reversed(list(enumerate(value))))
    return None
