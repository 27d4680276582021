"""The loss-curve detectors of ``optirec.diagnose`` (rules/diagnose.py): robust statistics on the curves, one
function per symptom, each returning a :class:`Hit` with its evidence in words and figures.

Pure Python (standard library only). The detectors work on point indices; :class:`Steps` turns an index into
the caller's step for every figure and sentence they write.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

from .schema import DiagnosisSettings

__all__ = ["Context", "Hit", "Severity", "detect", "pct"]

Severity = Literal["low", "medium", "high"]
_MAD = 1.4826  # MAD -> standard deviation for normal noise


# ---------------------------------------------------------------------------------------- statistics
def median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return math.nan
    mid = n // 2
    return s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])


def _window_medians(xs: Sequence[float], starts: Sequence[int], ends: Sequence[int]) -> list[float]:
    """Median of xs[starts[i]:ends[i]] for each i; both bounds non-decreasing (a sorted sliding window)."""
    win: list[float] = []
    a = b = 0
    out: list[float] = []
    for lo, hi in zip(starts, ends, strict=True):
        while b < hi:
            bisect.insort(win, xs[b])
            b += 1
        while a < lo:
            del win[bisect.bisect_left(win, xs[a])]
            a += 1
        n = len(win)
        if n == 0:
            out.append(math.nan)
        else:
            mid = n // 2
            out.append(win[mid] if n % 2 else 0.5 * (win[mid - 1] + win[mid]))
    return out


def _centered_median(xs: Sequence[float], h: int) -> list[float]:
    n = len(xs)
    return _window_medians(xs, [max(0, i - h) for i in range(n)], [min(n, i + h + 1) for i in range(n)])


def _trailing_median(xs: Sequence[float], w: int) -> list[float]:
    n = len(xs)
    return _window_medians(xs, [max(0, i - w) for i in range(n)], list(range(n)))


def _centered_mean(xs: Sequence[float], h: int) -> list[float]:
    n = len(xs)
    prefix = [0.0]
    for x in xs:
        prefix.append(prefix[-1] + x)
    out = []
    for i in range(n):
        lo, hi = max(0, i - h), min(n, i + h + 1)
        out.append((prefix[hi] - prefix[lo]) / (hi - lo))
    return out


def _roughness(xs: Sequence[float]) -> list[float]:
    """|x[i] - (x[i-1] + x[i+1]) / 2| / sqrt(1.5) per point: independent noise of sd s gives a median of 0.674 s,
    and a smooth trend (even a steep one) adds almost nothing, unlike residuals from a running median."""
    n = len(xs)
    if n < 3:
        return [0.0] * n
    k = 1 / math.sqrt(1.5)
    inner = [abs(xs[i] - 0.5 * (xs[i - 1] + xs[i + 1])) * k for i in range(1, n - 1)]
    return [inner[0], *inner, inner[-1]]


def _fit(ys: Sequence[float]) -> tuple[float, float]:
    """Least-squares line through (i, ys[i]): (slope, intercept)."""
    n = len(ys)
    mx = (n - 1) / 2
    my = sum(ys) / n
    sxx = sum((i - mx) ** 2 for i in range(n)) or 1.0
    sxy = sum((i - mx) * (y - my) for i, y in enumerate(ys))
    slope = sxy / sxx
    return slope, my - slope * mx


def pct(x: float) -> str:
    return f"{x * 100:.0f}%" if abs(x) >= 0.095 else f"{x * 100:.1f}%"


def _signed_pct(x: float) -> str:
    """+12%, -0.4%, 0%: a change with its direction."""
    text = pct(abs(x))
    return "0%" if text in ("0.0%", "0%") else ("+" if x > 0 else "-") + text


def _g(x: float) -> str:
    return f"{x:.4g}"


# ---------------------------------------------------------------------------------------- detectors
@dataclass
class Hit:
    symptom: str
    curve: Literal["train", "val"]
    start: int | None
    end: int | None
    summary: str
    figures: dict[str, float]
    severity: Severity
    confidence: float


@dataclass
class Context:
    """What the detectors know about the run besides the curves."""

    warmup_known: bool
    has_warmup: bool
    schedule_known: bool
    constant_schedule: bool
    schedule_name: str = "constant"
    #: the caller's step of each point of the main curve (train, else val); None: the index is the step
    steps: list[int] | None = None
    #: the caller's step of each validation point (when a training curve is the main one)
    val_steps: list[int] | None = None
    #: points of the whole training curve (divergence cuts what the detectors see, not where validation sits)
    n_train: int = 0
    hits: list[Hit] = field(default_factory=list)

    def at(self, i: int) -> int:
        """The step of point ``i`` of the main curve."""
        return self.steps[i] if self.steps is not None else i


class _Curves:
    def __init__(self, train: list[float] | None, val: list[float] | None, ds: DiagnosisSettings, ctx: Context) -> None:
        self.ds = ds
        self.at = ctx.at
        self.main_name: Literal["train", "val"] = "train" if train is not None else "val"
        self.main = train if train is not None else (val or [])
        self.val = val if train is not None else None

    # ---- divergence (on the raw curve, non-finite values included)
    def divergence(self) -> tuple[Hit | None, int]:
        """The divergence finding (if any) and the length of the curve before it (what the other detectors see)."""
        ds, xs = self.ds, self.main
        n = len(xs)
        first_bad = next((i for i, x in enumerate(xs) if not math.isfinite(x)), None)
        finite = xs[:first_bad] if first_bad is not None else xs
        k = min(ds.reference_points, max(1, len(finite) // 10))
        ref = median(finite[:k]) if finite else math.nan
        if first_bad is not None:
            bad = sum(1 for x in xs if not math.isfinite(x))
            text = f"loss is NaN/inf (null) from step {self.at(first_bad)} ({bad} of {n} points non-finite)"
            figures: dict[str, float] = {"first_non_finite_step": self.at(first_bad), "non_finite_points": bad}
            if finite:
                last = finite[-1]
                text += f"; last finite value {_g(last)} at step {self.at(len(finite) - 1)}"
                figures["last_finite"] = last
                if ref > 0:
                    text += f", {last / ref:.1f}x the starting level {_g(ref)}"
                    figures["starting_level"] = ref
            hit = Hit("divergence", self.main_name, self.at(first_bad), self.at(n - 1), text, figures, "high", 0.95)
            return hit, self._climb_start(finite, first_bad)
        if n >= 2 and ref > 0 and xs[-1] >= ds.divergence_factor * ref:
            threshold = ds.divergence_factor * ref
            start = n - 1
            while start > 0 and xs[start - 1] >= threshold:
                start -= 1
            text = (
                f"loss rose from {_g(ref)} (starting level, median of the first {k} point(s)) to {_g(xs[-1])} at "
                f"step {self.at(n - 1)}, {xs[-1] / ref:.1f}x; at or above {ds.divergence_factor:g}x from step "
                f"{self.at(start)} to the end"
            )
            figures = {"starting_level": ref, "final": xs[-1], "ratio": xs[-1] / ref}
            hit = Hit("divergence", self.main_name, self.at(start), self.at(n - 1), text, figures, "high", 0.9)
            return hit, self._climb_start(xs, start)
        return None, n

    def _climb_start(self, xs: list[float], start: int) -> int:
        """Where the climb into a divergence began: its jumps belong to the divergence, not to other findings."""
        if start < 3:
            return start
        floor = min(_centered_median(xs[:start], 2))
        if floor <= 0:
            return start
        j = start
        while j > 0 and xs[j - 1] >= self.ds.spike_ratio * floor:
            j -= 1
        return j

    # ---- spikes (explosion, and the spikes of an unstable start)
    def spikes(self, xs: list[float], resid: list[float]) -> list[tuple[int, float, float, float]]:
        """(step, value, local median, robust z) of every sudden jump."""
        ds = self.ds
        w = ds.spike_window
        meds = _trailing_median(xs, w)
        scales = _trailing_median(resid, w)
        out = []
        for i in range(ds.spike_min_history, len(xs)):
            med = meds[i]
            sigma = max(_MAD * scales[i], 1e-3 * abs(med), 1e-12)
            jump = xs[i] - med
            z = jump / sigma
            if z >= ds.spike_z and jump >= (ds.spike_ratio - 1) * abs(med):
                out.append((i, xs[i], med, z))
        return out


def detect(
    train: list[float] | None, val: list[float] | None, ds: DiagnosisSettings, ctx: Context
) -> tuple[list[Hit], list[str]]:
    """The symptoms the curves show (steps in the caller's numbering) and notes on what was left out."""
    curves = _Curves(train, val, ds, ctx)
    hits: list[Hit] = []
    notes: list[str] = []
    div, cut = curves.divergence()
    if div is not None:
        hits.append(div)
    xs = curves.main[:cut]
    n = len(xs)
    name = curves.main_name
    if n >= ds.spike_min_history + 1:
        smooth = _centered_median(xs, 2)
        resid = _roughness(xs)
        spikes = curves.spikes(xs, resid)
        early_end = 0
        early = _early_instability(xs, smooth, resid, spikes, ds, ctx, name)
        if early is not None:
            hits.append(early)
            early_end = _early_length(n, ds)
        late_spikes = [s for s in spikes if s[0] >= early_end]
        if late_spikes:
            hits.append(_explosion(late_spikes, ds, ctx, name))
        osc = _oscillation(xs, ds, ctx, name)
        if osc is not None:
            hits.append(osc)
        flat = None if div is not None else no_improvement(xs, resid, ds, ctx, name, oscillating=osc is not None)
        if flat is not None:
            hits.append(flat)
        elif osc is None or osc.end != ctx.at(n - 1):  # an oscillation to the end already says "no downward trend"
            plateau = _late_plateau(xs, ds, ctx, name)
            if plateau is not None:
                hits.append(plateau)
    if curves.val is not None and train is not None:
        hits.extend(_validation(train[:cut], curves.val, ds, ctx, notes))
    return hits, notes


def _explosion(spikes: list[tuple[int, float, float, float]], ds: DiagnosisSettings, ctx: Context, curve: Any) -> Hit:
    events: list[list[tuple[int, float, float, float]]] = []
    for s in spikes:
        if events and s[0] - events[-1][-1][0] <= ds.spike_window:
            events[-1].append(s)
        else:
            events.append([s])
    worst = max(spikes, key=lambda s: s[1] / s[2] if s[2] > 0 else s[3])
    step, value, med, z = worst
    ratio = value / med if med > 0 else math.inf
    first, last, step = ctx.at(spikes[0][0]), ctx.at(spikes[-1][0]), ctx.at(step)
    text = (
        f"{len(events)} sudden jump(s) between steps {first} and {last}; the largest: loss {_g(value)} at step {step}, "
        f"{ratio:.1f}x the median {_g(med)} of the {ds.spike_window} points before ({z:.0f} robust sigmas)"
    )
    severity: Severity = "high" if ratio >= 5 or len(events) >= 3 else "medium"
    figures = {"jumps": len(events), "largest_step": step, "largest_value": value, "local_median": med, "ratio": ratio}
    return Hit("gradient_explosion", curve, first, last, text, figures, severity, 0.85)


def _early_instability(
    xs: list[float],
    smooth: list[float],
    resid: list[float],
    spikes: list[tuple[int, float, float, float]],
    ds: DiagnosisSettings,
    ctx: Context,
    curve: Any,
) -> Hit | None:
    n = len(xs)
    if n < ds.early_min_points or (ctx.warmup_known and ctx.has_warmup):
        return None
    e = _early_length(n, ds)
    reasons: list[str] = []
    figures: dict[str, float] = {"early_steps": e}
    early_spikes = [s for s in spikes if s[0] < e]
    if early_spikes:
        reasons.append(f"{len(early_spikes)} sudden jump(s), the largest {max(s[1] / s[2] for s in early_spikes):.1f}x")
        figures["spikes"] = len(early_spikes)
    start = median(xs[: min(3, e)])
    peak = max(smooth[:e])
    if start > 0 and peak >= ds.early_rise * start:
        at = smooth[:e].index(peak)
        reasons.append(f"the loss rose to {peak / start:.1f}x its starting level {_g(start)} (step {ctx.at(at)})")
        figures["rise"] = peak / start
    rel = [r / abs(s) if s else 0.0 for r, s in zip(resid, smooth, strict=True)]
    early_noise = _MAD * median(rel[:e])
    rest_noise = _MAD * median(rel[e:])
    if (
        e >= ds.early_noise_min_points
        and early_noise >= ds.early_min_noise
        and early_noise >= ds.early_noise_ratio * max(rest_noise, 1e-12)
    ):
        reasons.append(
            f"its step-to-step noise is {pct(early_noise)} of the level, {early_noise / max(rest_noise, 1e-12):.1f}x "
            f"that of the rest ({pct(rest_noise)})"
        )
        figures["early_noise"] = early_noise
        figures["rest_noise"] = rest_noise
    if not reasons:
        return None
    warm = "without warmup" if ctx.warmup_known else "(warmup unknown: no recommendation given)"
    span = f"steps {ctx.at(0)}-{ctx.at(e - 1)}"
    text = f"in the first {pct(ds.early_fraction)} of the curve ({span}) {warm}: " + "; ".join(reasons)
    severity: Severity = "high" if len(reasons) > 1 else "medium"
    confidence = 0.8 if ctx.warmup_known else 0.6
    return Hit("early_instability", curve, ctx.at(0), ctx.at(e - 1), text, figures, severity, confidence)


def _early_length(n: int, ds: DiagnosisSettings) -> int:
    """Points in "the start" of a curve of n points."""
    return max(3, round(ds.early_fraction * n))


def _late_plateau(xs: list[float], ds: DiagnosisSettings, ctx: Context, curve: Any) -> Hit | None:
    n = len(xs)
    if n < ds.plateau_min_points:
        return None
    m = max(8, round(ds.plateau_fraction * n))
    tail = xs[n - m :]
    slope, intercept = _fit(tail)
    change = slope * (m - 1)
    sigma = _MAD * median([abs(y - (intercept + slope * i)) for i, y in enumerate(tail)])
    level = median(tail)
    k = min(ds.reference_points, max(1, n // 10))
    start_level = median(xs[:k])
    if not (abs(change) < ds.plateau_noise_ratio * sigma and abs(change) < ds.plateau_rel_drop * abs(level)):
        return None
    if start_level <= 0 or start_level - level < ds.plateau_min_progress * start_level:
        return None
    # extend back: where the smoothed curve first stays within the plateau's band
    smooth = _centered_median(xs, max(2, n // 50))
    band = level + max(sigma, ds.plateau_rel_drop * abs(level))
    begin = n - m
    while begin > 0 and smooth[begin - 1] <= band:
        begin -= 1
    if not ctx.schedule_known:
        sched = "no known schedule (no recommendation given)"
    else:
        sched = "a constant schedule" if ctx.constant_schedule else f"a {ctx.schedule_name} schedule"
    text = (
        f"from step {ctx.at(begin)} to {ctx.at(n - 1)} ({pct((n - begin) / n)} of the curve) the loss stays at "
        f"{_g(level)}: over the last {m} points it changed by {pct(change / abs(level))} (fitted), less than "
        f"{ds.plateau_noise_ratio:g}x the step-to-step noise ({_g(sigma)}), with {sched}; it had fallen "
        f"{pct(1 - level / start_level)} from {_g(start_level)} before"
    )
    figures = {"level": level, "tail_change": change, "noise": sigma, "starting_level": start_level}
    severity: Severity = "medium" if ctx.schedule_known else "low"
    confidence = 0.75 if ctx.schedule_known else 0.5
    return Hit("late_plateau", curve, ctx.at(begin), ctx.at(n - 1), text, figures, severity, confidence)


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
    w = max(ds.no_improvement_min_window, round(ds.no_improvement_window * n))
    w += w % 2  # blocks of an even length: a period-2 sawtooth's median is its middle, not one of its two levels
    starts = list(range(0, n - w + 1, w))
    if starts[-1] != n - w:
        starts.append(n - w)
    blocks = [median(xs[s : s + w]) for s in starts]
    start, end = blocks[0], blocks[-1]
    j_best = min(range(1, len(blocks)), key=blocks.__getitem__)
    best = blocks[j_best]
    sigma = _MAD * median(resid)  # step-to-step noise (a sawtooth's swing counts as noise)
    se = 1.2533 * sigma / math.sqrt(w) * math.sqrt(2)  # of the difference of two block medians
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
        f"noise: it starts at {_g(start)} (median of the first {w} points) and ends at {_g(end)} (the last {w}), "
        f"{_signed_pct((end - start) / level)}; no {w}-point median is more than {pct((start - best) / level)} "
        "below the start, "
        f"where a real fall would be more than {_g(margin)} ({pct(ds.no_improvement_rel_drop)} of the level or "
        f"{ds.no_improvement_z:g} standard errors of the noise {_g(sigma)}); the rank correlation of loss with "
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


def _oscillation(xs: list[float], ds: DiagnosisSettings, ctx: Context, curve: Any) -> Hit | None:
    n = len(xs)
    w = max(ds.oscillation_window, n // 10)
    if n < w:
        return None
    trend = _centered_mean(xs, 4)
    resid = [x - t for x, t in zip(xs, trend, strict=True)]
    flagged: list[tuple[int, int, float, float, float, float]] = []
    step = max(1, w // 2)
    starts = list(range(0, n - w + 1, step))
    if starts[-1] != n - w:
        starts.append(n - w)
    for s in starts:
        seg = xs[s : s + w]
        d = [b - a for a, b in pairwise(seg) if b != a]
        if len(d) < 3:
            continue
        alt = sum(1 for a, b in pairwise(d) if (a > 0) != (b > 0)) / (len(d) - 1)
        if alt < ds.oscillation_alternation:
            continue
        r = resid[s : s + w]
        denom = sum(v * v for v in r)
        rho = sum(a * b for a, b in pairwise(r)) / denom if denom > 0 else 0.0
        level = abs(median(seg))
        if rho > ds.oscillation_autocorrelation or level == 0:
            continue
        amp = median([abs(v) for v in d]) / level
        q = max(1, w // 4)
        fall = (median(seg[:q]) - median(seg[-q:])) / level
        if amp < ds.oscillation_min_amplitude or fall >= ds.oscillation_max_trend:
            continue
        flagged.append((s, s + w - 1, alt, rho, amp, fall))
    if not flagged:
        return None
    ranges: list[list[tuple[int, int, float, float, float, float]]] = []
    for f in flagged:
        if ranges and f[0] <= ranges[-1][-1][1]:
            ranges[-1].append(f)
        else:
            ranges.append([f])
    best = max(ranges, key=lambda r: r[-1][1] - r[0][0])
    a, b = best[0][0], best[-1][1]
    alt = sum(f[2] for f in best) / len(best)
    rho = sum(f[3] for f in best) / len(best)
    amp = sum(f[4] for f in best) / len(best)
    fall = (median(xs[a : a + max(1, (b - a) // 4)]) - median(xs[b - max(1, (b - a) // 4) + 1 : b + 1])) / max(
        abs(median(xs[a : b + 1])), 1e-12
    )
    text = (
        f"from step {ctx.at(a)} to {ctx.at(b)}: {pct(alt)} of successive changes alternate sign (independent noise: "
        "about 67%), "
        f"lag-1 autocorrelation {rho:.2f}, swings of {pct(amp)} of the loss, net fall {pct(fall)} (no downward trend)"
    )
    figures = {"alternation": alt, "autocorrelation": rho, "amplitude": amp, "net_fall": fall}
    severity: Severity = "high" if (b - a + 1) >= n / 2 else "medium"
    return Hit("oscillation", curve, ctx.at(a), ctx.at(b), text, figures, severity, 0.8)


def val_positions(n_train: int, n_val: int, ctx: Context) -> list[tuple[int, int]]:
    """(index into the training curve, step) of each validation point: at its caller's step (``val_steps``,
    the last training point at or before it), else spread evenly over the training points."""
    if ctx.val_steps is not None:
        train_steps = ctx.steps if ctx.steps is not None else range(n_train)
        return [(max(0, bisect.bisect_right(train_steps, s) - 1), s) for s in ctx.val_steps]
    if n_val == n_train:
        return [(j, ctx.at(j)) for j in range(n_val)]
    spread = [min(n_train - 1, max(0, round((j + 1) * n_train / n_val) - 1)) for j in range(n_val)]
    return [(i, ctx.at(i)) for i in spread]


def _validation(
    train: list[float], val_raw: list[float], ds: DiagnosisSettings, ctx: Context, notes: list[str]
) -> list[Hit]:
    """Overfitting, else validation plateau, on smoothed curves; each validation point at its training index."""
    m_all = len(val_raw)
    where = val_positions(ctx.n_train or len(train), m_all, ctx)
    points = [(i, s, v) for (i, s), v in zip(where, val_raw, strict=True) if math.isfinite(v)]
    if len(points) < m_all:
        notes.append(f"{m_all - len(points)} non-finite validation point(s) were left out of the validation checks.")
    points = [(i, s, v) for i, s, v in points if i < len(train)]
    m = len(points)
    if m < ds.val_min_points or len(train) < 3:
        return []
    steps = [i for i, _, _ in points]  # indices into train
    at = [s for _, s, _ in points]  # the caller's steps
    val = [v for _, _, v in points]
    hv = max(1, round(ds.val_smooth_fraction * m / 2))
    sval = _centered_median(val, hv)
    ht = max(1, round(ds.val_smooth_fraction * len(train) / 2))
    strain = _centered_mean(_centered_median(train, min(ht, 25)), ht)
    # noise of one validation point, then of a running median over 2*hv+1 of them (1.25: median vs mean)
    sigma = _MAD * median(_roughness(val)) / math.sqrt(2 * hv + 1) * 1.25
    j_min = min(range(m), key=lambda j: sval[j])
    lo = sval[j_min]
    end = sval[-1]
    span = at[-1] - at[j_min]
    total = max(1, at[-1] - at[0])
    rise = end - lo
    t0, t1 = strain[steps[j_min]], strain[steps[-1]]
    train_fall = (t0 - t1) / abs(t0) if t0 else 0.0
    if (
        lo != 0
        and m - 1 - j_min >= max(2, round(ds.overfit_min_fraction * m))
        and span >= ds.overfit_min_fraction * total
        and rise >= ds.overfit_val_rise * abs(lo)
        and rise >= ds.overfit_noise_z * sigma
        and train_fall >= ds.overfit_train_fall
    ):
        text = (
            f"val loss rose {pct(rise / abs(lo))} from step {at[j_min]} to {at[-1]} ({_g(lo)} -> {_g(end)}, "
            f"smoothed) while train fell {pct(train_fall)} ({_g(t0)} -> {_g(t1)})"
        )
        figures = {"val_rise": rise / abs(lo), "train_fall": train_fall, "val_min": lo, "val_end": end}
        severity: Severity = "high" if rise / abs(lo) >= 0.2 else "medium"
        return [Hit("overfitting", "val", at[j_min], at[-1], text, figures, severity, 0.85)]
    q = max(ds.val_plateau_min_points, round(ds.val_plateau_fraction * m))
    if 2 * q > m:
        return []
    tail0 = m - q
    before = median(val[tail0 - q : tail0])
    after = median(val[tail0:])
    improvement = (before - after) / abs(before) if before else 0.0
    t0, t1 = strain[steps[tail0]], strain[steps[-1]]
    train_fall = (t0 - t1) / abs(t0) if t0 else 0.0
    if improvement < ds.val_plateau_rel_drop and train_fall >= ds.val_plateau_train_fall:
        text = (
            f"from step {at[tail0]} to {at[-1]} val loss improved by {pct(max(improvement, 0.0))} "
            f"(median {_g(before)} over the {q} evaluations before -> {_g(after)}) while train still fell "
            f"{pct(train_fall)} ({_g(t0)} -> {_g(t1)}, smoothed)"
        )
        figures = {"val_improvement": improvement, "train_fall": train_fall, "val_before": before, "val_after": after}
        return [Hit("validation_plateau", "val", at[tail0], at[-1], text, figures, "medium", 0.75)]
    return []
