"""How a table row's or a recipe's learning rate becomes the caller's: the batch, size and horizon terms,
and the envelope of the published recipes.

- batch (004 §6.4.3): the SGD family scales linearly up to 8K, by the square root above; adaptive optimizers
  by the square root (004 §6.3). A recipe that states its own rule ("lr = 0.1 x batch / 256") uses it.
- model size (lr x (reference / yours) ** 1/3) and training horizon (lr x (reference steps / yours) ** 1/8):
  each applied only to the optimizers and architecture families its law was measured on (principles.toml
  ``size_scaling_*`` / ``horizon_scaling_*``: Adam/AdamW transformers), each bounded at 30x.
- envelope: the lrs the family's recipes for the chosen optimizer span, each carried to the caller's job by the
  same terms. A term may not carry a table row's lr beyond both the envelope and the row's own value; that is
  clamped with a warning. A recipe's own lr carried by the terms lies inside by construction.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

from .construct import new
from .job_length import job_epochs
from .loader import CompiledRule, Rulebook
from .profile import Profile
from .recipes import RecipeEntry
from .recommendation import LRScaling
from .schema import Principles, ReferenceModel

__all__ = ["LrJob", "lr_range_holding", "lr_search_range", "scale_lr"]

ScalingRule = Literal["linear", "sqrt", "none"]


def lr_range_holding(lr: float, low: float, high: float) -> tuple[float, float]:
    """``[low, high]`` to 3 digits, widened to hold ``lr`` itself: the ends are rounded before ``lr`` is put
    back inside, so rounding never leaves the recommendation outside its own search range."""
    return min(float(f"{low:.3g}"), lr), max(float(f"{high:.3g}"), lr)


def lr_search_range(lr: float, pr: Principles) -> tuple[float, float]:
    """004 §6.3: ``lr_search_decades`` either side of ``lr``, inside the global lr range, holding ``lr``."""
    d = 10**pr.lr_search_decades
    return lr_range_holding(lr, max(lr / d, pr.global_lr_range[0]), min(lr * d, pr.global_lr_range[1]))


def count(n: int) -> str:
    """A parameter count for people: 28.4k, 25.6M, 1.3B."""
    for scale, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if n >= scale:
            return f"{n / scale:.3g}{suffix}"
    return str(n)


def fmt(x: float) -> str:
    return f"{x:.3g}"


class SizeTerm(NamedTuple):
    """The model-size lr term: the reference model, the factor and the words that explain it."""

    reference: ReferenceModel
    factor: float
    reason: str


class HorizonTerm(NamedTuple):
    """The training-horizon lr term: the reference run's steps, the caller's, the factor and its reason."""

    reference_steps: int
    total_steps: int
    factor: float
    reason: str


@dataclass(slots=True)
class LrJob:
    """What the lr terms read: the rulebook, the profile, the chosen optimizer and where the words go."""

    book: Rulebook
    profile: Profile
    chosen: str
    family: str | None  # the architecture family
    total_steps: int | None
    recipe: RecipeEntry | None  # the recipe whose rule set the lr, if one did
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _bounded(pr: Principles, raw: float) -> tuple[float, str]:
    """A size or horizon factor kept within ``size_scaling_max_factor`` either way, and the words that say so."""
    top = pr.size_scaling_max_factor
    factor = min(max(raw, 1 / top), top)
    return factor, (f", bounded at {top:g}x" if factor != raw else "")


def _law_applies(pr: Principles, law: str, optimizer: str, family: str | None) -> bool:
    optimizers = getattr(pr, f"{law}_scaling_optimizers")
    families = getattr(pr, f"{law}_scaling_architectures")
    return optimizer in optimizers and family in families


def _batch_factor(kind: str, batch: int, ref: int, pr: Principles) -> tuple[ScalingRule, float]:
    """004 §6.4.3 / §6.3: the factor carrying an lr from batch ``ref`` to ``batch``."""
    if kind == "none" or batch == ref:
        return "none", 1.0
    if kind == "linear" and batch <= pr.sqrt_scaling_above:
        return "linear", batch / ref
    return "sqrt", math.sqrt(batch / ref)


def _size(job: LrJob, ref: ReferenceModel | None, kind: str) -> SizeTerm | None:
    n = job.profile.num_parameters
    if ref is None or ref.parameters is None or n is None or kind == "none":
        return None
    pr = job.book.principles
    if not _law_applies(pr, "size", job.chosen, job.family):
        reason = (
            f"model size: {job.chosen} on a {job.family or 'model of unknown family'} keeps the lr of "
            f"{ref.name} ({count(ref.parameters)} parameters), since the size law was measured on Adam/AdamW "
            f"transformers only ({pr.sources['size_scaling_optimizers']})"
        )
        return SizeTerm(ref, 1.0, reason)
    factor, bound = _bounded(pr, (ref.parameters / n) ** pr.size_scaling_exponent)
    direction = "smaller" if n < ref.parameters else "larger"
    reason = (
        f"model size: the lr is for {ref.name} ({count(ref.parameters)} parameters, {ref.source}); "
        f"a {direction} model takes lr x ({count(ref.parameters)}/{count(n)})^{pr.size_scaling_exponent:g} "
        f"= x{factor:.3g} ({pr.sources['size_scaling_exponent']}){bound}"
    )
    return SizeTerm(ref, factor, reason)


def _horizon(job: LrJob, ref: ReferenceModel | None, kind: str, *, cite_reference: bool) -> HorizonTerm | None:
    if ref is None or ref.steps is None or kind == "none":
        return None
    total = job.total_steps
    if total is None:
        return None
    pr = job.book.principles
    if not _law_applies(pr, "horizon", job.chosen, job.family):
        reason = (
            f"training horizon: {job.chosen} keeps the lr of {ref.name}'s {count(ref.steps)}-step run for your "
            f"{count(total)} steps, since the horizon law was measured on Adam/AdamW transformers only "
            f"({pr.sources['horizon_scaling_optimizers']})"
        )
        return HorizonTerm(ref.steps, total, 1.0, reason)
    factor, bound = _bounded(pr, (ref.steps / total) ** pr.horizon_scaling_exponent)
    direction = "shorter" if total < ref.steps else "longer" if total > ref.steps else "equally long"
    reason = (
        f"training horizon: the lr is for {ref.name}'s run of {count(ref.steps)} steps"
        f"{f' ({ref.source})' if cite_reference else ''}; a {direction} "
        f"run takes lr x ({count(ref.steps)}/{count(total)})^{pr.horizon_scaling_exponent:g} = x{factor:.3g} "
        f"({pr.sources['horizon_scaling_exponent']}){bound}"
    )
    return HorizonTerm(ref.steps, total, factor, reason)


def _batch_reason(job: LrJob, lr_rule: CompiledRule | None, kind: str, batch: int | None) -> tuple[Any, ...]:
    """(rule, factor, reference batch, reason) of the batch term."""
    pr = job.book.principles
    base_batch = lr_rule.rule.base_batch_size if lr_rule else None
    b_max = lr_rule.rule.train.batch_size_max if lr_rule else None
    if lr_rule is None:
        return (
            "none",
            1.0,
            None,
            "the lr is the optimizer's catalog default, which has no reference batch size: not scaled",
        )
    if job.profile.batch_size is None:
        return "none", 1.0, base_batch, "no batch size given: the lr is used at its own batch size"
    if base_batch is None:
        return (
            "none",
            1.0,
            None,
            f"the lr comes from {lr_rule.rule.id}, which names no reference batch size: not scaled",
        )
    if kind == "none":
        return "none", 1.0, base_batch, f"{job.chosen} is not batch-size scaled (full-batch / line-search method)"
    from_recipe = job.recipe is not None and lr_rule is not None and lr_rule.rule.level == "recipe"
    if kind == "sqrt" and from_recipe and job.recipe is not None and job.recipe.recipe.config.lr_scaling is None:
        return (
            "none",
            1.0,
            base_batch,
            f"the recipe's lr is kept at batch {batch} (its own batch: {base_batch}): for adaptive optimizers the "
            f"optimal lr does not follow one batch law, it rises and then falls with the batch "
            f"({pr.sources['adaptive_recipe_batch']}), and the recipe states no rule of its own",
        )
    if (
        kind == "linear"
        and from_recipe
        and job.recipe is not None
        and job.recipe.recipe.config.lr_scaling is None
        and job.family not in pr.recipe_linear_scaling_architectures
        and batch != base_batch
    ):
        return (
            "none",
            1.0,
            base_batch,
            f"the recipe's lr is kept at batch {batch} (its own batch: {base_batch}): the linear scaling rule was "
            f"measured on {', '.join(pr.recipe_linear_scaling_architectures)} architectures "
            f"({pr.sources['recipe_linear_scaling_architectures']}), not on {job.family or 'this family'}, and the "
            "recipe states no rule of its own",
        )
    assert batch is not None
    hi = b_max or base_batch
    if base_batch <= batch <= hi:
        return "none", 1.0, batch, f"batch {batch} is within the table's range {base_batch}-{hi}: lr unchanged"
    ref = hi if batch > hi else base_batch
    rule, factor = _batch_factor(kind, batch, ref, pr)
    if kind == "linear" and rule == "sqrt":
        reason = (
            f"batch {batch} is above {pr.sqrt_scaling_above}: square-root scaling instead of linear "
            f"({pr.sources['sqrt_scaling']})"
        )
    elif kind == "linear":
        stated = job.recipe is not None and job.recipe.recipe.config.lr_scaling == "linear"
        own = lr_rule.rule.batch_rule
        if stated and job.recipe is not None:
            reason = f"the recipe's own linear rule: lr x {batch}/{ref} ({job.recipe.citation})"
        elif own is not None and own.kind == "linear":
            reason = f"{lr_rule.rule.id}'s own linear rule: lr x {batch}/{ref} ({own.source})"
        else:
            reason = f"linear scaling rule for the SGD family: lr x {batch}/{ref} ({pr.sources['linear_scaling']})"
    else:
        reason = (
            "adaptive optimizers scale the lr with the square root of the batch ratio, since a larger "
            f"batch needs a larger lr ({pr.sources['adaptive_scaling']}; formula {pr.sources['sqrt_scaling']})"
        )
    return rule, factor, ref, reason


def _carried(job: LrJob, entries: Iterable[RecipeEntry], kind_of: Mapping[str, str]) -> tuple[float, float, int] | None:
    """The envelope: the lrs of ``entries`` carried to the caller's batch, size and horizon (min, max, count)."""
    pr = job.book.principles
    p = job.profile
    size_on = _law_applies(pr, "size", job.chosen, job.family)
    horizon_on = _law_applies(pr, "horizon", job.chosen, job.family)
    lo, hi, k = math.inf, 0.0, 0
    for e in entries:
        cfg, rjob = e.recipe.config, e.recipe.job
        lr = cfg.lr
        rule = cfg.lr_scaling or kind_of[cfg.optimizer]
        if p.batch_size is not None and rjob.batch_size is not None and (cfg.lr_scaling or rule != "sqrt"):
            lr *= _batch_factor(rule, p.batch_size, rjob.batch_size, pr)[1]
        if size_on and p.num_parameters and rjob.num_parameters:
            lr *= _bounded(pr, (rjob.num_parameters / p.num_parameters) ** pr.size_scaling_exponent)[0]
        if horizon_on and job.total_steps and e.steps:
            lr *= _bounded(pr, (e.steps / job.total_steps) ** pr.horizon_scaling_exponent)[0]
        lo, hi, k = min(lo, lr), max(hi, lr), k + 1
    return (lo, hi, k) if k >= 2 else None


def scale_lr(
    job: LrJob, hp: dict[str, Any], lr_rule: CompiledRule | None, kind: str, batch: int | None, train: dict[str, Any]
) -> LRScaling:
    """Carry the lr of ``lr_rule`` (or the catalog default) to the caller's job; ``hp['lr']`` is updated."""
    if job.recipe is not None and job.recipe.recipe.config.lr_scaling is not None:
        kind = job.recipe.recipe.config.lr_scaling  # the recipe's own stated rule
    elif lr_rule is not None and lr_rule.rule.batch_rule is not None and kind != "none":
        kind = lr_rule.rule.batch_rule.kind  # the row's source states how its lr follows the batch
    base_lr = float(hp.get("lr", 0.0))
    if "lr_factor" in train:
        base_lr *= train["lr_factor"]
    rule, factor, ref, reason = _batch_reason(job, lr_rule, kind, batch)
    lr = base_lr * factor
    reference = lr_rule.rule.reference_model if lr_rule else None
    size = _size(job, reference, kind)
    horizon = _horizon(job, reference, kind, cite_reference=size is None)
    terms = 1.0
    for term in (size, horizon):
        if term is not None:
            terms *= term.factor
            reason = f"{reason}; {term.reason}"
    lr *= terms
    if terms != 1.0:
        lr, reason = _keep_in_ranges(job, lr, base_lr, factor, kind, reason)
    raised = lr / base_lr if base_lr > 0 else 1.0
    if kind == "linear" and raised >= 2 and not train.get("warmup"):
        # Goyal et al. warm up because the scaled-up lr is too large for the freshly initialised net, whatever
        # raised it: the batch term, the model-size term, or both together
        moved = [
            term
            for term, on in (("batch", factor != 1.0), ("model-size", size is not None and size.factor != 1.0))
            if on
        ]
        terms_said = f"{' and '.join(moved)} term{'s' if len(moved) > 1 else ''}"
        train["warmup"] = True
        pr = job.book.principles
        warm = pr.scaled_lr_warmup_epochs
        epochs = job_epochs(job.profile, job.total_steps, batch)
        length = "over the first"
        if epochs is not None and "warmup_ratio" not in train:
            train["warmup_ratio"] = round(min(warm / epochs, pr.default_warmup_ratio), 6)
            length = f"over {fmt(train['warmup_ratio'])} of the {fmt(epochs)}-epoch run, the first"
        job.notes.append(
            f"The {terms_said} put the lr at {raised:.3g}x the table's {fmt(base_lr)}: a gradual warmup is "
            f"added {length} {fmt(warm)} epochs, as SGD started at a scaled-up lr needs it "
            f"({pr.sources['scaled_lr_warmup_epochs']})."
        )
    lr_range = train.get("lr_range")
    if lr_range is not None and job.recipe is None and job.chosen in train.get("lr_range_optimizers", (job.chosen,)):
        lo, hi_lr = lr_range
        if lr < lo or lr > hi_lr:
            clamped = min(max(lr, lo), hi_lr)
            job.warnings.append(
                f"lr {fmt(lr)} is outside the goal's range {fmt(lo)}-{fmt(hi_lr)} ({job.profile.goal}); "
                f"using {fmt(clamped)}."
            )
            lr = clamped
    if "lr" in hp:
        hp["lr"] = float(f"{lr:.6g}")
    return new(
        LRScaling,
        rule=rule,
        base_lr=float(f"{base_lr:.6g}"),
        base_batch_size=ref,
        batch_size=batch,
        factor=round(factor, 6),
        reason=reason,
        reference_model=size.reference.name if size is not None else None,
        reference_parameters=size.reference.parameters if size is not None else None,
        num_parameters=job.profile.num_parameters if size is not None else None,
        size_factor=round(size.factor, 6) if size is not None else 1.0,
        reference_steps=horizon.reference_steps if horizon is not None else None,
        total_steps=horizon.total_steps if horizon is not None else None,
        horizon_factor=round(horizon.factor, 6) if horizon is not None else 1.0,
    )


def _keep_in_ranges(job: LrJob, lr: float, base_lr: float, factor: float, kind: str, reason: str) -> tuple[float, str]:
    """The size and horizon terms moved the lr: keep it inside 004 §6.3's range, and inside the envelope of the
    family's recipes unless the table's own lr lies beyond it already."""
    pr = job.book.principles
    # 004 §6.3's search range bounds adaptive lrs; the SGD family's own linear rule (004 §6.4.3) already
    # takes 0.1 per 256 past 1 at large batches, so only the lower end applies to it
    lo_lr, hi_lr = pr.global_lr_range
    if kind == "linear":
        hi_lr = math.inf
    if not lo_lr <= lr <= hi_lr:
        clamped = min(max(lr, lo_lr), hi_lr)
        reason += f"; {fmt(lr)} is outside 004 §6.3's lr range, so {fmt(clamped)}"
        lr = clamped
    if job.recipe is not None:
        return lr, reason  # a recipe carried by the terms is the envelope's own member
    group = job.book.recipe_groups.get((job.chosen, job.family))
    if not group:
        return lr, reason
    kinds = {name: spec.lr_scaling for name, spec in job.book.optimizers.items()}
    envelope = _carried(job, group, kinds)
    if envelope is None:
        return lr, reason
    lo, hi, k = envelope
    own = base_lr * factor  # the row's lr at the caller's batch, before the size and horizon terms
    low, high = min(lo, own), max(hi, own)
    if low <= lr <= high:
        return lr, reason
    clamped = min(max(lr, low), high)
    job.warnings.append(
        f"The size and horizon terms put the lr at {fmt(lr)}, outside the {fmt(lo)}-{fmt(hi)} that the {k} published "
        f"{job.chosen} recipes for {job.family} models span when carried to this job: using {fmt(clamped)}."
    )
    return clamped, reason + f"; kept inside the published recipes' range ({fmt(lo)}-{fmt(hi)}): {fmt(clamped)}"
