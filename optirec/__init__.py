"""optirec: an optimizer-recommendation expert system for deep-learning jobs.

    >>> from optirec import recommend
    >>> recommend({"architecture": "resnet", "batch_size": 1024}).optimizer.name
    'sgd_momentum'

``recommend`` is pure Python (stdlib + pydantic) and never imports torch.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from .rules import (
    Diagnosis,
    OptirecError,
    Profile,
    ProfileError,
    Recommendation,
    RulebookError,
    UnknownNameError,
    diagnose,
    recommend,
)


def __getattr__(name: str) -> Any:
    """``autoconfig`` and ``validate`` live on the torch side: imported only when asked for."""
    if name in ("autoconfig", "validate"):
        from . import optimizers

        return getattr(optimizers, name)
    raise AttributeError(f"module 'optirec' has no attribute {name!r}")


try:
    __version__ = version("optirec")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0"

__all__ = [
    "Diagnosis",
    "OptirecError",
    "Profile",
    "ProfileError",
    "Recommendation",
    "RulebookError",
    "UnknownNameError",
    "__version__",
    "autoconfig",
    "diagnose",
    "recommend",
    "validate",
]
