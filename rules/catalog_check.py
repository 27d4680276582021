"""Whether a recommendation names only optimizers of the catalog, with hyperparameters in range: the checks
POST /trials makes before a worker builds anything, and diagnose() before it revises the recommendation.
"""

from __future__ import annotations

from dataclasses import replace

from .errors import FieldIssue, UnknownNameError
from .hyperparameters import hyperparameter_issues
from .loader import Rulebook
from .recommendation import Recommendation

__all__ = ["catalog_issues"]


def catalog_issues(book: Rulebook, rec: Recommendation) -> list[FieldIssue]:
    """Every optimizer a recommendation names (its optimizer, phases, param groups, alternatives and a wrapper's
    base) is in ``book``'s catalog, and every hyperparameters object passes :func:`hyperparameter_issues`;
    the issues name the field, with a did-you-mean for a name."""
    names = [("recommendation.optimizer.name", rec.optimizer.name)]
    # a phase's optimizer is not trained by a trial, but it is part of what was sent: checked like the others
    names += [(f"recommendation.phases[{i}].optimizer.name", p.optimizer.name) for i, p in enumerate(rec.phases)]
    for i, group in enumerate(rec.param_groups):
        if group.optimizer is not None:
            names.append((f"recommendation.param_groups[{i}].optimizer", group.optimizer))
    # every alternative, raced or not: what was sent is checked whole (a race runs the first race - 1)
    names += [(f"recommendation.alternatives[{i}].name", alt.name) for i, alt in enumerate(rec.alternatives)]
    hyperparameters = [("recommendation.optimizer.hyperparameters", rec.optimizer.hyperparameters)]
    hyperparameters += [
        (f"recommendation.phases[{i}].optimizer.hyperparameters", p.optimizer.hyperparameters)
        for i, p in enumerate(rec.phases)
    ]
    hyperparameters += [
        (f"recommendation.param_groups[{i}].hyperparameters", group.hyperparameters)
        for i, group in enumerate(rec.param_groups)
    ]
    hyperparameters += [
        (f"recommendation.alternatives[{i}].hyperparameters", alt.hyperparameters)
        for i, alt in enumerate(rec.alternatives)
    ]
    issues: list[FieldIssue] = []
    for field, values in hyperparameters:
        issues += hyperparameter_issues(values, field)
        base = values.get("base")
        if base is not None:  # a wrapper's base optimizer (lookahead, sam) is a catalog name as well
            names.append((f"{field}.base", base if isinstance(base, str) else repr(base)))
    for field, name in names:
        try:
            book.optimizer(name)
        except UnknownNameError as exc:
            issues.append(replace(exc.issue, field=field, message=f"unknown optimizer {name[:80]!r}"))
    return issues
