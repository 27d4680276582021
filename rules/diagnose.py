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

Detectors (every step quoted is the caller's, from ``steps`` / ``val_steps``, else the index of the point;
without ``val_steps`` validation points are spread evenly over the training points); rules/diagnose_curves.py:

- divergence: a NaN/inf (``None``) loss, or a curve that ends at ``divergence_factor`` x its start;
- gradient_explosion: sudden jumps against a rolling median and MAD (robust: one noisy point moves nothing);
- early_instability: spikes, a rise or outsized noise in the first ``early_fraction``, without warmup;
- no_improvement: the loss never falls over the whole curve (flat, noisy or swinging with no downward trend);
- loss_rising: the loss fell, then climbs back steadily (short of a divergence); both in rules/diagnose_trend.py;
- late_plateau: a last ``plateau_fraction`` flat relative to the noise level after progress, under any schedule
  (the seed's cause, a fixed learning rate, is named only under a constant or unknown one);
- oscillation: high-frequency sign alternation of the differences, with amplitude and no downward trend;
- overfitting: validation rising over a sustained window while training keeps falling (smoothed curves);
- validation_plateau: validation flat while training still falls (004 §6.4.2).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping, Sequence, Sized
from itertools import islice
from typing import Any, Literal

from pydantic import ValidationError

from .catalog_check import catalog_issues
from .diagnose_curves import detect
from .diagnose_models import Cause, Change, CurveSummary, Diagnosis, Evidence, Finding
from .diagnose_revise import Reviser
from .diagnose_stats import Context, Hit, Severity
from .engine import recommend
from .errors import FieldIssue, ProfileError, suggest
from .loader import Rulebook, default_rulebook
from .numbers import BEYOND_FLOAT, beyond_float, first_beyond_float
from .profile import Profile, issues_from_errors, parse_profile
from .recommendation import RationaleEntry, Recommendation, RulebookInfo
from .schema import Symptom

__all__ = ["Cause", "Change", "CurveSummary", "Diagnosis", "Evidence", "Finding", "diagnose"]

_MAX_SYMPTOMS = 32


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


_MAX_STEP = 2**53  # the largest integer every JSON reader (and a float) holds exactly


def _steps(name: str, value: Any, points: list[float] | None, curve: str) -> list[int] | None:
    """The caller's step of each point of ``curve``: integers >= 0, strictly increasing, one per point."""
    if value is None:
        return None
    if points is None:
        raise _issue(name, f"gives the steps of {curve}, which is not given; send {curve} with it")
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
        raise _issue(name, f"must be a list of integers >= 0, the step of each point of {curve}")
    items = list(islice(value, len(points) + 1))
    if len(items) != len(points):
        count = len(value) if isinstance(value, Sized) else f"more than {len(points)}"
        raise _issue(name, f"has {count} step(s) for {len(points)} point(s) of {curve}: give one step per point")
    out: list[int] = []
    for i, v in enumerate(items):
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or not 0 <= int(v) <= _MAX_STEP:
            shown = repr(v)[:40]
            raise _issue(f"{name}[{i}]", f"must be an integer from 0 to {_MAX_STEP} (got {shown})", value=shown)
        step = int(v)  # numpy and other Integral types as a Python int
        if out and step <= out[-1]:
            raise _issue(
                f"{name}[{i}]", f"step {step} is not above the step before it ({out[-1]}): steps must increase strictly"
            )
        out.append(step)
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


def _in_catalog(rec: Recommendation, book: Rulebook) -> Recommendation:
    """``rec`` whose optimizers are all in the catalog and whose hyperparameters are in range (the fixes look
    an optimizer's family up and scale its numbers), else a ProfileError naming each field."""
    issues = catalog_issues(book, rec)
    if issues:
        raise ProfileError(issues)
    return rec


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
            return _in_catalog(recommendation, book), parsed, "recommendation"
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
        return _in_catalog(rec, book), parsed, "recommendation"
    if parsed is not None:
        return recommend(parsed, rulebook=book), parsed, "profile"
    return recommend({}, rulebook=book), None, "default"


# ---------------------------------------------------------------------------------------- entry point
def _cause_applies(sym: Symptom, ctx: Context) -> bool:
    """Whether the seed's cause of ``sym`` holds for this run (an unknown schedule could be the one it names)."""
    if not sym.seed_cause:
        return False
    return sym.requires_schedule is None or not ctx.schedule_known or ctx.schedule_name in sym.requires_schedule


def _finding(
    sym: Symptom,
    severity: Severity,
    confidence: float,
    detected_from: Literal["curve", "named"],
    evidence: Evidence,
    ctx: Context,
) -> Finding:
    """A Finding: the symptom row's cause, fix and citation (or, where its cause does not hold, what to check)."""
    applies = _cause_applies(sym, ctx)
    gated = sym.seed_cause and not applies
    return Finding(
        symptom=sym.name,
        label=sym.label,
        cause=(sym.otherwise_cause or sym.cause) if gated else sym.cause,
        fix=(sym.otherwise_fix or sym.fix) if gated else sym.fix,
        cause_applies=applies,
        rule=sym.id,
        source=sym.source,
        severity=severity,
        confidence=confidence,
        detected_from=detected_from,
        evidence=evidence,
        actions=list(sym.actions) if applies else [],
    )


def diagnose(
    train_loss: Any = None,
    val_loss: Any = None,
    symptoms: Any = None,
    recommendation: Recommendation | Mapping[str, Any] | None = None,
    profile: Profile | Mapping[str, Any] | None = None,
    *,
    steps: Any = None,
    val_steps: Any = None,
    rulebook: Rulebook | None = None,
) -> Diagnosis:
    """Findings from a loss history and/or named symptoms, and the recommendation revised to fix them.

    ``train_loss`` / ``val_loss``: lists of numbers, ``None`` where the loss was NaN/inf. ``steps`` / ``val_steps``:
    the step of each point (integers >= 0, strictly increasing, one per point); every finding quotes them.
    Without ``steps`` the index of a point is its step; without ``val_steps`` the validation points are spread
    evenly over the training points (the curves may differ in length). ``symptoms``: names or aliases of
    symptoms.toml rows. The fixes are applied to ``recommendation``, else to ``recommend(profile)``, else to the
    default recommendation. Raises :class:`~optirec.rules.errors.ProfileError` naming the field on bad input.
    """
    book = rulebook or default_rulebook()
    ds = book.diagnosis
    if ds is None:  # pragma: no cover - the loader requires [diagnosis]
        raise ProfileError([FieldIssue(field="rulebook", message="principles.toml has no [diagnosis] table")])
    train = _curve("train_loss", train_loss, ds.max_points)
    val = _curve("val_loss", val_loss, ds.max_points)
    train_steps = _steps("steps", steps, train, "train_loss")
    eval_steps = _steps("val_steps", val_steps, val, "val_loss")
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
    ctx = Context(
        warmup_known=known,
        has_warmup=sched.warmup_ratio > 0 or bool(sched.warmup_steps),
        schedule_known=known,
        constant_schedule=sched.name == "constant",
        schedule_name=sched.name,
        steps=train_steps if train is not None else eval_steps,
        val_steps=eval_steps if train is not None else None,
        n_train=len(train) if train is not None else 0,
    )
    hits: list[Hit] = []
    notes: list[str] = []
    short = 0
    if train is not None or val is not None:
        hits, notes = detect(train, val, ds, ctx)
        main = train if train is not None else val or []
        if train is not None and eval_steps is not None:
            first, last = ctx.at(0), ctx.at(len(train) - 1)
            outside = [s for s in eval_steps if not first <= s <= last]
            if outside:
                notes.append(
                    f"{len(outside)} of {len(eval_steps)} val_steps (e.g. {outside[0]}) lie outside the training "
                    f"steps {first}-{last}: check that steps and val_steps count the same way (both optimizer "
                    "steps, or both epochs); such points are compared with the nearest end of the training curve."
                )
        if len(main) < ds.no_improvement_min_points:
            short = len(main)
            checked = "divergence and sudden jumps were" if short > ds.spike_min_history else "only divergence was"
            notes.append(
                f"{short} point(s) are too few to judge most symptoms: a loss that never improves and early "
                f"instability need {ds.no_improvement_min_points} or more, a late plateau {ds.plateau_min_points}; "
                f"{checked} checked."
            )
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
        sym = book.symptoms[hit.symptom]
        findings.append(_finding(sym, hit.severity, round(hit.confidence, 3), "curve", evidence, ctx))
    detected = {f.symptom for f in findings}
    for name in named:
        if name in detected:
            notes.append(f"{name} was named and is also seen in the curve.")
            continue
        evidence = Evidence(curve="named", start_step=None, end_step=None, summary="named by the caller")
        findings.append(_finding(book.symptoms[name], "medium", 1.0, "named", evidence, ctx))

    reviser = Reviser(rec, book, goal if isinstance(goal, str) else None, family)
    for f in findings:
        where = f" (steps {f.evidence.start_step}-{f.evidence.end_step})" if f.evidence.start_step is not None else ""
        if f.cause_applies:
            reviser.symptom(book.symptoms[f.symptom], f"{f.label}{where}")
        elif book.symptoms[f.symptom].seed_cause:
            row = book.symptoms[f.symptom]
            notes.append(
                f"{f.symptom}: the seed's cause ({row.cause}, {f.source}) does not hold under a {sched.name} "
                f"schedule, so its fix ({row.fix}) is not applied; the finding says what to check."
            )
        else:
            notes.append(f"{f.symptom}: no seed names a cause or a fix, so the recommendation is left as it is.")
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

    causes = [
        Cause(cause=f.cause, symptom=f.symptom, rule=f.rule, source=f.source) for f in findings if f.cause_applies
    ]
    n_train = len(train) if train is not None else 0
    n_val = len(val) if val is not None else 0
    n_main = n_train or n_val
    if not findings and short:
        message = (
            f"No symptom found in {n_train} training and {n_val} validation point(s), but {short} point(s) are too "
            "few to judge most symptoms (see notes); the recommendation is unchanged."
        )
    elif not findings:
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
            first_step=ctx.at(0) if n_main else None,
            last_step=ctx.at(n_main - 1) if n_main else None,
        ),
        rulebook=RulebookInfo(version=book.version, hash=book.hash),
    )


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."
