"""The loss-curve detectors of ``optirec.diagnose`` (rules/diagnose.py): one function per symptom of the
seeds' table, each returning a :class:`Hit` with its evidence in words and figures; :func:`detect` runs them
all (and the whole-curve trend checks of rules/diagnose_trend.py).

Pure Python (standard library only). The detectors work on point indices; :meth:`Context.at` turns an index
into the caller's step for every figure and sentence they write.
"""

from __future__ import annotations

import bisect
import math
from itertools import pairwise
from typing import Any, Literal

from .diagnose_stats import (
    MAD,
    Context,
    Hit,
    Severity,
    centered_mean,
    centered_median,
    fit,
    g,
    median,
    pct,
    roughness,
    trailing_median,
)
from .diagnose_trend import loss_rising, no_improvement
from .schema import DiagnosisSettings

__all__ = ["detect", "val_positions"]


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
                text += f"; last finite value {g(last)} at step {self.at(len(finite) - 1)}"
                figures["last_finite"] = last
                if ref > 0:
                    text += f", {last / ref:.1f}x the starting level {g(ref)}"
                    figures["starting_level"] = ref
            hit = Hit("divergence", self.main_name, self.at(first_bad), self.at(n - 1), text, figures, "high", 0.95)
            return hit, self._climb_start(finite, first_bad)
        if n >= 2 and ref > 0 and xs[-1] >= ds.divergence_factor * ref:
            threshold = ds.divergence_factor * ref
            start = n - 1
            while start > 0 and xs[start - 1] >= threshold:
                start -= 1
            text = (
                f"loss rose from {g(ref)} (starting level, median of the first {k} point(s)) to {g(xs[-1])} at "
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
        floor = min(centered_median(xs[:start], 2))
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
        meds = trailing_median(xs, w)
        scales = trailing_median(resid, w)
        out = []
        for i in range(ds.spike_min_history, len(xs)):
            med = meds[i]
            sigma = max(MAD * scales[i], 1e-3 * abs(med), 1e-12)
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
        smooth = centered_median(xs, 2)
        resid = roughness(xs)
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
        elif (rising := None if div is not None else loss_rising(xs, resid, ds, ctx, name)) is not None:
            hits.append(rising)
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
        f"{len(events)} sudden jump(s) between steps {first} and {last}; the largest: loss {g(value)} at step {step}, "
        f"{ratio:.1f}x the median {g(med)} of the {ds.spike_window} points before ({z:.0f} robust sigmas)"
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
        reasons.append(f"the loss rose to {peak / start:.1f}x its starting level {g(start)} (step {ctx.at(at)})")
        figures["rise"] = peak / start
    rel = [r / abs(s) if s else 0.0 for r, s in zip(resid, smooth, strict=True)]
    early_noise = MAD * median(rel[:e])
    rest_noise = MAD * median(rel[e:])
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
    slope, intercept = fit(tail)
    change = slope * (m - 1)
    sigma = MAD * median([abs(y - (intercept + slope * i)) for i, y in enumerate(tail)])
    level = median(tail)
    k = min(ds.reference_points, max(1, n // 10))
    start_level = median(xs[:k])
    if not (abs(change) < ds.plateau_noise_ratio * sigma and abs(change) < ds.plateau_rel_drop * abs(level)):
        return None
    if start_level <= 0 or start_level - level < ds.plateau_min_progress * start_level:
        return None
    # extend back: where the smoothed curve first stays within the plateau's band
    smooth = centered_median(xs, max(2, n // 50))
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
        f"{g(level)}: over the last {m} points it changed by {pct(change / abs(level))} (fitted), less than "
        f"{ds.plateau_noise_ratio:g}x the step-to-step noise ({g(sigma)}), with {sched}; it had fallen "
        f"{pct(1 - level / start_level)} from {g(start_level)} before"
    )
    figures = {"level": level, "tail_change": change, "noise": sigma, "starting_level": start_level}
    severity: Severity = "medium" if ctx.schedule_known else "low"
    confidence = 0.75 if ctx.schedule_known else 0.5
    return Hit("late_plateau", curve, ctx.at(begin), ctx.at(n - 1), text, figures, severity, confidence)


def _oscillation(xs: list[float], ds: DiagnosisSettings, ctx: Context, curve: Any) -> Hit | None:
    n = len(xs)
    w = max(ds.oscillation_window, n // 10)
    if n < w:
        return None
    trend = centered_mean(xs, 4)
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
    sval = centered_median(val, hv)
    ht = max(1, round(ds.val_smooth_fraction * len(train) / 2))
    strain = centered_mean(centered_median(train, min(ht, 25)), ht)
    # noise of one validation point, then of a running median over 2*hv+1 of them (1.25: median vs mean)
    sigma = MAD * median(roughness(val)) / math.sqrt(2 * hv + 1) * 1.25
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
            f"val loss rose {pct(rise / abs(lo))} from step {at[j_min]} to {at[-1]} ({g(lo)} -> {g(end)}, "
            f"smoothed) while train fell {pct(train_fall)} ({g(t0)} -> {g(t1)})"
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
            f"(median {g(before)} over the {q} evaluations before -> {g(after)}) while train still fell "
            f"{pct(train_fall)} ({g(t0)} -> {g(t1)}, smoothed)"
        )
        figures = {"val_improvement": improvement, "train_fall": train_fall, "val_before": before, "val_after": after}
        return [Hit("validation_plateau", "val", at[tail0], at[-1], text, figures, "medium", 0.75)]
    return []
