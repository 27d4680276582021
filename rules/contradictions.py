"""Profile fields that contradict each other: each pair found becomes one warning of the answer, saying which
value the engine used and why (nothing is refused: every field is valid on its own, and the caller may know
better which one is wrong).

The pairs checked:

* the job's length: ``total_steps``; ``epochs`` x ``steps_per_epoch``; ``total_tokens`` over the tokens of a
  step; ``epochs`` x ``dataset_size`` over the batch (rules/job_length.py, whose first route is used);
* the batch: ``batch_size`` x ``sequence_length`` against ``batch_tokens``, and ``batch_size`` above
  ``dataset_size``;
* ``domain`` against the domain vocabulary.toml gives the ``architecture`` (a related domain agrees);
* ``rl_method`` against the method vocabulary.toml gives the ``architecture``;
* a ``goal`` that continues from pretrained weights against a ``phase`` that starts from random ones;
* ``sharding`` over ``num_devices`` 1; ``goal`` distributed on ``num_devices`` 1; ``precision`` bf16/fp16
  against ``mixed_precision`` false; ``memory_limited`` false on an ``on_device`` job;
* ``data`` large_batch with a ``batch_size`` the rulebook does not count as large;
* ``adapter`` lora (adapters on frozen pretrained weights) against a ``phase`` that starts from random ones.
"""

from __future__ import annotations

import math

from .job_length import Route, job_batch, step_routes
from .loader import Rulebook
from .profile import Profile

__all__ = ["TOLERANCE", "contradictions"]

#: Two counts of the same thing agree within a tenth of the larger: more than rounding, a dropped last batch or
#: padding explain, so counts further apart describe two different jobs.
TOLERANCE = 0.1
#: goals that mean continuing from pretrained weights, and phases that start from random ones
_PRETRAINED_GOALS = frozenset({"fine_tuning", "transfer_learning"})
_RANDOM_START_PHASES = frozenset({"pretraining", "from_scratch"})
_WHY_USED: dict[Route, str] = {
    "total_steps": "a stated total_steps comes before any count derived from other fields",
    "steps_per_epoch": "epochs x steps_per_epoch comes before counts derived from tokens or the data set",
    "total_tokens": "a token budget comes before epochs over the data set",
    "dataset_size": "it is the only count left",
}


def contradictions(book: Rulebook, p: Profile) -> list[str]:
    """One warning per contradicting pair of the profile's fields (none for a consistent profile)."""
    out: list[str] = []
    if p.total_steps is not None or p.epochs is not None or p.total_tokens is not None:
        _length(p, out)
    if p.batch_size is not None:
        _batch(book, p, out)
    if p.architecture is not None:
        _architecture(book, p, out)
    if p.goal in _PRETRAINED_GOALS and p.phase in _RANDOM_START_PHASES:
        out.append(
            f"goal {p.goal} means continuing from pretrained weights, but phase {p.phase} starts from random "
            f"weights: phase {p.phase} is used to match published recipes, and the {p.goal} goal rules still vote; "
            "correct whichever is wrong."
        )
    if p.adapter == "lora" and p.phase in _RANDOM_START_PHASES:
        out.append(
            f"adapter lora trains low-rank adapters beside frozen pretrained weights, but phase {p.phase} starts "
            f"from random weights: both are used as stated (recipes are matched on each); correct whichever is wrong."
        )
    if p.sharding not in (None, "none") and p.num_devices == 1:
        out.append(
            f"sharding {p.sharding} with num_devices 1: one device has no other to split with, so the memory "
            "estimate shards nothing; give the number of devices the job shards over."
        )
    if p.goal == "distributed" and p.num_devices == 1:
        out.append(
            "goal distributed with num_devices 1: the distributed goal rules still vote, as stated, but the memory "
            "estimate counts one device; give the number of devices the job trains on."
        )
    if p.memory_limited is False and p.on_device:
        out.append(
            "memory_limited false contradicts on_device true: an edge device's memory is treated as the binding "
            "constraint all the same (rules/memory.py; constraint.on_device, 004 §2.2 on-device learning)."
        )
    if p.precision in ("bf16", "fp16") and p.mixed_precision is False:
        out.append(
            f"mixed_precision false contradicts precision {p.precision}, a half-precision format: precision is used, "
            f"so the memory estimate counts {p.precision} weights and gradients plus fp32 master weights."
        )
    return out


def _agree(a: int, b: int, slack: int = 1) -> bool:
    return abs(a - b) <= max(slack, TOLERANCE * max(a, b))


def _route(p: Profile, route: Route, steps: int, batch: int | None) -> str:
    if route == "total_steps":
        return f"total_steps {steps:,}"
    if route == "steps_per_epoch":
        return f"epochs {p.epochs:,} x steps_per_epoch {p.steps_per_epoch:,} = {steps:,} steps"
    if route == "total_tokens":
        per_step = (
            f"batch_tokens {p.batch_tokens:,}"
            if p.batch_tokens
            else f"batch {batch:,} x sequence_length {p.sequence_length:,} tokens"
        )
        return f"total_tokens {p.total_tokens:,} / {per_step} = {steps:,} steps"
    return (
        f"epochs {p.epochs:,} x ceil(dataset_size {p.dataset_size:,} / batch {batch:,}) = {steps:,} steps"
        if batch is not None
        else f"{steps:,} steps"
    )


def _length(p: Profile, out: list[str]) -> None:
    batch = job_batch(p)
    routes = step_routes(p, batch)
    if len(routes) < 2:
        return
    used, steps = routes[0]
    for route, other in routes[1:]:
        slack = p.epochs if route == "dataset_size" and p.epochs else 1  # a last partial batch per epoch
        if _agree(steps, other, slack):
            continue
        out.append(
            f"{_route(p, used, steps, batch)} contradicts {_route(p, route, other, batch)}: the schedule uses "
            f"{steps:,} steps ({_WHY_USED[used]}); correct whichever is wrong."
        )


def _batch(book: Rulebook, p: Profile, out: list[str]) -> None:
    b = p.batch_size
    assert b is not None
    if p.batch_tokens is not None and p.sequence_length is not None:
        tokens = b * p.sequence_length
        if not _agree(tokens, p.batch_tokens):
            out.append(
                f"batch_size {b:,} x sequence_length {p.sequence_length:,} = {tokens:,} tokens contradicts "
                f"batch_tokens {p.batch_tokens:,}: batch_size is used as the batch (lr scaling) and batch_tokens "
                "as a step's tokens (steps from total_tokens); correct whichever is wrong."
            )
    above = book.principles.large_batch_above
    if "large_batch" in p.data and b <= above:
        out.append(
            f"data large_batch contradicts batch_size {b:,}: the rulebook counts a batch as large above {above:,} "
            f"({book.principles.sources['large_batch_above']}); the large_batch rules still apply, as stated."
        )
    if p.dataset_size is not None and b > p.dataset_size:
        epoch = f", and an epoch counts as {math.ceil(p.dataset_size / b)} step" if p.epochs is not None else ""
        out.append(
            f"batch_size {b:,} is larger than dataset_size {p.dataset_size:,}: a step cannot hold more distinct "
            f"examples than the data set has; batch_size {b:,} is used as given (lr scaling){epoch}."
        )


def _architecture(book: Rulebook, p: Profile, out: list[str]) -> None:
    arch = book.terms["architecture"].get(p.architecture or "")
    if arch is None:
        return
    if p.domain is not None and arch.domain is not None and p.domain != arch.domain:
        related = book.terms["domain"][arch.domain].related
        if p.domain not in related and arch.domain not in book.terms["domain"][p.domain].related:
            out.append(
                f"domain {p.domain} contradicts architecture {p.architecture}, whose domain is {arch.domain} "
                f"(vocabulary.toml): both are used, and the {p.architecture} architecture rules outrank the "
                f"{p.domain} domain rules (specificity, rules/engine.py); correct whichever is wrong."
            )
    if p.rl_method is not None and arch.rl_method is not None and p.rl_method != arch.rl_method:
        out.append(
            f"rl_method {p.rl_method} contradicts architecture {p.architecture}, whose method is {arch.rl_method} "
            f"(vocabulary.toml): the stated rl_method {p.rl_method} is used (the architecture's is only the default "
            "when none is stated); correct whichever is wrong."
        )
