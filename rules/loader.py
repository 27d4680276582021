"""Load, validate and compile the knowledge base under ``rules/data/``.

Loading happens once per process (``default_rulebook()`` is cached).  Every file is parsed with
``tomllib`` and validated by the models of :mod:`optirec.rules.schema`; cross-references
(optimizer names in rules, duplicate ids, vocabulary values in conditions) are checked after.
Any problem raises :class:`~optirec.rules.errors.RulebookError` naming file, rule and field.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from .data_files import read_toml, validate_entry
from .errors import RulebookError, UnknownNameError
from .matching import RecipeIndex, TableJob, table_job
from .recipes import RecipeEntry, load_bibliography, load_recipe_file
from .schema import (
    DiagnosisSettings,
    Fact,
    MatchingCosts,
    OptimizerSpec,
    Principles,
    Rule,
    Symptom,
    SymptomContext,
    Term,
)
from .sources import Bibliography

__all__ = [
    "CACHE_LIMIT",
    "DATA_DIR",
    "LEVEL_WEIGHTS",
    "Rulebook",
    "check_citations",
    "default_rulebook",
    "load_rulebook",
    "normalize",
]

DATA_DIR = Path(__file__).resolve().parent / "data"

#: Votes of a more specific level always outweigh any sum of votes from less specific levels
#: (architecture > domain > constraint rows > generic family > data/goal > guides > default).
LEVEL_WEIGHTS: dict[str, float] = {
    "recipe": 100000.0,  # a published recipe matched to the job (rules/matching.py): above every table row
    "architecture": 10000.0,
    "domain": 1000.0,
    "constraint": 500.0,
    "family": 100.0,
    "data": 10.0,
    "goal": 10.0,
    "guide": 1.0,
    "default": 0.1,
}
#: Weight of a rule's 1st, 2nd, 3rd... preference.
POSITION_WEIGHTS = (1.0, 0.5, 0.33, 0.25, 0.2)

#: memoized entries per rulebook (``Rulebook.cache``: decisions, search spaces, fills) before the memo is cleared
CACHE_LIMIT = 50_000

VOCABULARY_KINDS = (
    "domain",
    "architecture",
    "data",
    "goal",
    "rl_method",
    "phase",
    "sharding",
    "adapter",
    "precision",
    "optimizer_state_precision",
)


_SEPARATORS = re.compile(r"[\s\-_+/().,]+")


def normalize(value: str) -> str:
    """Case-insensitive; runs of spaces, dashes, dots, slashes and brackets read as one '_'."""
    return _SEPARATORS.sub("_", value.strip().lower()).strip("_")


def compact(value: str) -> str:
    """``normalize`` without separators at all: 'ResNet-50', 'resnet_50' and 'resnet50' all match."""
    return normalize(value).replace("_", "")


def _alias_table(entries: Iterable[tuple[str, Iterable[str]]]) -> dict[str, str]:
    """normalized and compact spellings of every name, label and alias -> canonical name (names win)."""
    table: dict[str, str] = {}
    entries = list(entries)
    for name, _ in entries:
        table[name] = name
    for name, spellings in entries:
        for spelling in spellings:
            table.setdefault(normalize(spelling), name)
    for name, spellings in entries:
        for spelling in [name, *spellings]:
            table.setdefault(compact(spelling), name)
    return table


@dataclass(frozen=True)
class CompiledRule:
    """A rule with what the engine needs precomputed."""

    rule: Rule
    weight: float
    conditions: tuple[tuple[str, frozenset[str] | bool], ...]
    order: int
    set_values: dict[str, Any]
    train_values: dict[str, Any]
    #: (optimizer, vote weight) per preference: the level weight times the position weight
    votes: tuple[tuple[str, float], ...] = ()
    rank: int = 0
    #: the conditions after the first (the index finds a rule by its first, so only these are left to check)
    rest: tuple[tuple[str, frozenset[str] | bool], ...] = field(init=False)
    fallback: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rest", self.conditions[1:])
        object.__setattr__(self, "fallback", self.rule.fallback)

    @property
    def id(self) -> str:
        return self.rule.id


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Tuples become lists, so the dicts are JSON-ready as they are."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


class Rulebook:
    """The validated, compiled knowledge base."""

    def __init__(
        self,
        *,
        directory: Path,
        version: str,
        digest: str,
        optimizers: list[OptimizerSpec],
        vocabulary: dict[str, list[Term]],
        rules: list[tuple[str, Rule]],
        principles: Principles,
        symptoms: list[Symptom],
        facts: list[Fact],
        diagnosis: DiagnosisSettings | None = None,
        symptom_contexts: list[SymptomContext] | None = None,
        bibliography: Bibliography | None = None,
        recipes: list[RecipeEntry] | None = None,
        matching: MatchingCosts | None = None,
    ) -> None:
        self.directory = directory
        self.version = version
        self.hash = digest
        self.optimizers: dict[str, OptimizerSpec] = {o.name: o for o in optimizers}
        #: catalog position of each optimizer: the deterministic tie-breaker
        self.catalog_order: dict[str, int] = {o.name: i for i, o in enumerate(optimizers)}
        self.vocabulary = vocabulary
        self.principles = principles
        self.tuning_why: dict[str, tuple[int, str]] = {t.name: (t.priority, t.why) for t in principles.tuning}
        self.symptoms = {s.name: s for s in symptoms}
        #: thresholds and fix sizes of ``optirec.diagnose`` (principles.toml ``[diagnosis]``)
        self.diagnosis = diagnosis
        #: extra changes when a symptom shows up in a setting (symptoms.toml ``[[context]]``)
        self.symptom_contexts = list(symptom_contexts or [])
        self.facts = facts
        #: the full reference of every source (sources.toml)
        self.bibliography = bibliography if bibliography is not None else Bibliography([])
        #: the published recipes, by id (rules/data/recipes/)
        self.recipes: dict[str, RecipeEntry] = {e.id: e for e in recipes or []}
        rules = [*rules, *((f"recipes/{e.file}", e.rule) for e in recipes or [])]
        self.rule_files = {r.id: f for f, r in rules}
        self.rules: dict[str, Rule] = {r.id: r for _, r in rules}

        # alias tables: normalized alias -> canonical name, per vocabulary kind and for optimizers
        self.aliases: dict[str, dict[str, str]] = {}
        for kind, terms in vocabulary.items():
            self.aliases[kind] = _alias_table((t.name, [t.label, *t.aliases]) for t in terms)
        self.aliases["optimizer"] = _alias_table((o.name, [o.display_name, *o.aliases]) for o in optimizers)
        self.aliases["symptom"] = _alias_table((s.name, [s.label, *s.aliases]) for s in symptoms)
        self.terms: dict[str, dict[str, Term]] = {k: {t.name: t for t in v} for k, v in vocabulary.items()}

        compiled: list[CompiledRule] = []
        for order, (_, rule) in enumerate(rules):
            conds: list[tuple[str, frozenset[str] | bool]] = []
            for key, value in rule.when.items():
                if isinstance(value, bool):
                    conds.append((key, value))
                elif isinstance(value, str):
                    conds.append((key, frozenset([value])))
                else:
                    conds.append((key, frozenset(value)))
            weight = LEVEL_WEIGHTS[rule.level] * (1.0 + 0.5 * max(0, len(conds) - 1))
            compiled.append(
                CompiledRule(
                    rule=rule,
                    weight=weight,
                    conditions=tuple(conds),
                    order=order,
                    set_values=_plain(rule.set.model_dump(exclude_none=True)),
                    train_values=_plain(rule.train.model_dump(exclude_none=True)),
                    votes=tuple(
                        (name, weight * POSITION_WEIGHTS[min(i, len(POSITION_WEIGHTS) - 1)])
                        for i, name in enumerate(rule.prefer)
                    ),
                )
            )
        #: catalog defaults per optimizer, as plain JSON-ready dicts
        self.defaults: dict[str, dict[str, Any]] = {
            o.name: _plain(o.defaults.model_dump(exclude_none=True)) for o in optimizers
        }
        # rank: position in ascending (weight, -order), the order in which hyperparameters are applied
        ranked = sorted(compiled, key=lambda c: (c.weight, -c.order))
        compiled = [replace(c, rank=i) for i, c in enumerate(ranked)]
        compiled.sort(key=lambda c: c.order)
        self.compiled = compiled
        #: memo of immutable answer fragments (rationale entries ...), bounded by rules x optimizers
        self.cache: dict[tuple[Any, ...], Any] = {}
        #: optimizer -> ranks of the rules whose `set` is written for it
        self.setters: dict[str, frozenset[int]] = {}
        for cr in compiled:
            if cr.set_values:
                for target in cr.rule.hyper_targets:
                    self.setters[target] = self.setters.get(target, frozenset()) | {cr.rank}
        #: ranks of the rules marked ``overrides``, whose values go after all others'
        self.overriding: frozenset[int] = frozenset(cr.rank for cr in compiled if cr.rule.overrides)
        # index: (field, value) of a rule's first condition -> rules; rules without conditions always apply
        self.index: dict[tuple[str, str | bool], list[CompiledRule]] = {}
        self.unconditional: list[CompiledRule] = []
        #: recipe id -> its compiled rule; recipes are found by rules/matching.py, never by the condition index
        self.recipe_rules: dict[str, CompiledRule] = {}
        for cr in compiled:
            if cr.rule.level == "recipe":
                self.recipe_rules[cr.id.removeprefix("recipe.")] = cr
                continue
            if not cr.conditions:
                self.unconditional.append(cr)
                continue
            first_key, wanted = cr.conditions[0]
            values: Iterable[str | bool] = [wanted] if isinstance(wanted, bool) else wanted
            for v in values:
                self.index.setdefault((first_key, v), []).append(cr)

        # recipe matching (rules/matching.py): the recipes by family and domain, the job each seed row describes,
        # and the recipes per (optimizer, architecture family) whose lrs make the family's envelope
        self.matching = matching
        arch_terms = self.terms["architecture"]
        self.generic_architectures = frozenset(t.name for t in arch_terms.values() if t.name == t.family)
        family_of = {t.name: t.family for t in arch_terms.values()}
        domain_of = {t.name: t.domain for t in arch_terms.values()}
        self.parent_of: dict[str, str | None] = {t.name: t.parent for t in arch_terms.values()}
        related = {t.name: frozenset(t.related) for t in self.terms["domain"].values()}
        self.recipe_index = RecipeIndex(self.recipes.values(), self.generic_architectures, self.parent_of, related)
        self.table_jobs: dict[int, TableJob] = {
            cr.rank: table_job(
                cr.rule, family_of, self.generic_architectures, self.parent_of, self.recipe_index, domain_of
            )
            for cr in compiled
            if cr.rule.level != "recipe" and cr.conditions  # every row describes a job by its conditions
        }
        self.recipe_groups: dict[tuple[str, str | None], list[RecipeEntry]] = {}
        #: the recipes of one job (architecture, phase, optimizer family), for the companion details
        self.recipes_by_job: dict[tuple[str, str, str], list[RecipeEntry]] = {}
        for e in self.recipes.values():
            self.recipe_groups.setdefault((e.recipe.config.optimizer, e.family), []).append(e)
            if e.recipe.job.architecture is not None:
                job = (e.recipe.job.architecture, e.recipe.job.phase, e.optimizer_family)
                self.recipes_by_job.setdefault(job, []).append(e)

    # ------------------------------------------------------------------ look-ups
    def valid(self, kind: str) -> list[str]:
        """Sorted canonical names of a vocabulary kind ('domain', 'architecture', ...) or 'optimizer'."""
        if kind == "optimizer":
            return sorted(self.optimizers)
        return sorted(t.name for t in self.vocabulary[kind])

    def resolve(self, kind: str, value: str) -> str | None:
        """Canonical name for a value or alias of ``kind``; None when unknown."""
        table = self.aliases[kind]
        return table.get(value) or table.get(normalize(value)) or table.get(compact(value))

    def optimizer(self, name: str) -> OptimizerSpec:
        """The catalog entry for ``name`` (aliases accepted); raises UnknownNameError."""
        canonical = self.resolve("optimizer", name)
        if canonical is None:
            raise UnknownNameError("optimizer", name, self.valid("optimizer"))
        return self.optimizers[canonical]

    def rule(self, rule_id: str) -> Rule:
        try:
            return self.rules[rule_id]
        except KeyError:
            raise UnknownNameError("rule", rule_id, sorted(self.rules)) from None

    def state_multiplier(self, name: str) -> float:
        """Optimizer-state values stored per parameter (wrappers add their base optimizer's)."""
        spec = self.optimizers[name]
        mult = spec.state_multiplier
        if spec.family == "wrapper" and spec.defaults.base and spec.name != "ranger":
            mult += self.optimizers[spec.defaults.base].state_multiplier
        return mult


def _check_names(file: str, rule: Rule, names: Iterable[str], optimizers: dict[str, OptimizerSpec], field: str) -> None:
    for n in names:
        if n not in optimizers:
            from .errors import suggest

            hint = suggest(n, optimizers)
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise RulebookError(file, rule.id, field, f"unknown optimizer {n!r}{extra}")


def _load_diagnosis(raw_principles: dict[str, Any]) -> DiagnosisSettings:
    """principles.toml ``[diagnosis]``: every threshold bounded and cited in ``[diagnosis.sources]``."""
    raw = raw_principles.get("diagnosis")
    if not isinstance(raw, dict):
        raise RulebookError("principles.toml", None, "diagnosis", "missing [diagnosis] table")
    settings: DiagnosisSettings = validate_entry(DiagnosisSettings, raw, "principles.toml", "diagnosis", 0)
    keys = [k for k in DiagnosisSettings.model_fields if k != "sources"]
    for key in keys:
        if key not in settings.sources:
            raise RulebookError("principles.toml", "diagnosis", f"sources.{key}", "every threshold must cite a source")
    for key in settings.sources:
        if key not in keys:
            raise RulebookError("principles.toml", "diagnosis", f"sources.{key}", "cites a key that does not exist")
    if settings.spike_min_history > settings.spike_window:
        raise RulebookError("principles.toml", "diagnosis", "spike_min_history", "must not be larger than spike_window")
    return settings


def _check_symptoms(
    symptoms: list[Symptom],
    contexts: list[SymptomContext],
    optimizers: dict[str, OptimizerSpec],
    families: set[str],
    goals: set[str],
) -> None:
    from .errors import suggest

    def unknown(rule: str, field: str, kind: str, value: str, valid: Iterable[str]) -> RulebookError:
        hint = suggest(value, valid)
        extra = f" (did you mean {hint!r}?)" if hint else ""
        return RulebookError("symptoms.toml", rule, field, f"unknown {kind} {value!r}{extra}")

    names: set[str] = set()
    ids: set[str] = set()
    for s in symptoms:
        if s.name in names or s.id in ids:
            raise RulebookError("symptoms.toml", s.id, "name", "duplicate symptom")
        names.add(s.name)
        ids.add(s.id)
        for opt in s.requires_optimizer or []:
            if opt not in optimizers:
                raise unknown(s.id, "requires_optimizer", "optimizer", opt, optimizers)
        for goal in s.requires_goal or []:
            if goal not in goals:
                raise unknown(s.id, "requires_goal", "goal", goal, goals)
        if s.fallback is not None and not s.fallback_why:
            raise RulebookError("symptoms.toml", s.id, "fallback_why", "a fallback action must say why")
        if s.requires_schedule is not None and not (s.otherwise_cause and s.otherwise_fix):
            missing = "otherwise_fix" if s.otherwise_cause else "otherwise_cause"
            raise RulebookError("symptoms.toml", s.id, missing, "requires_schedule needs what to say under the others")
    for c in contexts:
        if c.id in ids:
            raise RulebookError("symptoms.toml", c.id, "id", "duplicate id")
        ids.add(c.id)
        for fam in c.when_family:
            if fam not in families:
                raise unknown(c.id, "when_family", "architecture family", fam, families)
        for name in c.when_symptoms:
            if name not in names:
                raise unknown(c.id, "when_symptoms", "symptom", name, names)


def load_rulebook(directory: str | os.PathLike[str] | None = None, *, recipes: bool = True) -> Rulebook:
    """Parse and validate every data file of ``directory`` (default: the bundled knowledge base).

    ``recipes=False`` leaves the recipe library out (its own checker loads the rest without it).
    """
    root = Path(directory) if directory is not None else DATA_DIR
    if not root.is_dir():
        raise RulebookError(str(root), None, None, "knowledge-base directory not found")
    files = sorted(p for p in root.glob("*.toml") if p.is_file())
    recipe_files = sorted(p for p in (root / "recipes").glob("*.toml") if p.is_file()) if recipes else []
    files += recipe_files
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")

    def need(name: str) -> dict[str, Any]:
        path = root / name
        if not path.is_file():
            raise RulebookError(name, None, None, f"required file missing from {root}")
        return read_toml(path)

    raw_opts = need("optimizers.toml")
    optimizers = [
        validate_entry(OptimizerSpec, raw, "optimizers.toml", "optimizer", i)
        for i, raw in enumerate(raw_opts.get("optimizer", []))
    ]
    if not optimizers:
        raise RulebookError("optimizers.toml", None, "optimizer", "no [[optimizer]] entries")
    by_name: dict[str, OptimizerSpec] = {}
    for o in optimizers:
        if o.name in by_name:
            raise RulebookError("optimizers.toml", o.name, "name", "duplicate optimizer name")
        by_name[o.name] = o
    for o in optimizers:
        if o.defaults.base is not None and o.defaults.base not in by_name:
            raise RulebookError(
                "optimizers.toml", o.name, "defaults.base", f"unknown base optimizer {o.defaults.base!r}"
            )

    raw_vocab = need("vocabulary.toml")
    vocabulary: dict[str, list[Term]] = {}
    for kind in VOCABULARY_KINDS:
        entries = raw_vocab.get(kind, [])
        if not entries:
            raise RulebookError("vocabulary.toml", None, kind, f"no [[{kind}]] entries")
        vocabulary[kind] = [validate_entry(Term, raw, "vocabulary.toml", kind, i) for i, raw in enumerate(entries)]
        seen: set[str] = set()
        for t in vocabulary[kind]:
            if t.name in seen:
                raise RulebookError("vocabulary.toml", t.name, "name", f"duplicate {kind} name")
            seen.add(t.name)
    families = {t.family for t in vocabulary["architecture"] if t.family}
    domains = {t.name for t in vocabulary["domain"]}
    archs = {t.name for t in vocabulary["architecture"]}
    for t in vocabulary["architecture"]:
        if t.parent is not None and t.parent not in archs:
            raise RulebookError("vocabulary.toml", t.name, "parent", f"unknown architecture {t.parent!r}")
    for t in vocabulary["domain"]:
        for other in t.related:
            if other not in domains:
                raise RulebookError("vocabulary.toml", t.name, "related", f"unknown domain {other!r}")
    for t in vocabulary["architecture"]:
        if t.domain is not None and t.domain not in domains:
            from .errors import suggest

            hint = suggest(t.domain, domains)
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise RulebookError("vocabulary.toml", t.name, "domain", f"unknown domain {t.domain!r}{extra}")
    known: dict[str, set[str]] = {k: {t.name for t in v} for k, v in vocabulary.items()}
    known["family"] = families

    rules: list[tuple[str, Rule]] = []
    ids: dict[str, str] = {}
    for path in files:
        if not path.name.endswith(".rules.toml"):
            continue
        raw_rules = read_toml(path).get("rule", [])
        for i, raw in enumerate(raw_rules):
            rule = validate_entry(Rule, raw, path.name, "rule", i)
            if rule.id in ids:
                raise RulebookError(path.name, rule.id, "id", f"duplicate rule id (first defined in {ids[rule.id]})")
            ids[rule.id] = path.name
            _check_names(path.name, rule, rule.prefer, by_name, "prefer")
            _check_names(path.name, rule, rule.avoid, by_name, "avoid")
            _check_names(path.name, rule, rule.apply_to or [], by_name, "apply_to")
            if rule.avoid and not rule.avoid_reason:
                raise RulebookError(path.name, rule.id, "avoid_reason", "a rule with `avoid` must say why")
            if rule.avoid_measured_on is not None:
                if not rule.avoid:
                    raise RulebookError(
                        path.name, rule.id, "avoid_measured_on", "says where an `avoid` was measured: give one"
                    )
                for fam in rule.avoid_measured_on.families:
                    if fam not in families:
                        from .errors import suggest

                        hint = suggest(fam, families)
                        extra = f" (did you mean {hint!r}?)" if hint else ""
                        raise RulebookError(
                            path.name, rule.id, "avoid_measured_on.families", f"unknown family {fam!r}{extra}"
                        )
            for key, value in rule.when.items():
                if key not in known or isinstance(value, bool):
                    continue
                for v in [value] if isinstance(value, str) else value:
                    if v not in known[key]:
                        from .errors import suggest

                        hint = suggest(v, known[key])
                        extra = f" (did you mean {hint!r}?)" if hint else ""
                        raise RulebookError(path.name, rule.id, f"when.{key}", f"unknown {key} {v!r}{extra}")
            rules.append((path.name, rule))
    if not any(r.level == "default" for _, r in rules):
        raise RulebookError("*.rules.toml", None, "level", "no rule of level 'default': the engine needs a last resort")

    raw_principles = need("principles.toml")
    if "principles" not in raw_principles:
        raise RulebookError("principles.toml", None, "principles", "missing [principles] table")
    principles = validate_entry(Principles, raw_principles["principles"], "principles.toml", "principles", 0)
    if principles.default_optimizer not in by_name:
        raise RulebookError(
            "principles.toml", "principles", "default_optimizer", f"unknown optimizer {principles.default_optimizer!r}"
        )
    version = str(raw_principles.get("rulebook", {}).get("version", "0"))

    diagnosis = _load_diagnosis(raw_principles)
    if not isinstance(raw_principles.get("matching"), dict):
        raise RulebookError("principles.toml", None, "matching", "missing [matching] table")
    matching: MatchingCosts = validate_entry(
        MatchingCosts, raw_principles["matching"], "principles.toml", "matching", 0
    )

    symptoms: list[Symptom] = []
    contexts: list[SymptomContext] = []
    if (root / "symptoms.toml").is_file():
        raw_sym = read_toml(root / "symptoms.toml")
        symptoms = [
            validate_entry(Symptom, raw, "symptoms.toml", "symptom", i)
            for i, raw in enumerate(raw_sym.get("symptom", []))
        ]
        contexts = [
            validate_entry(SymptomContext, raw, "symptoms.toml", "context", i)
            for i, raw in enumerate(raw_sym.get("context", []))
        ]
        _check_symptoms(symptoms, contexts, by_name, families, set(known["goal"]))
    facts: list[Fact] = []
    if (root / "facts.toml").is_file():
        raw_facts = read_toml(root / "facts.toml")
        facts = [validate_entry(Fact, raw, "facts.toml", "fact", i) for i, raw in enumerate(raw_facts.get("fact", []))]

    bibliography = load_bibliography([root / "sources.toml"] if (root / "sources.toml").is_file() else [])
    terms = {kind: {t.name: t for t in entries} for kind, entries in vocabulary.items()}
    optimizer_families = {o.name: o.family for o in optimizers}
    recipe_entries: list[RecipeEntry] = []
    recipe_ids: dict[str, str] = {}
    for path in recipe_files:
        for entry in load_recipe_file(
            path, vocabulary=terms, optimizer_families=optimizer_families, bibliography=bibliography
        ):
            if entry.id in recipe_ids:
                raise RulebookError(path.name, entry.id, "id", f"duplicate recipe id (first in {recipe_ids[entry.id]})")
            recipe_ids[entry.id] = path.name
            recipe_entries.append(entry)

    book = Rulebook(
        directory=root,
        version=version,
        digest=digest.hexdigest(),
        optimizers=optimizers,
        vocabulary=vocabulary,
        rules=rules,
        principles=principles,
        symptoms=symptoms,
        facts=facts,
        diagnosis=diagnosis,
        symptom_contexts=contexts,
        bibliography=bibliography,
        recipes=recipe_entries,
        matching=matching,
    )
    check_citations(book)
    return book


def _citations(book: Rulebook) -> Iterable[tuple[str, str, str, str]]:
    """Every citation the knowledge base makes: (file, entry, field, citation)."""
    for rid, rule in book.rules.items():
        file = book.rule_files[rid]
        yield file, rid, "source", rule.source
        if rule.reference_model is not None:
            yield file, rid, "reference_model.source", rule.reference_model.source
    for name, spec in book.optimizers.items():
        for i, src in enumerate(spec.sources):
            yield "optimizers.toml", name, f"sources[{i}]", src
        for key, src in spec.defaults_sources.items():
            yield "optimizers.toml", name, f"defaults_sources.{key}", src
        if spec.convergence_relative is not None:
            yield "optimizers.toml", name, "convergence_relative.source", spec.convergence_relative.source
        if spec.measured_batches is not None:
            yield "optimizers.toml", name, "measured_batches.source", spec.measured_batches.source
    for key, src in book.principles.sources.items():
        yield "principles.toml", "principles", f"sources.{key}", src
    if book.diagnosis is not None:
        for key, src in book.diagnosis.sources.items():
            yield "principles.toml", "diagnosis", f"sources.{key}", src
    if book.matching is not None:
        yield "principles.toml", "matching", "source", book.matching.source
    for kind, terms in book.vocabulary.items():
        for term in terms:
            yield "vocabulary.toml", f"{kind}.{term.name}", "source", term.source
    for symptom in book.symptoms.values():
        yield "symptoms.toml", symptom.id, "source", symptom.source
    for context in book.symptom_contexts:
        yield "symptoms.toml", context.id, "source", context.source
    for fact in book.facts:
        yield "facts.toml", fact.id, "source", fact.source


def check_citations(book: Rulebook) -> None:
    """Every citation resolves to entries of sources.toml; raises RulebookError naming the first that does not."""
    from .errors import suggest

    bib = book.bibliography
    for file, entry, field_name, citation in _citations(book):
        if bib.resolve(citation) is None:
            part = bib.unresolved_part(citation) or citation
            spellings = [s for e in bib.entries.values() for s in e.cite_as]
            hint = suggest(part.removeprefix("external: ")[:40], spellings)
            extra = f" (did you mean {hint!r}?)" if hint else ""
            raise RulebookError(file, entry, field_name, f"{part[:80]!r} names no source in sources.toml{extra}")


@cache
def default_rulebook() -> Rulebook:
    """The bundled knowledge base (or ``$OPTIREC_RULES_DIR``), loaded once per process."""
    return load_rulebook(os.environ.get("OPTIREC_RULES_DIR") or None)
