"""Which published recipe is nearest to the caller's job, and is it nearer than the seed table's row?

A job is compared facet by facet: architecture, domain, phase, model size, data set size, data traits,
and (as tie-breakers) training length and batch size. The costs are stated in principles.toml
``[matching]``. The seed table's row is a candidate too, described by what it cites (its reference model,
its reference batch, its phase); it wins ties, so a recipe decides only where the profile says something
that the recipe matches better than the row (004's tables stay the first layer).

When the profile does not state its phase, the row's phase is assumed (the tables describe the usual use of
an architecture: BERT's 5e-5 is a fine-tuning lr), else training from random weights: a fine-tuning recipe
starts from pretrained weights, which a profile must say it has.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from .recipes import RecipeEntry
from .schema import MatchingCosts, Rule

__all__ = ["Candidate", "JobFacts", "RecipeIndex", "TableJob", "nearest"]

_FINE = "fine_tuning"


@dataclass(frozen=True, slots=True)
class JobFacts:
    """The profile's job, as matching compares it."""

    architecture: str | None
    family: str | None
    generic: bool  # the architecture is a generic family name (cnn, transformer, ...)
    domain: str | None  # stated, else the architecture's usual domain
    phase: str | None  # stated or implied by the goal
    log_parameters: float | None
    log_dataset: float | None
    log_steps: float | None
    log_batch: float | None
    data: frozenset[str]


@dataclass(frozen=True, slots=True)
class TableJob:
    """What the seed row that sets the lr describes (every field from what the row cites)."""

    rule_id: str
    architecture: str | None
    family: str | None
    generic: bool
    domain: frozenset[str] | None
    phase: str | None
    log_parameters: float | None
    log_steps: float | None
    log_batch: float | None


@dataclass(frozen=True, slots=True)
class Candidate:
    """A recipe (or the table row, ``entry`` None) with its distance and what it is made of."""

    entry: RecipeEntry | None
    distance: float
    parts: tuple[tuple[str, float], ...]


def _log(x: float | None) -> float | None:
    return None if x is None or x <= 0 else math.log10(x)


@dataclass(frozen=True, slots=True)
class _Point:
    """A recipe's job with its logs precomputed."""

    entry: RecipeEntry
    architecture: str
    family: str | None
    domain: str
    phase: str
    log_parameters: float | None
    log_dataset: float | None
    log_steps: float | None
    log_batch: float | None
    data: frozenset[str]


class RecipeIndex:
    """The recipes by family and by domain, built once per rulebook."""

    def __init__(self, entries: Iterable[RecipeEntry], generic: frozenset[str]) -> None:
        self.generic = generic
        self.by_family: dict[str | None, list[_Point]] = {}
        self.by_domain: dict[str, list[_Point]] = {}
        for e in entries:
            job = e.recipe.job
            point = _Point(
                entry=e,
                architecture=job.architecture,
                family=e.family,
                domain=job.domain,
                phase=job.phase,
                log_parameters=_log(job.num_parameters),
                log_dataset=_log(job.dataset_size),
                log_steps=_log(e.steps),
                log_batch=_log(job.batch_size),
                data=frozenset(job.data),
            )
            self.by_family.setdefault(e.family, []).append(point)
            self.by_domain.setdefault(job.domain, []).append(point)

    def candidates(self, facts: JobFacts) -> list[_Point]:
        if facts.family is not None:
            return self.by_family.get(facts.family, [])
        if facts.domain is not None:
            return self.by_domain.get(facts.domain, [])
        return []


def table_job(rule: Rule, family_of: dict[str, str | None], generic: frozenset[str]) -> TableJob:
    """The job a seed row describes: its architecture or family, domain, and its reference model."""
    when = rule.when
    arch = when.architecture if isinstance(when.architecture, str) else None
    family = family_of.get(arch) if arch else (when.family if isinstance(when.family, str) else None)
    domain = when.domain
    domains = frozenset([domain] if isinstance(domain, str) else domain) if domain else None
    ref = rule.reference_model
    return TableJob(
        rule_id=rule.id,
        architecture=arch,
        family=family,
        generic=arch is None or arch in generic,
        domain=domains,
        phase=ref.phase if ref else None,
        log_parameters=_log(ref.parameters) if ref else None,
        log_steps=_log(ref.steps) if ref else None,
        log_batch=_log(rule.base_batch_size),
    )


def _decades(costs: float, a: float | None, b: float | None, unknown: float) -> float:
    """``costs`` per decade between two logs; ``unknown`` when only the profile's side is known."""
    if a is None:
        return 0.0
    if b is None:
        return unknown
    return costs * abs(a - b)


def _phase_cost(c: MatchingCosts, want: str | None, have: str | None) -> float:
    if want is None:
        return c.phase_unstated_fine_tuning if have == _FINE else 0.0
    if have is None:
        return c.phase_unknown
    if want == have:
        return 0.0
    if _FINE in (want, have):
        return c.phase_mismatch
    return c.phase_near  # pretraining vs from scratch: both start from random weights


def _arch_cost(c: MatchingCosts, f: JobFacts, arch: str | None, family: str | None, generic: bool) -> float:
    if f.architecture is None or arch is None:
        return c.architecture_unknown
    if f.architecture == arch:
        return 0.0
    if f.family != family:
        return math.inf
    if f.generic or generic:
        return c.architecture_generic
    return c.architecture_sibling


def _cost(
    c: MatchingCosts,
    f: JobFacts,
    *,
    arch: str | None,
    family: str | None,
    generic: bool,
    domain_ok: bool | None,
    phase: str | None,
    log_parameters: float | None,
    log_dataset: float | None,
    log_steps: float | None,
    log_batch: float | None,
    data: frozenset[str] | None,
) -> tuple[float, tuple[tuple[str, float], ...]]:
    parts = (
        ("architecture", _arch_cost(c, f, arch, family, generic)),
        (
            "domain",
            0.0 if f.domain is None or domain_ok else (c.domain_unknown if domain_ok is None else c.domain_mismatch),
        ),
        ("phase", _phase_cost(c, f.phase, phase)),
        ("parameters", _decades(c.parameters_decade, f.log_parameters, log_parameters, c.parameters_unknown)),
        ("dataset_size", _decades(c.dataset_decade, f.log_dataset, log_dataset, c.dataset_unknown)),
        (
            "data",
            0.0
            if not f.data
            else (c.data_unknown * len(f.data) if data is None else c.data_trait * len(f.data - data)),
        ),
        ("steps", _decades(c.steps_decade, f.log_steps, log_steps, c.steps_unknown)),
        ("batch_size", _decades(c.batch_decade, f.log_batch, log_batch, c.batch_unknown)),
    )
    return sum(cost for _, cost in parts), parts


def table_distance(c: MatchingCosts, f: JobFacts, row: TableJob | None) -> Candidate:
    """How far the seed row is from the job (every facet unknown when no row sets an lr)."""
    if row is None:
        total, parts = _cost(
            c, f, arch=None, family=None, generic=True, domain_ok=None, phase=None, log_parameters=None,
            log_dataset=None, log_steps=None, log_batch=None, data=None,
        )  # fmt: skip
        return Candidate(None, total, parts)
    domain_ok = None if row.domain is None else (f.domain in row.domain if f.domain is not None else True)
    phase = row.phase
    total, parts = _cost(
        c, f, arch=row.architecture, family=row.family if row.family else f.family, generic=row.generic,
        domain_ok=domain_ok, phase=phase, log_parameters=row.log_parameters, log_dataset=None,
        log_steps=row.log_steps, log_batch=None, data=None,
    )  # fmt: skip
    return Candidate(None, total, parts)


def nearest(
    index: RecipeIndex,
    c: MatchingCosts,
    f: JobFacts,
    row: TableJob | None,
    exclude: frozenset[str] = frozenset(),
    *,
    keep: int = 4,
) -> tuple[Candidate, list[Candidate]]:
    """The table row's candidate and the ``keep`` nearest recipes (nearest first, ties by id)."""
    # the row's phase is the job's when the profile states none: the tables describe an architecture's usual use
    if f.phase is None and row is not None and row.phase is not None:
        f = JobFacts(
            f.architecture, f.family, f.generic, f.domain, row.phase, f.log_parameters, f.log_dataset,
            f.log_steps, f.log_batch, f.data,
        )  # fmt: skip
    table = table_distance(c, f, row)
    found: list[Candidate] = []
    for p in index.candidates(f):
        if p.entry.id in exclude:
            continue
        total, parts = _cost(
            c, f, arch=p.architecture, family=p.family, generic=p.architecture in index.generic,
            domain_ok=f.domain is None or p.domain == f.domain, phase=p.phase, log_parameters=p.log_parameters,
            log_dataset=p.log_dataset, log_steps=p.log_steps, log_batch=p.log_batch, data=p.data,
        )  # fmt: skip
        if total <= c.max_distance:
            found.append(Candidate(p.entry, total, parts))
    found.sort(key=lambda cand: (cand.distance, cand.entry.id if cand.entry else ""))
    return table, found[:keep]
