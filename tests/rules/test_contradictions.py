"""Profile fields that contradict each other are warned about in the answer, saying which value was used and
why (rules/contradictions.py; issue 23); consistent combinations of the same fields get no such warning."""

from __future__ import annotations

from typing import Any

import pytest

from optirec.rules import default_rulebook, recommend
from optirec.rules.contradictions import contradictions
from optirec.rules.profile import Profile, parse_profile

_BOOK = default_rulebook()

# (id, profile, the warning: what contradicts what, and which value is used)
CONTRADICTING: list[tuple[str, dict[str, Any], str]] = [
    (
        "total_steps-vs-epochs-x-steps_per_epoch",
        {"total_steps": 1000, "epochs": 10, "steps_per_epoch": 500},
        "total_steps 1,000 contradicts epochs 10 x steps_per_epoch 500 = 5,000 steps: the schedule uses 1,000 steps "
        "(a stated total_steps comes before any count derived from other fields); correct whichever is wrong.",
    ),
    (
        "total_steps-vs-tokens",
        {"total_steps": 5000, "total_tokens": 10**9, "batch_tokens": 10**6},
        "total_steps 5,000 contradicts total_tokens 1,000,000,000 / batch_tokens 1,000,000 = 1,000 steps: the "
        "schedule uses 5,000 steps (a stated total_steps comes before any count derived from other fields); correct "
        "whichever is wrong.",
    ),
    (
        "total_steps-vs-epochs-over-dataset",
        {"total_steps": 100, "epochs": 10, "dataset_size": 50_000, "batch_size": 100},
        "total_steps 100 contradicts epochs 10 x ceil(dataset_size 50,000 / batch 100) = 5,000 steps: the schedule "
        "uses 100 steps (a stated total_steps comes before any count derived from other fields); correct whichever "
        "is wrong.",
    ),
    (
        "steps_per_epoch-vs-dataset-over-batch",
        {"epochs": 3, "steps_per_epoch": 100, "dataset_size": 50_000, "batch_size": 128},
        "epochs 3 x steps_per_epoch 100 = 300 steps contradicts epochs 3 x ceil(dataset_size 50,000 / batch 128) = "
        "1,173 steps: the schedule uses 300 steps (epochs x steps_per_epoch comes before counts derived from tokens "
        "or the data set); correct whichever is wrong.",
    ),
    (
        "tokens-vs-epochs-over-dataset",
        {"total_tokens": 10**8, "batch_size": 10, "sequence_length": 1000, "epochs": 1, "dataset_size": 1000},
        "total_tokens 100,000,000 / batch 10 x sequence_length 1,000 tokens = 10,000 steps contradicts epochs 1 x "
        "ceil(dataset_size 1,000 / batch 10) = 100 steps: the schedule uses 10,000 steps (a token budget comes "
        "before epochs over the data set); correct whichever is wrong.",
    ),
    (
        "batch_size-x-sequence_length-vs-batch_tokens",
        {"batch_size": 32, "sequence_length": 512, "batch_tokens": 1_000_000},
        "batch_size 32 x sequence_length 512 = 16,384 tokens contradicts batch_tokens 1,000,000: batch_size is used "
        "as the batch (lr scaling) and batch_tokens as a step's tokens (steps from total_tokens); correct whichever "
        "is wrong.",
    ),
    (
        "batch_size-above-dataset_size",
        {"batch_size": 1024, "dataset_size": 500, "epochs": 2},
        "batch_size 1,024 is larger than dataset_size 500: a step cannot hold more distinct examples than the data "
        "set has; batch_size 1,024 is used as given (lr scaling), and an epoch counts as 1 step.",
    ),
    (
        "domain-vs-architecture",
        {"domain": "computer_vision", "architecture": "bert"},
        "domain computer_vision contradicts architecture bert, whose domain is nlp (vocabulary.toml): both are used, "
        "and the bert architecture rules outrank the computer_vision domain rules (specificity, rules/engine.py); "
        "correct whichever is wrong.",
    ),
    (
        "domain-vs-rl-architecture",
        {"domain": "nlp", "architecture": "dqn"},
        "domain nlp contradicts architecture dqn, whose domain is reinforcement_learning (vocabulary.toml): both are "
        "used, and the dqn architecture rules outrank the nlp domain rules (specificity, rules/engine.py); correct "
        "whichever is wrong.",
    ),
    (
        "rl_method-vs-architecture",
        {"architecture": "ppo", "rl_method": "value_based"},
        "rl_method value_based contradicts architecture ppo, whose method is policy_based (vocabulary.toml): the "
        "stated rl_method value_based is used (the architecture's is only the default when none is stated); correct "
        "whichever is wrong.",
    ),
    (
        "goal-vs-phase",
        {"goal": "transfer_learning", "phase": "from_scratch"},
        "goal transfer_learning means continuing from pretrained weights, but phase from_scratch starts from random "
        "weights: phase from_scratch is used to match published recipes, and the transfer_learning goal rules still "
        "vote; correct whichever is wrong.",
    ),
    (
        "lora-from-random-weights",
        {"adapter": "lora", "phase": "pretraining"},
        "adapter lora trains low-rank adapters beside frozen pretrained weights, but phase pretraining starts from "
        "random weights: both are used as stated (recipes are matched on each); correct whichever is wrong.",
    ),
    (
        "sharding-over-one-device",
        {"sharding": "zero3", "num_devices": 1, "num_parameters": 10**9},
        "sharding zero3 with num_devices 1: one device has no other to split with, so the memory estimate shards "
        "nothing; give the number of devices the job shards over.",
    ),
    (
        "large_batch-vs-batch_size",
        {"data": ["large_batch"], "batch_size": 256},
        "data large_batch contradicts batch_size 256: the rulebook counts a batch as large above 8,192 (004 §6.4.3); "
        "the large_batch rules still apply, as stated.",
    ),
    (
        "distributed-on-one-device",
        {"goal": "distributed", "num_devices": 1},
        "goal distributed with num_devices 1: the distributed goal rules still vote, as stated, but the memory "
        "estimate counts one device; give the number of devices the job trains on.",
    ),
    (
        "memory_limited-false-on-device",
        {"memory_limited": False, "on_device": True},
        "memory_limited false contradicts on_device true: an edge device's memory is treated as the binding "
        "constraint all the same (rules/memory.py; constraint.on_device, 004 §2.2 on-device learning).",
    ),
    (
        "precision-vs-mixed_precision",
        {"precision": "bf16", "mixed_precision": False},
        "mixed_precision false contradicts precision bf16, a half-precision format: precision is used, so the memory "
        "estimate counts bf16 weights and gradients plus fp32 master weights.",
    ),
]

# (id, profile): the same fields, agreeing (within rounding, a last partial batch, a related domain)
CONSISTENT: list[tuple[str, dict[str, Any]]] = [
    ("total_steps-equals-epochs-x-steps_per_epoch", {"total_steps": 5000, "epochs": 10, "steps_per_epoch": 500}),
    ("total_steps-within-a-tenth", {"total_steps": 5400, "epochs": 10, "steps_per_epoch": 500}),
    ("total_steps-vs-tokens-agree", {"total_steps": 1000, "total_tokens": 10**9, "batch_tokens": 10**6}),
    ("drop-last-batch", {"epochs": 3, "steps_per_epoch": 390, "dataset_size": 50_000, "batch_size": 128}),
    ("tiny-epochs-ceil-vs-floor", {"epochs": 5, "steps_per_epoch": 2, "dataset_size": 300, "batch_size": 100}),
    ("total_steps-alone", {"total_steps": 1000}),
    ("epochs-without-a-length", {"total_steps": 1000, "epochs": 10}),
    ("batch-tokens-agree", {"batch_size": 32, "sequence_length": 512, "batch_tokens": 16384}),
    ("batch-equals-dataset", {"batch_size": 500, "dataset_size": 500, "epochs": 2}),
    ("domain-of-the-architecture", {"domain": "nlp", "architecture": "bert"}),
    ("related-domain", {"domain": "llm", "architecture": "bert"}),
    ("related-domain-generative", {"domain": "generative", "architecture": "unet"}),
    ("architecture-without-a-domain", {"domain": "time_series", "architecture": "lstm"}),
    ("generic-family", {"domain": "computer_vision", "architecture": "transformer"}),
    ("rl_method-of-the-architecture", {"architecture": "dqn", "rl_method": "value_based"}),
    ("rl_method-with-a-generic-architecture", {"architecture": "mlp", "rl_method": "policy_based"}),
    ("goal-and-phase-agree", {"goal": "fine_tuning", "phase": "fine_tuning"}),
    ("zero-shot-pretraining", {"goal": "zero_shot", "phase": "pretraining"}),
    ("sharding-over-devices", {"sharding": "zero3", "num_devices": 8, "num_parameters": 10**9}),
    ("no-sharding-one-device", {"sharding": "none", "num_devices": 1}),
    ("lora-fine-tuning", {"adapter": "lora", "phase": "fine_tuning"}),
    ("large_batch-with-a-large-batch", {"data": ["large_batch"], "batch_size": 16384}),
    ("large_batch-without-a-batch", {"data": ["large_batch"]}),
    ("distributed-over-devices", {"goal": "distributed", "num_devices": 64}),
    ("memory_limited-on-device", {"memory_limited": True, "on_device": True}),
    ("not-memory_limited-off-device", {"memory_limited": False, "on_device": False}),
    ("bf16-mixed", {"precision": "bf16", "mixed_precision": True}),
    ("fp32-weights-with-autocast", {"precision": "fp32", "mixed_precision": True}),
]


@pytest.mark.parametrize(("profile", "warning"), [c[1:] for c in CONTRADICTING], ids=[c[0] for c in CONTRADICTING])
def test_contradicting_fields_are_warned_about(profile: dict[str, Any], warning: str) -> None:
    assert contradictions(_BOOK, parse_profile(profile)) == [warning]
    rec = recommend(profile)
    assert warning in rec.warnings, rec.warnings
    stated = parse_profile(profile)
    assert {k: rec.profile.get(k) for k in profile} == {k: getattr(stated, k) for k in profile}, "both are echoed"


@pytest.mark.parametrize("profile", [c[1] for c in CONSISTENT], ids=[c[0] for c in CONSISTENT])
def test_consistent_fields_get_no_warning(profile: dict[str, Any]) -> None:
    assert contradictions(_BOOK, parse_profile(profile)) == []
    assert not [w for w in recommend(profile).warnings if "contradicts" in w or "larger than" in w]


def test_the_schedule_uses_the_value_the_warning_names() -> None:
    rec = recommend({"architecture": "resnet", "total_steps": 1000, "epochs": 10, "steps_per_epoch": 500})
    assert rec.schedule.total_steps == 1000
    rec = recommend({"architecture": "resnet", "epochs": 3, "steps_per_epoch": 100, "dataset_size": 50_000})
    assert rec.schedule.total_steps == 300


def test_the_engine_follows_the_architecture_the_warning_names() -> None:
    assert recommend({"domain": "computer_vision", "architecture": "bert"}).optimizer.name == (
        recommend({"architecture": "bert"}).optimizer.name
    )


def test_every_recipe_job_but_a_ramped_batch_is_consistent() -> None:
    """The published recipes' own jobs agree with themselves; Llama 3 405B ramps its batch (4M -> 16M tokens),
    so its token budget over the final batch undercounts its steps, and that is the one warning."""
    flagged = []
    for entry in _BOOK.recipes.values():
        job = entry.recipe.job.model_dump()
        profile = parse_profile({k: v for k, v in job.items() if k in _PROFILE_FIELDS and v not in (None, [])})
        if contradictions(_BOOK, profile):
            flagged.append(entry.id)
    assert flagged == ["llama3.405b.pretraining"]


_PROFILE_FIELDS = frozenset(Profile.model_fields)
