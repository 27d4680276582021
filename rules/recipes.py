"""Load, check and compile the recipe library (``rules/data/recipes/*.toml``) and the bibliography.

Each recipe becomes a :class:`RecipeEntry`: the validated :class:`~optirec.rules.recipe_schema.Recipe`,
the values converted to the engine's units (warmup ratio, milestone fractions, final-lr fraction), and
a synthetic rule of level ``recipe`` that the engine votes and derives hyperparameters with, exactly as
it does with the seed tables' rows. Matching a profile to recipes is :mod:`optirec.rules.matching`;
selecting them by architecture, domain and phase, and the recipe-file checker behind
``python -m optirec.rules``, are :mod:`optirec.rules.recipe_tools` (they need the loaded rulebook and the
profile's vocabulary, which themselves import this module).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .data_files import read_toml, validate_entry
from .errors import RulebookError, suggest
from .recipe_schema import Recipe
from .schema import ReferenceModel, Rule, Term
from .sources import Bibliography, SourceEntry

__all__ = ["RecipeEntry", "compile_recipe", "load_bibliography", "load_recipe_file"]

#: recipe schedule -> the schedule the engine answers with ("plateau": the lr drops when validation stalls,
#: which a fixed-length plan approximates with step decay)
_SCHEDULE = {"plateau": "step"}
#: a cite's reference to another source: "@<source id>" at the start or after a separator
_CITED = re.compile(r"(?:^|[\s;(,])@([a-z0-9][a-z0-9_]*)")


@dataclass(frozen=True, slots=True)
class RecipeEntry:
    """A recipe with what matching and adaptation need precomputed."""

    recipe: Recipe
    file: str
    family: str | None
    #: the optimizer family of the catalog ("sgd", "adaptive", ...)
    optimizer_family: str
    steps: int | None
    warmup_ratio: float | None
    milestones: tuple[float, ...] | None
    final_lr_fraction: float | None
    citation: str
    rule: Rule
    #: the recipe's id (``recipe.id``, kept beside it: matching reads it in its inner loops)
    id: str

    def as_dict(self) -> dict[str, Any]:
        """The recipe as published (JSON-ready), with its file and citation."""
        r = self.recipe
        return {
            "id": r.id,
            "title": r.title,
            "source": r.source,
            "citation": self.citation,
            "dataset": r.dataset,
            "file": self.file,
            "job": r.job.model_dump(exclude_none=True, exclude_defaults=True) | {"phase": r.job.phase},
            "config": r.config.model_dump(mode="json", exclude_none=True),
            "cite": dict(r.cite),
            "notes": r.notes,
        }


def load_bibliography(paths: Sequence[Path]) -> Bibliography:
    """``[[source]]`` entries of every file in ``paths`` (sources.toml first), ids unique."""
    entries: list[SourceEntry] = []
    seen: dict[str, str] = {}
    for path in paths:
        raw = read_toml(path).get("source", [])
        for i, item in enumerate(raw):
            entry: SourceEntry = validate_entry(SourceEntry, item, path.name, "source", i)
            if entry.id in seen:
                raise RulebookError(path.name, entry.id, "id", f"duplicate source id (first in {seen[entry.id]})")
            seen[entry.id] = path.name
            entries.append(entry)
    book = Bibliography(entries)
    spellings: dict[str, str] = {}
    for entry in entries:
        for spelling in entry.cite_as:
            if spelling in spellings and spellings[spelling] != entry.id:
                raise RulebookError(
                    "sources.toml", entry.id, "cite_as", f"{spelling!r} already cites {spellings[spelling]!r}"
                )
            spellings[spelling] = entry.id
    return book


def _known(kind: str, value: str, valid: Iterable[str], file: str, rid: str, field: str) -> None:
    valid = list(valid)
    if value not in valid:
        hint = suggest(value, valid)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        raise RulebookError(file, rid, field, f"unknown {kind} {value!r}{extra}")


def _ratio(part: float, whole: float | None) -> float | None:
    return None if whole is None or whole <= 0 else part / whole


def compile_recipe(
    recipe: Recipe,
    file: str,
    *,
    vocabulary: Mapping[str, Mapping[str, Term]],
    optimizer_families: Mapping[str, str],
    bibliography: Bibliography,
) -> RecipeEntry:
    """Check a recipe's references and convert its values to the engine's units."""
    rid = recipe.id
    job, cfg = recipe.job, recipe.config
    _known("architecture", job.architecture, vocabulary["architecture"], file, rid, "job.architecture")
    if job.backbone is not None:
        _known("architecture", job.backbone, vocabulary["architecture"], file, rid, "job.backbone")
    _known("domain", job.domain, vocabulary["domain"], file, rid, "job.domain")
    for trait in job.data:
        _known("data characteristic", trait, vocabulary["data"], file, rid, "job.data")
    if job.goal is not None:
        _known("goal", job.goal, vocabulary["goal"], file, rid, "job.goal")
    _known("optimizer", cfg.optimizer, optimizer_families, file, rid, "config.optimizer")
    entry = bibliography.entries.get(recipe.source)
    if entry is None:
        _known("source", recipe.source, bibliography.entries, file, rid, "source")
        raise AssertionError  # pragma: no cover - _known raised
    for key, where in recipe.cite.items():
        for other in _CITED.findall(where):  # "@<source id> <location>", anywhere in the cite
            _known("source", other, bibliography.entries, file, rid, f"cite.{key}")
    if not entry.cite_as:
        raise RulebookError(file, rid, "source", f"source {recipe.source!r} has no cite_as to cite it by")

    steps = job.steps()
    warmup: float | None = None
    if cfg.warmup_ratio is not None:
        warmup = cfg.warmup_ratio
    elif cfg.warmup_steps is not None:
        warmup = 0.0 if cfg.warmup_steps == 0 else _ratio(cfg.warmup_steps, steps)
    elif cfg.warmup_epochs is not None:
        warmup = 0.0 if cfg.warmup_epochs == 0 else _ratio(cfg.warmup_epochs, job.epochs)
    if warmup is None and (cfg.warmup_steps or cfg.warmup_epochs):
        raise RulebookError(file, rid, "config.warmup", "a warmup in steps or epochs needs the run's length in the job")
    if warmup is not None and not 0 <= warmup < 1:
        raise RulebookError(file, rid, "config.warmup", f"the warmup is {warmup:.3g} of the run; must be under 1")

    milestones: tuple[float, ...] | None = cfg.step_milestones
    if cfg.step_epochs is not None:
        if not job.epochs:
            raise RulebookError(file, rid, "config.step_epochs", "step_epochs needs job.epochs")
        milestones = tuple(e / job.epochs for e in cfg.step_epochs)
    elif cfg.step_steps is not None:
        if not steps:
            raise RulebookError(file, rid, "config.step_steps", "step_steps needs the run's length in the job")
        milestones = tuple(s / steps for s in cfg.step_steps)
    if milestones is not None and not all(0 < f < 1 for f in milestones):
        raise RulebookError(file, rid, "config.step_milestones", f"milestones {milestones} fall outside the run")

    final = cfg.final_lr_fraction
    if cfg.min_lr is not None:
        final = cfg.min_lr / cfg.lr
        if final > 1:
            raise RulebookError(file, rid, "config.min_lr", f"min_lr {cfg.min_lr} is above the peak lr {cfg.lr}")
    if cfg.exp_decay_rate is not None and cfg.exp_decay_every_epochs is not None:
        if not job.epochs:
            raise RulebookError(file, rid, "config.exp_decay_every_epochs", "exponential decay per epoch needs epochs")
        final = cfg.exp_decay_rate ** (job.epochs / cfg.exp_decay_every_epochs)

    citation = f"external: {entry.cite_as[0]}, {recipe.where.replace(';', ',')}"
    rule = _recipe_rule(recipe, citation, steps, warmup, milestones, final)
    arch = vocabulary["architecture"][job.architecture]
    encoder = vocabulary["architecture"][job.backbone] if job.backbone is not None else None
    return RecipeEntry(
        recipe=recipe,
        file=file,
        family=arch.family_with(encoder),  # a method that trains its backbone: the backbone's family
        optimizer_family=optimizer_families[cfg.optimizer],
        steps=steps,
        warmup_ratio=warmup,
        milestones=milestones,
        final_lr_fraction=final,
        citation=citation,
        rule=rule,
        id=recipe.id,
    )


_HP_KEYS = ("lr", "momentum", "dampening", "nesterov", "betas", "eps", "alpha", "centered", "weight_decay")


def _recipe_rule(
    recipe: Recipe,
    citation: str,
    steps: int | None,
    warmup: float | None,
    milestones: tuple[float, ...] | None,
    final: float | None,
) -> Rule:
    """The recipe as a rule of level ``recipe``: it votes for its optimizer and sets what it states."""
    job, cfg = recipe.job, recipe.config
    hp = {k: getattr(cfg, k) for k in _HP_KEYS if getattr(cfg, k) is not None}
    train: dict[str, Any] = {}
    batch = job.batch()
    if batch is not None:
        train["batch_size"] = batch
    if cfg.schedule is not None:
        train["schedule"] = _SCHEDULE.get(cfg.schedule, cfg.schedule)
    if warmup is not None:
        train["warmup"] = warmup > 0
        if warmup > 0:
            train["warmup_ratio"] = round(warmup, 6)
            if steps is not None:
                train["warmup_steps"] = max(1, round(warmup * steps))
    if milestones is not None:
        train["step_milestones"] = tuple(round(f, 4) for f in milestones)
    if cfg.step_gamma is not None:
        train["step_gamma"] = cfg.step_gamma
    if final is not None:
        train["final_lr_fraction"] = round(final, 6)
    if cfg.poly_power is not None:
        train["poly_power"] = cfg.poly_power
    if cfg.clip_norm is not None:
        train["clip_norm"] = cfg.clip_norm
    if cfg.ema_decay is not None:
        train["ema_decay"] = cfg.ema_decay
    if cfg.layer_decay is not None:
        train["layerwise_lr_decay"] = cfg.layer_decay
    if cfg.weight_decay_excludes is not None:
        train["weight_decay_excludes"] = tuple(cfg.weight_decay_excludes)
    reference = None
    if job.num_parameters is not None or steps is not None:
        reference = ReferenceModel(
            name=recipe.title[:80],
            parameters=job.num_parameters,
            steps=steps if steps is not None and steps >= 100 else None,
            phase=job.phase,
            source=citation,
        )
    effect = f"Published recipe: {recipe.title}" + (f" ({recipe.dataset})" if recipe.dataset else "") + "."
    if recipe.notes:
        effect += " " + recipe.notes
    return Rule(
        id=f"recipe.{recipe.id}",
        source=citation,
        level="recipe",
        prefer=[cfg.optimizer],
        apply_to=[cfg.optimizer],
        set=hp,
        train=train,
        base_batch_size=batch,
        reference_model=reference,
        effect=effect,
    )


def load_recipe_file(
    path: Path,
    *,
    vocabulary: Mapping[str, Mapping[str, Term]],
    optimizer_families: Mapping[str, str],
    bibliography: Bibliography,
) -> list[RecipeEntry]:
    """The ``[[recipe]]`` entries of one file, validated and compiled."""
    raw = read_toml(path)
    stray = sorted(set(raw) - {"recipe"})
    if stray:
        raise RulebookError(path.name, None, stray[0], "a recipe file holds only [[recipe]] tables")
    out = []
    for i, item in enumerate(raw.get("recipe", [])):
        recipe: Recipe = validate_entry(Recipe, item, path.name, "recipe", i)
        out.append(
            compile_recipe(
                recipe,
                path.name,
                vocabulary=vocabulary,
                optimizer_families=optimizer_families,
                bibliography=bibliography,
            )
        )
    return out
