"""Exceptions raised by the torch side of optirec.

    OptirecError                      (optirec.rules.errors)
     └── BuildError (ValueError)      a recommendation cannot be turned into torch objects as asked
          ├── NewtonTooLarge          Newton's exact Hessian would not fit (O(n^2) memory)
          └── ExportError             a format cannot express a recommendation

Each carries ``field`` (what to change) and ``message``; ``str(err)`` is "field: message".
"""

from __future__ import annotations

from optirec.rules.errors import OptirecError

__all__ = ["BuildError", "ExportError", "NewtonTooLarge"]


class BuildError(OptirecError, ValueError):
    """A recommendation (or its use) cannot be built into torch objects."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class NewtonTooLarge(BuildError):
    """Newton's method was asked for more parameters than its exact Hessian can hold."""

    def __init__(self, num_parameters: int, limit: int) -> None:
        super().__init__(
            "num_parameters",
            f"Newton's method needs an exact Hessian of {num_parameters:,}^2 = {num_parameters**2:,} values "
            f"(O(n^2) memory); it is refused above {limit:,} parameters",
        )
        self.num_parameters = num_parameters
        self.limit = limit


class ExportError(BuildError):
    """A recommendation cannot be expressed in the requested export format."""
