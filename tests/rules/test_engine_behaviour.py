"""Behaviour of the rules engine that holds for every profile, and the conflict policy on named cases.

The seed-table rows themselves (which optimizer each 004 row gives) are tested in test_seed_tables.py;
this file tests what the engine promises around them: determinism, a valid and self-consistent answer,
the conflict policy, and the derivations (batch-size inference, warmup steps, milestones, clipping).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest

from optirec.rules import Recommendation, default_rulebook, load_rulebook, recommend
from optirec.rules.profile import Profile

_BOOK = default_rulebook()
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_SOURCE = re.compile(r"^(?:(?:000|001|002|003|004) \S.*|external: \S.*)$")


# ---------------------------------------------------------------------------------------- profile table
def _profiles() -> list[tuple[str, dict[str, Any]]]:
    """A broad table of profiles: each vocabulary value alone, then combinations with the numeric fields."""
    out: list[tuple[str, dict[str, Any]]] = [("empty", {})]
    for arch in _BOOK.valid("architecture"):
        out.append((f"architecture={arch}", {"architecture": arch}))
    for domain in _BOOK.valid("domain"):
        out.append((f"domain={domain}", {"domain": domain}))
    for goal in _BOOK.valid("goal"):
        out.append((f"goal={goal}", {"goal": goal}))
    for data in _BOOK.valid("data"):
        out.append((f"data={data}", {"data": [data]}))
    for method in _BOOK.valid("rl_method"):
        out.append((f"rl={method}", {"domain": "reinforcement_learning", "rl_method": method}))
    out.append(("all-data", {"data": _BOOK.valid("data")}))
    # architecture x constraint / size / schedule inputs
    combos: list[tuple[str, dict[str, Any]]] = [
        ("memory_limited", {"memory_limited": True}),
        ("on_device", {"on_device": True}),
        ("7B-on-80GB", {"num_parameters": 7_000_000_000, "device_memory_gb": 80.0}),
        ("70B-no-device", {"num_parameters": 70_000_000_000}),
        ("small-model-small-data", {"num_parameters": 50_000, "dataset_size": 2_000}),
        ("too-big-for-device", {"num_parameters": 10_000_000_000, "device_memory_gb": 16}),
        ("batch16384-steps", {"batch_size": 16384, "total_steps": 10_000}),
        ("batch8-epochs", {"batch_size": 8, "epochs": 3, "dataset_size": 1_000}),
        ("best-accuracy-steps", {"goal": "best_accuracy", "total_steps": 20_000, "batch_size": 256}),
        ("epochs-steps", {"epochs": 10, "steps_per_epoch": 500, "mixed_precision": True}),
    ]
    for arch in ("resnet", "vit", "bert", "gpt", "t5", "lstm", "gru", "dqn", "ppo", "embedding", "yolo", "mask_rcnn"):
        for label, extra in combos:
            out.append((f"{arch}+{label}", {"architecture": arch, **extra}))
    # domain x architecture x goal x data mixes
    mixes: list[tuple[str, dict[str, Any]]] = [
        ("cv-resnet-transfer", {"domain": "computer_vision", "architecture": "resnet", "goal": "transfer_learning"}),
        ("cv-vit-finetune-large", {"domain": "cv", "architecture": "vit", "goal": "fine_tuning", "batch_size": 4096}),
        ("nlp-bert-sparse", {"domain": "nlp", "architecture": "bert", "data": ["sparse_features"]}),
        ("nlp-sparse-no-arch", {"domain": "nlp", "data": "sparse_features"}),
        ("llm-gpt-distributed", {"domain": "llm", "architecture": "gpt", "goal": "distributed", "batch_size": 2048}),
        ("llm-memory", {"domain": "llm", "memory_limited": True, "num_parameters": 1_300_000_000}),
        ("rl-dqn-nonstationary", {"domain": "rl", "architecture": "dqn", "data": ["non_stationary"]}),
        ("rl-ppo-continual", {"domain": "reinforcement_learning", "architecture": "ppo", "goal": "continual_learning"}),
        (
            "recsys-embedding-sparse",
            {"domain": "recommender", "architecture": "embedding", "data": ["sparse_features"]},
        ),
        ("recsys-hybrid", {"domain": "recommender", "batch_size": 1024, "total_steps": 50_000}),
        ("recsys-mlp-imbalanced", {"domain": "recommender", "architecture": "mlp", "data": ["imbalanced"]}),
        ("ts-lstm-nonstationary", {"domain": "time_series", "architecture": "lstm", "data": ["non_stationary"]}),
        (
            "ts-transformer",
            {"domain": "time_series", "architecture": "transformer", "epochs": 5, "dataset_size": 10**6},
        ),
        ("tabular-mlp-noisy", {"domain": "tabular", "architecture": "mlp", "data": ["noisy", "dense_features"]}),
        ("gan-pair", {"architecture": "gan_generator", "goal": "best_accuracy", "total_steps": 1000}),
        ("gan-disc-on-device", {"architecture": "gan_discriminator", "on_device": True}),
        ("unet-small-device", {"architecture": "unet", "num_parameters": 30_000_000, "device_memory_gb": 0.5}),
        ("efficientnet-ema", {"architecture": "efficientnet", "batch_size": 512, "total_steps": 300}),
        ("high-dim-newton-size", {"data": ["high_dimensional"], "num_parameters": 4_000}),
        ("tiny-model", {"num_parameters": 100, "dataset_size": 50, "on_device": True}),
        ("cnn-multitask-zero-shot", {"architecture": "cnn", "goal": "multitask"}),
        ("transformer-zero-shot", {"architecture": "transformer", "goal": "zero_shot", "total_steps": 10}),
        (
            "rnn-everything",
            {
                "domain": "time_series",
                "architecture": "rnn",
                "goal": "fast_prototyping",
                "data": ["variable_length"],
                "batch_size": 64,
                "epochs": 2,
                "steps_per_epoch": 7,
                "num_parameters": 2_000_000,
                "device_memory_gb": 24.0,
                "memory_limited": False,
                "on_device": False,
                "mixed_precision": True,
            },
        ),
    ]
    out.extend(mixes)
    return out


PROFILES = _profiles()
PROFILE_IDS = [label for label, _ in PROFILES]
PROFILE_VALUES = [profile for _, profile in PROFILES]


def _optimizer_names(rec: Recommendation) -> set[str]:
    names = {rec.optimizer.name}
    names |= {a.name for a in rec.alternatives}
    names |= {a.name for a in rec.avoid}
    names |= {g.optimizer for g in rec.param_groups if g.optimizer is not None}
    names |= {ph.optimizer.name for ph in rec.phases}
    return names


def test_profile_table_is_broad() -> None:
    """The parametrised table covers every vocabulary value at least once."""
    for kind in ("architecture", "domain", "goal", "rl_method"):
        seen = {p.get(kind) for p in PROFILE_VALUES}
        assert set(_BOOK.valid(kind)) <= seen, kind
    seen_data = {
        d for p in PROFILE_VALUES for d in ([p["data"]] if isinstance(p.get("data"), str) else p.get("data", []))
    }
    assert set(_BOOK.valid("data")) <= seen_data
    assert len(set(PROFILE_IDS)) == len(PROFILE_IDS)


# ---------------------------------------------------------------------------------------- determinism
@pytest.mark.parametrize("profile", PROFILE_VALUES, ids=PROFILE_IDS)
def test_same_profile_twice_gives_identical_answer(profile: dict[str, Any]) -> None:
    assert recommend(profile).model_dump() == recommend(dict(profile)).model_dump()


@pytest.mark.parametrize("profile", PROFILE_VALUES, ids=PROFILE_IDS)
def test_key_order_does_not_matter(profile: dict[str, Any]) -> None:
    reordered = dict(reversed(list(profile.items())))
    assert list(reordered) == list(reversed(list(profile)))
    assert recommend(reordered).model_dump() == recommend(profile).model_dump()


@pytest.mark.parametrize(
    "profile",
    [
        {"architecture": "resnet", "batch_size": 1024},
        {"domain": "llm", "memory_limited": True, "num_parameters": 7_000_000_000},
        {"architecture": "bert", "data": ["large_batch"], "total_steps": 1000},
    ],
    ids=["resnet", "llm-memory", "bert-large-batch"],
)
def test_mapping_profile_and_keywords_give_the_same_answer(profile: dict[str, Any]) -> None:
    expected = recommend(profile).model_dump()
    assert recommend(**profile).model_dump() == expected
    assert recommend(Profile(**profile)).model_dump() == expected
    assert recommend(Profile.model_validate(profile)).model_dump() == expected


def test_data_order_does_not_change_the_choice() -> None:
    forward = recommend({"data": ["noisy", "sparse_features", "imbalanced"]})
    backward = recommend({"data": ["imbalanced", "sparse_features", "noisy"]})
    assert forward.optimizer == backward.optimizer
    assert [a.name for a in forward.alternatives] == [a.name for a in backward.alternatives]
    assert {a.name for a in forward.avoid} == {a.name for a in backward.avoid}


def test_rulebook_hash_is_sha256_and_stable() -> None:
    first = recommend({"architecture": "resnet"}).rulebook
    second = recommend({"domain": "nlp"}).rulebook
    assert _HEX64.match(first.hash), first.hash
    assert first == second
    assert first.hash == default_rulebook().hash
    assert load_rulebook().hash == first.hash  # a fresh load of the same files hashes the same


def test_rulebook_version_is_reported() -> None:
    info = recommend({}).rulebook
    assert isinstance(info.version, str) and info.version.strip()
    assert info.version == default_rulebook().version


# ---------------------------------------------------------------------------------------- valid answers
@pytest.mark.parametrize("profile", PROFILE_VALUES, ids=PROFILE_IDS)
def test_recommendation_validates_against_its_model(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    assert isinstance(rec, Recommendation)
    again = Recommendation.model_validate(rec.model_dump())
    assert again == rec
    assert again.model_dump() == rec.model_dump()
    # and through JSON, byte for byte (an int field holding a float, a tuple for a list... would show here)
    text = rec.model_dump_json()
    assert Recommendation.model_validate_json(text).model_dump_json() == text


@pytest.mark.parametrize("profile", PROFILE_VALUES, ids=PROFILE_IDS)
def test_every_optimizer_named_is_in_the_catalog(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    catalog = set(default_rulebook().optimizers)
    names = _optimizer_names(rec)
    assert names <= catalog, sorted(names - catalog)
    assert rec.optimizer.name not in {a.name for a in rec.avoid}
    assert rec.optimizer.name not in {a.name for a in rec.alternatives}


@pytest.mark.parametrize("profile", PROFILE_VALUES, ids=PROFILE_IDS)
def test_every_rule_cited_exists(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    rules = default_rulebook().rules
    assert rec.rationale, "an answer always explains itself"
    for entry in rec.rationale:
        assert entry.rule in rules or entry.rule.startswith("principle."), entry.rule
        assert _SOURCE.match(entry.source), entry.source
    for avoided in rec.avoid:
        assert avoided.rule in rules or avoided.rule.startswith("principle."), avoided.rule
        assert avoided.why
    for alt in rec.alternatives:
        assert alt.rule is None or alt.rule in rules or alt.rule.startswith("principle."), alt.rule


@pytest.mark.parametrize("profile", PROFILE_VALUES, ids=PROFILE_IDS)
def test_answer_is_self_consistent(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    book = default_rulebook()
    # the memory estimate describes the chosen optimizer
    if book.optimizers[rec.optimizer.name].memory_overhead != "O(n^2)":
        assert rec.memory.state_multiplier == book.state_multiplier(rec.optimizer.name)
    # the schedule's numbers agree with each other
    sched = rec.schedule
    assert 0 <= sched.warmup_ratio < 1
    if sched.total_steps is not None:
        assert sched.warmup_steps == round(sched.total_steps * sched.warmup_ratio)
    # the lr that was scaled is the one handed out
    if "lr" in rec.optimizer.hyperparameters:
        assert rec.optimizer.hyperparameters["lr"] > 0
    # alternatives are ordered, scored in [0, 1]
    for alt in rec.alternatives:
        assert 0.0 <= alt.score <= 1.0
    # the profile echo is the validated profile
    echo = {k: v for k, v in rec.profile.items() if k != "inferred_data"}
    assert Profile.model_validate(echo) == Profile.model_validate(profile)


def test_every_rule_cites_a_seed_or_an_external_source() -> None:
    book = default_rulebook()
    bad = {rule_id: rule.source for rule_id, rule in book.rules.items() if not _SOURCE.match(rule.source)}
    assert not bad
    assert any(rule.source.startswith("004 ") for rule in book.rules.values())


@pytest.mark.parametrize("rule_id", sorted(_BOOK.rules), ids=sorted(_BOOK.rules))
def test_rule_source_names_a_seed_or_external(rule_id: str) -> None:
    source = default_rulebook().rules[rule_id].source
    assert source.startswith(("000 ", "001 ", "002 ", "003 ", "004 ", "external: ")), source
    assert len(source.split(" ", 1)[1].strip()) > 0


# ---------------------------------------------------------------------------------------- conflicts
CONFLICTS = [
    pytest.param(
        {"architecture": "bert", "data": ["large_batch"]}, {"adam", "adamw"}, "architecture.bert", id="bert+large_batch"
    ),
    pytest.param({"domain": "llm", "memory_limited": True}, {"adam", "adamw"}, "domain.llm", id="llm+memory_limited"),
    pytest.param({"architecture": "vit", "on_device": True}, {"adam", "adamw"}, "architecture.vit", id="vit+on_device"),
    pytest.param({"architecture": "vit", "batch_size": 65536}, {"adamw"}, "architecture.vit", id="vit+batch65536"),
    pytest.param(
        {"architecture": "gpt", "num_parameters": 7_000_000_000, "device_memory_gb": 80},
        {"adamw"},
        "architecture.gpt",
        id="gpt7B+80GB",
    ),
]


@pytest.mark.parametrize(("profile", "ruled_out", "loser"), CONFLICTS)
def test_constraint_beats_specific_rule(profile: dict[str, Any], ruled_out: set[str], loser: str) -> None:
    rec = recommend(profile)
    assert rec.optimizer.name not in ruled_out
    assert ruled_out <= {a.name for a in rec.avoid}
    # the contradiction is said out loud, naming the rule that lost (or the published recipe that out-ranks it)
    assert any(loser in w or w.startswith("recipe.") for w in rec.warnings), rec.warnings
    # and the losing rule is still explained
    statuses = {e.rule: e.status for e in rec.rationale}
    assert statuses.get(loser) == "outvoted", statuses


#: (profile, optimizer the answer keeps): You et al. 2020 measured Adam's large-batch trouble on BERT and
#: ResNet-50 (transformer and cnn); a job of another family keeps its Adam, and says why
LARGE_BATCH_ELSEWHERE = [
    pytest.param({"architecture": "lstm", "data": ["large_batch"]}, "adam", id="lstm+large_batch"),
    pytest.param({"architecture": "ppo", "batch_size": 16384}, "adam", id="ppo+batch16384"),
    pytest.param({"architecture": "ncf", "batch_size": 65536}, "adam", id="ncf+batch65536"),
]


@pytest.mark.parametrize(("profile", "kept"), LARGE_BATCH_ELSEWHERE)
def test_the_large_batch_row_rules_out_adam_only_where_that_was_measured(profile: dict[str, Any], kept: str) -> None:
    rec = recommend(profile)
    assert rec.optimizer.name == kept
    assert kept not in {a.name for a in rec.avoid}
    assert any(n.startswith("data.large_batch rules out") and "You et al. 2020" in n for n in rec.notes), rec.notes


def test_without_a_known_family_the_large_batch_row_still_rules_out_adam() -> None:
    # 004 §2.4's row as the table states it: LAMB or SGD, not Adam, for a job that names no architecture
    rec = recommend({"data": ["large_batch"]})
    assert rec.optimizer.name in {"lamb", "sgd_momentum"}
    assert {"adam", "adamw"} <= {a.name for a in rec.avoid}


def test_bert_large_batch_picks_a_large_batch_optimizer() -> None:
    rec = recommend({"architecture": "bert", "data": ["large_batch"]})
    assert rec.optimizer.name not in {"adam", "adamw"}
    warning = next(w for w in rec.warnings if "architecture.bert" in w)
    assert "data.large_batch" in warning
    entry = next(e for e in rec.rationale if e.rule == "architecture.bert")
    assert entry.status == "outvoted"
    assert entry.detail and "adamw" in entry.detail
    chosen_by = [e.rule for e in rec.rationale if e.status == "chosen"]
    assert chosen_by, "some rule is credited with the choice"


def test_llm_memory_limited_stays_within_one_state_value_per_parameter() -> None:
    rec = recommend({"domain": "llm", "memory_limited": True})
    book = default_rulebook()
    assert rec.memory.state_multiplier <= 1
    assert book.state_multiplier(rec.optimizer.name) <= 1
    assert rec.memory.budget_multiplier == 1.0
    assert rec.warnings
    assert any("domain.llm" in w for w in rec.warnings)
    for avoided in rec.avoid:
        if avoided.rule == "principle.memory":
            assert book.state_multiplier(avoided.name) > 1


@pytest.mark.parametrize(
    ("profile", "expected_rules"),
    [
        pytest.param(
            {"architecture": "bert", "data": ["large_batch"]},
            {
                "architecture.bert",
                "family.transformer",
                "data.large_batch",
                "guide.transformer_default",
                "default.adam",
            },
            id="bert+large_batch",
        ),
        pytest.param(
            {"domain": "llm", "memory_limited": True},
            {"domain.llm", "constraint.memory.llm", "constraint.memory_limited", "default.adam"},
            id="llm+memory_limited",
        ),
        pytest.param(
            {"architecture": "resnet", "data": ["noisy", "sparse_features"]},
            {"architecture.resnet", "family.cnn", "data.noisy", "data.sparse_features", "default.adam"},
            id="resnet+noisy+sparse",
        ),
    ],
)
def test_losing_rules_stay_in_the_rationale(profile: dict[str, Any], expected_rules: set[str]) -> None:
    rec = recommend(profile)
    listed = [e.rule for e in rec.rationale]
    assert expected_rules <= set(listed), sorted(expected_rules - set(listed))
    assert len(listed) == len(set(listed)), "each rule is listed once"
    chosen = rec.optimizer.name
    book = default_rulebook()
    for entry in rec.rationale:
        prefer = book.rules[entry.rule].prefer if entry.rule in book.rules else []
        if prefer and chosen not in prefer:
            assert entry.status == "outvoted", entry
        elif prefer and prefer[0] == chosen:
            assert entry.status == "chosen", entry
        elif prefer:
            assert entry.status == "supports", entry


# ---------------------------------------------------------------------------------------- batch-size inference
@pytest.mark.parametrize(
    ("profile", "inferred"),
    [
        pytest.param({"batch_size": 16384}, ["large_batch"], id="16384-no-data"),
        pytest.param({"batch_size": 8193, "architecture": "resnet"}, ["large_batch"], id="8193-resnet"),
        pytest.param({"batch_size": 8192}, None, id="8192-is-not-large"),
        pytest.param({"batch_size": 16384, "data": ["large_batch"]}, None, id="already-stated"),
        pytest.param({"batch_size": 16384, "data": ["noisy"]}, ["large_batch"], id="added-to-other-data"),
        pytest.param({"data": ["large_batch"]}, None, id="stated-without-batch"),
    ],
)
def test_large_batch_is_inferred_from_batch_size(profile: dict[str, Any], inferred: list[str] | None) -> None:
    rec = recommend(profile)
    assert rec.profile.get("inferred_data") == inferred
    notes = [n for n in rec.notes if "large_batch" in n and str(profile.get("batch_size")) in n]
    if inferred:
        assert notes, rec.notes
        assert "data.large_batch" in {e.rule for e in rec.rationale}
        assert "large_batch" not in rec.profile.get("data", [])  # the echo keeps what the caller said
    else:
        assert not notes


def test_inferred_large_batch_matches_stated_large_batch() -> None:
    inferred = recommend({"batch_size": 16384})
    stated = recommend({"batch_size": 16384, "data": ["large_batch"]})
    assert inferred.optimizer == stated.optimizer
    assert [a.name for a in inferred.avoid] == [a.name for a in stated.avoid]


# ---------------------------------------------------------------------------------------- warmup & schedule
WARMUP_CASES = [
    pytest.param({"architecture": "bert", "total_steps": 1000}, 1000, 100, id="total_steps"),
    pytest.param({"architecture": "bert", "epochs": 2, "steps_per_epoch": 500}, 1000, 100, id="epochs*steps_per_epoch"),
    pytest.param(
        {"architecture": "bert", "epochs": 3, "dataset_size": 1000},
        3 * math.ceil(1000 / 32),
        10,
        id="epochs*ceil(n/rule-batch)",
    ),
    pytest.param(
        {"architecture": "bert", "epochs": 3, "dataset_size": 1000, "batch_size": 100}, 30, 3, id="epochs*ceil(n/batch)"
    ),
    pytest.param(
        {"architecture": "bert", "epochs": 2, "dataset_size": 1001, "batch_size": 10}, 2 * 101, 20, id="ceil-rounds-up"
    ),
    pytest.param(
        {"architecture": "bert", "total_steps": 500, "epochs": 3, "steps_per_epoch": 1000},
        500,
        50,
        id="total_steps-wins",
    ),
    pytest.param(
        {"architecture": "bert", "epochs": 4, "steps_per_epoch": 25, "dataset_size": 10**6},
        100,
        10,
        id="steps_per_epoch-wins",
    ),
    pytest.param({"architecture": "vit", "total_steps": 10_000}, 10_000, 1000, id="vit-default-ratio"),
    pytest.param({"architecture": "resnet", "total_steps": 10_000}, 10_000, 0, id="no-warmup"),
]


@pytest.mark.parametrize(("profile", "total", "warmup_steps"), WARMUP_CASES)
def test_warmup_steps_from_the_length_of_training(profile: dict[str, Any], total: int, warmup_steps: int) -> None:
    sched = recommend(profile).schedule
    assert sched.total_steps == total
    assert sched.warmup_steps == warmup_steps
    assert isinstance(sched.warmup_steps, int)


@pytest.mark.parametrize(
    "profile",
    [
        pytest.param({"architecture": "bert"}, id="nothing"),
        pytest.param({"architecture": "bert", "epochs": 3}, id="epochs-only"),
        pytest.param({"architecture": "bert", "steps_per_epoch": 30}, id="steps_per_epoch-only"),
        pytest.param({"architecture": "bert", "dataset_size": 5000}, id="dataset_size-only"),
    ],
)
def test_unknown_length_gives_ratios_and_a_note(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    assert rec.schedule.total_steps is None
    assert rec.schedule.warmup_steps is None
    assert rec.schedule.warmup_ratio > 0
    assert any("total_steps is unknown" in n for n in rec.notes)


MILESTONE_CASES = [
    pytest.param({"architecture": "yolo", "total_steps": 1001}, [801, 901], id="yolo-1001"),
    pytest.param({"architecture": "mask_rcnn", "epochs": 12, "steps_per_epoch": 100}, [800, 1067], id="mask_rcnn-1200"),
    pytest.param({"on_device": True, "total_steps": 1000}, [500, 750], id="sgd-default-step"),
    pytest.param({"architecture": "yolo", "epochs": 3, "dataset_size": 1000}, None, id="yolo-epochs-dataset"),
    pytest.param({"architecture": "yolo", "total_steps": 3}, None, id="yolo-tiny-run"),
]


@pytest.mark.parametrize(("profile", "expected"), MILESTONE_CASES)
def test_step_milestones_are_integers_when_total_steps_is_known(
    profile: dict[str, Any], expected: list[int] | None
) -> None:
    sched = recommend(profile).schedule
    assert sched.name == "step"
    assert sched.total_steps is not None
    assert sched.milestones is not None
    assert all(type(m) is int for m in sched.milestones), sched.milestones
    assert sched.milestone_fractions is not None
    assert sched.milestones == [max(1, round(f * sched.total_steps)) for f in sched.milestone_fractions]
    assert all(1 <= m <= sched.total_steps for m in sched.milestones)
    assert sched.milestones == sorted(sched.milestones)
    if expected is not None:
        assert sched.milestones == expected
    assert sched.gamma is not None and 0 < sched.gamma < 1


def test_step_milestones_are_fractions_when_total_steps_is_unknown() -> None:
    sched = recommend({"architecture": "yolo"}).schedule
    assert sched.name == "step"
    assert sched.milestones is None
    assert sched.milestone_fractions == [0.8, 0.9]


@pytest.mark.parametrize("profile", PROFILE_VALUES, ids=PROFILE_IDS)
def test_step_schedules_have_integer_milestones(profile: dict[str, Any]) -> None:
    sched = recommend(profile).schedule
    if sched.name != "step":
        return
    if sched.total_steps is None:
        assert sched.milestones is None
    else:
        assert sched.milestones and all(type(m) is int for m in sched.milestones)


# ---------------------------------------------------------------------------------------- drifting data
_DRIFT_PROFILES = [pytest.param({"domain": d}, id=f"domain={d}") for d in _BOOK.valid("domain")] + [
    pytest.param({"architecture": a}, id=f"architecture={a}") for a in _BOOK.valid("architecture")
]


@pytest.mark.parametrize("profile", _DRIFT_PROFILES)
def test_drifting_data_keeps_the_lr_constant_after_warmup(profile: dict[str, Any]) -> None:
    """An lr annealed to zero freezes the model while the data moves on: data.non_stationary's constant
    schedule wins over any model's own, cited, and a schedule another rule had set is named in a note."""
    plain = recommend({**profile, "total_steps": 1000})
    drifting = recommend({**profile, "total_steps": 1000, "data": ["non_stationary"]})
    assert drifting.schedule.name == "constant"
    if drifting.optimizer.name == plain.optimizer.name:
        assert drifting.schedule.warmup_steps == plain.schedule.warmup_steps  # warmup is kept
    entry = next(e for e in drifting.rationale if e.rule == "data.non_stationary")
    assert "Sutton & Barto 2018" in entry.effect
    for note in drifting.notes:
        if note.startswith("schedule: constant from data.non_stationary replaces "):
            assert note.split(" replaces ")[1].split(" from ")[0] != "constant"


def test_drift_overrides_a_schedule_a_more_specific_rule_set_and_says_so() -> None:
    assert recommend({"domain": "computer_vision", "architecture": "resnet"}).schedule.name == "cosine"
    rec = recommend({"domain": "computer_vision", "architecture": "resnet", "data": ["non_stationary"]})
    assert rec.schedule.name == "constant"
    replaced = [n for n in rec.notes if n.startswith("schedule: constant from data.non_stationary replaces cosine")]
    assert len(replaced) == 1 and "data.non_stationary in the rationale" in replaced[0]


def _drift_rule() -> Any:
    return next(cr.rule for cr in _BOOK.compiled if cr.rule.id == "data.non_stationary")


@pytest.mark.parametrize("profile", _DRIFT_PROFILES)
def test_drifting_data_shortens_adams_gradient_average(profile: dict[str, Any]) -> None:
    """Adam-style beta1 drops to the drift rule's value whatever the model; the second beta, SGD's momentum
    (which also scales SGD's step) and the optimizers the rule is not written for keep their values."""
    rule = _drift_rule()
    assert rule.set.beta1 is not None and rule.apply_to
    plain = recommend({**profile, "batch_size": 32})
    drifting = recommend({**profile, "batch_size": 32, "data": ["non_stationary"]})
    before = {c.name: c.hyperparameters for c in [plain.optimizer, *plain.alternatives]}
    for choice in [drifting.optimizer, *drifting.alternatives]:
        hp, old = choice.hyperparameters, before.get(choice.name)
        if choice.name in rule.apply_to and "betas" in hp:
            assert hp["betas"][0] == rule.set.beta1, choice.name
            if old is not None:
                assert hp["betas"][1] == old["betas"][1], choice.name
        elif old is not None:
            assert hp.get("betas") == old.get("betas"), choice.name
            assert hp.get("momentum") == old.get("momentum"), choice.name


@pytest.mark.parametrize(
    ("architecture", "betas", "replaced"),
    [
        pytest.param("lstm", [0.5, 0.999], "[0.9, 0.999] from architecture.lstm", id="lstm"),
        pytest.param("gpt", [0.5, 0.95], "[0.9, 0.95] from architecture.gpt", id="gpt-keeps-its-beta2"),
        pytest.param("gan_generator", [0.5, 0.999], None, id="gan-already-0.5"),
    ],
)
def test_drift_overrides_the_beta1_a_more_specific_rule_set_and_says_so(
    architecture: str, betas: list[float], replaced: str | None
) -> None:
    rec = recommend({"architecture": architecture, "data": ["non_stationary"]})
    assert rec.optimizer.hyperparameters["betas"] == betas
    notes = [n for n in rec.notes if f"{rec.optimizer.name} betas: " in n]
    if replaced is None:
        assert notes == []  # nothing changed, nothing to say
    else:
        assert len(notes) == 1 and f"from data.non_stationary replaces {replaced}" in notes[0]
    assert "Radford et al. 2016" in next(e.effect for e in rec.rationale if e.rule == "data.non_stationary")


def test_without_overrides_the_more_specific_rule_sets_the_schedule(data_copy: Path) -> None:
    path = data_copy / "data.rules.toml"
    text = path.read_text()
    assert text.count("overrides = true") == 1
    path.write_text(text.replace("overrides = true\n", ""))
    book = load_rulebook(data_copy)
    profile = {"domain": "computer_vision", "architecture": "resnet", "data": ["non_stationary"]}
    rec = recommend(profile, rulebook=book)
    assert rec.schedule.name == "cosine"  # the resnet row's, as for any setting two rules disagree on
    assert not any(n.startswith("schedule: ") for n in rec.notes)
    # the same for the hyperparameters: the lstm row's betas win over the drift rule's beta1
    lstm = {"domain": "time_series", "architecture": "lstm", "data": ["non_stationary"]}
    assert recommend(lstm, rulebook=book).optimizer.hyperparameters["betas"] == [0.9, 0.999]
    # a rule's plain train settings still apply where no more specific rule set that key
    assert (
        recommend(
            {"domain": "time_series", "architecture": "lstm", "data": ["non_stationary"]}, rulebook=book
        ).schedule.name
        == "constant"
    )


# ---------------------------------------------------------------------------------------- clipping
_RNN_ARCHS = sorted(name for name, term in _BOOK.terms["architecture"].items() if term.family == "rnn")


@pytest.mark.parametrize(
    "profile",
    [pytest.param({"architecture": a}, id=a) for a in _RNN_ARCHS]
    + [pytest.param({"architecture": a, "domain": "time_series"}, id=f"{a}+time_series") for a in _RNN_ARCHS]
    + [pytest.param({"architecture": a, "memory_limited": True}, id=f"{a}+memory_limited") for a in _RNN_ARCHS]
    + [pytest.param({"architecture": a, "data": ["large_batch"]}, id=f"{a}+large_batch") for a in _RNN_ARCHS]
    + [pytest.param({"architecture": a, "goal": "best_accuracy"}, id=f"{a}+best_accuracy") for a in _RNN_ARCHS],
)
def test_recurrent_nets_get_gradient_clipping(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    assert rec.gradient_clipping is not None
    assert rec.gradient_clipping.max_norm > 0


def test_rnn_family_is_not_empty() -> None:
    assert {"lstm", "gru", "rnn"} <= set(_RNN_ARCHS)


# ---------------------------------------------------------------------------------------------- memo safety


@pytest.mark.parametrize(
    "profile",
    [
        {"architecture": "resnet", "batch_size": 1024, "num_parameters": 25_000_000},
        {"architecture": "gpt", "data": ["non_stationary"], "goal": "best_accuracy", "total_steps": 10_000},
        {"domain": "recommender", "architecture": "embedding", "batch_size": 256},
    ],
    ids=["resnet", "gpt-drift-best", "recommender"],
)
def test_changing_an_answer_leaves_the_next_one_alone(profile: dict[str, Any]) -> None:
    """Parts of an answer are memoized; whatever a caller can change in one answer must be its own copy."""
    pristine = recommend(profile).model_dump(mode="json")
    rec = recommend(profile)
    rec.optimizer.hyperparameters["lr"] = 99.0
    for container in (rec.optimizer.hyperparameters, *(a.hyperparameters for a in rec.alternatives)):
        for value in container.values():
            if isinstance(value, list):
                value[0] = -1.0
        container["injected"] = True
    for group in rec.param_groups:
        group.hyperparameters["injected"] = True
    for phase in rec.phases:
        phase.optimizer.hyperparameters["injected"] = True
    for bounds in rec.search_space.values():
        bounds[0] = -1.0
    rec.search_space["injected"] = [0.0, 1.0]
    for listed in (rec.warnings, rec.notes, rec.rationale, rec.avoid, rec.alternatives, rec.tuning):
        listed.clear()
    assert recommend(profile).model_dump(mode="json") == pristine


def test_the_memo_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decisions are memoized per matched-rule set and search spaces per lr: a stream of profiles that
    always hit the same decision but each bring a new lr must not grow the memo without bound."""
    import optirec.rules.companion as companion
    import optirec.rules.engine as engine

    for module in (engine, companion):  # every module that memoizes in the rulebook's cache
        monkeypatch.setattr(module, "CACHE_LIMIT", 40)
    book = load_rulebook()
    for i in range(400):
        recommend({"architecture": "resnet", "batch_size": 64 + i, "num_parameters": 1_000_000 + i}, rulebook=book)
        assert len(book.cache) <= 40 + 10
    first = recommend({"architecture": "resnet", "batch_size": 64}, rulebook=book)
    assert first == recommend({"architecture": "resnet", "batch_size": 64})
