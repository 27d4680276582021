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
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, NamedTuple

from .recipes import RecipeEntry
from .schema import MatchingCosts, Rule

__all__ = [
    "Candidate",
    "JobFacts",
    "RecipeIndex",
    "TableJob",
    "consensus_first",
    "distance_parts",
    "job_key",
    "nearest",
    "table_job",
]

_FINE = "fine_tuning"


class JobFacts(NamedTuple):
    """The profile's job, as matching compares it (a tuple: built once per recommendation)."""

    architecture: str | None
    family: str | None
    generic: bool  # the architecture is a generic family name (cnn, transformer, ...)
    parent: str | None  # the architecture it was derived from (vocabulary ``parent``)
    domain: str | None  # stated, else the architecture's usual domain
    related: frozenset[str]  # domains related to it (vocabulary ``related``)
    phase: str | None  # stated or implied by the goal
    log_parameters: float | None
    log_dataset: float | None
    log_steps: float | None
    log_batch: float | None
    data: frozenset[str]
    lora: bool = False  # only low-rank adapters train (profile ``adapter``)


@dataclass(frozen=True, slots=True)
class TableJob:
    """What a seed row describes (every field from its conditions and what it cites)."""

    rule_id: str
    architecture: str | None
    family: str | None
    generic: bool
    parent: str | None
    domain: frozenset[str] | None
    phase: str | None
    log_parameters: float | None
    log_steps: float | None
    log_batch: float | None
    log_dataset: float | None = None  # rows state no data set
    data: frozenset[str] | None = None  # ... nor data traits
    imputed_parameters: bool = False
    imputed_dataset: bool = False
    #: facets the row's own conditions guarantee (small_data, small_model, large_model, a data trait): no cost
    covers: frozenset[str] = frozenset()
    lora: bool = False  # the tables describe training every weight


class Candidate(NamedTuple):
    """A recipe (or the table row, ``entry`` None) with its distance (:func:`distance_parts` explains it)."""

    entry: RecipeEntry | None
    distance: float
    #: the profile is this recipe's job word for word (it then wins over the seed row too)
    own: bool = False


def _log(x: float | None) -> float | None:
    return None if x is None or x <= 0 else math.log10(x)


@dataclass(frozen=True, slots=True)
class _Point:
    """A recipe's job with its logs precomputed."""

    entry: RecipeEntry
    rid: str
    architecture: str
    family: str | None
    generic: bool
    parent: str | None
    domain: str
    phase: str
    log_parameters: float | None
    log_dataset: float | None
    log_steps: float | None
    log_batch: float | None
    data: frozenset[str]
    lora: bool
    #: the job as profile items: a profile equal to it is this recipe's own job
    key: frozenset[tuple[str, object]]
    #: the size or data set was not stated: log_parameters / log_dataset are the typical ones of its architecture
    imputed_parameters: bool = False
    imputed_dataset: bool = False


def job_key(profile: dict[str, object]) -> frozenset[tuple[str, object]]:
    """A profile's items, hashable (lists as tuples)."""
    return frozenset((k, tuple(v) if isinstance(v, list) else v) for k, v in profile.items())


def _medians(entries: list[RecipeEntry], field: str, group: Callable[[RecipeEntry], str | None]) -> dict[Any, float]:
    """The median log10 of a job field over the recipes that state it, by group."""
    logs: dict[Any, list[float]] = {}
    for e in entries:
        value = getattr(e.recipe.job, field)
        if value:
            logs.setdefault(group(e), []).append(math.log10(value))
    return {k: statistics.median(v) for k, v in logs.items()}


class RecipeIndex:
    """The recipes by family and by domain, built once per rulebook."""

    def __init__(
        self,
        entries: Iterable[RecipeEntry],
        generic: frozenset[str],
        parent_of: dict[str, str | None],
        related_domains: dict[str, frozenset[str]] | None = None,
    ) -> None:
        self.generic = generic
        #: domain -> the domains related to it (vocabulary ``related``)
        self.related_domains = related_domains or {}
        self.parent_of = parent_of
        self._ordered: dict[tuple[object, ...], list[tuple[float, list[_Point]]]] = {}
        #: a job, word for word -> the recipes of that job
        self.by_key: dict[frozenset[tuple[str, object]], list[RecipeEntry]] = {}
        self.by_family: dict[str | None, list[_Point]] = {}
        self.by_domain: dict[str, list[_Point]] = {}
        #: the same lists in groups of one architecture, domain, phase and adapter (their discrete costs are equal)
        self.groups_by_family: dict[str | None, list[list[_Point]]] = {}
        self.groups_by_domain: dict[str, list[list[_Point]]] = {}
        entries = list(entries)
        # a size or data set a recipe does not state is taken to be the typical one (the median) of the recipes of
        # its architecture that state it, else of its family (data set: of its domain): "unknown" would otherwise
        # be nearer than every stated value more than a decade away
        self.typical_parameters = _medians(entries, "num_parameters", lambda e: e.recipe.job.architecture)
        family_parameters = _medians(entries, "num_parameters", lambda e: e.family)
        self.typical_dataset = _medians(entries, "dataset_size", lambda e: e.recipe.job.architecture)
        domain_dataset = _medians(entries, "dataset_size", lambda e: e.recipe.job.domain)
        for e in entries:
            job = e.recipe.job
            log_parameters = _log(job.num_parameters)
            imputed_parameters = log_parameters is None
            if imputed_parameters:
                log_parameters = self.typical_parameters.get(job.architecture, family_parameters.get(e.family))
            log_dataset = _log(job.dataset_size)
            imputed_dataset = log_dataset is None
            if imputed_dataset:
                log_dataset = self.typical_dataset.get(job.architecture, domain_dataset.get(job.domain))
            point = _Point(
                entry=e,
                rid=e.id,
                architecture=job.architecture,
                family=e.family,
                generic=job.architecture in generic,
                parent=parent_of.get(job.architecture),
                domain=job.domain,
                phase=job.phase,
                log_parameters=log_parameters,
                log_dataset=log_dataset,
                log_steps=_log(e.steps),
                log_batch=_log(job.batch()),
                data=frozenset(job.data),
                lora=job.adapter == "lora",
                key=job_key(job.profile()),
                imputed_parameters=imputed_parameters and log_parameters is not None,
                imputed_dataset=imputed_dataset and log_dataset is not None,
            )
            self.by_family.setdefault(e.family, []).append(point)
            self.by_domain.setdefault(job.domain, []).append(point)
            self.by_key.setdefault(point.key, []).append(e)
        self.family_parameters = family_parameters
        for source, target in ((self.by_family, self.groups_by_family), (self.by_domain, self.groups_by_domain)):
            for name, points in source.items():
                groups: dict[tuple[str, str, str, bool], list[_Point]] = {}
                for point in points:
                    groups.setdefault((point.architecture, point.domain, point.phase, point.lora), []).append(point)
                target[name] = list(groups.values())  # type: ignore[index]
        #: family -> architecture -> its groups; architecture -> the architectures derived from or with it
        self.by_architecture: dict[str | None, dict[str, list[list[_Point]]]] = {}
        for family, groups_of in self.groups_by_family.items():
            for group in groups_of:
                self.by_architecture.setdefault(family, {}).setdefault(group[0].architecture, []).append(group)
        children: dict[str, set[str]] = {}
        for arch, parent in parent_of.items():
            if parent is not None:
                children.setdefault(parent, set()).add(arch)
        self.related: dict[str, frozenset[str]] = {}
        for arch, parent in parent_of.items():
            near = set(children.get(arch, ()))
            if parent is not None:
                near |= {parent} | children.get(parent, set())
            self.related[arch] = frozenset(near - {arch})

    def any_for(self, family: str | None, domain: str | None) -> bool:
        """Whether any recipe could be considered for a job of this family (else this domain)."""
        if family is not None:
            return family in self.by_architecture
        return domain is not None and domain in self.groups_by_domain

    def candidates(self, facts: JobFacts) -> list[_Point]:
        """Every recipe matching considers for ``facts`` (its family's, else its domain's)."""
        return [p for group in self.groups(facts, math.inf, None) for p in group]

    def ordered(self, f: JobFacts, c: MatchingCosts) -> list[tuple[float, list[_Point]]]:
        """The candidate groups with their architecture, domain and phase cost, cheapest first (memoized: the
        key is every field of ``f`` those costs read)."""
        key = (f.architecture, f.family, f.generic, f.parent, f.domain, f.related, f.phase, f.lora)
        found = self._ordered.get(key)
        if found is None:
            if len(self._ordered) > 10_000:
                self._ordered.clear()
            found = sorted(((_discrete(c, f, g[0]), g) for g in self.groups(f, math.inf, None)), key=_first)
            found = self._ordered[key] = [(d, g) for d, g in found if d != math.inf]
        return found

    def groups(self, f: JobFacts, bound: float, c: MatchingCosts | None) -> list[list[_Point]]:
        """The groups whose architecture cost can be within ``bound`` (all of them when ``c`` is None)."""
        near, far = self.tiers(f, bound, c)
        return near + far

    def tiers(
        self, f: JobFacts, bound: float, c: MatchingCosts | None
    ) -> tuple[list[list[_Point]], list[list[_Point]]]:
        """The groups within ``bound`` by architecture cost, in two tiers: the job's own architecture and its
        lineage (for a generic or unknown architecture, every candidate), then the other members of its family."""
        if f.family is None:
            if f.domain is None or (c is not None and c.architecture_unknown > bound):
                return [], []
            return self.groups_by_domain.get(f.domain, []), []
        by_arch = self.by_architecture.get(f.family)
        if not by_arch:
            return [], []
        if f.generic:
            ok = c is None or c.architecture_generic <= bound
            return (self.groups_by_family[f.family] if ok else []), []
        own = f.architecture or ""
        near = list(by_arch.get(own, ()))
        lineage = self.related.get(own, frozenset())
        if c is None or c.architecture_parent <= bound:
            for arch in lineage:
                near.extend(by_arch.get(arch, ()))
        if c is not None and c.architecture_sibling > bound:
            return near, []
        far = [g for arch, groups in by_arch.items() if arch != own and arch not in lineage for g in groups]
        return near, far


#: a row condition -> the facet it guarantees the profile matches
_COVERS = {"small_data": "dataset_size", "small_model": "parameters", "large_model": "parameters"}


def table_job(
    rule: Rule,
    family_of: dict[str, str | None],
    generic: frozenset[str],
    parent_of: dict[str, str | None],
    index: RecipeIndex | None = None,
    domain_of: dict[str, str | None] | None = None,
) -> TableJob:
    """The job a seed row describes: its architecture or family, domain, and its reference model; a size or data set
    it does not state is taken as the typical one of the recipes of its architecture (``index``), as for recipes."""
    when = rule.when
    arch = when.architecture if isinstance(when.architecture, str) else None
    family = family_of.get(arch) if arch else (when.family if isinstance(when.family, str) else None)
    if arch is None and family in generic:
        arch = family  # a row keyed on a family is about the family's generic architecture (cnn, rnn, ...)
    domain = when.domain
    domains = frozenset([domain]) if isinstance(domain, str) else (frozenset(domain) if domain else None)
    usual = (domain_of or {}).get(arch) if arch else None
    if domains is None and usual is not None:
        domains = frozenset([usual])  # a row about one architecture is about it in its usual domain
    ref = rule.reference_model
    log_parameters = _log(ref.parameters) if ref else None
    log_dataset = None
    if index is not None:
        if log_parameters is None:
            log_parameters = index.typical_parameters.get(arch or "", index.family_parameters.get(family))
            imputed_parameters = log_parameters is not None
        else:
            imputed_parameters = False
        log_dataset = index.typical_dataset.get(arch or "")
    else:
        imputed_parameters = False
    covers = {facet for flag, facet in _COVERS.items() if getattr(when, flag) is True}
    if when.data is not None:
        covers.add("data")
    if "parameters" in covers:
        covers.add("parameters_imputed")
    if "dataset_size" in covers:
        covers.add("dataset_imputed")
    return TableJob(
        rule_id=rule.id,
        architecture=arch,
        family=family,
        generic=arch is None or arch in generic,
        parent=parent_of.get(arch) if arch else None,
        domain=domains,
        phase=ref.phase if ref else None,
        log_parameters=log_parameters,
        log_steps=_log(ref.steps) if ref else None,
        log_batch=_log(rule.base_batch_size),
        log_dataset=log_dataset,
        imputed_parameters=imputed_parameters,
        imputed_dataset=log_dataset is not None,
        covers=frozenset(covers),
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


def _adapter_cost(c: MatchingCosts, f: JobFacts, lora: bool) -> float:
    """LoRA adapters against training every weight: a profile that does not say it trains adapters trains them all."""
    return 0.0 if f.lora == lora else c.adapter_mismatch


def _arch_cost(
    c: MatchingCosts, f: JobFacts, arch: str | None, family: str | None, generic: bool, parent: str | None
) -> float:
    if f.architecture is None or arch is None:
        return c.architecture_unknown
    if f.family != family:
        return math.inf  # another family (a method's family is its stated backbone's: MoCo with a ViT or a ResNet)
    if f.architecture == arch:
        return 0.0
    if f.generic:
        return c.architecture_generic  # the profile names only the family: any member fits it
    if arch in (f.parent,) or parent == f.architecture or (parent is not None and parent == f.parent):
        return c.architecture_parent  # derived from one another, or from the same architecture
    return c.architecture_sibling  # another member (or a recipe that names only the family)


def _data_cost(c: MatchingCosts, f: JobFacts, data: frozenset[str] | None) -> float:
    """A trait of the profile the job does not list costs ``data_unknown``: recipes list the traits their sources make
    plain, so an absent trait is unknown rather than absent."""
    if not f.data:
        return 0.0
    return c.data_unknown * len(f.data if data is None else f.data - data)


def _domain_cost(c: MatchingCosts, f: JobFacts, domain: str | frozenset[str] | None) -> float:
    if f.domain is None:
        return 0.0
    if domain is None:
        return c.domain_unknown
    domains = frozenset([domain]) if isinstance(domain, str) else domain
    if f.domain in domains:
        return 0.0
    return c.domain_related if domains & f.related else c.domain_mismatch


Job = _Point | TableJob


def distance_parts(c: MatchingCosts, f: JobFacts, job: Job | None) -> tuple[tuple[str, float], ...]:
    """The distance from the profile's job to ``job`` (None: a job that states nothing), facet by facet: the
    terms of :func:`_discrete` and :func:`_continuous`, named."""
    if job is None:
        job = _NOTHING
    return (
        ("architecture", _arch_cost(c, f, job.architecture, job.family, job.generic, job.parent)),
        ("domain", _domain_cost(c, f, job.domain)),
        ("phase", _phase_cost(c, f.phase, job.phase)),
        ("adapter", _adapter_cost(c, f, job.lora)),
        ("parameters", _decades(c.parameters_decade, f.log_parameters, job.log_parameters, c.parameters_unknown)),
        ("parameters_imputed", c.imputed if f.log_parameters is not None and job.imputed_parameters else 0.0),
        ("dataset_size", _decades(c.dataset_decade, f.log_dataset, job.log_dataset, c.dataset_unknown)),
        ("dataset_imputed", c.imputed if f.log_dataset is not None and job.imputed_dataset else 0.0),
        ("data", _data_cost(c, f, job.data)),
        ("steps", _decades(c.steps_decade, f.log_steps, job.log_steps, c.steps_unknown)),
        ("batch_size", _decades(c.batch_decade, f.log_batch, job.log_batch, c.batch_unknown)),
    )


def _discrete(c: MatchingCosts, f: JobFacts, job: Job) -> float:
    """The architecture, domain, phase and adapter costs (equal for every recipe of one group)."""
    return (
        _arch_cost(c, f, job.architecture, job.family, job.generic, job.parent)
        + _domain_cost(c, f, job.domain)
        + _phase_cost(c, f.phase, job.phase)
        + _adapter_cost(c, f, job.lora)
    )


def _continuous(c: MatchingCosts, f: JobFacts, job: Job, covers: frozenset[str] = frozenset()) -> float:
    """The size, data, length and batch costs, but none for a facet in ``covers``: :func:`_decades` and
    :func:`_data_cost`, inlined (it runs for every candidate recipe)."""
    total = 0.0
    a = f.log_parameters
    if a is not None and "parameters" not in covers:
        b = job.log_parameters
        total += c.parameters_unknown if b is None else c.parameters_decade * abs(a - b)
        if job.imputed_parameters:
            total += c.imputed
    a = f.log_dataset
    if a is not None and "dataset_size" not in covers:
        b = job.log_dataset
        total += c.dataset_unknown if b is None else c.dataset_decade * abs(a - b)
        if job.imputed_dataset:
            total += c.imputed
    if f.data and "data" not in covers:
        total += _data_cost(c, f, job.data)
    a = f.log_steps
    if a is not None:
        b = job.log_steps
        total += c.steps_unknown if b is None else c.steps_decade * abs(a - b)
    a = f.log_batch
    if a is not None:
        b = job.log_batch
        total += c.batch_unknown if b is None else c.batch_decade * abs(a - b)
    return total


def table_distance(c: MatchingCosts, f: JobFacts, row: TableJob | None) -> Candidate:
    """How far the seed row is from the job (every facet unknown when no row applies); a facet the row's own
    conditions guarantee (it matched the profile on it) costs nothing."""
    job = row if row is not None else _NOTHING
    return Candidate(None, _discrete(c, f, job) + _continuous(c, f, job, job.covers))


def nearest(
    index: RecipeIndex,
    c: MatchingCosts,
    f: JobFacts,
    row: TableJob | None,
    exclude: frozenset[str] = frozenset(),
    *,
    keep: int = 4,
    everything: bool = False,
) -> tuple[Candidate, list[Candidate]]:
    """The table row's candidate and the ``keep`` nearest recipes that could be nearer than it (nearest first).

    Only recipes within ``max_distance`` that could beat the row by the margin are scored in full (``everything``
    scores every recipe within ``max_distance``, to explain a match).
    """
    # the row's phase is the job's when the profile states none: the tables describe an architecture's usual use
    if f.phase is None and row is not None and row.phase is not None:
        f = f._replace(phase=row.phase)
    table = table_distance(c, f, row)
    bound = c.max_distance if everything else min(c.max_distance, table.distance - c.margin + c.tie)
    if bound < 0:
        return table, []
    scored: list[tuple[float, _Point]] = []
    best = math.inf
    for discrete, group in index.ordered(f, c):
        if discrete > bound:
            break  # the groups come cheapest first: no later one can be within the bound
        for p in group:
            d = discrete + _continuous(c, f, p)
            if d <= bound and p.rid not in exclude:
                scored.append((d, p))
                if d < best and not everything:
                    best = d  # branch and bound: only recipes within tie of the best matter from here on
                    bound = min(bound, best + c.tie)
    if not scored:
        return table, []
    scored.sort(key=_by_distance)
    found = [Candidate(p.entry, d) for d, p in scored]
    return table, consensus_first(found, c.tie)[:keep]


def _first(item: tuple[float, object]) -> float:
    return item[0]


def _by_distance(item: tuple[float, _Point]) -> tuple[float, str]:
    return item[0], item[1].rid


def consensus_first(found: list[Candidate], tie: float) -> list[Candidate]:
    """Among the recipes as near as the nearest (within ``tie``), the representative one first: of the optimizer
    family most of them use, the one with the median lr (a tie broken by name would pick one at random)."""
    if len(found) < 2 or found[1].distance > found[0].distance + tie:
        return found
    near = [cand for cand in found if cand.distance <= found[0].distance + tie]
    families: dict[str, list[Candidate]] = {}
    for cand in near:
        assert cand.entry is not None
        families.setdefault(cand.entry.optimizer_family, []).append(cand)
    group = max(families.values(), key=len)  # max keeps the first of equal sizes: the nearest's family
    by_lr = sorted(group, key=lambda cand: cand.entry.recipe.config.lr if cand.entry else 0.0)
    median = by_lr[(len(by_lr) - 1) // 2]
    return [median, *(cand for cand in found if cand is not median)]


#: a job that states nothing (no seed row sets the lr)
_NOTHING = TableJob("", None, None, True, None, None, None, None, None, None)
