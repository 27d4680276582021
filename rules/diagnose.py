"""Diagnose a training run: from a loss curve (or named symptoms) to concrete fixes, as a revised Recommendation.

Pure Python (standard library + pydantic); never imports torch.

    >>> from optirec import diagnose
    >>> dx = diagnose(train_loss=[2.3, 2.1, 9.0, None])
    >>> [f.symptom for f in dx.findings], dx.recommendation.optimizer.hyperparameters["lr"]
    (['divergence'], 0.0001)

The knowledge is data: the symptom -> cause -> fix rows of 004 §6.4.1, the Adam -> SGD switch of
§6.4.2 and the clipping advice for recurrent networks (§5.7.1) live in ``rules/data/symptoms.toml``;
every detector threshold and the size of every fix live in ``principles.toml`` ``[diagnosis]``,
each with its source.

Detectors (a "step" is the index of a point in ``train_loss``; validation points are spread evenly
over the training steps when the two curves differ in length):

- divergence: a NaN/inf (``None``) loss, or a curve that ends at ``divergence_factor`` x its start;
- gradient_explosion: sudden jumps against a rolling median and MAD (robust: one noisy point moves nothing);
- early_instability: spikes, a rise or outsized noise in the first ``early_fraction``, without warmup;
- late_plateau: a last ``plateau_fraction`` flat relative to the noise level, with a constant or unknown schedule;
- oscillation: high-frequency sign alternation of the differences, with amplitude and no downward trend;
- overfitting: validation rising over a sustained window while training keeps falling (smoothed curves);
- validation_plateau: validation flat while training still falls (004 §6.4.2).
"""

from __future__ import annotations

import bisect
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .engine import recommend
from .errors import FieldIssue, ProfileError, suggest
from .loader import Rulebook, default_rulebook
from .lr_terms import lr_range_holding, lr_search_range
from .numbers import BEYOND_FLOAT, beyond_float, first_beyond_float
from .profile import Profile, issues_from_errors, parse_profile
from .recommendation import RationaleEntry, Recommendation, RulebookInfo
from .schema import DiagnosisSettings, Symptom

__all__ = ["Cause", "Change", "CurveSummary", "Diagnosis", "Evidence", "Finding", "diagnose"]

Severity = Literal["low", "medium", "high"]
_MAX_SYMPTOMS = 32
_MAD = 1.4826  # MAD -> standard deviation for normal noise


# ---------------------------------------------------------------------------------------- output models
class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Evidence(_Out):
    curve: Literal["train", "val", "named"] = Field(description="Which curve shows it ('named': given by the caller).")
    start_step: int | None = Field(description="First step of the symptom (index into train_loss).")
    end_step: int | None = Field(description="Last step of the symptom.")
    summary: str = Field(description="The figures in words, e.g. 'val loss rose 18% from step 410 to 600 ...'.")
    figures: dict[str, float] = Field(default_factory=dict, description="The numbers behind the summary.")


class Finding(_Out):
    symptom: str = Field(description="Symptom name (symptoms.toml).")
    label: str
    cause: str
    fix: str
    rule: str = Field(description="Rule id of the symptom row, e.g. symptom.divergence.")
    source: str = Field(description="Seed citation, e.g. '004 §6.4.1 loss diverges (NaN)'.")
    severity: Severity
    confidence: float = Field(ge=0, le=1)
    detected_from: Literal["curve", "named"]
    evidence: Evidence
    actions: list[str] = Field(description="The changes this finding asks for (action names of symptoms.toml).")


class Cause(_Out):
    cause: str
    symptom: str
    rule: str
    source: str


class Change(_Out):
    """One change made to the recommendation: field, old and new value, and why."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    field: str = Field(description="Dotted path in the Recommendation, e.g. optimizer.hyperparameters.lr.")
    from_: Any = Field(alias="from", description="Value before.")
    to: Any = Field(description="Value after.")
    why: str
    rule: str
    source: str
    symptom: str


class CurveSummary(_Out):
    train_points: int
    val_points: int
    train_non_finite: int
    val_non_finite: int


class Diagnosis(_Out):
    """What the curves show, why, and the recommendation with the fixes applied."""

    healthy: bool = Field(description="True when no symptom was found or named.")
    message: str
    findings: list[Finding]
    causes: list[Cause]
    changes: list[Change]
    notes: list[str]
    recommendation: Recommendation = Field(description="The revised recommendation (unchanged when healthy).")
    based_on: Literal["recommendation", "profile", "default"] = Field(
        description="What was revised: the caller's recommendation, recommend(profile), or the default one."
    )
    curves: CurveSummary
    rulebook: RulebookInfo


# ---------------------------------------------------------------------------------------- input checks
def _issue(field_name: str, message: str, **kw: Any) -> ProfileError:
    return ProfileError([FieldIssue(field=field_name, message=message, **kw)])


def _curve(name: str, value: Any, limit: int) -> list[float] | None:
    """A loss curve as floats (NaN where the value is null/NaN/inf); ProfileError naming the field otherwise."""
    if value is None:
        return None
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise _issue(name, "must be a list of numbers (null where the loss was NaN/inf)")
    if isinstance(value, Sequence) and len(value) > limit:
        raise _issue(name, f"has {len(value)} points; at most {limit} are accepted (downsample the curve)")
    out: list[float] = []
    for i, v in enumerate(value):
        if i >= limit:
            raise _issue(name, f"has more than {limit} points; at most {limit} are accepted (downsample the curve)")
        if v is None:
            out.append(math.nan)
        elif isinstance(v, bool) or not isinstance(v, numbers.Real):
            shown = repr(v)[:40]
            raise _issue(f"{name}[{i}]", f"must be a number or null (got {shown})", value=shown)
        elif beyond_float(v):
            raise _issue(f"{name}[{i}]", BEYOND_FLOAT)
        else:
            out.append(float(v))
    if not out:
        raise _issue(name, "must not be empty: give at least one loss value")
    return out


def _symptom_names(value: Any, book: Rulebook) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise _issue("symptoms", "must be a list of symptom names", valid=sorted(book.symptoms))
    items = list(value)
    if len(items) > _MAX_SYMPTOMS:
        raise _issue("symptoms", f"at most {_MAX_SYMPTOMS} symptoms (got {len(items)})")
    names: list[str] = []
    for i, item in enumerate(items):
        canonical = book.resolve("symptom", item) if isinstance(item, str) else None
        if canonical is None:
            shown = item[:80] if isinstance(item, str) else repr(item)[:40]
            hint = book.aliases["symptom"].get(suggest(shown, book.aliases["symptom"]) or "")
            raise ProfileError(
                [
                    FieldIssue(
                        field=f"symptoms[{i}]",
                        message=f"unknown symptom {shown!r}",
                        value=shown,
                        valid=sorted(book.symptoms),
                        suggestion=hint,
                    )
                ]
            )
        if canonical not in names:
            names.append(canonical)
    return names


def _prefixed(exc: ProfileError, prefix: str) -> ProfileError:
    return ProfileError(
        [
            FieldIssue(
                field=f"{prefix}.{i.field}" if i.field != prefix else i.field,
                message=i.message,
                value=i.value,
                valid=i.valid,
                suggestion=i.suggestion,
            )
            for i in exc.issues
        ]
    )


def _base_recommendation(
    recommendation: Any, profile: Any, book: Rulebook
) -> tuple[Recommendation, Profile | None, Literal["recommendation", "profile", "default"]]:
    parsed: Profile | None = None
    if profile is not None:
        try:
            parsed = parse_profile(profile)
        except ProfileError as exc:
            raise _prefixed(exc, "profile") from None
    if recommendation is not None:
        if not isinstance(recommendation, Recommendation | Mapping):
            raise _issue("recommendation", "must be a Recommendation (the JSON of POST /recommend)")
        # the fixes divide and scale its numbers as floats: one no float can hold is refused, naming it
        document = recommendation.model_dump() if isinstance(recommendation, Recommendation) else recommendation
        huge = first_beyond_float(document, "recommendation")
        if huge is not None:
            raise _issue(huge, BEYOND_FLOAT)
        if isinstance(recommendation, Recommendation):
            return recommendation, parsed, "recommendation"
        try:
            rec = Recommendation.model_validate(recommendation)
        except ValidationError as exc:
            fields = list(Recommendation.model_fields)
            issues = issues_from_errors(exc.errors(include_url=False), fields)
            raise ProfileError(
                [
                    FieldIssue(
                        field=f"recommendation.{i.field}" if i.field != "profile" else "recommendation",
                        message=i.message if i.field != "profile" else "must be a Recommendation object",
                        value=i.value,
                        valid=i.valid,
                        suggestion=i.suggestion,
                    )
                    for i in issues
                ]
            ) from None
        return rec, parsed, "recommendation"
    if parsed is not None:
        return recommend(parsed, rulebook=book), parsed, "profile"
    return recommend({}, rulebook=book), None, "default"


# ---------------------------------------------------------------------------------------- statistics
def _median(xs: Sequence[float]) -> float:
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


def _pct(x: float) -> str:
    return f"{x * 100:.0f}%" if abs(x) >= 0.095 else f"{x * 100:.1f}%"


def _g(x: float) -> str:
    return f"{x:.4g}"


# ---------------------------------------------------------------------------------------- detectors
@dataclass
class _Hit:
    symptom: str
    curve: Literal["train", "val"]
    start: int | None
    end: int | None
    summary: str
    figures: dict[str, float]
    severity: Severity
    confidence: float


@dataclass
class _Context:
    """What the detectors know about the run besides the curves."""

    warmup_known: bool
    has_warmup: bool
    schedule_known: bool
    constant_schedule: bool
    hits: list[_Hit] = field(default_factory=list)


class _Curves:
    def __init__(self, train: list[float] | None, val: list[float] | None, ds: DiagnosisSettings) -> None:
        self.ds = ds
        self.main_name: Literal["train", "val"] = "train" if train is not None else "val"
        self.main = train if train is not None else (val or [])
        self.val = val if train is not None else None

    # ---- divergence (on the raw curve, non-finite values included)
    def divergence(self) -> tuple[_Hit | None, int]:
        """The divergence finding (if any) and the length of the curve before it (what the other detectors see)."""
        ds, xs = self.ds, self.main
        n = len(xs)
        first_bad = next((i for i, x in enumerate(xs) if not math.isfinite(x)), None)
        finite = xs[:first_bad] if first_bad is not None else xs
        k = min(ds.reference_points, max(1, len(finite) // 10))
        ref = _median(finite[:k]) if finite else math.nan
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
            hit = _Hit("divergence", self.main_name, first_bad, n - 1, text, figures, "high", 0.95)
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
            hit = _Hit("divergence", self.main_name, start, n - 1, text, figures, "high", 0.9)
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


def _detect(
    train: list[float] | None, val: list[float] | None, ds: DiagnosisSettings, ctx: _Context
) -> tuple[list[_Hit], list[str]]:
    curves = _Curves(train, val, ds)
    hits: list[_Hit] = []
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


def _explosion(spikes: list[tuple[int, float, float, float]], ds: DiagnosisSettings, curve: Any) -> _Hit:
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
    return _Hit("gradient_explosion", curve, first, last, text, figures, severity, 0.85)


def _early_instability(
    xs: list[float],
    smooth: list[float],
    resid: list[float],
    spikes: list[tuple[int, float, float, float]],
    ds: DiagnosisSettings,
    ctx: _Context,
    curve: Any,
) -> _Hit | None:
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
    start = _median(xs[: min(3, e)])
    peak = max(smooth[:e])
    if start > 0 and peak >= ds.early_rise * start:
        at = smooth[:e].index(peak)
        reasons.append(f"the loss rose to {peak / start:.1f}x its starting level {_g(start)} (step {at})")
        figures["rise"] = peak / start
    rel = [r / abs(s) if s else 0.0 for r, s in zip(resid, smooth, strict=True)]
    early_noise = _MAD * _median(rel[:e])
    rest_noise = _MAD * _median(rel[e:])
    if (
        e >= ds.early_noise_min_points
        and early_noise >= ds.early_min_noise
        and early_noise >= ds.early_noise_ratio * max(rest_noise, 1e-12)
    ):
        reasons.append(
            f"its step-to-step noise is {_pct(early_noise)} of the level, {early_noise / max(rest_noise, 1e-12):.1f}x "
            f"that of the rest ({_pct(rest_noise)})"
        )
        figures["early_noise"] = early_noise
        figures["rest_noise"] = rest_noise
    if not reasons:
        return None
    warm = "without warmup" if ctx.warmup_known else "(warmup unknown: no recommendation given)"
    text = f"in the first {_pct(ds.early_fraction)} of training (steps 0-{e - 1}) {warm}: " + "; ".join(reasons)
    severity: Severity = "high" if len(reasons) > 1 else "medium"
    return _Hit("early_instability", curve, 0, e - 1, text, figures, severity, 0.8 if ctx.warmup_known else 0.6)


def _late_plateau(xs: list[float], ds: DiagnosisSettings, ctx: _Context, curve: Any) -> _Hit | None:
    n = len(xs)
    if n < ds.plateau_min_points or (ctx.schedule_known and not ctx.constant_schedule):
        return None
    m = max(8, round(ds.plateau_fraction * n))
    tail = xs[n - m :]
    slope, intercept = _fit(tail)
    change = slope * (m - 1)
    sigma = _MAD * _median([abs(y - (intercept + slope * i)) for i, y in enumerate(tail)])
    level = _median(tail)
    k = min(ds.reference_points, max(1, n // 10))
    start_level = _median(xs[:k])
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
    sched = "a constant schedule" if ctx.schedule_known else "no known schedule (no recommendation given)"
    text = (
        f"from step {begin} to {n - 1} ({_pct((n - begin) / n)} of the run) the loss stays at {_g(level)}: over the "
        f"last {m} steps it changed by {_pct(change / abs(level))} (fitted), less than {ds.plateau_noise_ratio:g}x the "
        f"step-to-step noise ({_g(sigma)}), with {sched}; it had fallen {_pct(1 - level / start_level)} from "
        f"{_g(start_level)} before"
    )
    figures = {"level": level, "tail_change": change, "noise": sigma, "starting_level": start_level}
    severity: Severity = "medium" if ctx.schedule_known else "low"
    return _Hit("late_plateau", curve, begin, n - 1, text, figures, severity, 0.75 if ctx.schedule_known else 0.5)


def _oscillation(xs: list[float], ds: DiagnosisSettings, curve: Any) -> _Hit | None:
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
        level = abs(_median(seg))
        if rho > ds.oscillation_autocorrelation or level == 0:
            continue
        amp = _median([abs(v) for v in d]) / level
        q = max(1, w // 4)
        fall = (_median(seg[:q]) - _median(seg[-q:])) / level
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
    fall = (_median(xs[a : a + max(1, (b - a) // 4)]) - _median(xs[b - max(1, (b - a) // 4) + 1 : b + 1])) / max(
        abs(_median(xs[a : b + 1])), 1e-12
    )
    text = (
        f"from step {a} to {b}: {_pct(alt)} of successive changes alternate sign (independent noise: about 67%), "
        f"lag-1 autocorrelation {rho:.2f}, swings of {_pct(amp)} of the loss, net fall {_pct(fall)} (no downward trend)"
    )
    figures = {"alternation": alt, "autocorrelation": rho, "amplitude": amp, "net_fall": fall}
    severity: Severity = "high" if (b - a + 1) >= n / 2 else "medium"
    return _Hit("oscillation", curve, a, b, text, figures, severity, 0.8)


def _validation(
    train: list[float], val_raw: list[float], n_train: int, ds: DiagnosisSettings, notes: list[str]
) -> list[_Hit]:
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
    sval = _centered_median(val, hv)
    ht = max(1, round(ds.val_smooth_fraction * len(train) / 2))
    strain = _centered_mean(_centered_median(train, min(ht, 25)), ht)
    # noise of one validation point, then of a running median over 2*hv+1 of them (1.25: median vs mean)
    sigma = _MAD * _median(_roughness(val)) / math.sqrt(2 * hv + 1) * 1.25
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
            f"val loss rose {_pct(rise / abs(lo))} from step {steps[j_min]} to {steps[-1]} ({_g(lo)} -> {_g(end)}, "
            f"smoothed) while train fell {_pct(train_fall)} ({_g(t0)} -> {_g(t1)})"
        )
        figures = {"val_rise": rise / abs(lo), "train_fall": train_fall, "val_min": lo, "val_end": end}
        severity: Severity = "high" if rise / abs(lo) >= 0.2 else "medium"
        return [_Hit("overfitting", "val", steps[j_min], steps[-1], text, figures, severity, 0.85)]
    q = max(ds.val_plateau_min_points, round(ds.val_plateau_fraction * m))
    if 2 * q > m:
        return []
    tail0 = m - q
    before = _median(val[tail0 - q : tail0])
    after = _median(val[tail0:])
    improvement = (before - after) / abs(before) if before else 0.0
    t0, t1 = strain[steps[tail0]], strain[steps[-1]]
    train_fall = (t0 - t1) / abs(t0) if t0 else 0.0
    if improvement < ds.val_plateau_rel_drop and train_fall >= ds.val_plateau_train_fall:
        text = (
            f"from step {steps[tail0]} to {steps[-1]} val loss improved by {_pct(max(improvement, 0.0))} "
            f"(median {_g(before)} over the {q} evaluations before -> {_g(after)}) while train still fell "
            f"{_pct(train_fall)} ({_g(t0)} -> {_g(t1)}, smoothed)"
        )
        figures = {"val_improvement": improvement, "train_fall": train_fall, "val_before": before, "val_after": after}
        return [_Hit("validation_plateau", "val", steps[tail0], steps[-1], text, figures, "medium", 0.75)]
    return []


# ---------------------------------------------------------------------------------------- revision
class _Reviser:
    """Applies the actions of the findings to a copy of the recommendation, recording every change."""

    def __init__(self, rec: Recommendation, book: Rulebook, goal: str | None, family: str | None) -> None:
        self.book = book
        self.ds: DiagnosisSettings = book.diagnosis  # type: ignore[assignment]
        self.data: dict[str, Any] = rec.model_dump(mode="json")
        self.goal = goal
        self.family = family
        self.changes: list[Change] = []
        self.notes: list[str] = []
        self.done: set[str] = set()
        self.applied_by: dict[str, list[Change]] = {}

    @property
    def hp(self) -> dict[str, Any]:
        return self.data["optimizer"]["hyperparameters"]  # type: ignore[no-any-return]

    def _change(self, path: str, old: Any, new: Any, why: str, rule: str, source: str, symptom: str) -> None:
        c = Change.model_validate(
            {"field": path, "from": old, "to": new, "why": why, "rule": rule, "source": source, "symptom": symptom}
        )
        self.changes.append(c)
        self.applied_by.setdefault(symptom, []).append(c)

    def apply(self, action: str, why: str, rule: str, source: str, symptom: str) -> bool:
        """Apply ``action`` once; False when it cannot change anything (or was already applied)."""
        if action in self.done:
            self.notes.append(f"{symptom}: {action} was already applied for another finding.")
            return True
        changed = getattr(self, f"_{action}")(why, rule, source, symptom)
        if changed:
            self.done.add(action)
        return bool(changed)

    # ---- actions
    def _lr_divide_10(self, why: str, rule: str, source: str, symptom: str) -> bool:
        div = self.ds.lr_divisor
        lr = self.hp.get("lr")
        if not isinstance(lr, int | float) or lr <= 0:
            self.notes.append(f"{symptom}: the optimizer has no lr to lower.")
            return False
        new = float(f"{lr / div:.6g}")
        self.hp["lr"] = new
        self._change("optimizer.hyperparameters.lr", lr, new, why, rule, source, symptom)
        space = self.data["search_space"]
        if "lr" in space:
            old = list(space["lr"])
            space["lr"] = list(lr_range_holding(new, old[0] / div, old[1] / div))  # the range moves with the lr
            self._change(
                "search_space.lr",
                old,
                space["lr"],
                f"the search range follows the lr (/{div:g})",
                rule,
                source,
                symptom,
            )
            for hint in self.data["tuning"]:
                if hint["name"] == "lr":
                    hint["low"], hint["high"] = space["lr"]
        for i, g in enumerate(self.data["param_groups"]):
            glr = g["hyperparameters"].get("lr")
            if isinstance(glr, int | float) and glr > 0:
                g["hyperparameters"]["lr"] = float(f"{glr / div:.6g}")
                self._change(
                    f"param_groups[{i}].hyperparameters.lr", glr, g["hyperparameters"]["lr"], why, rule, source, symptom
                )
        for i, ph in enumerate(self.data["phases"]):
            plr = ph["optimizer"]["hyperparameters"].get("lr")
            if ph["optimizer"]["name"] == self.data["optimizer"]["name"] and isinstance(plr, int | float) and plr > 0:
                ph["optimizer"]["hyperparameters"]["lr"] = new
                self._change(f"phases[{i}].optimizer.hyperparameters.lr", plr, new, why, rule, source, symptom)
        return True

    def _add_clipping(self, why: str, rule: str, source: str, symptom: str) -> bool:
        norm = self.book.principles.default_clip_norm
        current = self.data["gradient_clipping"]
        if current is not None and current["max_norm"] <= norm:
            self.notes.append(f"{symptom}: gradients are already clipped at max_norm {current['max_norm']:g}.")
            return False
        self.data["gradient_clipping"] = {"max_norm": norm}
        self._change("gradient_clipping", current, {"max_norm": norm}, why, rule, source, symptom)
        return True

    def _add_warmup(self, why: str, rule: str, source: str, symptom: str) -> bool:
        sched = self.data["schedule"]
        ratio = self.ds.warmup_ratio
        if sched["warmup_ratio"] >= ratio:
            self.notes.append(
                f"{symptom}: the schedule already warms up over {_pct(sched['warmup_ratio'])} of the steps."
            )
            return False
        old = sched["warmup_ratio"]
        sched["warmup_ratio"] = ratio
        self._change(
            "schedule.warmup_ratio",
            old,
            ratio,
            why + f" (linear warmup over {_pct(ratio)} of the steps)",
            rule,
            source,
            symptom,
        )
        total = sched["total_steps"]
        steps = round(total * ratio) if total else None
        if sched["warmup_steps"] != steps:
            self._change("schedule.warmup_steps", sched["warmup_steps"], steps, why, rule, source, symptom)
            sched["warmup_steps"] = steps
        return True

    def _cosine_annealing(self, why: str, rule: str, source: str, symptom: str) -> bool:
        sched = self.data["schedule"]
        if sched["name"] in ("cosine", "cosine_restarts"):
            self.notes.append(f"{symptom}: the schedule already anneals ({sched['name']}).")
            return False
        old = sched["name"]
        sched.update(name="cosine", milestones=None, milestone_fractions=None, gamma=None)
        self._change("schedule.name", old, "cosine", why, rule, source, symptom)
        return True

    def _raise_weight_decay(self, why: str, rule: str, source: str, symptom: str) -> bool:
        pr = self.book.principles
        family = self.book.optimizers[self.data["optimizer"]["name"]].family
        lo, hi = pr.sgd_weight_decay_range if family == "sgd" else pr.adaptive_weight_decay_range
        wd = float(self.hp.get("weight_decay") or 0.0)
        if wd >= hi:
            self.notes.append(
                f"{symptom}: weight decay {wd:g} is already at the top of the 004 §6.3 range ({lo:g}-{hi:g}); "
                "more data, augmentation or early stopping are the next levers."
            )
            return False
        new = float(f"{min(max(wd * self.ds.weight_decay_factor, lo), hi):.6g}")
        self.hp["weight_decay"] = new
        self._change(
            "optimizer.hyperparameters.weight_decay",
            wd,
            new,
            why + f" (x{self.ds.weight_decay_factor:g}, kept within {lo:g}-{hi:g}, {pr.sources['tuning']})",
            rule,
            source,
            symptom,
        )
        if wd == 0 and not any(g["name"] == "no_decay" for g in self.data["param_groups"]):
            self.data["param_groups"].append(
                {
                    "name": "no_decay",
                    "match": ["bias", "norm weights (BatchNorm/LayerNorm/GroupNorm)", "1-D parameters"],
                    "optimizer": None,
                    "hyperparameters": {"weight_decay": 0.0},
                    "frozen": False,
                    "layerwise_lr_decay": None,
                    "why": "Weight decay is not applied to biases and normalisation weights "
                    "(as timm and Hugging Face do).",
                }
            )
            self._change(
                "param_groups",
                "no no_decay group",
                "no_decay group added",
                "weight decay is now on",
                rule,
                source,
                symptom,
            )
        return True

    def _lower(self, beta: float) -> float:
        ds = self.ds
        return float(f"{max(ds.min_momentum, 1 - ds.momentum_horizon_divisor * (1 - beta)):.4g}")

    def _lower_momentum(self, why: str, rule: str, source: str, symptom: str) -> bool:
        hp = self.hp
        m = hp.get("momentum")
        if isinstance(m, int | float) and m > 0:
            new = self._lower(m)
            if new >= m:
                self.notes.append(f"{symptom}: momentum {m:g} is already at the floor {self.ds.min_momentum:g}.")
                return False
            hp["momentum"] = new
            self._change("optimizer.hyperparameters.momentum", m, new, why, rule, source, symptom)
            space = self.data["search_space"]
            if "momentum" in space and space["momentum"][0] > new:
                old = list(space["momentum"])
                space["momentum"] = [new, old[1]]
                self._change(
                    "search_space.momentum",
                    old,
                    space["momentum"],
                    "the search range includes the lowered momentum",
                    rule,
                    source,
                    symptom,
                )
                for hint in self.data["tuning"]:
                    if hint["name"] == "momentum":
                        hint["low"] = new
            return True
        betas = hp.get("betas")
        if isinstance(betas, list | tuple) and len(betas) == 2 and betas[0] > 0:
            new = self._lower(betas[0])
            if new >= betas[0]:
                self.notes.append(f"{symptom}: beta1 {betas[0]:g} is already at the floor {self.ds.min_momentum:g}.")
                return False
            old = list(betas)
            hp["betas"] = [new, betas[1]]
            self._change(
                "optimizer.hyperparameters.betas",
                old,
                hp["betas"],
                why + " (beta1 is Adam's momentum)",
                rule,
                source,
                symptom,
            )
            return True
        return False

    def _switch_to_sgd(self, why: str, rule: str, source: str, symptom: str) -> bool:
        book, pr = self.book, self.book.principles
        old_name = self.data["optimizer"]["name"]
        if old_name == "sgd_momentum":
            return False
        sgd_hp = dict(book.defaults["sgd_momentum"])
        for ph in self.data["phases"]:
            if ph["optimizer"]["name"] == "sgd_momentum":
                sgd_hp = dict(ph["optimizer"]["hyperparameters"])
        old = {"name": old_name, "hyperparameters": dict(self.hp)}
        self.data["optimizer"] = {"name": "sgd_momentum", "hyperparameters": sgd_hp}
        self._change("optimizer", old, self.data["optimizer"], why, rule, source, symptom)
        lr = sgd_hp.get("lr")
        space = self.data["search_space"]
        old_space = {k: list(v) for k, v in space.items()}
        if isinstance(lr, int | float) and lr > 0:
            space["lr"] = list(lr_search_range(lr, pr))
        space["weight_decay"] = list(pr.sgd_weight_decay_range)
        space["momentum"] = list(pr.momentum_range)
        self._change(
            "search_space",
            old_space,
            {k: list(v) for k, v in space.items()},
            "ranges for SGD + momentum (004 §6.3)",
            rule,
            source,
            symptom,
        )
        self.data["tuning"] = [h for h in self.data["tuning"] if h["name"] in space]
        for h in self.data["tuning"]:
            h["low"], h["high"] = space[h["name"]]
        if "momentum" not in {h["name"] for h in self.data["tuning"]}:
            priority, reason = book.tuning_why["momentum"]
            lo, hi = pr.momentum_range
            self.data["tuning"].append(
                {
                    "name": "momentum",
                    "priority": priority,
                    "low": lo,
                    "high": hi,
                    "scale": "linear",
                    "why": reason,
                    "source": pr.sources["tuning"],
                }
            )
        if self.data["phases"]:
            self._change(
                "phases",
                [p["name"] for p in self.data["phases"]],
                [],
                "the switch is made now: one phase left",
                rule,
                source,
                symptom,
            )
            self.data["phases"] = []
        mem = self.data["memory"]
        mult = book.state_multiplier("sgd_momentum")
        if mem["state_multiplier"] != mult:
            old_mult = mem["state_multiplier"]
            mem["state_multiplier"] = mult
            n = mem.get("parameters")
            if n and mem.get("optimizer_state_bytes") is not None and old_mult:
                value_bytes = mem["optimizer_state_bytes"] / (old_mult * n)  # bytes per state value, whole job
                state = int(mult * value_bytes * n)
                delta = state - mem["optimizer_state_bytes"]
                mem["optimizer_state_bytes"] = state
                if mem.get("total_bytes") is not None:
                    mem["total_bytes"] += delta
                per_value = mem.get("state_value_bytes_per_device")
                if mem.get("per_device_bytes") is not None and per_value is not None:
                    mem["per_device_bytes"] = int(mem["per_device_bytes"] + (mult - old_mult) * n * per_value)
                if mem.get("device_memory_bytes") and mem.get("per_device_bytes") is not None:
                    mem["fits"] = mem["per_device_bytes"] <= mem["device_memory_bytes"]
            self._change(
                "memory.state_multiplier",
                old_mult,
                mult,
                "SGD + momentum keeps one state value per parameter",
                rule,
                source,
                symptom,
            )
        if isinstance(lr, int | float):
            self.data["lr_scaling"] = {
                "rule": "none",
                "base_lr": lr,
                "base_batch_size": None,
                "batch_size": self.data["batch_size"],
                "factor": 1.0,
                "reason": f"lr of SGD + momentum for the final phase after {old_name} ({source})",
            }
        return True

    # ---- symptoms
    def symptom(self, sym: Symptom, why_prefix: str) -> None:
        gated = self._gate(sym)
        if gated is not None:
            self.notes.append(gated)
            return
        why = f"{why_prefix}: {sym.cause}, so {sym.fix}"
        applied = [self.apply(a, why, sym.id, sym.source, sym.name) for a in sym.actions]
        if not any(applied) and sym.fallback is not None:
            self.apply(sym.fallback, f"{why_prefix}: {sym.fallback_why}", sym.id, sym.source, sym.name)
        for ctx in self.book.symptom_contexts:
            if self.family in ctx.when_family and sym.name in ctx.when_symptoms:
                for a in ctx.actions:
                    self.apply(a, f"{why_prefix} in a recurrent network: {ctx.why}", ctx.id, ctx.source, sym.name)

    def _gate(self, sym: Symptom) -> str | None:
        name = self.data["optimizer"]["name"]
        parts = []
        if sym.requires_optimizer is not None and name not in sym.requires_optimizer:
            parts.append(f"the optimizer is {name}, not one of {', '.join(sym.requires_optimizer)}")
        if sym.requires_goal is not None and self.goal not in sym.requires_goal:
            parts.append(f"the goal is {self.goal or 'not given'}, not {' or '.join(sym.requires_goal)}")
        if not parts:
            return None
        return (
            f"{sym.name}: '{sym.fix}' ({sym.source}) does not apply here: "
            + "; ".join(parts)
            + (". The recommendation is left as it is for this finding.")
        )


# ---------------------------------------------------------------------------------------- entry point
def _finding(
    sym: Symptom, severity: Severity, confidence: float, detected_from: Literal["curve", "named"], evidence: Evidence
) -> Finding:
    """A Finding: the symptom row's cause, fix and citation, with how it was found."""
    return Finding(
        symptom=sym.name,
        label=sym.label,
        cause=sym.cause,
        fix=sym.fix,
        rule=sym.id,
        source=sym.source,
        severity=severity,
        confidence=confidence,
        detected_from=detected_from,
        evidence=evidence,
        actions=list(sym.actions),
    )


def diagnose(
    train_loss: Any = None,
    val_loss: Any = None,
    symptoms: Any = None,
    recommendation: Recommendation | Mapping[str, Any] | None = None,
    profile: Profile | Mapping[str, Any] | None = None,
    *,
    rulebook: Rulebook | None = None,
) -> Diagnosis:
    """Findings from a loss history and/or named symptoms, and the recommendation revised to fix them.

    ``train_loss`` / ``val_loss``: lists of numbers, ``None`` where the loss was NaN/inf (the curves may differ
    in length: validation points are spread evenly over the training steps). ``symptoms``: names or aliases of
    symptoms.toml rows. The fixes are applied to ``recommendation``, else to ``recommend(profile)``, else to the
    default recommendation. Raises :class:`~optirec.rules.errors.ProfileError` naming the field on bad input.
    """
    book = rulebook or default_rulebook()
    ds = book.diagnosis
    if ds is None:  # pragma: no cover - the loader requires [diagnosis]
        raise ProfileError([FieldIssue(field="rulebook", message="principles.toml has no [diagnosis] table")])
    train = _curve("train_loss", train_loss, ds.max_points)
    val = _curve("val_loss", val_loss, ds.max_points)
    named = _symptom_names(symptoms, book)
    if train is None and val is None and not named:
        raise ProfileError(
            [
                FieldIssue(
                    field="train_loss",
                    message="nothing to diagnose: give train_loss (and optionally val_loss) as lists of numbers, "
                    "or symptoms",
                    valid=sorted(book.symptoms),
                )
            ]
        )
    rec, parsed, based_on = _base_recommendation(recommendation, profile, book)
    goal = rec.profile.get("goal") or (parsed.goal if parsed else None)
    arch = rec.profile.get("architecture") or (parsed.architecture if parsed else None)
    term = book.terms["architecture"].get(arch) if isinstance(arch, str) else None
    family = term.family if term else None

    known = based_on != "default"
    sched = rec.schedule
    ctx = _Context(
        warmup_known=known,
        has_warmup=sched.warmup_ratio > 0 or bool(sched.warmup_steps),
        schedule_known=known,
        constant_schedule=sched.name == "constant",
    )
    hits: list[_Hit] = []
    notes: list[str] = []
    if train is not None or val is not None:
        hits, notes = _detect(train, val, ds, ctx)
    if not known and (train is not None or val is not None):
        notes.append(
            "No recommendation or profile was given: warmup and schedule are unknown, so early instability and a "
            "late plateau are judged as if there were neither; the fixes are applied to the default recommendation."
        )

    findings: list[Finding] = []
    for hit in hits:
        evidence = Evidence(
            curve=hit.curve,
            start_step=hit.start,
            end_step=hit.end,
            summary=hit.summary,
            figures={k: round(float(v), 6) for k, v in hit.figures.items() if math.isfinite(v)},
        )
        findings.append(_finding(book.symptoms[hit.symptom], hit.severity, round(hit.confidence, 3), "curve", evidence))
    detected = {f.symptom for f in findings}
    for name in named:
        if name in detected:
            notes.append(f"{name} was named and is also seen in the curve.")
            continue
        evidence = Evidence(curve="named", start_step=None, end_step=None, summary="named by the caller")
        findings.append(_finding(book.symptoms[name], "medium", 1.0, "named", evidence))

    reviser = _Reviser(rec, book, goal if isinstance(goal, str) else None, family)
    for f in findings:
        where = f" (steps {f.evidence.start_step}-{f.evidence.end_step})" if f.evidence.start_step is not None else ""
        reviser.symptom(book.symptoms[f.symptom], f"{f.label}{where}")
    notes.extend(reviser.notes)

    data = reviser.data
    if reviser.changes:
        for f in findings:
            mine = reviser.applied_by.get(f.symptom, [])
            if not mine:
                continue
            data["rationale"].append(
                RationaleEntry(
                    rule=f.rule,
                    source=f.source,
                    level="diagnosis",
                    status="applied",
                    effect=f"{f.label}: {f.cause}, so {f.fix}.",
                    detail="; ".join(f"{c.field}: {_short(c.from_)} -> {_short(c.to)}" for c in mine),
                ).model_dump(mode="json")
            )
        data["warnings"].append(
            "Revised by diagnosis: "
            + "; ".join(
                f"{f.symptom} ({f.evidence.summary if f.detected_from == 'curve' else 'named'})" for f in findings
            )
            + f". {len(reviser.changes)} change(s): "
            + ", ".join(dict.fromkeys(c.field for c in reviser.changes))
            + "."
        )
        revised = Recommendation.model_validate(data)
    else:
        revised = rec

    causes = [Cause(cause=f.cause, symptom=f.symptom, rule=f.rule, source=f.source) for f in findings]
    n_train = len(train) if train is not None else 0
    n_val = len(val) if val is not None else 0
    if not findings:
        message = (
            f"No symptom found in {n_train} training and {n_val} validation point(s): the training looks healthy and "
            "the recommendation is unchanged."
        )
    else:
        listed = ", ".join(
            f.symptom
            + (f" (steps {f.evidence.start_step}-{f.evidence.end_step})" if f.evidence.start_step is not None else "")
            for f in findings
        )
        message = (
            f"Found {len(findings)} symptom(s): {listed}; {len(reviser.changes)} change(s) applied to the "
            "recommendation."
        )
    return Diagnosis(
        healthy=not findings,
        message=message,
        findings=findings,
        causes=causes,
        changes=reviser.changes,
        notes=notes,
        recommendation=revised,
        based_on=based_on,
        curves=CurveSummary(
            train_points=n_train,
            val_points=n_val,
            train_non_finite=sum(1 for x in train or [] if not math.isfinite(x)),
            val_non_finite=sum(1 for x in val or [] if not math.isfinite(x)),
        ),
        rulebook=RulebookInfo(version=book.version, hash=book.hash),
    )


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
