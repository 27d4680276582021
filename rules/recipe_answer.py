"""What of the deciding recipe reached the caller's answer: the answer's ``recipe`` block, each value carried
to the caller's job with from, to and why, and the runners-up."""

from __future__ import annotations

import math
from typing import Any

from .construct import new as _new
from .matching import Candidate
from .recipes import RecipeEntry
from .recommendation import AdaptedValue, Clipping, LRScaling, NearRecipe, RecipeInfo, ScheduleSpec

__all__ = ["recipe_info"]


def recipe_info(
    recipe: RecipeEntry,
    table: Candidate,
    near: list[Candidate],
    chosen: str,
    hp: dict[str, Any],
    scaling: LRScaling,
    schedule: ScheduleSpec,
    clipping: Clipping | None,
    batch: int | None,
    warnings: list[str],
    notes: list[str],
) -> RecipeInfo:
    """What of the recipe was carried to the caller's job, with from, to and why."""
    cfg, job = recipe.recipe.config, recipe.recipe.job
    adapted: list[AdaptedValue] = []

    def changed(field: str, was: Any, now: Any, why: str) -> None:
        if was != now:
            adapted.append(_new(AdaptedValue, field=field, from_=was, to=now, why=why))

    if chosen != cfg.optimizer:
        why = next((w for w in warnings if cfg.optimizer in w), "a constraint of the profile rules it out")
        changed("optimizer", cfg.optimizer, chosen, why)
    else:
        changed("lr", cfg.lr, hp.get("lr"), scaling.reason)
        for key in ("momentum", "betas", "eps", "weight_decay", "alpha", "nesterov", "centered"):
            stated = getattr(cfg, key)
            if stated is not None and key in hp:
                value = list(stated) if isinstance(stated, tuple) else stated
                note = next((n for n in notes if n.startswith(f"{chosen} {key}:")), "a rule of the profile")
                changed(key, value, hp[key], note)
    if job.batch_size is not None and batch is not None:
        changed("batch_size", job.batch_size, batch, "your batch size; the lr follows it (see lr)")
    if recipe.steps is not None and schedule.total_steps is not None:
        changed("total_steps", recipe.steps, schedule.total_steps, "your run's length: warmup and step milestones "
                "keep their fractions of it")  # fmt: skip
        if recipe.warmup_ratio and schedule.warmup_steps is not None:
            changed("warmup_steps", round(recipe.warmup_ratio * recipe.steps), schedule.warmup_steps,
                    f"{recipe.warmup_ratio:.3g} of the run, as the recipe warms up")  # fmt: skip
    if cfg.schedule is not None:
        why = (
            "the recipe drops the lr when validation stops improving; a fixed plan approximates it with step decay"
            if cfg.schedule == "plateau"
            else next((n for n in notes if n.startswith("schedule:")), "a rule of the profile")
        )
        changed("schedule", cfg.schedule, schedule.name, why)
    if cfg.clip_norm is not None:
        changed("clip_norm", cfg.clip_norm or None, clipping.max_norm if clipping else None, "a rule of the profile")
    return _new(
        RecipeInfo,
        id=recipe.id,
        title=recipe.recipe.title,
        source=recipe.citation,
        distance=round(near[0].distance, 3) if near else 0.0,
        table_distance=round(table.distance, 3) if math.isfinite(table.distance) else None,
        adapted=adapted,
        nearest=[
            _new(
                NearRecipe,
                id=c.entry.id,
                title=c.entry.recipe.title,
                distance=round(c.distance, 3),
                optimizer=c.entry.recipe.config.optimizer,
            )
            for c in near[1:]
            if c.entry is not None
        ],
    )
