"""Training details the deciding rules leave unsaid, from the published recipes of the same job.

The seed tables decide optimizer and learning rate for a job they describe, but they are silent on some
training details that papers state, gradient clipping above all: 004's BERT row gives AdamW at 5e-5 with
warmup and says nothing of clipping, while every BERT fine-tuning recipe in the library clips the global
norm at 1.0 (google-research/bert optimization.py:73-74).  Where no recipe is nearer than the table row
(so the row decides) and the deciding rules say nothing of such a detail, it is filled in when the
recipes of the *same architecture and phase, trained with the same optimizer family* all state it with
one value; it is cited to them.  Recipes that disagree, or of another architecture, phase or optimizer
family, fill nothing: their setting was chosen for a different job or update.

The schedule's shape is filled the same way when the recipes agree on one that runs from its shape alone
(constant, cosine or linear): off-policy RL recipes (SAC, TD3) keep the lr constant where the catalog's default
would decay it.

The warmup's length is the other such detail: 004 gives one figure for every job (10% of the steps, its NLP
starting point), while the recipes of one job state their own, and those of LLM pre-training warm up for
0.1-1% of the run (GPT-3 375M of 300B tokens, Brown et al. 2020 §2.3 / Table 2.1).  Where at least two recipes
of the same architecture, phase and optimizer family state a warmup and every one of them warms up, the
warmup is the median of their fractions of the run; where at least two state it and none of them warms up
(RL, GAN and recommender scripts start at the peak lr) and a recipe decides, the answer does not warm up either
(where the seed row decides, 004 §6.2's warmup for Adam/AdamW stands: the tables are the first layer).  If some warm up
and some do not, they disagree on whether to warm up at all and nothing is filled.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from typing import Any, Final, NamedTuple

from .construct import new as _new
from .derive import shown
from .loader import CACHE_LIMIT, Rulebook
from .recipes import RecipeEntry
from .recommendation import RationaleEntry

__all__ = [
    "FILLABLE_SCHEDULES",
    "SILENT_FIELDS",
    "Agreed",
    "agreed_details",
    "fill_silent",
    "typical_warmup",
]

#: the training-plan keys the recipes may fill (train key -> recipe config attribute)
SILENT_FIELDS: Final = {"clip_norm": "clip_norm", "schedule": "schedule"}
#: the schedule shapes a fill may carry: they run from their shape alone (a step or poly schedule needs its
#: milestones or power, which belong to the recipe that states them)
FILLABLE_SCHEDULES: Final = frozenset({"constant", "cosine", "linear"})


class Agreed(NamedTuple):
    """One detail the recipes of a job agree on: the train key, its value and the recipes that state it."""

    key: str
    value: Any
    recipes: tuple[RecipeEntry, ...]


def _same_job(
    recipes: Iterable[RecipeEntry], architecture: str | None, phase: str | None, optimizer_family: str
) -> list[RecipeEntry]:
    if architecture is None or phase is None:
        return []
    return [
        e
        for e in recipes
        if e.recipe.job.architecture == architecture
        and e.recipe.job.phase == phase
        and e.optimizer_family == optimizer_family
    ]


def agreed_details(
    recipes: Iterable[RecipeEntry], architecture: str | None, phase: str | None, optimizer_family: str
) -> tuple[Agreed, ...]:
    """The :data:`SILENT_FIELDS` that every recipe of ``architecture`` and ``phase`` trained with an optimizer of
    ``optimizer_family`` states with the same value (a recipe that leaves one unstated neither adds nor vetoes)."""
    same = _same_job(recipes, architecture, phase, optimizer_family)
    out = []
    for key, attr in SILENT_FIELDS.items():
        stating = [e for e in same if getattr(e.recipe.config, attr) is not None]
        values = {getattr(e.recipe.config, attr) for e in stating}
        if len(values) == 1 and (key != "schedule" or values <= FILLABLE_SCHEDULES):
            out.append(Agreed(key, values.pop(), tuple(sorted(stating, key=lambda e: e.id))))
    return tuple(out)


def typical_warmup(
    recipes: Iterable[RecipeEntry], architecture: str | None, phase: str | None, optimizer_family: str
) -> Agreed | None:
    """``warmup_ratio``: the median warmup fraction of the recipes of ``architecture`` and ``phase`` trained with
    ``optimizer_family`` that state one, when at least two do and all of them warm up; ``warmup`` False when at
    least two state one and none of them warms up (their code starts at the peak lr); else None."""
    stating = [e for e in _same_job(recipes, architecture, phase, optimizer_family) if e.warmup_ratio is not None]
    ratios = [e.warmup_ratio for e in stating if e.warmup_ratio is not None]
    if len(ratios) < 2:
        return None
    cited = tuple(sorted(stating, key=lambda e: e.id))
    if max(ratios) <= 0:
        return Agreed("warmup", False, cited)
    if min(ratios) <= 0:
        return None  # some warm up, some do not: no agreement on whether to
    return Agreed("warmup_ratio", round(statistics.median(ratios), 6), cited)


def fill_silent(
    book: Rulebook,
    architecture: str | None,
    phase: str | None,
    chosen: str,
    exclude: frozenset[str],
    train: dict[str, Any],
    notes: list[str],
    *,
    recipe_decides: bool = False,
) -> RationaleEntry | None:
    """Details the deciding rules (the seed row, or the recipe that decides) leave unsaid (clipping; the warmup's
    length) taken from the recipes of the same architecture, phase and optimizer family (rules/companion.py);
    the rationale entry that says so, or None."""
    spec = book.optimizers[chosen]
    key = ("agreed", architecture, phase, spec.family, exclude)
    found = book.cache.get(key)
    if found is None:
        if len(book.cache) > CACHE_LIMIT:
            book.cache.clear()
        same = book.recipes_by_job.get((architecture, phase, spec.family), []) if architecture and phase else []
        kept = [e for e in same if e.id not in exclude]  # held out: not consulted
        found = book.cache[key] = (
            agreed_details(kept, architecture, phase, spec.family),
            typical_warmup(kept, architecture, phase, spec.family),
        )
    agreed, warmup = found
    filled = [a for a in agreed if a.key not in train and a.value]
    said = [f"every one trains with {a.key} {shown(a.value)}" for a in filled]
    # the rules' warmup is on, with 004's one fraction for every job: the recipes of this job say how long
    warms = train.get("warmup", spec.warmup) and not {"warmup_ratio", "short_warmup"} & train.keys()
    # no warmup at all only where a recipe decides: where the seed row decides, 004 §6.2 pairs Adam/AdamW with a
    # linear warmup, and the tables stay the first layer
    if warmup is not None and warms and (warmup.key != "warmup" or recipe_decides):
        filled.append(warmup)
        said.append(
            "none of them warms up (each starts at its peak lr)"
            if warmup.key == "warmup"
            else f"their median warmup is {warmup.value:.3g} of the run"
        )
    if not filled:
        return None
    for a in filled:
        train[a.key] = a.value
    ids = sorted({e.id for a in filled for e in a.recipes})
    sources = "; ".join(sorted({e.citation for a in filled for e in a.recipes}))
    what = "; ".join(said)
    notes.append(f"The deciding rules are silent on it; of the published recipes of this job, {what} "
                      f"({', '.join(ids)}).")  # fmt: skip
    return _new(
        RationaleEntry,
        rule=book.recipe_rules[ids[0]].id,
        source=sources,
        level="recipe",
        status="applied",
        effect=f"Of the published recipes of this architecture and phase with this optimizer family, {what}; "
        "the deciding rules say nothing of it.",
        detail=f"from {', '.join(ids)} (rules/companion.py)",
    )
