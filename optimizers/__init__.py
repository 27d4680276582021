"""optirec.optimizers: a Recommendation as real torch objects.

    from optirec.optimizers import build, train_step
    optimizer, scheduler, clipping = build(model, recommendation)

Names are imported on first use (PEP 562), so ``optirec.optimizers.exporters`` and the
``optirec recommend --format`` path stay free of torch; everything else imports torch (and, for
the optimizers torch lacks, pytorch-optimizer).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .autoconfigure import autoconfig as autoconfig
    from .builder import BuildResult as BuildResult
    from .builder import as_recommendation as as_recommendation
    from .builder import build as build
    from .errors import BuildError as BuildError
    from .errors import ExportError as ExportError
    from .errors import NewtonTooLarge as NewtonTooLarge
    from .exporters import FORMATS as FORMATS
    from .exporters import export as export
    from .groups import plan_groups as plan_groups
    from .hybrid import HybridOptimizer as HybridOptimizer
    from .lr_finder import LRRangeTest as LRRangeTest
    from .lr_finder import lr_range_test as lr_range_test
    from .memory import state_bytes as state_bytes
    from .memory import state_multiplier as state_multiplier
    from .racing import RaceEntry as RaceEntry
    from .racing import race as race
    from .registry import make_optimizer as make_optimizer
    from .registry import resolve_class as resolve_class
    from .schedulers import SCHEDULES as SCHEDULES
    from .schedulers import build_scheduler as build_scheduler
    from .training import evaluation_mode as evaluation_mode
    from .training import train_mode as train_mode
    from .training import train_step as train_step
    from .trial import TrialBudget as TrialBudget
    from .trial import TrialResult as TrialResult
    from .trial import run_trial as run_trial
    from .validation import Candidate as Candidate
    from .validation import ValidationReport as ValidationReport
    from .validation import validate as validate

_HOMES = {
    "autoconfig": "autoconfigure",
    "BuildResult": "builder",
    "as_recommendation": "builder",
    "build": "builder",
    "BuildError": "errors",
    "ExportError": "errors",
    "NewtonTooLarge": "errors",
    "FORMATS": "exporters",
    "export": "exporters",
    "plan_groups": "groups",
    "HybridOptimizer": "hybrid",
    "state_bytes": "memory",
    "state_multiplier": "memory",
    "make_optimizer": "registry",
    "resolve_class": "registry",
    "SCHEDULES": "schedulers",
    "build_scheduler": "schedulers",
    "evaluation_mode": "training",
    "train_mode": "training",
    "train_step": "training",
    "LRRangeTest": "lr_finder",
    "lr_range_test": "lr_finder",
    "TrialBudget": "trial",
    "TrialResult": "trial",
    "run_trial": "trial",
    "Candidate": "validation",
    "RaceEntry": "racing",
    "ValidationReport": "validation",
    "race": "racing",
    "validate": "validation",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'optirec.optimizers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
