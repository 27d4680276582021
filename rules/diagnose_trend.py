"""Whole-curve trend detectors of ``optirec.diagnose``: a loss that never improves, and one that climbs back
after improving. Neither is a row of the seeds' symptom table (004 §6.4.1), so their findings say what was
seen and what to check. Pure Python (standard library only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .diagnose_stats import MAD, Context, Hit, g, median, pct, signed_pct
from .schema import DiagnosisSettings

__all__ = ["loss_rising", "no_improvement", "spearman"]


def spearman(xs: Sequence[float]) -> float:
    """Spearman's rank correlation of xs with its index (ties get their average rank); 0 for a constant curve."""
    n = len(xs)
    order = sorted(range(n), key=xs.__getitem__)
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j + 1 < n and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    mean = (n - 1) / 2
    var_r = sum((r - mean) ** 2 for r in ranks)
    var_i = sum((k - mean) ** 2 for k in range(n))
    if var_r == 0 or var_i == 0:
        return 0.0
    return sum((k - mean) * (r - mean) for k, r in enumerate(ranks)) / math.sqrt(var_r * var_i)


def _blocks(
    xs: list[float], resid: list[float], ds: DiagnosisSettings
) -> tuple[int, list[int], list[float], float, float]:
    """(w, block starts, block medians, step-to-step noise, standard error of a difference of two block medians)
    over blocks of ``no_improvement_window`` of the points; the last block ends at the last point."""
    n = len(xs)
    w = max(ds.no_improvement_min_window, round(ds.no_improvement_window * n))
    w += w % 2  # blocks of an even length: a period-2 sawtooth's median is its middle, not one of its two levels
    starts = list(range(0, n - w + 1, w))
    if starts[-1] != n - w:
        starts.append(n - w)
    blocks = [median(xs[s : s + w]) for s in starts]
    sigma = MAD * median(resid)  # step-to-step noise (a sawtooth's swing counts as noise)
    se = 1.2533 * sigma / math.sqrt(w) * math.sqrt(2)  # 1.2533: a median's standard error over a mean's
    return w, starts, blocks, sigma, se


def no_improvement(
    xs: list[float], resid: list[float], ds: DiagnosisSettings, ctx: Context, curve: Any, *, oscillating: bool
) -> Hit | None:
    """The loss never falls over the whole curve: flat, flat under noise, or swinging with no downward trend.

    Two tests, both robust to single wild points: the medians of blocks of ``no_improvement_window`` of the
    points never get more than a margin below the first block's (the margin: ``no_improvement_rel_drop`` of
    the level, or ``no_improvement_z`` standard errors of a block-median difference, whichever is larger),
    and Spearman's rank correlation of loss with step shows no significant downward trend over that much.
    """
    n = len(xs)
    if n < ds.no_improvement_min_points:
        return None
    w, _, blocks, sigma, se = _blocks(xs, resid, ds)
    start, end = blocks[0], blocks[-1]
    j_best = min(range(1, len(blocks)), key=blocks.__getitem__)
    best = blocks[j_best]
    margin = max(ds.no_improvement_rel_drop * abs(start), ds.no_improvement_z * se)
    rho = spearman(xs)
    z = rho * math.sqrt(n - 1)
    fell = start - end
    if start - best > margin:
        return None  # the curve got clearly below its start somewhere
    if z <= -ds.no_improvement_z and fell > ds.no_improvement_rel_drop * abs(start):
        return None  # a slow fall hidden in the noise, yet a steady one
    level = abs(start) or 1.0
    text = (
        f"over the whole curve (steps {ctx.at(0)}-{ctx.at(n - 1)}, {n} points) the loss does not fall beyond its "
        f"noise: it starts at {g(start)} (median of the first {w} points) and ends at {g(end)} (the last {w}), "
        f"{signed_pct((end - start) / level)}; no {w}-point median is more than {pct((start - best) / level)} "
        "below the start, "
        f"where a real fall would be more than {g(margin)} ({pct(ds.no_improvement_rel_drop)} of the level or "
        f"{ds.no_improvement_z:g} standard errors of the noise {g(sigma)}); the rank correlation of loss with "
        f"step is {rho:+.2f} (no downward trend)"
    )
    if oscillating:
        text += "; it swings up and down from step to step (see the oscillation finding)"
    if ctx.at(0) > 0:
        text += f"; the curve starts at step {ctx.at(0)}: if the run learned before it, this is a plateau"
    figures = {
        "start_level": start,
        "end_level": end,
        "lowest_level": best,
        "change": (end - start) / level,
        "margin": margin,
        "noise": sigma,
        "spearman": rho,
        "window": w,
    }
    return Hit("no_improvement", curve, ctx.at(0), ctx.at(n - 1), text, figures, "high", 0.85)


def loss_rising(xs: list[float], resid: list[float], ds: DiagnosisSettings, ctx: Context, curve: Any) -> Hit | None:
    """The loss fell, then climbed back: the last block's median is ``rise_rel`` of the level and
    ``no_improvement_z`` standard errors above the lowest block's, and the climb from there is a steady one
    (Spearman's rank correlation with the step ``no_improvement_z`` sigmas upward). Not judged under a schedule
    that restarts (cosine_restarts), where a climb after each restart is the design."""
    n = len(xs)
    if n < ds.no_improvement_min_points or ctx.schedule_name == "cosine_restarts":
        return None
    w, starts, blocks, sigma, se = _blocks(xs, resid, ds)
    j_best = min(range(len(blocks)), key=blocks.__getitem__)
    if j_best >= len(blocks) - 2:
        return None  # the lowest level is (nearly) the last: still improving or flat at its best
    best, end = blocks[j_best], blocks[-1]
    rise = end - best
    if rise <= max(ds.rise_rel * abs(best), ds.no_improvement_z * se):
        return None
    lo = starts[j_best] + w // 2  # the middle of the lowest block
    tail = xs[lo:]
    rho = spearman(tail)
    if rho * math.sqrt(len(tail) - 1) < ds.no_improvement_z:
        return None
    level = abs(best) or 1.0
    text = (
        f"the loss fell to {g(best)} (median of {w} points around step {ctx.at(lo)}) and then rose to {g(end)} "
        f"by step {ctx.at(n - 1)} (median of the last {w}), {signed_pct(rise / level)}, a steady climb (rank "
        f"correlation with the step {rho:+.2f} from there), below the {ds.divergence_factor:g}x of a divergence"
    )
    figures = {"lowest_level": best, "end_level": end, "rise": rise / level, "spearman": rho, "noise": sigma}
    return Hit("loss_rising", curve, ctx.at(lo), ctx.at(n - 1), text, figures, "medium", 0.75)
