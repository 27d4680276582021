"""optirec.optimizers: a Recommendation as real torch objects.

    from optirec.optimizers import build, train_step
    optimizer, scheduler, clipping = build(model, recommendation)

Imports torch (and, for the optimizers torch lacks, pytorch-optimizer) when used; the rules side
never does.
"""

from .autoconfig import autoconfig
from .build import BuildResult, as_recommendation, build
from .errors import BuildError, ExportError, NewtonTooLarge
from .groups import plan_groups
from .hybrid import HybridOptimizer
from .memory import state_bytes, state_multiplier
from .registry import make_optimizer, resolve_class
from .schedulers import SCHEDULES, build_scheduler
from .training import train_step

__all__ = [
    "SCHEDULES",
    "BuildError",
    "BuildResult",
    "ExportError",
    "HybridOptimizer",
    "NewtonTooLarge",
    "as_recommendation",
    "autoconfig",
    "build",
    "build_scheduler",
    "make_optimizer",
    "plan_groups",
    "resolve_class",
    "state_bytes",
    "state_multiplier",
    "train_step",
]
