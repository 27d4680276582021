"""The answer's ``rationale``: every matched rule, most specific first, with what it did to the answer."""

from __future__ import annotations

from typing import Any

from .construct import new as _new
from .loader import CompiledRule, Rulebook
from .recommendation import RationaleEntry

__all__ = ["rationale"]


def rationale(
    book: Rulebook,
    matched: list[CompiledRule],
    relaxed: set[str],
    chosen: str,
    train_by: dict[str, str],
    lr_rule: CompiledRule | None,
) -> list[RationaleEntry]:
    used = set(train_by.values())
    if lr_rule is not None:
        used.add(lr_rule.id)
    cache = book.cache
    out: list[RationaleEntry] = []
    for cr in reversed(matched):
        rid = cr.rule.id
        key = ("rationale", cr.rank, chosen, rid in relaxed, rid in used)
        entry = cache.get(key)
        if entry is None:
            entry = cache[key] = _entry(cr, chosen, rid in relaxed, rid in used)
        out.append(entry)
    return out


def _entry(cr: CompiledRule, chosen: str, relaxed: bool, used: bool) -> RationaleEntry:
    rule = cr.rule
    detail: str | None = None
    status: Any
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
