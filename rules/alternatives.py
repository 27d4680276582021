"""The runners-up of a decision: which optimizers the matched rules also support, in what order, and one line
each on why it ranks where it does.

An optimizer whose relative score rounds to 0 (its support is five or more orders of magnitude below the
chosen one's: in practice only the catch-all default rule names it) is not a candidate for this job.  It is
still listed, after every candidate, with a reason that starts "not recommended": a race
(optimizers/racing.py, POST /trials ``race``) takes the first alternatives, and such a baseline is worth racing
where the rules name nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .loader import CompiledRule, Rulebook
from .lr_terms import fmt

__all__ = ["MAX_ALTERNATIVES", "Ranked", "rank_alternatives", "relative_score"]

MAX_ALTERNATIVES = 3
#: (name, relative score, why, the rule whose vote ranks it, its hyperparameters)
Ranked = tuple[str, float, str, str, dict[str, Any]]


def relative_score(score: float, top: float) -> float:
    """1.0 = as strongly supported as the chosen optimizer; each 0.2 less is a tenfold weaker vote."""
    if score <= 0 or top <= 0:
        return 0.0
    return round(max(0.0, 1.0 + math.log10(score / top) / 5.0), 3)


def rank_alternatives(
    book: Rulebook,
    chosen: str,
    others: Sequence[str],
    scores: Mapping[str, float],
    top_voter: Mapping[str, tuple[float, CompiledRule]],
    matched: Sequence[CompiledRule],
    hyperparameters: Callable[[str], dict[str, Any]],
    multiplier: Callable[[str], float] | None = None,
) -> tuple[Ranked, ...]:
    """The alternatives to ``chosen``: ``others`` (eligible, best score first) less the score-0 ones, the lower-
    memory ones first when ``multiplier`` is given (soft memory pressure), at most ``MAX_ALTERNATIVES``."""
    top = scores[chosen] or 1.0
    relative = {name: relative_score(scores[name], top) for name in others}
    ranked = [name for name in others if relative[name] > 0]
    if multiplier is not None:
        chosen_mult = multiplier(chosen)
        ranked.sort(key=lambda n: multiplier(n) >= chosen_mult)  # stable: lower-memory first, then by score
    if len(ranked) < MAX_ALTERNATIVES:
        ranked += [name for name in others if relative[name] == 0]  # baselines, last
    chosen_voter = top_voter[chosen][1] if chosen in top_voter else None
    # how many matched rules name each optimizer (counted once; each line reads it)
    named: dict[str, int] = {}
    for cr in matched:
        for n in {n for n, _ in cr.votes}:
            named[n] = named.get(n, 0) + 1
    out: list[Ranked] = []
    for name in ranked[:MAX_ALTERNATIVES]:
        voter = top_voter[name][1]
        score = relative[name]
        if score == 0:
            out.append(
                (name, score, _baseline(name, chosen, voter, chosen_voter, named), voter.id, hyperparameters(name))
            )
            continue
        lighter = multiplier is not None and multiplier(name) < multiplier(chosen)
        why = _why(name, chosen, voter, chosen_voter, named, scores)
        if lighter and multiplier is not None:
            own = multiplier(name)
            state = f"optimizer state {fmt(own)}x the parameters" if own else "no optimizer state"
            why += f"; listed early for memory: {state} ({chosen}: {fmt(multiplier(chosen))}x)"
        out.append((name, score, why, voter.id, hyperparameters(name)))
    return tuple(out)


def _baseline(
    name: str, chosen: str, voter: CompiledRule, chosen_voter: CompiledRule | None, named: Mapping[str, int]
) -> str:
    """The line of a score-0 alternative: not a candidate, only a baseline."""
    pos = _ordinal(voter.rule.prefer.index(name) + 1)
    more = named[name] - 1  # the matched rules naming it, less its top voter
    also = f" (and {more} weaker rule{'s' if more > 1 else ''})" if more else ""
    against = f", far below {chosen_voter.id} ({chosen_voter.rule.level} level) for {chosen}" if chosen_voter else ""
    return (
        f"not recommended for this job (score 0): only {voter.id} ({voter.rule.source}){also} names it, as its {pos} "
        f"choice{against}; listed as a baseline to race against"
    )


def _why(
    name: str,
    chosen: str,
    voter: CompiledRule,
    chosen_voter: CompiledRule | None,
    named: Mapping[str, int],
    scores: Mapping[str, float],
) -> str:
    """One line: whose choice it is and in which place, and what puts the chosen optimizer above it."""
    prefer = voter.rule.prefer
    pos = prefer.index(name) + 1
    line = f"{_ordinal(pos)} choice of {voter.id} ({voter.rule.source})"
    more = named[name] - 1  # the matched rules naming it, less its top voter
    if more:
        line += f", also named by {more} more matched rule{'s' if more > 1 else ''}"
    ahead = prefer[: pos - 1]
    if chosen in ahead:
        line += f"; that rule puts {chosen} first" if ahead[0] == chosen else f"; that rule ranks {chosen} above it"
    elif scores[name] >= scores[chosen]:
        line += f"; as much support as {chosen}, which comes first in the catalog order"
    elif chosen_voter is not None:
        place = _ordinal(chosen_voter.rule.prefer.index(chosen) + 1)
        line += f"; {chosen} is ahead as the {place} choice of {chosen_voter.id} ({chosen_voter.rule.level} level)"
    return line


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
