"""Which seed-table rows a profile matches: the profile's facts in the shape rules are keyed on, and the index
lookup that finds every rule whose conditions hold (fallback rows only when no sibling row matched)."""

from __future__ import annotations

from .loader import CompiledRule, Rulebook

__all__ = ["Facts", "match_rules"]

_RELAXABLE = frozenset({"family", "rl_method", "architecture"})


class Facts:
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


def match_rules(book: Rulebook, facts: Facts) -> tuple[list[CompiledRule], set[str]]:
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
