"""Successive halving over a fixed list of candidates, under a budget of optimizer steps.

Jamieson & Talwalkar 2016 (successive halving) and Li et al. 2018 (Hyperband, §3): every candidate trains
for a short first rung; the best ``1/ETA`` go on to a rung ``ETA`` times longer, and so on, until the
last rung reaches the full run length. Promoted candidates resume where they stopped (as ASHA does), so a
finalist's last score is that of a whole run of ``steps``. This module is the bookkeeping only: which
candidates fit the budget, who is promoted, who is dropped. The training is a callback (``Trainer``).

- A diverged candidate (score None) is dropped at once.
- One candidate may be *protected* (the recommendation): it is always promoted while it trains, so the
  last rung always compares the challengers with it, at full length.
- Ties are broken by candidate order (the list is in priority order: the recommendation first).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

__all__ = ["ETA", "FINALISTS", "Plan", "RungTrainer", "Trainer", "halve", "minimum_budget", "plan"]

#: each rung keeps the best 1/ETA of its candidates and trains them ETA times longer (Li et al. 2018 use 3)
ETA = 3
#: candidates in the last rung: the recommendation and its best challenger
FINALISTS = 2
#: the first rung trains at least this share of the full run ...
MIN_RUNG_SHARE = 0.1
#: ... and at least this many steps: scores of shorter runs are mostly noise
MIN_RUNG_STEPS = 10

#: trainer(candidate index, train up to this many steps in all) -> held-out score (None: diverged)
Trainer = Callable[[int, int], "float | None"]
#: train_rung(candidates, length) -> their scores, in order: a whole rung at once
RungTrainer = Callable[[list[int], int], "list[float | None]"]


@dataclass(frozen=True)
class Plan:
    """How many candidates train in each rung, and to how many steps (cumulative)."""

    lengths: tuple[int, ...]
    keep: tuple[int, ...]

    @property
    def cost(self) -> int:
        """Optimizer steps if nothing diverges (promoted candidates resume, so a rung costs its increment)."""
        total, before = 0, 0
        for length, count in zip(self.lengths, self.keep, strict=True):
            total += count * (length - before)
            before = length
        return total

    @property
    def candidates(self) -> int:
        return self.keep[0]


def _lengths(steps: int, rungs: int) -> tuple[int, ...] | None:
    lengths = tuple(max(1, math.ceil(steps / ETA ** (rungs - 1 - k))) for k in range(rungs))
    if rungs > 1 and (lengths[0] < MIN_RUNG_STEPS or lengths[0] < MIN_RUNG_SHARE * steps):
        return None
    if len(set(lengths)) != len(lengths):
        return None
    return lengths


def _keep(n: int, rungs: int) -> tuple[int, ...]:
    keep = [n]
    for _ in range(rungs - 1):
        keep.append(min(keep[-1], max(FINALISTS, math.ceil(keep[-1] / ETA))))
    return tuple(keep)


def minimum_budget(steps: int) -> int:
    """The cheapest search: the recommendation and one challenger, both trained for the full ``steps``."""
    return FINALISTS * steps


def plan(available: int, steps: int, budget: int) -> Plan | None:
    """The plan that tries the most of the ``available`` candidates within ``budget`` optimizer steps (fewer
    rungs on a tie: a longer first rung judges better); None when not even two candidates fit."""
    best: Plan | None = None
    for rungs in range(1, 8):
        lengths = _lengths(steps, rungs)
        if lengths is None:
            continue
        for n in range(available, 1, -1):
            candidate = Plan(lengths, _keep(n, rungs))
            if candidate.cost <= budget:
                if best is None or candidate.candidates > best.candidates:
                    best = candidate
                break
    return best


def halve(
    the_plan: Plan,
    train: Trainer,
    *,
    protected: int | None = 0,
    release: Callable[[int], None] | None = None,
    train_rung: RungTrainer | None = None,
) -> list[list[float | None]]:
    """Run the plan over candidates ``0 .. the_plan.candidates - 1``; returns each candidate's rung scores.

    ``release(i)`` is called as soon as candidate ``i`` can no longer be promoted (so its checkpoint can
    go): after a rung ends, and already during a rung once enough candidates have scored better than it.
    With ``train_rung(indices, length)`` a rung's candidates are trained in one call (side by side,
    elsewhere) instead of one ``train`` call each; the scores and promotions are the same.
    """
    scores: list[list[float | None]] = [[] for _ in range(the_plan.candidates)]
    alive = list(range(the_plan.candidates))
    last = len(the_plan.lengths) - 1
    for rung, length in enumerate(the_plan.lengths):
        room = the_plan.keep[rung + 1] if rung < last else len(alive)
        done: list[int] = []
        if train_rung is not None:
            pairs: Iterable[tuple[int, float | None]] = zip(alive, train_rung(list(alive), length), strict=True)
        else:  # lazily: one candidate at a time, so that a hopeless one is released before the next trains
            pairs = ((i, train(i, length)) for i in alive)
        for i, score in pairs:
            scores[i].append(score)
            if score is None:
                if release is not None:
                    release(i)
                continue
            done.append(i)
            if rung < last:
                _release_beyond(done, scores, room, protected, release)
        if rung == last:
            break
        alive = _promoted(done, scores, room, protected)
        for i in done:
            if i not in alive and release is not None:
                release(i)
    return scores


def _ranked(done: Sequence[int], scores: list[list[float | None]]) -> list[int]:
    return sorted(done, key=lambda i: (scores[i][-1], i))


def _promoted(done: Sequence[int], scores: list[list[float | None]], room: int, protected: int | None) -> list[int]:
    ranked = _ranked(done, scores)
    if protected is None or protected not in ranked:
        return ranked[:room]
    others = [i for i in ranked if i != protected][: max(0, room - 1)]
    return sorted([protected, *others])


def _release_beyond(
    done: list[int],
    scores: list[list[float | None]],
    room: int,
    protected: int | None,
    release: Callable[[int], None] | None,
) -> None:
    """Drop, mid-rung, the candidates that ``room`` better ones already push out of the promotion."""
    keep = set(_promoted(done, scores, room, protected))
    for i in [i for i in done if i not in keep]:
        done.remove(i)
        if release is not None:
            release(i)
