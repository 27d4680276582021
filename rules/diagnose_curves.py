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


def _centeredmedian(xs: Sequence[float], h: int) -> list[float]:
    n = len(xs)
    return _window_medians(xs, [max(0, i - h) for i in range(n)], [min(n, i + h + 1) for i in range(n)])


def _trailingmedian(xs: Sequence[float], w: int) -> list[float]:
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
    hits: list[Hit] = field(default_factory=list)


class _Curves:
    def __init__(self, train: list[float] | None, val: list[float] | None, ds: DiagnosisSettings) -> None:
        self.ds = ds
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
            text = f"loss is NaN/inf (null) from step {first_bad} ({bad} of {n} points non-finite)"
            figures: dict[str, float] = {"first_non_finite_step": first_bad, "non_finite_points": bad}
            if finite:
                last = finite[-1]
                text += f"; last finite value {_g(last)} at step {first_bad - 1}"
                figures["last_finite"] = last
                if ref > 0:
                    text += f", {last / ref:.1f}x the starting level {_g(ref)}"
                    figures["starting_level"] = ref
            hit = Hit("divergence", self.main_name, first_bad, n - 1, text, figures, "high", 0.95)
            return hit, self._climb_start(finite, first_bad)
        if n >= 2 and ref > 0 and xs[-1] >= ds.divergence_factor * ref:
            threshold = ds.divergence_factor * ref
            start = n - 1
            while start > 0 and xs[start - 1] >= threshold:
                start -= 1
            text = (
                f"loss rose from {_g(ref)} (starting level, median of the first {k} step(s)) to {_g(xs[-1])} at "
                f"step {n - 1}, {xs[-1] / ref:.1f}x; at or above {ds.divergence_factor:g}x from step {start} to the end"
            )
            figures = {"starting_level": ref, "final": xs[-1], "ratio": xs[-1] / ref}
            hit = Hit("divergence", self.main_name, start, n - 1, text, figures, "high", 0.9)
            return hit, self._climb_start(xs, start)
        return None, n

    def _climb_start(self, xs: list[float], start: int) -> int:
        """Where the climb into a divergence began: its jumps belong to the divergence, not to other findings."""
        if start < 3:
            return start
        floor = min(_centeredmedian(xs[:start], 2))
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
        meds = _trailingmedian(xs, w)
        scales = _trailingmedian(resid, w)
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
    curves = _Curves(train, val, ds)
    hits: list[Hit] = []
    notes: list[str] = []
    div, cut = curves.divergence()
    if div is not None:
        hits.append(div)
    xs = curves.main[:cut]
    n = len(xs)
    name = curves.main_name
    if n >= ds.spike_min_history + 1:
        smooth = _centeredmedian(xs, 2)
        resid = _roughness(xs)
        spikes = curves.spikes(xs, resid)
        early_end = 0
        early = _early_instability(xs, smooth, resid, spikes, ds, ctx, name)
        if early is not None:
            hits.append(early)
            early_end = (early.end or 0) + 1
        late_spikes = [s for s in spikes if s[0] >= early_end]
        if late_spikes:
            hits.append(_explosion(late_spikes, ds, name))
        osc = _oscillation(xs, ds, name)
        if osc is not None:
            hits.append(osc)
        plateau = _late_plateau(xs, ds, ctx, name)
        if plateau is not None:
            hits.append(plateau)
    if curves.val is not None and train is not None:
        hits.extend(_validation(train[:cut], curves.val, len(train), ds, notes))
    return hits, notes


def _explosion(spikes: list[tuple[int, float, float, float]], ds: DiagnosisSettings, curve: Any) -> Hit:
    events: list[list[tuple[int, float, float, float]]] = []
    for s in spikes:
        if events and s[0] - events[-1][-1][0] <= ds.spike_window:
            events[-1].append(s)
        else:
            events.append([s])
    worst = max(spikes, key=lambda s: s[1] / s[2] if s[2] > 0 else s[3])
    step, value, med, z = worst
    ratio = value / med if med > 0 else math.inf
    first, last = spikes[0][0], spikes[-1][0]
    text = (
        f"{len(events)} sudden jump(s) between steps {first} and {last}; the largest: loss {_g(value)} at step {step}, "
        f"{ratio:.1f}x the median {_g(med)} of the {ds.spike_window} steps before ({z:.0f} robust sigmas)"
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
    e = max(3, round(ds.early_fraction * n))
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
        reasons.append(f"the loss rose to {peak / start:.1f}x its starting level {_g(start)} (step {at})")
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
    text = f"in the first {pct(ds.early_fraction)} of training (steps 0-{e - 1}) {warm}: " + "; ".join(reasons)
    severity: Severity = "high" if len(reasons) > 1 else "medium"
    return Hit("early_instability", curve, 0, e - 1, text, figures, severity, 0.8 if ctx.warmup_known else 0.6)


def _late_plateau(xs: list[float], ds: DiagnosisSettings, ctx: Context, curve: Any) -> Hit | None:
    n = len(xs)
    if n < ds.plateau_min_points or (ctx.schedule_known and not ctx.constant_schedule):
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
    smooth = _centeredmedian(xs, max(2, n // 50))
    band = level + max(sigma, ds.plateau_rel_drop * abs(level))
    begin = n - m
    while begin > 0 and smooth[begin - 1] <= band:
        begin -= 1
    sched = "a constant schedule" if ctx.schedule_known else "no known schedule (no recommendation given)"
    text = (
        f"from step {begin} to {n - 1} ({pct((n - begin) / n)} of the run) the loss stays at {_g(level)}: over the "
        f"last {m} steps it changed by {pct(change / abs(level))} (fitted), less than {ds.plateau_noise_ratio:g}x the "
        f"step-to-step noise ({_g(sigma)}), with {sched}; it had fallen {pct(1 - level / start_level)} from "
        f"{_g(start_level)} before"
    )
    figures = {"level": level, "tail_change": change, "noise": sigma, "starting_level": start_level}
    severity: Severity = "medium" if ctx.schedule_known else "low"
    return Hit("late_plateau", curve, begin, n - 1, text, figures, severity, 0.75 if ctx.schedule_known else 0.5)


def _oscillation(xs: list[float], ds: DiagnosisSettings, curve: Any) -> Hit | None:
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
        f"from step {a} to {b}: {pct(alt)} of successive changes alternate sign (independent noise: about 67%), "
        f"lag-1 autocorrelation {rho:.2f}, swings of {pct(amp)} of the loss, net fall {pct(fall)} (no downward trend)"
    )
    figures = {"alternation": alt, "autocorrelation": rho, "amplitude": amp, "net_fall": fall}
    severity: Severity = "high" if (b - a + 1) >= n / 2 else "medium"
    return Hit("oscillation", curve, a, b, text, figures, severity, 0.8)


def _validation(
    train: list[float], val_raw: list[float], n_train: int, ds: DiagnosisSettings, notes: list[str]
) -> list[Hit]:
    """Overfitting, else validation plateau, on smoothed curves; validation points spread over the training steps."""
    m_all = len(val_raw)
    points = [
        (min(n_train - 1, max(0, round((j + 1) * n_train / m_all) - 1)) if m_all != n_train else j, v)
        for j, v in enumerate(val_raw)
        if math.isfinite(v)
    ]
    if len(points) < m_all:
        notes.append(f"{m_all - len(points)} non-finite validation point(s) were left out of the validation checks.")
    points = [(s, v) for s, v in points if s < len(train)]
    m = len(points)
    if m < ds.val_min_points or len(train) < 3:
        return []
    steps = [s for s, _ in points]
    val = [v for _, v in points]
    hv = max(1, round(ds.val_smooth_fraction * m / 2))
    sval = _centeredmedian(val, hv)
    ht = max(1, round(ds.val_smooth_fraction * len(train) / 2))
    strain = _centered_mean(_centeredmedian(train, min(ht, 25)), ht)
    # noise of one validation point, then of a running median over 2*hv+1 of them (1.25: median vs mean)
    sigma = _MAD * median(_roughness(val)) / math.sqrt(2 * hv + 1) * 1.25
    j_min = min(range(m), key=lambda j: sval[j])
    lo = sval[j_min]
    end = sval[-1]
    span = steps[-1] - steps[j_min]
    total = max(1, steps[-1] - steps[0])
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
            f"val loss rose {pct(rise / abs(lo))} from step {steps[j_min]} to {steps[-1]} ({_g(lo)} -> {_g(end)}, "
            f"smoothed) while train fell {pct(train_fall)} ({_g(t0)} -> {_g(t1)})"
        )
        figures = {"val_rise": rise / abs(lo), "train_fall": train_fall, "val_min": lo, "val_end": end}
        severity: Severity = "high" if rise / abs(lo) >= 0.2 else "medium"
        return [Hit("overfitting", "val", steps[j_min], steps[-1], text, figures, severity, 0.85)]
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
            f"from step {steps[tail0]} to {steps[-1]} val loss improved by {pct(max(improvement, 0.0))} "
            f"(median {_g(before)} over the {q} evaluations before -> {_g(after)}) while train still fell "
            f"{pct(train_fall)} ({_g(t0)} -> {_g(t1)}, smoothed)"
        )
        figures = {"val_improvement": improvement, "train_fall": train_fall, "val_before": before, "val_after": after}
        return [Hit("validation_plateau", "val", steps[tail0], steps[-1], text, figures, "medium", 0.75)]
    return []
