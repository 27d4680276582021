"""The training-horizon lr term: a rule whose lr comes from a reference run of known length carries it to
the caller's ``total_steps`` as lr x (reference steps / yours) ** horizon_scaling_exponent, bounded, inside
004 §6.3's range. A short run takes a higher lr, a long one a lower (Bjorck et al. 2025; DeepSeek-AI 2024).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from optirec import RulebookError
from optirec.rules import default_rulebook, load_rulebook, recommend

_BOOK = default_rulebook()
_PR = _BOOK.principles
_WITH_RUN = sorted(
    rid for rid, rule in _BOOK.rules.items() if rule.reference_model is not None and rule.reference_model.steps
)


def _profile_for(rule_id: str) -> dict[str, object]:
    """A profile that makes ``rule_id`` the rule that sets the lr, at its own batch size."""
    rule = _BOOK.rules[rule_id]
    profile: dict[str, object] = {"batch_size": rule.base_batch_size}
    for field in ("domain", "architecture", "goal"):
        value = getattr(rule.when, field, None)
        if isinstance(value, str):
            profile[field] = value
    family = getattr(rule.when, "family", None)
    if "architecture" not in profile and isinstance(family, str):
        profile["architecture"] = family
    return profile


def test_the_rows_with_a_known_reference_run() -> None:
    assert {"architecture.resnet", "architecture.vit", "architecture.gpt"} <= set(_WITH_RUN)
    assert "architecture.bert" not in _WITH_RUN  # a fine-tuning recipe: no one reference length


@pytest.mark.parametrize("rule_id", _WITH_RUN)
def test_a_reference_run_is_cited_with_its_length(rule_id: str) -> None:
    ref = _BOOK.rules[rule_id].reference_model
    assert ref is not None and ref.steps is not None
    assert ref.source.startswith("external: ")
    assert re.search(r"iterations|steps", ref.source), ref.source  # the length is in the citation


@pytest.mark.parametrize("rule_id", _WITH_RUN)
def test_at_the_reference_length_nothing_changes(rule_id: str) -> None:
    ref = _BOOK.rules[rule_id].reference_model
    assert ref is not None and ref.steps is not None
    profile = _profile_for(rule_id)
    plain = recommend(profile)
    same = recommend({**profile, "total_steps": ref.steps})
    assert same.lr_scaling.horizon_factor == 1.0
    assert same.lr_scaling.reference_steps == ref.steps and same.lr_scaling.total_steps == ref.steps
    assert same.optimizer.hyperparameters.get("lr") == plain.optimizer.hyperparameters.get("lr")
    assert "equally long" in same.lr_scaling.reason or "adaptive optimizers only" in same.lr_scaling.reason


@pytest.mark.parametrize(
    ("total_steps", "direction"),
    [(2_344, "shorter"), (20_000, "shorter"), (600_000 * 16, "longer"), (600_000 * 256, "longer")],
    ids=["256x-shorter", "30x-shorter", "16x-longer", "256x-longer"],
)
def test_the_horizon_factor_follows_the_power_law(total_steps: int, direction: str) -> None:
    rec = recommend(architecture="gpt", batch_size=512, total_steps=total_steps)
    scaling = rec.lr_scaling
    expected = (600_000 / total_steps) ** _PR.horizon_scaling_exponent
    assert scaling.reference_steps == 600_000 and scaling.total_steps == total_steps
    assert scaling.horizon_factor == pytest.approx(expected, rel=1e-5)
    assert (scaling.horizon_factor > 1) == (direction == "shorter")
    assert rec.optimizer.hyperparameters["lr"] == pytest.approx(6e-4 * expected, rel=1e-5)
    assert f"a {direction} run" in scaling.reason
    assert "DeepSeek" in scaling.reason and "Brown et al. 2020" in scaling.reason  # the law and the run, cited


@pytest.mark.parametrize("architecture", ["resnet", "cnn"])
def test_the_sgd_family_keeps_its_lr_and_says_why(architecture: str) -> None:
    """The law was measured on AdamW; SGD + momentum rows keep their lr, with the reason given."""
    rec = recommend(architecture=architecture, batch_size=256, total_steps=200)
    assert rec.optimizer.name == "sgd_momentum"
    assert rec.optimizer.hyperparameters["lr"] == 0.1
    scaling = rec.lr_scaling
    assert scaling.horizon_factor == 1.0
    assert scaling.reference_steps == 600_000 and scaling.total_steps == 200
    assert "adaptive optimizers only" in scaling.reason


def test_a_256x_shorter_run_doubles_the_lr() -> None:
    """The exponent 1/8: every factor of 256 in the horizon is a factor of 2 in the lr."""
    short = recommend(architecture="gpt", batch_size=512, total_steps=600_000 // 256)
    assert short.lr_scaling.horizon_factor == pytest.approx(2.0, rel=1e-3)
    assert short.optimizer.hyperparameters["lr"] == pytest.approx(1.2e-3, rel=1e-3)


def test_epochs_give_the_horizon_too() -> None:
    rec = recommend(architecture="gpt", batch_size=512, epochs=10, dataset_size=51_200)  # 100 steps/epoch
    assert rec.lr_scaling.total_steps == 1_000
    assert rec.lr_scaling.horizon_factor == pytest.approx(600**0.125, rel=1e-5)


def test_batch_size_and_horizon_terms_multiply() -> None:
    rec = recommend(architecture="vit", batch_size=128, num_parameters=86_000_000 // 27, total_steps=312_000 // 256)
    scaling = rec.lr_scaling
    assert scaling.factor == pytest.approx(0.5) and scaling.size_factor == pytest.approx(3.0, rel=1e-3)
    assert scaling.horizon_factor == pytest.approx(2.0, rel=1e-3)
    assert rec.optimizer.hyperparameters["lr"] == pytest.approx(1e-3 * 0.5 * 3.0 * 2.0, rel=1e-3)


@pytest.mark.parametrize(
    "profile",
    [
        {"architecture": "vit", "batch_size": 512},  # no length given
        {"architecture": "lstm", "batch_size": 64, "total_steps": 200},  # the LSTM row names no reference run
        {"architecture": "bert", "batch_size": 32, "total_steps": 200},  # BERT's names no length
    ],
    ids=["no-total-steps", "no-reference-model", "no-reference-length"],
)
def test_without_both_lengths_there_is_no_horizon_term(profile: dict[str, object]) -> None:
    rec = recommend(profile)
    assert rec.lr_scaling.horizon_factor == 1.0
    assert rec.lr_scaling.reference_steps is None and rec.lr_scaling.total_steps is None
    assert "training horizon" not in rec.lr_scaling.reason


def test_an_adaptive_lr_stays_in_the_search_range_of_004_6_3() -> None:
    rec = recommend(architecture="vit", batch_size=4096, num_parameters=1_000, total_steps=10)  # 0.03 x 3.65
    assert rec.optimizer.hyperparameters["lr"] == _PR.global_lr_range[1]
    assert "004 §6.3" in rec.lr_scaling.reason


def test_the_horizon_term_is_bounded(data_copy: Path) -> None:
    path = data_copy / "principles.toml"
    text = path.read_text()
    path.write_text(re.sub(r"^horizon_scaling_exponent = 0\.125", "horizon_scaling_exponent = 1.0", text, flags=re.M))
    book = load_rulebook(data_copy)
    rec = recommend({"architecture": "gpt", "batch_size": 512, "total_steps": 200}, rulebook=book)
    assert rec.lr_scaling.horizon_factor == _PR.size_scaling_max_factor  # 3000x shorter, bounded at 30x
    assert "bounded at 30x" in rec.lr_scaling.reason


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{ name = "ResNet-50", parameters = 25600000, steps = 10, source = "external: x" }', "steps"),
        ('{ name = "ResNet-50", parameters = 25600000, steps = "600k", source = "external: x" }', "steps"),
        ('{ name = "ResNet-50", parameters = 25600000, step = 600000, source = "external: x" }', "step"),
    ],
    ids=["too-short", "not-a-number", "misspelt-field"],
)
def test_a_malformed_reference_run_is_refused_at_load(data_copy: Path, value: str, message: str) -> None:
    path = data_copy / "architectures.rules.toml"
    text = path.read_text()
    line = re.search(r"^reference_model = .*$", text, re.M)
    assert line is not None
    path.write_text(text.replace(line.group(0), f"reference_model = {value}", 1))
    with pytest.raises(RulebookError, match=message) as info:
        load_rulebook(data_copy)
    assert "architectures.rules.toml" in str(info.value)


@pytest.mark.parametrize("total_steps", [100, 2_000, 7_777, 123_457, 5_000_000])
@pytest.mark.parametrize("architecture", ["resnet", "vit", "gpt"])
def test_the_scaled_lr_stays_inside_its_own_search_range(architecture: str, total_steps: int) -> None:
    """The range is rounded to 3 digits; rounding must never leave the recommendation itself outside."""
    rec = recommend(architecture=architecture, total_steps=total_steps, num_parameters=3_333_333)
    low, high = rec.search_space["lr"]
    assert low <= rec.optimizer.hyperparameters["lr"] <= high
