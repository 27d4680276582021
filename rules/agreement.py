"""How far an answer agrees with a published recipe, field by field (bench/recipes.py, the recipe tests).

Only the fields the recipe states are scored; each is ``True`` (agrees), ``False`` or absent:

- ``family``: the optimizer family (SGD with or without momentum / Nesterov; the Adam variants; each other
  optimizer its own), ``optimizer``: the exact catalog name;
- ``lr_2x`` / ``lr_3x``: the lr within 2x / 3x of the published one (the answer is for the recipe's own batch);
- ``betas``: both betas within 0.005, ``momentum`` within 0.005, ``weight_decay`` within 3x (0 only matches 0);
- ``schedule``: the same shape (a recipe's plateau drop is step decay); ``warmup``: both warm up or neither, and
  when both do, the fraction of the run within 2x; ``clipping``: both clip (max norm within 2x) or neither.

The mean agreement is over every (recipe, stated field) cell, ``lr_3x`` and ``optimizer`` left out of it (they
are reported beside it): the fields a reader of the paper would check.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .recipes import RecipeEntry
from .recommendation import Recommendation

__all__ = ["FAMILIES", "MEAN_FIELDS", "agreement", "family_of"]

#: optimizer families for the family field: the rest are their own family
FAMILIES: dict[str, str] = {
    "sgd": "sgd",
    "sgd_momentum": "sgd",
    "nag": "sgd",
    "adam": "adam",
    "adamw": "adam",
    "adamax": "adam",
    "nadam": "adam",
    "radam": "adam",
    "adabound": "adam",
    # the learning-rate-free and schedule-free variants keep their base method's update (Adam's moments, SGD's
    # momentum) and set its step size or averaging themselves
    "prodigy": "adam",
    "dadapt_adam": "adam",
    "schedulefree_adamw": "adam",
    "schedulefree_sgd": "sgd",
}
#: the fields the mean agreement averages over
MEAN_FIELDS = ("family", "lr_2x", "betas", "momentum", "weight_decay", "schedule", "warmup", "clipping")


def family_of(name: str) -> str:
    return FAMILIES.get(name, name)


def _close(a: float, b: float, factor: float) -> bool:
    if a == 0 or b == 0:
        return a == b
    return max(a / b, b / a) <= factor * (1 + 1e-9)


def agreement(rec: Recommendation, entry: RecipeEntry) -> dict[str, bool]:
    """The fields ``entry`` states, each scored against ``rec``."""
    cfg = entry.recipe.config
    hp: Mapping[str, Any] = rec.optimizer.hyperparameters
    out: dict[str, bool] = {
        "family": family_of(rec.optimizer.name) == family_of(cfg.optimizer),
        "optimizer": rec.optimizer.name == cfg.optimizer,
    }
    lr = hp.get("lr")
    out["lr_2x"] = lr is not None and _close(float(lr), cfg.lr, 2.0)
    out["lr_3x"] = lr is not None and _close(float(lr), cfg.lr, 3.0)
    if cfg.betas is not None:
        betas = hp.get("betas")
        out["betas"] = betas is not None and all(abs(a - b) <= 0.005 for a, b in zip(betas, cfg.betas, strict=True))
    if cfg.momentum is not None and family_of(cfg.optimizer) == "sgd":
        out["momentum"] = abs(float(hp.get("momentum", 0.0)) - cfg.momentum) <= 0.005
    if cfg.weight_decay is not None:
        out["weight_decay"] = _close(float(hp.get("weight_decay", 0.0)), cfg.weight_decay, 3.0)
    if cfg.schedule is not None:
        published = "step" if cfg.schedule == "plateau" else cfg.schedule
        out["schedule"] = rec.schedule.name == published
    if entry.warmup_ratio is not None:
        ours = rec.schedule.warmup_ratio
        theirs = entry.warmup_ratio
        out["warmup"] = (ours > 0) == (theirs > 0) and (theirs == 0 or _close(ours, theirs, 2.0))
    if cfg.clip_norm is not None:
        clip = rec.gradient_clipping.max_norm if rec.gradient_clipping is not None else 0.0
        out["clipping"] = _close(clip, cfg.clip_norm, 2.0)
    return out
