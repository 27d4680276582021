"""Training details the deciding rules leave unsaid, from the published recipes of the same job.

The seed tables decide optimizer and learning rate for a job they describe, but they are silent on some
training details that papers state, gradient clipping above all: 004's BERT row gives AdamW at 5e-5 with
warmup and says nothing of clipping, while every BERT fine-tuning recipe in the library clips the global
norm at 1.0 (google-research/bert optimization.py:73-74).  Where no recipe is nearer than the table row
(so the row decides) and the deciding rules say nothing of such a detail, it is filled in when the
recipes of the *same architecture and phase, trained with the same optimizer family* all state it with
one value; it is cited to them.  Recipes that disagree, or of another architecture, phase or optimizer
family, fill nothing: their setting was chosen for a different job or update.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final, NamedTuple

from .recipes import RecipeEntry

__all__ = ["SILENT_FIELDS", "Agreed", "agreed_details"]

#: the training-plan keys the recipes may fill (train key -> recipe config attribute)
SILENT_FIELDS: Final = {"clip_norm": "clip_norm"}


class Agreed(NamedTuple):
    """One detail the recipes of a job agree on: the train key, its value and the recipes that state it."""

    key: str
    value: Any
    recipes: tuple[RecipeEntry, ...]


def agreed_details(
    recipes: Iterable[RecipeEntry], architecture: str | None, phase: str | None, optimizer_family: str
) -> tuple[Agreed, ...]:
    """The :data:`SILENT_FIELDS` that every recipe of ``architecture`` and ``phase`` trained with an optimizer of
    ``optimizer_family`` states with the same value (a recipe that leaves one unstated neither adds nor vetoes)."""
    if architecture is None or phase is None:
        return ()
    same = [
        e
        for e in recipes
        if e.recipe.job.architecture == architecture
        and e.recipe.job.phase == phase
        and e.optimizer_family == optimizer_family
    ]
    out = []
    for key, attr in SILENT_FIELDS.items():
        stating = [e for e in same if getattr(e.recipe.config, attr) is not None]
        values = {getattr(e.recipe.config, attr) for e in stating}
        if len(values) == 1:
            out.append(Agreed(key, values.pop(), tuple(sorted(stating, key=lambda e: e.id))))
    return tuple(out)
