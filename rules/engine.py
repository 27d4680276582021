"""The rules engine: Profile -> Recommendation, explained.  Pure Python; never imports torch.

Conflict policy (stated, deterministic):

1. Hard constraints first.  A memory constraint (``memory_limited``, ``on_device``, or a
   ``device_memory_gb`` too small for parameters + gradients + optimizer state per device, after sharding)
   sets a budget of optimizer-state values per parameter (004 §2.1 memory column; rules/memory.py).
   Optimizers over budget, and the optimizers a data characteristic makes unsuitable (004 §2.4), go to
   ``avoid`` and never come first.
2. A published recipe nearer to the job than the seed row (rules/matching.py) votes above every row and
   sets every value it states; the rows fill in what it leaves open.  A data row's ``avoid`` does not
   apply to the recipe's optimizer when the recipe's own job had that trait (it was trained that way).
3. Specificity.  Every matching rule votes for its preferences (1st, 2nd, 3rd choice) with the weight of
   its level: recipe > architecture > domain > constraint rows > generic family > data / goal > guides >
   default.  Weights are spaced so that no sum of less specific votes outweighs one more specific vote; a
   rule with more conditions weighs more within its level.  The best-scoring eligible optimizer is chosen.
4. Ties are broken by catalog order.  Losing rules stay in ``rationale`` with status ``outvoted``.

Hyperparameters are derived, not copied: each rule's ``set`` applies only to the optimizer it was
written for, the most specific one winning per key; the lr is then carried from the rule's reference
batch, model and run to the caller's (rules/lr_terms.py), warmup is converted from a ratio to steps, and so on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from .alternatives import Ranked, rank_alternatives
from .companion import fill_silent
from .construct import new as _new
from .contradictions import contradictions
from .derive import derive_hyperparameters, derive_with_notes, train_settings
from .job_facets import backbone_family, unmeasured_batch
from .job_length import job_batch, job_steps
from .loader import CACHE_LIMIT, CompiledRule, Rulebook, default_rulebook
from .lr_terms import LrJob, fmt, scale_lr
from .matching import Candidate, JobFacts, TableJob, consensus_first, job_key, nearest, table_distance
from .memory import GB, MemoryPlan, plan_memory
from .profile import Profile, parse_profile
from .rationale import rationale
from .recipe_answer import recipe_info
from .recipes import RecipeEntry
from .recommendation import (
    EMA,
    Alternative,
    AvoidEntry,
    Clipping,
    MemoryEstimate,
    OptimizerChoice,
    RationaleEntry,
    Recommendation,
    RulebookInfo,
    TuningHint,
)
from .rule_match import Facts, match_rules
from .training_plan import TRAIN_NOTES, hybrid_excluded, tuning_hints
from .training_plan import param_groups as plan_param_groups
from .training_plan import phases as plan_phases
from .training_plan import schedule as plan_schedule

__all__ = ["recommend"]


_NO_TABLE = Candidate(None, 0.0)
_NONE: frozenset[str] = frozenset()  # no recipe could be near: the row's distance is not computed
#: the phase a goal implies when the profile states none (004 §2.5: zero-shot ability comes from pre-training)
_GOAL_PHASE = {"fine_tuning": "fine_tuning", "transfer_learning": "fine_tuning", "zero_shot": "pretraining"}
#: ... and the goal a phase means when the profile states no goal: the 004 §2.5 row about that phase
_PHASE_GOAL = {"fine_tuning": "fine_tuning", "pretraining": "zero_shot"}
_PHASE_GOAL_WHY = {
    "fine_tuning": "the fine-tuning row is about continuing from pretrained weights",
    "pretraining": "the zero-shot row's strategy is large-scale pre-training",
}


def _copy(values: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to hand out: memoized dicts (and the lists in them) must never be shared."""
    copied = values.copy()
    for k, v in copied.items():
        if isinstance(v, list):
            copied[k] = v[:]  # replacing a key's value while iterating is safe: the size does not change
    return copied


@dataclass(slots=True)
class _Decision:
    """What a matched-rule set decides; memoized per rulebook (copied before anything mutable is handed out)."""

    chosen: str
    rule_avoid: dict[str, AvoidEntry]
    budget_avoided: tuple[str, ...]
    warnings: tuple[str, ...]
    hyperparameters: dict[str, Any]
    lr_rule: CompiledRule | None
    train: dict[str, Any]
    override_notes: tuple[str, ...]  # values that an overriding rule replaced, avoid entries a recipe lifted
    alternatives: tuple[Ranked, ...]
    rationale: tuple[RationaleEntry, ...]


def recommend(
    profile: Profile | Mapping[str, Any] | None = None,
    *,
    rulebook: Rulebook | None = None,
    exclude_recipes: frozenset[str] = frozenset(),
    **fields: Any,
) -> Recommendation:
    """The Recommendation for a Profile (a mapping, a Profile, or keyword fields).

    ``exclude_recipes`` leaves those recipe ids out of matching (leave-one-out benchmarks).
    Raises :class:`~optirec.rules.errors.ProfileError` for invalid input.
    """
    p = parse_profile(profile, **fields)
    book = rulebook or default_rulebook()
    return _Run(book, p, exclude_recipes).result()


class _Run:
    """One recommendation, step by step (kept as a class so each step stays small)."""

    def __init__(self, book: Rulebook, p: Profile, exclude: frozenset[str]) -> None:
        self.book = book
        self.p = p
        self.pr = book.principles
        self.exclude = exclude
        self.warnings: list[str] = contradictions(book, p)  # fields that disagree: which one is used, and why
        self.notes: list[str] = list((p.__pydantic_private__ or {}).get("_readings", ()))
        self.memory: MemoryPlan = plan_memory(p, self.pr)
        self.budget = self.memory.budget
        self.soft_pressure = self.memory.soft_pressure
        self.warnings.extend(self.memory.warnings)
        self.notes.extend(self.memory.notes)
        arch = book.terms["architecture"].get(p.architecture) if p.architecture else None
        self.arch_family = arch.family if arch else None
        if p.backbone is not None:
            self.arch_family = backbone_family(book, arch, p.backbone, self.notes)
        self.arch_domain = arch.domain if arch else None
        self.arch_parent = arch.parent if arch else None
        domain = book.terms["domain"].get(p.domain) if p.domain else None
        #: the architecture family the lr laws check: the architecture's, else the one the domain implies (llm)
        self.law_family = self.arch_family or (domain.family if domain else None)
        self._steps_for: tuple[int | None, int | None] = (-1, None)  # (batch, total steps) last computed

    # ------------------------------------------------------------------ facts
    def _facts(self) -> Facts:
        p, pr = self.p, self.pr
        rl_method = p.rl_method
        if rl_method is None and p.architecture:
            rl_method = self.book.terms["architecture"][p.architecture].rl_method
        data = list(p.data)
        inferred: list[str] = []
        if p.batch_size is not None and p.batch_size > pr.large_batch_above and "large_batch" not in data:
            data.append("large_batch")
            inferred.append("large_batch")
            self.notes.append(
                f"batch_size {p.batch_size} is above {pr.large_batch_above}, so the profile is treated as large_batch "
                f"({pr.sources['large_batch_above']})."
            )
        n = p.num_parameters
        flags = {
            "on_device": bool(p.on_device),
            "small_data": p.dataset_size is not None and p.dataset_size <= pr.small_data_max,
            "small_model": n is not None and n <= pr.small_model_max,
            "large_model": n is not None and n >= pr.large_model_min,
        }
        budget = self.budget
        flags["memory_constrained"] = (budget is not None and budget < 2.0) or self.soft_pressure
        if budget is not None and budget >= 2.0 and not (p.memory_limited or p.on_device):
            self.memory.source = "device"
        goal = p.goal
        if goal is None and p.phase in _PHASE_GOAL:
            goal = _PHASE_GOAL[p.phase]
            self.notes.append(
                f"phase {p.phase}: the rows of the {goal} goal apply (004 §2.5: {_PHASE_GOAL_WHY[p.phase]})."
            )
        values = {
            "domain": p.domain,
            "architecture": p.architecture,
            "family": self.arch_family,
            "rl_method": rl_method,
            "goal": goal,
        }
        return Facts(values, flags, data, inferred)

    def _phase(self) -> str | None:
        """The stated phase, or the one the goal implies (with a note, once)."""
        p = self.p
        if p.phase is not None:
            return p.phase
        implied = _GOAL_PHASE.get(p.goal or "")
        note = f"goal {p.goal} implies phase {implied}: recipes of that phase are matched."
        if implied is not None and note not in self.notes:
            self.notes.append(note)
        return implied

    def _total_steps(self, batch: int | None) -> int | None:
        if batch == self._steps_for[0]:
            return self._steps_for[1]
        steps = job_steps(self.p, batch)
        self._steps_for = (batch, steps)
        return steps

    def _job_key(self) -> frozenset[tuple[str, object]]:
        values = self.p.__dict__
        return job_key({k: v for k in self.p.model_fields_set if (v := values[k]) is not None and v != []})

    def _batch(self) -> int | None:
        """The batch in samples: stated, or batch tokens over the sequence length."""
        return job_batch(self.p)

    # ------------------------------------------------------------------ recipes
    def _recipe(self, matched: list[CompiledRule]) -> tuple[RecipeEntry | None, Candidate, list[Candidate]]:
        """The recipe nearer to the job than the seed row (and the row's and the runners-up's distances)."""
        book, p = self.book, self.p
        costs = book.matching
        assert costs is not None
        domain = p.domain or self.arch_domain
        if not book.recipe_index.any_for(self.arch_family, domain):
            return None, _NO_TABLE, []
        row = self._table_row(matched)
        batch = self._batch()
        steps = self._total_steps(batch)
        n, size = p.num_parameters, p.dataset_size
        facts = JobFacts(
            architecture=p.architecture,
            family=self.arch_family,
            generic=p.architecture in book.generic_architectures if p.architecture else True,
            parent=self.arch_parent,
            domain=domain,
            related=book.recipe_index.related_domains.get(domain or "", _NONE),
            phase=self._phase(),
            log_parameters=math.log10(n) if n else None,
            log_dataset=math.log10(size) if size else None,
            log_steps=math.log10(steps) if steps else None,
            log_batch=math.log10(batch) if batch else None,
            data=frozenset(p.data) if p.data else _NONE,
            lora=p.adapter == "lora",
        )
        if p.architecture and p.domain and p.phase:  # the profile may be a recipe's job, word for word
            own = [e for e in book.recipe_index.by_key.get(self._job_key(), ()) if e.id not in self.exclude]
            if own:  # several recipes of the very same job: the representative one (as among equally near ones)
                table = table_distance(costs, facts, row)
                found = consensus_first([Candidate(e, 0.0, own=True) for e in own], costs.tie)
                assert found[0].entry is not None
                return found[0].entry, table, found
        table, found = nearest(book.recipe_index, costs, facts, row, self.exclude)
        best = found[0] if found else None
        unmeasured = unmeasured_batch(book, best.entry if best is not None else None, batch, self.notes)
        if unmeasured:
            table, found = nearest(book.recipe_index, costs, facts, row, self.exclude | unmeasured)
            best = found[0] if found else None
        if best is not None and best.entry is not None and (best.own or best.distance + costs.margin <= table.distance):
            return best.entry, table, found
        return None, table, found

    def _table_row(self, matched: list[CompiledRule]) -> TableJob | None:
        """The most specific matched row that describes a job, covering what the conditions of every matched row
        that shapes the answer guarantee (they all apply); memoized by the matched rules.

        Under soft memory pressure (no device memory given) the constraint rows only order the alternatives
        (see :meth:`_decide`), so their conditions (a large model) say nothing about the answer's job."""
        soft = self.soft_pressure and self.budget is None
        key = ("row", soft, *(cr.rank for cr in matched))
        cache = self.book.cache
        if key in cache:
            found: TableJob | None = cache[key]
            return found
        jobs = self.book.table_jobs
        row = None
        covers: frozenset[str] = frozenset()
        for cr in reversed(matched):
            job = jobs.get(cr.rank)
            if job is not None:
                if row is None:
                    row = job
                if not (soft and cr.rule.level == "constraint"):
                    covers |= job.covers
        if row is not None and covers != row.covers:
            row = replace(row, covers=covers)
        if len(cache) > CACHE_LIMIT:
            cache.clear()
        cache[key] = row
        return row

    # ------------------------------------------------------------------ main
    def result(self) -> Recommendation:
        book, p, pr = self.book, self.p, self.pr
        facts = self._facts()
        matched, relaxed = match_rules(book, facts)
        recipe, table, near = self._recipe(matched)
        if recipe is not None:
            matched.append(book.recipe_rules[recipe.id])  # the highest rank of all: it goes last
        self.matched = matched
        n = p.num_parameters
        newton_refused = n is not None and n > pr.newton_max_parameters
        over_budget = self.over_budget = self._over_budget()
        key = (
            "decision",
            tuple(cr.rank for cr in matched),
            frozenset(relaxed),
            over_budget,
            newton_refused,
            self.soft_pressure,
            tuple(facts.inferred),
            self.arch_family,  # a row's avoid_measured_on reads it
        )
        decision = book.cache.get(key)
        if decision is None:
            if len(book.cache) > CACHE_LIMIT:
                book.cache.clear()
            decision = book.cache[key] = self._decide(matched, relaxed, over_budget, newton_refused, facts)

        avoid = self._avoid(decision, newton_refused)
        self.warnings.extend(decision.warnings)
        self.notes.extend(decision.override_notes)
        chosen = decision.chosen
        self._contradictions(matched, chosen, avoid)

        spec = book.optimizers[chosen]
        hp = _copy(decision.hyperparameters)
        lr_rule = decision.lr_rule
        train = _copy(decision.train)
        batch = self._batch()
        if batch is None:
            batch = train.get("batch_size")
        total = self._total_steps(batch)
        # the phase the companion details are for: the stated (or goal-implied) one, else the deciding recipe's
        phase = self._phase() or (recipe.recipe.job.phase if recipe is not None else None)
        companion = fill_silent(
            book, p.architecture, phase, chosen, self.exclude, train, self.notes, recipe_decides=recipe is not None
        )
        used = recipe if recipe is not None and lr_rule is book.recipe_rules[recipe.id] else None
        job = LrJob(book, p, chosen, self.law_family, total, used, self.notes, self.warnings)
        scaling = scale_lr(job, hp, lr_rule, spec.lr_scaling, batch, train)
        schedule = plan_schedule(book, spec.schedule, spec.warmup, train, total, self.notes)
        for flag, note in TRAIN_NOTES:
            if train.get(flag):
                self.notes.append(note)
        clip = train.get("clip_norm")
        clipping = _new(Clipping, max_norm=clip) if clip else None
        ema = _new(EMA, decay=train["ema_decay"]) if "ema_decay" in train else None
        param_groups = plan_param_groups(
            book,
            chosen,
            hp,
            train,
            lambda name: derive_hyperparameters(book, name, matched)[0],
            hybrid_excluded(avoid, self.over_budget),
            self.notes,
        )
        memory = _new(MemoryEstimate, **self.memory.estimate(self._multiplier(chosen), p.device_memory_gb))
        alternatives = [
            _new(Alternative, name=name, score=score, why=why, rule=rule, hyperparameters=_copy(alt_hp))
            for name, score, why, rule, alt_hp in decision.alternatives
        ]
        search_space, tuning = self._search_space(chosen, hp, batch, train)
        phases = plan_phases(
            book,
            p,
            chosen,
            hp,
            schedule,
            matched,
            lambda n_, m: derive_hyperparameters(book, n_, m)[0],
            self.notes,
        )
        profile_echo = {
            k: (list(v) if v.__class__ is list else v) for k, v in p.__dict__.items() if v is not None and v != []
        }
        if facts.inferred:
            profile_echo["inferred_data"] = facts.inferred
        info = None
        if recipe is not None:
            info = recipe_info(
                recipe, table, near, chosen, hp, scaling, schedule, clipping, batch, self.warnings, self.notes
            )
        return _new(
            Recommendation,
            optimizer=_new(OptimizerChoice, name=chosen, hyperparameters=hp),
            schedule=schedule,
            batch_size=batch,
            lr_scaling=scaling,
            gradient_clipping=clipping,
            param_groups=param_groups,
            alternatives=alternatives,
            avoid=list(avoid.values()),
            rationale=[*decision.rationale, *([companion] if companion else [])],
            warnings=self.warnings,
            memory=memory,
            search_space=search_space,
            tuning=tuning,
            phases=phases,
            ema=ema,
            notes=self.notes,
            profile=profile_echo,
            rulebook=self._rulebook_info(),
            recipe=info,
        )

    def _avoid(self, decision: _Decision, newton_refused: bool) -> dict[str, AvoidEntry]:
        """The rules' unsuitable optimizers (004 §2.4), then what the numbers rule out (004 §2.1)."""
        pr, p = self.pr, self.p
        avoid = dict(decision.rule_avoid)
        if newton_refused:
            n = p.num_parameters
            assert n is not None
            avoid["newton"] = _new(
                AvoidEntry,
                name="newton",
                why=f"an exact Hessian of {n:,} parameters holds {n * n:.3g} values (O(n^2)); refused above "
                f"{pr.newton_max_parameters:,} parameters",
                rule="principle.memory",
                source=pr.sources["newton_max_parameters"],
            )
        budget = self.budget if self.budget is not None else 0.0
        for name in decision.budget_avoided:
            avoid[name] = _new(
                AvoidEntry,
                name=name,
                why=f"needs {fmt(self._multiplier(name))}x the parameters in optimizer state; the "
                f"{self.memory.source} budget allows {fmt(max(budget, 0.0))}x",
                rule="principle.memory",
                source=pr.sources["memory"],
            )
        return avoid

    def _rulebook_info(self) -> RulebookInfo:
        info: RulebookInfo | None = self.book.cache.get(("rulebook",))
        if info is None:  # frozen and all strings: one instance serves every answer
            info = self.book.cache[("rulebook",)] = _new(RulebookInfo, version=self.book.version, hash=self.book.hash)
        return info

    def _avoid_entry(self, cr: CompiledRule, name: str) -> AvoidEntry:
        key = ("avoid", cr.rank, name)
        entry: AvoidEntry | None = self.book.cache.get(key)
        if entry is None:
            entry = self.book.cache[key] = _new(
                AvoidEntry, name=name, why=cr.rule.avoid_reason or "", rule=cr.id, source=cr.rule.source
            )
        return entry

    def _over_budget(self) -> frozenset[str]:
        """Catalog optimizers whose state exceeds the hard memory budget (empty without one)."""
        if self.budget is None:
            return frozenset()
        limit = self.budget + 1e-9
        return frozenset(name for name in self.book.optimizers if self._multiplier(name) > limit)

    def _recipe_had(self, recipe: RecipeEntry, trait: str) -> bool:
        """The recipe's own job had a data trait (large_batch: a batch above the threshold)."""
        job = recipe.recipe.job
        if trait in job.data:
            return True
        return trait == "large_batch" and job.batch_size is not None and job.batch_size > self.pr.large_batch_above

    def _decide(
        self,
        matched: list[CompiledRule],
        relaxed: set[str],
        over_budget: frozenset[str],
        newton_refused: bool,
        facts: Facts,
    ) -> _Decision:
        """Votes, eligibility, choice, derived settings, alternatives and rationale for a matched-rule set.

        Depends only on its arguments (plus soft memory pressure and the architecture family, part of the cache
        key), so it is memoized.
        """
        book = self.book
        scores: dict[str, float] = {}
        top_voter: dict[str, tuple[float, CompiledRule]] = {}
        # Soft memory pressure (no device given, but Adam-class state would not fit one reference device):
        # the constraint rows must not overturn the domain's choice, only order the alternatives.
        soft = self.soft_pressure and self.budget is None
        for cr in matched:
            scale = 0.01 if soft and cr.rule.level == "constraint" else 1.0
            for name, w in cr.votes:
                w *= scale
                scores[name] = scores.get(name, 0.0) + w
                if name not in top_voter or w > top_voter[name][0]:
                    top_voter[name] = (w, cr)

        recipe_rule = matched[-1] if matched and matched[-1].rule.level == "recipe" else None
        recipe = book.recipes[recipe_rule.id.removeprefix("recipe.")] if recipe_rule else None
        lifted: list[str] = []
        rule_avoid: dict[str, AvoidEntry] = {}
        for cr in reversed(matched):
            measured = cr.rule.avoid_measured_on
            if cr.rule.avoid and measured is not None and self.arch_family not in (None, *measured.families):
                lifted.append(
                    f"{cr.id} rules out {', '.join(cr.rule.avoid)} ({cr.rule.source}), but that was measured on "
                    f"{' and '.join(measured.families)} models ({measured.source}), not on {self.arch_family}: "
                    "not applied."
                )
                continue
            for name in cr.rule.avoid:
                if name in rule_avoid:
                    continue
                trait = cr.rule.when.data
                if (
                    recipe is not None
                    and name == recipe.recipe.config.optimizer
                    and trait
                    and self._recipe_had(recipe, trait)
                ):
                    lifted.append(
                        f"{cr.id} rules out {name} ({cr.rule.source}), but the recipe {recipe.id} trained {name} on a "
                        f"job with {trait} ({recipe.citation}): kept."
                    )
                    continue
                rule_avoid[name] = self._avoid_entry(cr, name)
        excluded = set(rule_avoid)
        if newton_refused:
            excluded.add("newton")
        budget_avoided: list[str] = []
        if over_budget:
            budget_avoided = [
                name
                for name in [*scores, *(o for o in ("adam", "adamw") if o not in scores)]
                if name in over_budget and name not in excluded
            ]
            excluded.update(budget_avoided)

        order = book.catalog_order
        ranked = sorted(scores, key=lambda k: (-scores[k], order[k]))
        eligible = [name for name in ranked if name not in excluded]
        decision_warnings: list[str] = []
        if eligible:
            chosen = eligible[0]
        else:
            warnings_before = len(self.warnings)
            chosen = self._last_resort(excluded)
            eligible = [chosen]
            scores.setdefault(chosen, 0.0)
            decision_warnings = self.warnings[warnings_before:]
            del self.warnings[warnings_before:]

        hp, lr_rule, hp_notes = derive_with_notes(book, chosen, matched)
        train, train_by, train_notes = train_settings(self.book, matched)

        alternatives = rank_alternatives(
            book,
            chosen,
            eligible[1:],
            scores,
            top_voter,
            matched,
            lambda name: derive_hyperparameters(book, name, matched)[0],
            self._multiplier if self.soft_pressure else None,
        )
        return _Decision(
            chosen=chosen,
            rule_avoid=rule_avoid,
            budget_avoided=tuple(budget_avoided),
            warnings=tuple(decision_warnings),
            hyperparameters=hp,
            lr_rule=lr_rule,
            train=train,
            override_notes=hp_notes + train_notes + tuple(lifted),
            alternatives=alternatives,
            rationale=tuple(rationale(self.book, matched, relaxed, chosen, train_by, lr_rule)),
        )

    # ------------------------------------------------------------------ steps
    def _multiplier(self, name: str) -> float:
        if self.book.optimizers[name].memory_overhead == "O(n^2)":
            return float(self.p.num_parameters or self.pr.newton_max_parameters)
        return self.book.state_multiplier(name)

    def _last_resort(self, avoid: set[str]) -> str:
        """Nothing voted is eligible: the default optimizer, else the leanest optimizer not avoided."""
        default = self.pr.default_optimizer
        if default not in avoid:
            return default
        lean = sorted(
            (n for n, s in self.book.optimizers.items() if n not in avoid and s.family != "second_order"),
            key=lambda n: (self._multiplier(n), n),
        )
        if lean:
            self.warnings.append(
                f"Every voted optimizer is ruled out; falling back to {lean[0]}, the lowest-memory option left."
            )
            return lean[0]
        self.warnings.append("Every optimizer is ruled out by the constraints; returning sgd, which stores no state.")
        return "sgd"

    def _contradictions(self, matched: list[CompiledRule], chosen: str, avoid: Mapping[str, AvoidEntry]) -> None:
        """Warn when a specific rule's first choice lost to a constraint (e.g. large_batch with Adam)."""
        seen: set[str] = set()
        for cr in reversed(matched):
            if cr.rule.level not in ("recipe", "architecture", "domain", "goal") or not cr.rule.prefer:
                continue
            first = cr.rule.prefer[0]
            if first == chosen or first not in avoid or first in seen:
                continue
            seen.add(first)
            blocker = avoid[first]
            self.warnings.append(
                f"{cr.id} prefers {first}, but {blocker.rule} rules it out ({blocker.why}); chose {chosen} instead."
            )
        n = self.p.num_parameters
        if self.soft_pressure and n is not None:
            mult = self._multiplier(chosen)
            per_device = self.memory.per_device(mult) or 0.0
            state = mult * self.memory.state_bytes * n
            if per_device > self.pr.reference_device_memory_gb * GB:
                self.warnings.append(
                    f"{chosen} keeps {fmt(mult)}x the parameters as optimizer state: {state / 1e9:.0f} GB of optimizer "
                    f"state for {n:,} parameters ({per_device / 1e9:.0f} GB per device with weights and gradients), "
                    f"more than one {self.pr.reference_device_memory_gb:g} GB device. Shard the state (ZeRO/FSDP, "
                    "give num_devices and sharding) or use a lower-memory optimizer; those are ranked up among the "
                    "alternatives."
                )

    def _search_space(
        self, chosen: str, hp: dict[str, Any], batch: int | None, train: dict[str, Any]
    ) -> tuple[dict[str, list[float]], list[TuningHint]]:
        """004 §6.3: the ranges worth searching, in priority order, centred on the recommendation.

        The hints are memoized by the arguments of :func:`~optirec.rules.training_plan.tuning_hints`, which reads
        nothing else, so the key cannot leave out what they depend on. They are frozen, so they are shared; the
        space's lists are not.
        """
        lr_range = train.get("lr_range")
        if lr_range is not None and chosen not in train.get("lr_range_optimizers", (chosen,)):
            lr_range = None
        args = (
            self.book.optimizers[chosen].family,
            hp.get("lr"),
            None if lr_range is None else (lr_range[0], lr_range[1]),
            batch,
            self.budget is not None,
            "weight_decay" in hp,
            bool(hp.get("momentum")),
        )
        key = ("space", *args)
        cache = self.book.cache
        hints: tuple[TuningHint, ...] | None = cache.get(key)
        if hints is None:
            if len(cache) > CACHE_LIMIT:  # the lr is a continuous key: bound the memo here too
                cache.clear()
            hints = cache[key] = tuning_hints(self.book, *args)
        return {h.name: [h.low, h.high] for h in hints}, list(hints)
