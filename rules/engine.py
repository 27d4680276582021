"""The rules engine: Profile -> Recommendation, explained.  Pure Python; never imports torch.

Conflict policy (stated, deterministic):

1. Hard constraints first.  A memory constraint (``memory_limited``, ``on_device``, or a
   ``device_memory_gb`` too small for parameters + gradients + optimizer state) sets a budget of
   optimizer-state values per parameter (004 §2.1 memory column).  Optimizers over budget, and the
   optimizers a data characteristic makes unsuitable (004 §2.4), go to ``avoid`` and never come first.
2. Specificity.  Every matching rule votes for its preferences (1st, 2nd, 3rd choice) with the weight of
   its level: architecture > domain > constraint rows > generic family > data / goal > guides > default.
   Weights are spaced so that no sum of less specific votes outweighs one more specific vote; a rule
   with more conditions weighs more within its level.  The best-scoring eligible optimizer is chosen.
3. Ties are broken by catalog order.  Losing rules stay in ``rationale`` with status ``outvoted``.

Hyperparameters are derived, not copied: each rule's ``set`` applies only to the optimizer it was
written for, the most specific one winning per key; the lr is then scaled from the rule's reference
batch to the caller's batch (004 §6.4.3), warmup is converted from a ratio to steps, and so on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel

from .loader import CompiledRule, Rulebook, default_rulebook
from .profile import Profile, parse_profile
from .recommendation import (
    EMA,
    Alternative,
    AvoidEntry,
    Clipping,
    LRScaling,
    MemoryEstimate,
    OptimizerChoice,
    ParamGroup,
    Phase,
    RationaleEntry,
    Recommendation,
    RulebookInfo,
    ScheduleSpec,
    TuningHint,
)
from .schema import Principles, ReferenceModel

__all__ = ["derive_hyperparameters", "recommend"]

_M = TypeVar("_M", bound=BaseModel)
ScalingRule = Literal["linear", "sqrt", "none"]
Status = Literal["chosen", "supports", "outvoted", "applied", "avoid", "info"]

_RELAXABLE = frozenset({"family", "rl_method", "architecture"})
_GB = 1e9  # decimal gigabytes, as in "56 GB of optimizer state"
_MAX_ALTERNATIVES = 3
#: Training settings that are advice rather than numbers, and what to tell the user about them.
_TRAIN_NOTES = (
    (
        "long_schedule",
        "Plan a long schedule: this recipe keeps improving well past a short run, so budget the full "
        "schedule before judging it (004 §2.3 Mask R-CNN, §2.5 best accuracy).",
    ),
    (
        "separate_lr",
        "Give the discriminator its own optimizer: its lr may differ from the generator's when one network "
        "overpowers the other (004 §2.3 GAN discriminator).",
    ),
    (
        "truncate_bptt",
        "Tune the sequence length of truncated backpropagation through time: long windows explode or vanish "
        "gradients, short ones lose context (004 §2.3 GRU).",
    ),
)
#: Hybrid recommender split (004 §5.6.1), in order of preference when one is ruled out
_SPARSE_CHOICES = ("adagrad", "adam", "rmsprop", "sgd_momentum", "sgd")
_DENSE_CHOICES = ("adam", "adamw", "rmsprop", "sgd_momentum", "sgd")
_CACHE_LIMIT = 50_000  # memoized decisions and search spaces per rulebook before the memo is cleared


class _SizeTerm(NamedTuple):
    """The model-size lr term: the row's reference model, the factor and the words that explain it."""

    reference: ReferenceModel
    factor: float
    reason: str


class _HorizonTerm(NamedTuple):
    """The training-horizon lr term: the reference run's steps, the caller's, the factor and its reason."""

    reference_steps: int
    total_steps: int
    factor: float
    reason: str


def lr_range_holding(lr: float, low: float, high: float) -> tuple[float, float]:
    """``[low, high]`` to 3 digits, widened to hold ``lr`` itself: the ends are rounded before ``lr`` is put
    back inside, so rounding never leaves the recommendation outside its own search range."""
    return min(float(f"{low:.3g}"), lr), max(float(f"{high:.3g}"), lr)


def lr_search_range(lr: float, pr: Principles) -> tuple[float, float]:
    """004 §6.3: ``lr_search_decades`` either side of ``lr``, inside the global lr range, holding ``lr``."""
    d = 10**pr.lr_search_decades
    return lr_range_holding(lr, max(lr / d, pr.global_lr_range[0]), min(lr * d, pr.global_lr_range[1]))


def _count(n: int) -> str:
    """A parameter count for people: 28.4k, 25.6M, 1.3B."""
    for scale, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(n)


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _new(cls: type[_M], **values: Any) -> _M:
    """Build an output model from values the engine already guarantees (no re-validation).

    The same as ``cls.model_construct(**values)`` for a model whose every field is given, at a
    fraction of the cost; tests round-trip every answer through ``model_validate``.
    """
    obj = _object_new(cls)
    _set_attr(obj, "__dict__", values)
    _set_fields_set(obj, set(values))
    _set_extra(obj, None)
    _set_private(obj, None)
    return obj


# BaseModel's slots, set through their descriptors (``_new`` runs about ten times per recommendation)
_object_new = object.__new__
_set_attr = object.__setattr__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def _group(
    *,
    name: str,
    match: list[str],
    why: str,
    optimizer: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
    frozen: bool = False,
    layerwise_lr_decay: float | None = None,
) -> ParamGroup:
    return _new(
        ParamGroup,
        name=name,
        match=match,
        optimizer=optimizer,
        hyperparameters=hyperparameters if hyperparameters is not None else {},
        frozen=frozen,
        layerwise_lr_decay=layerwise_lr_decay,
        why=why,
    )


def _copy(values: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to hand out: memoized dicts (and the lists in them) must never be shared."""
    copied = values.copy()
    for k, v in copied.items():
        if isinstance(v, list):
            copied[k] = v[:]  # replacing a key's value while iterating is safe: the size does not change
    return copied


def _relative_score(score: float, top: float) -> float:
    """1.0 = as strongly supported as the chosen optimizer; each 0.2 less is a tenfold weaker vote."""
    if score <= 0 or top <= 0:
        return 0.0
    return round(max(0.0, 1.0 + math.log10(score / top) / 5.0), 3)


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
    override_notes: tuple[str, ...]  # values that an overriding rule replaced
    alternatives: tuple[tuple[str, float, str, str, dict[str, Any]], ...]
    rationale: tuple[RationaleEntry, ...]


class _Facts:
    """What the profile says, in the shape rules match on."""

    __slots__ = ("data", "flags", "inferred", "values")

    def __init__(self, values: dict[str, str | None], flags: dict[str, bool], data: list[str], inferred: list[str]):
        self.values = values
        self.flags = flags
        self.data = data
        self.inferred = inferred

    def holds(self, cond: tuple[str, frozenset[str] | bool], relaxed: bool = False) -> bool:
        key, want = cond
        if relaxed and key in _RELAXABLE:
            return True
        if isinstance(want, bool):
            return self.flags.get(key, False) is want
        if key == "data":
            return any(d in want for d in self.data)
        value = self.values.get(key)
        return value is not None and value in want


def _match(book: Rulebook, facts: _Facts) -> tuple[list[CompiledRule], set[str]]:
    """Rules whose conditions hold (fallback rules only when no sibling row matched), least specific first."""
    index = book.index
    candidates: dict[int, CompiledRule] = {}
    for key, value in facts.values.items():
        if value is not None:
            for cr in index.get((key, value), ()):
                candidates[cr.rank] = cr
    for d in facts.data:
        for cr in index.get(("data", d), ()):
            candidates[cr.rank] = cr
    for key, flag in facts.flags.items():
        if flag:
            for cr in index.get((key, True), ()):
                candidates[cr.rank] = cr
    holds = facts.holds
    matched: list[CompiledRule] = []
    fallbacks: list[CompiledRule] = []
    for cr in candidates.values():
        if cr.fallback:
            fallbacks.append(cr)
        elif not cr.rest or all(holds(c) for c in cr.rest):
            matched.append(cr)  # the first condition held already: the index found the rule by it
    relaxed: set[str] = set()
    for cr in fallbacks:
        domain = cr.rule.when.domain
        if any(m.rule.level == cr.rule.level and m.rule.when.domain == domain for m in matched):
            continue
        if all(holds(c) for c in cr.conditions):
            matched.append(cr)
        elif all(holds(c, relaxed=True) for c in cr.conditions):
            matched.append(cr)
            relaxed.add(cr.id)
    matched.extend(book.unconditional)
    matched.sort(key=_rank)
    return matched, relaxed


def _rank(cr: CompiledRule) -> int:
    return cr.rank


def derive_hyperparameters(
    book: Rulebook, name: str, matched: list[CompiledRule]
) -> tuple[dict[str, Any], CompiledRule | None]:
    """Catalog defaults of ``name`` overridden by every matching rule written for it (most specific last,
    rules marked ``overrides`` after all others).

    Returns the hyperparameters and the rule that set the lr (None when it is the catalog default).
    """
    hp, lr_rule, _ = _derive_hyperparameters(book, name, matched)
    return hp, lr_rule


def _derive_hyperparameters(
    book: Rulebook, name: str, matched: list[CompiledRule]
) -> tuple[dict[str, Any], CompiledRule | None, tuple[str, ...]]:
    """:func:`derive_hyperparameters`, plus a note for each value an overriding rule replaced."""
    hp = dict(book.defaults[name])
    accepts = _ACCEPTS[book.optimizers[name].family]
    lr_rule: CompiledRule | None = None
    setters = book.setters.get(name)
    if not setters:
        return hp, None, ()
    late = setters & book.overriding  # rules marked overrides go after all others (usually none)
    for cr in matched:  # ascending weight
        if cr.rank not in setters or cr.rank in late:
            continue
        values = _set_values(cr, hp)
        for k, v in values.items():
            if k in hp or k in accepts:
                hp[k] = v
        if "lr" in values:
            lr_rule = cr
    notes: list[str] = []
    if late:
        for cr in matched:
            if cr.rank not in late:
                continue
            values = _set_values(cr, hp)
            for k, v in values.items():
                if k in hp or k in accepts:
                    origin = _set_by(matched, setters - late, k)
                    if origin is not None and hp[k] != v:
                        notes.append(_override_note(f"{name} {k}", v, cr.id, hp[k], origin))
                    hp[k] = v
            if "lr" in values:
                lr_rule = cr
    return hp, lr_rule, tuple(notes)


def _set_values(cr: CompiledRule, hp: Mapping[str, Any]) -> Mapping[str, Any]:
    """The rule's ``set``, its ``beta1`` (the first beta alone) merged into ``hp``'s betas."""
    values = cr.set_values
    if "beta1" not in values:
        return values
    merged = {k: v for k, v in values.items() if k != "beta1"}
    if "betas" in hp:
        merged["betas"] = [values["beta1"], hp["betas"][1]]
    return merged


def _set_by(matched: list[CompiledRule], ranks: frozenset[int], key: str) -> str | None:
    """The most specific of ``matched`` (with a rank in ``ranks``) whose ``set`` gives ``key``."""
    for cr in reversed(matched):
        if cr.rank in ranks and (key in cr.set_values or (key == "betas" and "beta1" in cr.set_values)):
            return cr.id
    return None


def _override_note(setting: str, value: Any, rule_id: str, replaced: Any, origin: str) -> str:
    """The note for a value that a rule marked ``overrides`` put in place of a more specific rule's."""
    return (
        f"{setting}: {_shown(value)} from {rule_id} replaces {_shown(replaced)} from {origin}; that property of the "
        f"data decides it whatever the model (see {rule_id} in the rationale)"
    )


def _shown(value: Any) -> str:
    return "[" + ", ".join(map(str, value)) + "]" if isinstance(value, list) else str(value)


#: Hyperparameters a family accepts even if the catalog's defaults do not list them.
_ACCEPTS: dict[str, tuple[str, ...]] = {
    "sgd": ("momentum", "nesterov", "weight_decay", "dampening"),
    "adaptive": ("weight_decay", "eps", "betas", "momentum", "alpha", "centered", "amsgrad"),
    "second_order": ("weight_decay", "damping"),
    "wrapper": ("lr", "weight_decay", "momentum", "betas"),
}


def recommend(
    profile: Profile | Mapping[str, Any] | None = None, *, rulebook: Rulebook | None = None, **fields: Any
) -> Recommendation:
    """The Recommendation for a Profile (a mapping, a Profile, or keyword fields).

    Raises :class:`~optirec.rules.errors.ProfileError` for invalid input.
    """
    p = parse_profile(profile, **fields)
    book = rulebook or default_rulebook()
    return _Run(book, p).result()


class _Run:
    """One recommendation, step by step (kept as a class so each step stays small)."""

    def __init__(self, book: Rulebook, p: Profile) -> None:
        self.book = book
        self.p = p
        self.pr = book.principles
        self.warnings: list[str] = []
        self.notes: list[str] = []
        self.extra_rationale: list[RationaleEntry] = []

    # ------------------------------------------------------------------ facts & memory
    def _facts(self) -> _Facts:
        p, pr, book = self.p, self.pr, self.book
        arch = book.terms["architecture"].get(p.architecture) if p.architecture else None
        family = arch.family if arch else None
        rl_method = p.rl_method or (arch.rl_method if arch else None)
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
        self.budget, self.soft_pressure = self._memory_budget()
        flags["memory_constrained"] = (self.budget is not None and self.budget < 2.0) or self.soft_pressure
        if self.budget is not None and self.budget >= 2.0 and not (p.memory_limited or p.on_device):
            self.budget_source = "device"
        values = {
            "domain": p.domain,
            "architecture": p.architecture,
            "family": family,
            "rl_method": rl_method,
            "goal": p.goal,
        }
        return _Facts(values, flags, data, inferred)

    def _memory_budget(self) -> tuple[float | None, bool]:
        """(hard budget in state values per parameter or None, soft memory pressure)."""
        p, pr = self.p, self.pr
        budget: float | None = None
        self.budget_source = ""
        if p.memory_limited or p.on_device:
            budget = 1.0
            self.budget_source = "memory_limited" if p.memory_limited else "on_device"
        n = p.num_parameters
        bpv = pr.bytes_per_state_value
        if n is not None and p.device_memory_gb is not None:
            avail = p.device_memory_gb * _GB - 2 * bpv * n
            device_budget = avail / (bpv * n)
            if device_budget < 0:
                self.warnings.append(
                    f"The {n:,} parameters and their gradients alone need {2 * bpv * n / _GB:.1f} GB, more than the "
                    f"{p.device_memory_gb:g} GB device: shard the model (FSDP/ZeRO), offload, or lower precision; "
                    "no optimizer choice fixes that."
                )
                device_budget = 0.0
            if budget is None or device_budget < budget:
                budget = device_budget
                self.budget_source = "device_memory_gb"
            return budget, False
        soft = False
        if budget is None and n is not None:
            adam_total = (2 + 2) * bpv * n
            soft = adam_total > pr.reference_device_memory_gb * _GB
        return budget, soft

    # ------------------------------------------------------------------ main
    def result(self) -> Recommendation:
        book, p, pr = self.book, self.p, self.pr
        facts = self._facts()
        matched, relaxed = _match(book, facts)
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
        )
        decision = book.cache.get(key)
        if decision is None:
            if len(book.cache) > _CACHE_LIMIT:
                book.cache.clear()
            decision = book.cache[key] = self._decide(matched, relaxed, over_budget, newton_refused)

        # avoid: the rules' unsuitable optimizers (004 §2.4), then what the numbers rule out (004 §2.1)
        avoid = dict(decision.rule_avoid)
        if newton_refused:
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
                why=f"needs {_fmt(self._multiplier(name))}x the parameters in optimizer state; the "
                f"{self.budget_source} budget allows {_fmt(max(budget, 0.0))}x",
                rule="principle.memory",
                source=pr.sources["memory"],
            )
        self.warnings.extend(decision.warnings)
        self.notes.extend(decision.override_notes)
        chosen = decision.chosen
        self.chosen = chosen
        self._contradictions(matched, chosen, avoid)

        spec = book.optimizers[chosen]
        hp = _copy(decision.hyperparameters)
        lr_rule = decision.lr_rule
        train = _copy(decision.train)
        batch = p.batch_size if p.batch_size is not None else train.get("batch_size")
        scaling = self._scale_lr(hp, lr_rule, spec.lr_scaling, batch, train)
        schedule = self._schedule(spec.schedule, spec.warmup, train, batch, scaling)
        for flag, note in _TRAIN_NOTES:
            if train.get(flag):
                self.notes.append(note)
        clipping = _new(Clipping, max_norm=train["clip_norm"]) if "clip_norm" in train else None
        ema = _new(EMA, decay=train["ema_decay"]) if "ema_decay" in train else None
        param_groups = self._param_groups(chosen, hp, train, matched, avoid)
        memory = self._memory(chosen)

        alternatives = [
            _new(Alternative, name=name, score=score, why=why, rule=rule, hyperparameters=_copy(alt_hp))
            for name, score, why, rule, alt_hp in decision.alternatives
        ]

        search_space, tuning = self._search_space(chosen, hp, batch, train)
        phases = self._phases(chosen, hp, schedule, matched)
        rationale = list(decision.rationale)
        profile_echo = {
            k: (list(v) if isinstance(v, list) else v) for k, v in p.__dict__.items() if v is not None and v != []
        }
        if facts.inferred:
            profile_echo["inferred_data"] = facts.inferred
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
            rationale=rationale,
            warnings=self.warnings,
            memory=memory,
            search_space=search_space,
            tuning=tuning,
            phases=phases,
            ema=ema,
            notes=self.notes,
            profile=profile_echo,
            rulebook=self._rulebook_info(),
        )

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

    def _decide(
        self, matched: list[CompiledRule], relaxed: set[str], over_budget: frozenset[str], newton_refused: bool
    ) -> _Decision:
        """Votes, eligibility, choice, derived settings, alternatives and rationale for a matched-rule set.

        Depends only on its arguments (plus soft memory pressure, part of the cache key), so it is memoized.
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

        rule_avoid: dict[str, AvoidEntry] = {}
        for cr in reversed(matched):
            for name in cr.rule.avoid:
                if name not in rule_avoid:
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

        hp, lr_rule, hp_notes = _derive_hyperparameters(book, chosen, matched)
        train, train_by, train_notes = self._train_settings(matched)

        top = scores[chosen] or 1.0
        others = eligible[1:]
        if self.soft_pressure:
            chosen_mult = self._multiplier(chosen)
            others.sort(key=lambda n: self._multiplier(n) >= chosen_mult)  # stable: lower-memory first
        alternatives = []
        for name in others[:_MAX_ALTERNATIVES]:
            voter = top_voter[name][1]
            alt_hp, _ = derive_hyperparameters(book, name, matched)
            why_key = ("why", voter.rank, name)
            why = book.cache.get(why_key)
            if why is None:
                pos = voter.rule.prefer.index(name) + 1
                why = book.cache[why_key] = f"choice #{pos} of {voter.id} ({voter.rule.source}): {voter.rule.effect}"
            alternatives.append((name, _relative_score(scores[name], top), why, voter.id, alt_hp))
        return _Decision(
            chosen=chosen,
            rule_avoid=rule_avoid,
            budget_avoided=tuple(budget_avoided),
            warnings=tuple(decision_warnings),
            hyperparameters=hp,
            lr_rule=lr_rule,
            train=train,
            override_notes=hp_notes + train_notes,
            alternatives=tuple(alternatives),
            rationale=tuple(self._rationale(matched, relaxed, chosen, train_by, lr_rule)),
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
            if cr.rule.level not in ("architecture", "domain", "goal") or not cr.rule.prefer:
                continue
            first = cr.rule.prefer[0]
            if first == chosen or first not in avoid or first in seen:
                continue
            seen.add(first)
            blocker = avoid[first]
            self.warnings.append(
                f"{cr.id} prefers {first}, but {blocker.rule} rules it out ({blocker.why}); chose {chosen} instead."
            )
        if self.soft_pressure and self.p.num_parameters is not None:
            n = self.p.num_parameters
            mult = self._multiplier(chosen)
            bpv = self.pr.bytes_per_state_value
            state = mult * bpv * n
            total = (2 + mult) * bpv * n
            if total > self.pr.reference_device_memory_gb * _GB:
                self.warnings.append(
                    f"{chosen} keeps {_fmt(mult)}x the parameters as fp32 state: {state / 1e9:.0f} GB of optimizer "
                    f"state for {n:,} parameters ({total / 1e9:.0f} GB with weights and gradients), more than one "
                    f"{self.pr.reference_device_memory_gb:g} GB device. Shard the state (ZeRO/FSDP) or use a "
                    "lower-memory optimizer; those are ranked up among the alternatives."
                )

    def _train_settings(self, matched: list[CompiledRule]) -> tuple[dict[str, Any], dict[str, str], tuple[str, ...]]:
        """The training settings of the matched rules: a more specific rule's win, except that a rule
        marked ``overrides`` (a data property that makes a setting wrong for any model) wins over
        all; each value it replaces is noted."""
        train: dict[str, Any] = {}
        train_by: dict[str, str] = {}
        overriding = self.book.overriding
        late = [cr for cr in matched if cr.rank in overriding]  # usually none
        for cr in matched:
            if cr.train_values and cr.rank not in overriding:
                for k, v in cr.train_values.items():
                    train[k] = v
                    train_by[k] = cr.id
        notes = []
        for cr in late:
            for k, v in cr.train_values.items():
                if k in train and train[k] != v:
                    notes.append(_override_note(k, v, cr.id, train[k], train_by[k]))
                train[k] = v
                train_by[k] = cr.id
        return train, train_by, tuple(notes)

    def _scale_lr(
        self, hp: dict[str, Any], lr_rule: CompiledRule | None, kind: str, batch: int | None, train: dict[str, Any]
    ) -> LRScaling:
        pr = self.pr
        base_lr = float(hp.get("lr", 0.0))
        if "lr_factor" in train:
            base_lr *= train["lr_factor"]
        base_batch = lr_rule.rule.base_batch_size if lr_rule else None
        b_max = lr_rule.rule.train.batch_size_max if lr_rule else None
        factor = 1.0
        rule: ScalingRule = "none"
        ref = base_batch
        if lr_rule is None:
            reason = "the lr is the optimizer's catalog default, which has no reference batch size: not scaled"
        elif self.p.batch_size is None:
            reason = "no batch size given: the table's lr is used for the table's batch size"
        elif base_batch is None:
            reason = f"the lr comes from {lr_rule.rule.id}, which names no reference batch size: not scaled"
        elif kind == "none":
            reason = f"{self.chosen} is not batch-size scaled (full-batch / line-search method)"
        else:
            hi = b_max or base_batch
            if base_batch <= batch <= hi:  # type: ignore[operator]
                ref = batch
                reason = f"batch {batch} is within the table's range {base_batch}-{hi}: lr unchanged"
            else:
                ref = hi if batch > hi else base_batch  # type: ignore[operator]
                assert batch is not None and ref is not None
                rule = "linear" if kind == "linear" else "sqrt"
                if kind == "linear" and batch > pr.sqrt_scaling_above:
                    rule = "sqrt"
                    reason = (
                        f"batch {batch} is above {pr.sqrt_scaling_above}: square-root scaling instead of linear "
                        f"({pr.sources['sqrt_scaling']})"
                    )
                elif kind == "linear":
                    reason = (
                        f"linear scaling rule for the SGD family: lr x {batch}/{ref} ({pr.sources['linear_scaling']})"
                    )
                else:
                    reason = (
                        "adaptive optimizers scale the lr with the square root of the batch ratio, since a larger "
                        f"batch needs a larger lr ({pr.sources['adaptive_scaling']}; "
                        f"formula {pr.sources['sqrt_scaling']})"
                    )
                factor = batch / ref if rule == "linear" else math.sqrt(batch / ref)
        lr = base_lr * factor
        size = self._size_factor(lr_rule, kind)
        horizon = self._horizon_factor(lr_rule, kind, batch, cite_reference=size is None)
        if size is not None:
            lr *= size.factor
            reason = f"{reason}; {size.reason}"
        if horizon is not None:
            lr *= horizon.factor
            reason = f"{reason}; {horizon.reason}"
        if size is not None or horizon is not None:
            # 004 §6.3's search range bounds adaptive lrs; the SGD family's own linear rule (004 §6.4.3) already
            # takes 0.1 per 256 past 1 at large batches, so only the lower end applies to it
            lo_lr, hi_lr_global = pr.global_lr_range
            if kind == "linear":
                hi_lr_global = math.inf
            if not lo_lr <= lr <= hi_lr_global:
                clamped = min(max(lr, lo_lr), hi_lr_global)
                reason += f"; {_fmt(lr)} is outside 004 §6.3's lr range, so {_fmt(clamped)}"
                lr = clamped
        raised = lr / base_lr if base_lr > 0 else 1.0
        if kind == "linear" and raised >= 2 and not train.get("warmup"):
            # Goyal et al. warm up because the scaled-up lr is too large for the freshly initialised net, whatever
            # raised it: the batch term, the model-size term, or both together
            moved = [
                term
                for term, on in (("batch", factor != 1.0), ("model-size", size is not None and size.factor != 1.0))
                if on
            ]
            terms = f"{' and '.join(moved)} term{'s' if len(moved) > 1 else ''}"
            train["warmup"] = True
            self.notes.append(
                f"The {terms} put the lr at {raised:.3g}x the table's {_fmt(base_lr)}: a gradual warmup is "
                "added, as SGD started at a scaled-up lr needs it (external: Goyal et al. 2017, 5 warmup epochs "
                "for an lr raised with the batch)."
            )
        lr_range = train.get("lr_range")
        if lr_range is not None:
            lo, hi_lr = lr_range
            if lr < lo or lr > hi_lr:
                clamped = min(max(lr, lo), hi_lr)
                self.warnings.append(
                    f"lr {_fmt(lr)} is outside the goal's range {_fmt(lo)}-{_fmt(hi_lr)} ({self.p.goal}); "
                    f"using {_fmt(clamped)}."
                )
                lr = clamped
        if "lr" in hp:
            hp["lr"] = float(f"{lr:.6g}")
        return _new(
            LRScaling,
            rule=rule,
            base_lr=float(f"{base_lr:.6g}"),
            base_batch_size=ref,
            batch_size=batch,
            factor=round(factor, 6),
            reason=reason,
            reference_model=size.reference.name if size is not None else None,
            reference_parameters=size.reference.parameters if size is not None else None,
            num_parameters=self.p.num_parameters if size is not None else None,
            size_factor=round(size.factor, 6) if size is not None else 1.0,
            reference_steps=horizon.reference_steps if horizon is not None else None,
            total_steps=horizon.total_steps if horizon is not None else None,
            horizon_factor=round(horizon.factor, 6) if horizon is not None else 1.0,
        )

    def _size_factor(self, lr_rule: CompiledRule | None, kind: str) -> _SizeTerm | None:
        """The term carrying the table's lr from its reference model to
        ``num_parameters``, or None when either size is unknown or the optimizer takes no scaled lr."""
        ref = lr_rule.rule.reference_model if lr_rule else None
        n = self.p.num_parameters
        if ref is None or n is None or kind == "none":
            return None
        pr = self.pr
        factor, bound = self._bounded((ref.parameters / n) ** pr.size_scaling_exponent)
        direction = "smaller" if n < ref.parameters else "larger"
        reason = (
            f"model size: the table's lr is for {ref.name} ({_count(ref.parameters)} parameters, {ref.source}); "
            f"a {direction} model takes lr x ({_count(ref.parameters)}/{_count(n)})^{pr.size_scaling_exponent:g} "
            f"= x{factor:.3g} ({pr.sources['size_scaling_exponent']}){bound}"
        )
        return _SizeTerm(ref, factor, reason)

    def _bounded(self, raw: float) -> tuple[float, str]:
        """A size or horizon factor kept within ``size_scaling_max_factor`` either way, and the words that
        say so when it had to be (empty otherwise)."""
        top = self.pr.size_scaling_max_factor
        factor = min(max(raw, 1 / top), top)
        return factor, (f", bounded at {top:g}x" if factor != raw else "")

    def _horizon_factor(
        self, lr_rule: CompiledRule | None, kind: str, batch: int | None, *, cite_reference: bool
    ) -> _HorizonTerm | None:
        """The term carrying the table's lr from the length of its
        reference run to the caller's ``total_steps``: the optimal lr falls as a power of the horizon, so a
        short run takes a higher lr and a longer one a lower. None when either length is unknown; a factor of 1
        for an optimizer that is not an adaptive one (the law was measured on AdamW: Bjorck et al. 2025,
        DeepSeek-AI 2024). ``cite_reference`` adds the reference run's source (the size term's
        reason carries it otherwise)."""
        ref = lr_rule.rule.reference_model if lr_rule else None
        if ref is None or ref.steps is None or kind == "none":
            return None
        total = self._total_steps(batch)
        if total is None:
            return None
        pr = self.pr
        if self.book.optimizers[self.chosen].family != "adaptive":
            # both sources measured the law on AdamW: it is not carried to the SGD family or second-order methods
            reason = (
                f"training horizon: {self.chosen} keeps the lr of {ref.name}'s {_count(ref.steps)}-step run for your "
                f"{_count(total)} steps, since the horizon law was measured on adaptive optimizers only "
                f"({pr.sources['horizon_scaling_exponent']})"
            )
            return _HorizonTerm(ref.steps, total, 1.0, reason)
        factor, bound = self._bounded((ref.steps / total) ** pr.horizon_scaling_exponent)
        direction = "shorter" if total < ref.steps else "longer" if total > ref.steps else "equally long"
        reason = (
            f"training horizon: the table's lr is for {ref.name}'s run of {_count(ref.steps)} steps"
            f"{f' ({ref.source})' if cite_reference else ''}; a {direction} "
            f"run takes lr x ({_count(ref.steps)}/{_count(total)})^{pr.horizon_scaling_exponent:g} = x{factor:.3g} "
            f"({pr.sources['horizon_scaling_exponent']}){bound}"
        )
        return _HorizonTerm(ref.steps, total, factor, reason)

    def _total_steps(self, batch: int | None) -> int | None:
        p = self.p
        if p.total_steps is not None:
            return p.total_steps
        if p.epochs is not None and p.steps_per_epoch is not None:
            return p.epochs * p.steps_per_epoch
        if p.epochs is not None and p.dataset_size is not None and batch:
            return p.epochs * math.ceil(p.dataset_size / batch)
        return None

    def _schedule(
        self, default_name: str, default_warmup: bool, train: dict[str, Any], batch: int | None, scaling: LRScaling
    ) -> ScheduleSpec:
        pr = self.pr
        name = train.get("schedule", default_name)
        warmup = train.get("warmup", default_warmup)
        ratio = 0.0
        if warmup:
            if "warmup_ratio" in train:
                ratio = train["warmup_ratio"]
            elif train.get("short_warmup"):
                ratio = pr.short_warmup_ratio
            else:
                ratio = pr.default_warmup_ratio
        total = self._total_steps(batch)
        warmup_steps: int | None = round(total * ratio) if total is not None else (0 if ratio == 0 else None)
        milestones = fractions = None
        gamma = None
        if name == "step":
            fractions = list(train.get("step_milestones", pr.step_milestones))
            gamma = train.get("step_gamma", pr.step_gamma)
            if total is not None:
                milestones = [max(1, round(f * total)) for f in fractions]
        elif name == "exponential":
            # decay to 1% of the peak lr by the end of training (stated policy)
            gamma = float(f"{0.01 ** (1 / total):.8g}") if total else None
        if total is None:
            self.notes.append(
                "total_steps is unknown (give total_steps, or epochs with steps_per_epoch or dataset_size): "
                "the schedule is given as ratios."
            )
        return _new(
            ScheduleSpec,
            name=name,
            warmup_steps=warmup_steps,
            warmup_ratio=ratio,
            total_steps=total,
            milestones=milestones,
            milestone_fractions=fractions,
            gamma=gamma,
        )

    def _param_groups(
        self,
        chosen: str,
        hp: dict[str, Any],
        train: dict[str, Any],
        matched: list[CompiledRule],
        avoid: Mapping[str, AvoidEntry],
    ) -> list[ParamGroup]:
        groups: list[ParamGroup] = []
        if train.get("hybrid"):
            groups.extend(self._hybrid_groups(chosen, matched, avoid))
        if hp.get("weight_decay", 0) and self.book.optimizers[chosen].family != "second_order":
            groups.append(
                _group(
                    name="no_decay",
                    match=["bias", "norm weights (BatchNorm/LayerNorm/GroupNorm)", "1-D parameters"],
                    why="Weight decay is not applied to biases and normalisation weights "
                    "(as timm and Hugging Face do).",
                    hyperparameters={"weight_decay": 0.0},
                )
            )
        if train.get("freeze_backbone"):
            groups.append(
                _group(
                    name="frozen",
                    match=["early backbone layers"],
                    why="Transfer learning: freeze the early, generic layers at first (004 §2.5 transfer learning).",
                    frozen=True,
                )
            )
        if "layerwise_lr_decay" in train:
            decay = train["layerwise_lr_decay"]
            groups.append(
                _group(
                    name="layerwise",
                    match=["layers, from the head down"],
                    why=f"Each layer below the head gets {decay}x the lr of the layer above it (004 §2.5 transfer "
                    "learning: per-layer learning rates).",
                    layerwise_lr_decay=decay,
                )
            )
        return groups

    def _hybrid_groups(
        self, chosen: str, matched: list[CompiledRule], avoid: Mapping[str, AvoidEntry]
    ) -> list[ParamGroup]:
        """004 §5.6.1: embeddings -> Adagrad, dense layers -> Adam; each replaced when avoided for this profile."""
        excluded = set(avoid) | self.over_budget
        emb = next((o for o in _SPARSE_CHOICES if o not in excluded), chosen)
        dense = next((o for o in _DENSE_CHOICES if o not in excluded), chosen)
        if emb == dense:
            self.notes.append(
                f"The recommender split (embeddings -> Adagrad, dense -> Adam, 004 §5.6.1) collapses to one "
                f"optimizer, {emb}, because the profile rules the usual pair out."
            )
            return []
        emb_hp, _ = derive_hyperparameters(self.book, emb, matched)
        dense_hp, _ = derive_hyperparameters(self.book, dense, matched)
        swapped = " (its usual optimizer is ruled out for this profile)"
        return [
            _group(
                name="embeddings",
                match=["torch.nn.Embedding", "torch.nn.EmbeddingBag"],
                why="Sparse embedding rows get per-row adaptive steps (004 §5.6.1)"
                + ("" if emb == "adagrad" else swapped)
                + ".",
                optimizer=emb,
                hyperparameters=emb_hp,
            ),
            _group(
                name="dense",
                match=["*"],
                why="The dense interaction layers see dense gradients (004 §5.6.1)"
                + ("" if dense == "adam" else swapped)
                + ".",
                optimizer=dense,
                hyperparameters=dense_hp,
            ),
        ]

    def _memory(self, chosen: str) -> MemoryEstimate:
        p, pr = self.p, self.pr
        mult = self._multiplier(chosen)
        n = p.num_parameters
        bpv = pr.bytes_per_state_value
        if n is None:
            return _new(
                MemoryEstimate,
                state_multiplier=mult,
                optimizer_state_bytes=None,
                parameter_bytes=None,
                gradient_bytes=None,
                total_bytes=None,
                device_memory_bytes=None,
                budget_multiplier=self.budget,
                fits=None,
            )
        state = int(mult * bpv * n)
        total = state + 2 * bpv * n
        device = int(p.device_memory_gb * _GB) if p.device_memory_gb is not None else None
        return _new(
            MemoryEstimate,
            state_multiplier=mult,
            optimizer_state_bytes=state,
            parameter_bytes=bpv * n,
            gradient_bytes=bpv * n,
            total_bytes=total,
            device_memory_bytes=device,
            budget_multiplier=None if self.budget is None else round(self.budget, 4),
            fits=None if device is None else total <= device,
        )

    def _search_space(
        self, chosen: str, hp: dict[str, Any], batch: int | None, train: dict[str, Any]
    ) -> tuple[dict[str, list[float]], list[TuningHint]]:
        """004 §6.3: the ranges worth searching, in priority order, centred on the recommendation.

        The hints are memoized by the arguments of :meth:`_tuning_hints`, which reads nothing else, so the
        key cannot leave out what they depend on. They are frozen, so they are shared; the space's lists are not.
        """
        lr_range = train.get("lr_range")
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
            if len(cache) > _CACHE_LIMIT:  # the lr is a continuous key: bound the memo here too
                cache.clear()
            hints = cache[key] = self._tuning_hints(*args)
        return {h.name: [h.low, h.high] for h in hints}, list(hints)

    def _tuning_hints(
        self,
        family: str,
        lr: float | None,
        lr_range: tuple[float, float] | None,
        batch: int | None,
        budgeted: bool,
        has_weight_decay: bool,
        momentum: bool,
    ) -> tuple[TuningHint, ...]:
        """The tuning hints for these arguments alone (plus the rulebook's constants): they are the memo key."""
        pr = self.pr
        src = pr.sources["tuning"]
        ranges: list[tuple[str, float, float, Literal["log", "linear"], str]] = []
        if lr:
            lo, hi = lr_range if lr_range is not None else lr_search_range(lr, pr)
            ranges.append(("lr", lo, hi, "log", src))
        if batch:
            hi_b = batch if budgeted else batch * 4
            ranges.append(("batch_size", float(max(1, batch // 4)), float(hi_b), "log", src))
        if family == "sgd":
            lo, hi = pr.sgd_weight_decay_range
            ranges.append(("weight_decay", lo, hi, "log", "external: common CNN weight-decay range"))
        elif has_weight_decay or family == "adaptive":
            lo, hi = pr.adaptive_weight_decay_range
            ranges.append(("weight_decay", lo, hi, "log", src))
        if family == "sgd" and momentum:
            lo, hi = pr.momentum_range
            ranges.append(("momentum", lo, hi, "linear", src))
        why = self.book.tuning_why
        return tuple(
            _new(
                TuningHint,
                name=name,
                priority=why[name][0],
                low=lo,
                high=hi,
                scale=scale,
                why=why[name][1],
                source=source,
            )
            for name, lo, hi, scale, source in ranges
        )

    def _phases(
        self, chosen: str, hp: dict[str, Any], schedule: ScheduleSpec, matched: list[CompiledRule]
    ) -> list[Phase]:
        """004 §6.4.2: best accuracy with an adaptive optimizer -> finish with SGD + momentum."""
        if self.p.goal != "best_accuracy" or self.book.optimizers[chosen].family != "adaptive":
            return []
        pr = self.pr
        total = schedule.total_steps
        switch = round(total * pr.switch_fraction) if total is not None else None
        sgd_hp, _ = derive_hyperparameters(self.book, "sgd_momentum", matched)
        trigger = "validation loss stops improving"
        if switch is not None:
            trigger += f", or step {switch} at the latest"
        self.notes.append(
            f"Best-accuracy plan: train with {chosen} until validation loss plateaus, then switch to SGD + momentum "
            f"for the rest ({pr.sources['switching']})."
        )
        return [
            _new(
                Phase,
                name="adaptive",
                optimizer=_new(OptimizerChoice, name=chosen, hyperparameters=dict(hp)),
                start_step=0,
                end_step=switch,
                trigger=trigger,
                why="Reach a good region fast with the adaptive optimizer.",
            ),
            _new(
                Phase,
                name="sgd_finish",
                optimizer=_new(OptimizerChoice, name="sgd_momentum", hyperparameters=sgd_hp),
                start_step=switch,
                end_step=total,
                trigger="after the adaptive phase",
                why="SGD + momentum settles in flatter minima that generalise better (004 §6.4.2, §5.1.1).",
            ),
        ]

    def _rationale(
        self,
        matched: list[CompiledRule],
        relaxed: set[str],
        chosen: str,
        train_by: dict[str, str],
        lr_rule: CompiledRule | None,
    ) -> list[RationaleEntry]:
        used = set(train_by.values())
        if lr_rule is not None:
            used.add(lr_rule.id)
        cache = self.book.cache
        out: list[RationaleEntry] = []
        for cr in reversed(matched):
            rid = cr.rule.id
            key = ("rationale", cr.rank, chosen, rid in relaxed, rid in used)
            entry = cache.get(key)
            if entry is None:
                entry = cache[key] = self._rationale_entry(cr, chosen, rid in relaxed, rid in used)
            out.append(entry)
        return out

    @staticmethod
    def _rationale_entry(cr: CompiledRule, chosen: str, relaxed: bool, used: bool) -> RationaleEntry:
        rule = cr.rule
        detail: str | None = None
        status: Status
        if rule.prefer and rule.prefer[0] == chosen:
            status = "chosen"
        elif chosen in rule.prefer:
            status = "supports"
            detail = f"ranks {chosen} #{rule.prefer.index(chosen) + 1}"
        elif rule.prefer:
            status = "outvoted"
            detail = f"prefers {', '.join(rule.prefer)}; a more specific rule or a constraint decided"
        elif rule.avoid:
            status = "avoid"
        elif used:
            status = "applied"
        else:
            status = "info"
        if rule.avoid and status != "avoid":
            detail = (detail + "; " if detail else "") + f"rules out {', '.join(rule.avoid)}"
        if relaxed:
            detail = (detail + "; " if detail else "") + "assumed: the profile does not narrow the domain to a row"
        return _new(
            RationaleEntry,
            rule=cr.id,
            source=rule.source,
            level=rule.level,
            status=status,
            effect=rule.effect,
            detail=detail,
        )
