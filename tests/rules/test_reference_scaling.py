"""The lr terms a rule's reference model carries (``reference_model`` in the rule files):

- model size: a rule whose lr was tuned on a named model carries it to the caller's ``num_parameters`` as
  lr x (reference / yours) ** size_scaling_exponent. The exponent is checked against the table it is cited
  to (Brown et al. 2020, Table 2.1: GPT-3's lr per size);
- training horizon: a rule whose reference run's length is cited carries the lr to the caller's
  ``total_steps`` as lr x (reference steps / yours) ** horizon_scaling_exponent.
  A short run takes a higher lr, a long one a lower (Bjorck et al. 2025; DeepSeek-AI 2024).

Both laws were measured on Adam/AdamW transformers and are applied there only: SGD, RMSprop and convnets keep
their lr and say why. Both are bounded and kept inside 004 §6.3's range. The seed rows are tested here without
the recipe library (a recipe near the profile would otherwise decide the lr).
"""

from __future__ import annotations

import math
import re
from functools import partial
from pathlib import Path

import pytest

from optirec import RulebookError
from optirec.rules import load_rulebook
from optirec.rules import recommend as _recommend

_BOOK = load_rulebook(recipes=False)
recommend = partial(_recommend, rulebook=_BOOK)
_PR = _BOOK.principles
_WITH_REFERENCE = sorted(rid for rid, rule in _BOOK.rules.items() if rule.reference_model is not None)
_WITH_RUN = sorted(
    rid for rid, rule in _BOOK.rules.items() if rule.reference_model is not None and rule.reference_model.steps
)

#: Brown et al. 2020, Table 2.1: (model, parameters, learning rate), all at GPT's batch of 512 sequences or more
GPT3_TABLE = [
    ("GPT-3 Small", 125e6, 6.0e-4),
    ("GPT-3 Medium", 350e6, 3.0e-4),
    ("GPT-3 Large", 760e6, 2.5e-4),
    ("GPT-3 XL", 1.3e9, 2.0e-4),
    ("GPT-3 2.7B", 2.7e9, 1.6e-4),
    ("GPT-3 6.7B", 6.7e9, 1.2e-4),
    ("GPT-3 13B", 13.0e9, 1.0e-4),
    ("GPT-3 175B", 175.0e9, 0.6e-4),
]


def test_the_rows_with_a_known_reference_model() -> None:
    assert {"architecture.resnet", "architecture.vit", "architecture.bert", "architecture.gpt"} <= set(_WITH_REFERENCE)


@pytest.mark.parametrize("rule_id", _WITH_REFERENCE)
def test_a_reference_model_comes_with_a_scaled_lr_and_a_citation(rule_id: str) -> None:
    rule = _BOOK.rules[rule_id]
    assert rule.reference_model is not None
    assert rule.set.lr is not None and rule.base_batch_size is not None  # there is an lr to carry
    assert rule.reference_model.source.startswith("external: ")


@pytest.mark.parametrize(("name", "parameters", "published_lr"), GPT3_TABLE, ids=[row[0] for row in GPT3_TABLE])
def test_gpt3s_table_is_reproduced_within_1_5x(name: str, parameters: float, published_lr: float) -> None:
    rec = recommend(architecture="gpt", batch_size=512, num_parameters=int(parameters))
    lr = rec.optimizer.hyperparameters["lr"]
    assert published_lr / 1.5 <= lr <= published_lr * 1.5, (name, lr)


def test_the_exponent_is_the_slope_of_gpt3s_table() -> None:
    xs = [math.log(n) for _, n, _ in GPT3_TABLE]
    ys = [math.log(lr) for _, _, lr in GPT3_TABLE]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    assert abs(-slope - _PR.size_scaling_exponent) < 0.05


@pytest.mark.parametrize("rule_id", _WITH_REFERENCE)
def test_at_the_reference_size_nothing_changes(rule_id: str) -> None:
    rule = _BOOK.rules[rule_id]
    assert rule.reference_model is not None
    profile = {**_profile_for(rule_id), "batch_size": rule.base_batch_size}
    plain = recommend(profile)
    same = recommend({**profile, "num_parameters": rule.reference_model.parameters})
    assert same.lr_scaling.size_factor == 1.0
    assert same.optimizer.hyperparameters.get("lr") == plain.optimizer.hyperparameters.get("lr")


@pytest.mark.parametrize(
    ("parameters", "expected_factor"),
    [
        (86_000_000 // 8, 2.0),  # 8x smaller: cube root 2
        (86_000_000 * 8, 0.5),  # 8x larger
        (86_000_000 // 1000, 10.0),
        (100, 30.0),  # (860000)^(1/3) = 95: bounded
    ],
    ids=["8x-smaller", "8x-larger", "1000x-smaller", "bounded"],
)
def test_the_size_factor_follows_the_cube_root(parameters: int, expected_factor: float) -> None:
    rec = recommend(architecture="vit", batch_size=512, num_parameters=parameters)
    scaling = rec.lr_scaling
    assert scaling.reference_model == "ViT-B/16" and scaling.reference_parameters == 86_000_000
    assert scaling.num_parameters == parameters
    assert scaling.size_factor == pytest.approx(expected_factor, rel=0.01)
    lr = rec.optimizer.hyperparameters["lr"]
    assert lr == pytest.approx(min(1e-3 * scaling.size_factor, _PR.global_lr_range[1]), rel=1e-5)
    assert "ViT-B/16" in scaling.reason and "Brown et al. 2020" in scaling.reason


def test_an_adaptive_lr_stays_in_the_search_range_of_004_6_3() -> None:
    rec = recommend(architecture="vit", batch_size=4096, num_parameters=10_000)  # 1e-3 x 20.5: 2e-2, fine
    assert rec.optimizer.hyperparameters["lr"] < _PR.global_lr_range[1]
    tiny = recommend(architecture="vit", batch_size=4096, num_parameters=1_000)  # 1e-3 x 30 x ... capped
    assert tiny.optimizer.hyperparameters["lr"] <= _PR.global_lr_range[1]


@pytest.mark.parametrize(
    ("profile", "optimizer", "lr"),
    [
        # the case: a 5k-parameter CNN got SGD lr 6.8 from a law fitted on Adam-trained GPT-3
        ({"architecture": "cnn", "domain": "computer_vision", "num_parameters": 5_000}, "sgd_momentum", 0.1),
        ({"architecture": "resnet", "batch_size": 256, "num_parameters": 10_000}, "sgd_momentum", 0.1),
        ({"architecture": "resnet", "batch_size": 256, "num_parameters": 10**9}, "sgd_momentum", 0.1),
        ({"architecture": "efficientnet", "batch_size": 256, "num_parameters": 5_300}, "rmsprop", 0.016),
        ({"architecture": "t5", "batch_size": 128, "num_parameters": 11 * 10**9}, "adafactor", 1e-3),
    ],
    ids=["cnn-5k", "resnet-10k", "resnet-1b", "efficientnet-rmsprop", "t5-adafactor"],
)
def test_the_size_law_applies_only_where_it_was_measured(profile: dict[str, object], optimizer: str, lr: float) -> None:
    rec = recommend(profile)
    assert rec.optimizer.name == optimizer
    assert rec.optimizer.hyperparameters["lr"] == pytest.approx(lr)
    assert rec.lr_scaling.size_factor == 1.0
    assert "measured on Adam/AdamW transformers only" in rec.lr_scaling.reason


def test_batch_and_size_terms_multiply() -> None:
    rec = recommend(architecture="vit", batch_size=128, num_parameters=86_000_000 // 27)
    assert rec.lr_scaling.factor == pytest.approx(math.sqrt(128 / 512))
    assert rec.lr_scaling.size_factor == pytest.approx(3.0, rel=1e-3)  # 27 ** 0.3333
    assert rec.optimizer.hyperparameters["lr"] == pytest.approx(1e-3 * 0.5 * 3.0, rel=1e-3)


#: SGD rows scaled up to 2x the table's lr or more start with a gradual warmup (Goyal et al. 2017), whichever
#: term raised the lr: (case id, profile, the terms the note names, or None when no warmup is added)
SGD_WARMUP = [
    ("batch-4x", {"architecture": "resnet", "batch_size": 1024, "total_steps": 1000}, "batch term"),
    ("batch-above-8k-sqrt-8x", {"architecture": "resnet", "batch_size": 16384, "total_steps": 1000}, "batch term"),
    (  # a model of the reference's size: its size term is 1 and the note does not name it
        "batch-4x-size-1x",
        {"architecture": "resnet", "batch_size": 1024, "num_parameters": 25_600_000},
        "batch term",
    ),
    # the size law does not apply to SGD: a small model leaves the lr as it is, with no warmup added
    ("small-model-1x", {"architecture": "resnet", "batch_size": 256, "num_parameters": 1_000_000}, None),
    ("batch-0.25x-small-model", {"architecture": "resnet", "batch_size": 64, "num_parameters": 28_410}, None),
    ("size-1.9x-batch-1x", {"architecture": "resnet", "batch_size": 256, "num_parameters": 3_800_000}, None),
    ("batch-0.5x-size-1.3x", {"architecture": "resnet", "batch_size": 128, "num_parameters": 11_000_000}, None),
    ("table-batch-and-size", {"architecture": "resnet", "batch_size": 256, "num_parameters": 25_600_000}, None),
]


@pytest.mark.parametrize(("profile", "terms"), [row[1:] for row in SGD_WARMUP], ids=[row[0] for row in SGD_WARMUP])
def test_an_sgd_lr_raised_2x_or_more_warms_up(profile: dict[str, object], terms: str | None) -> None:
    rec = recommend(profile)
    raised = rec.optimizer.hyperparameters["lr"] / rec.lr_scaling.base_lr
    notes = [note for note in rec.notes if "gradual warmup" in note]
    assert rec.optimizer.name == "sgd_momentum"
    if terms is None:
        assert raised < 2 and rec.schedule.warmup_ratio == 0 and not notes
        return
    assert raised >= 2 and rec.schedule.warmup_ratio == _PR.default_warmup_ratio
    steps = profile.get("total_steps")
    if isinstance(steps, int):
        assert rec.schedule.warmup_steps == round(_PR.default_warmup_ratio * steps)
    assert len(notes) == 1 and f"The {terms} put the lr at {raised:.3g}x" in notes[0] and "Goyal" in notes[0]


def test_without_num_parameters_or_a_reference_model_there_is_no_size_term() -> None:
    assert recommend(architecture="resnet", batch_size=256).lr_scaling.size_factor == 1.0
    lstm = recommend(architecture="lstm", batch_size=64, num_parameters=1000)  # the LSTM row names no model
    assert lstm.lr_scaling.size_factor == 1.0 and lstm.lr_scaling.reference_model is None
    assert lstm.optimizer.hyperparameters["lr"] == 1e-3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{ name = "ResNet-50", parameters = 10, source = "external: He et al. 2016" }', "parameters"),
        ('{ name = "ResNet-50", parameters = 25600000, source = "He et al. 2016" }', "source"),
        ('{ name = "ResNet-50", parameters = 25600000 }', "source"),
        ('{ name = "ResNet-50", params = 25600000, source = "external: x" }', "reference_model.param"),
        ('{ name = "ResNet-50", parameters = 25600000, steps = 10, source = "external: x" }', "steps"),
        ('{ name = "ResNet-50", parameters = 25600000, steps = "600k", source = "external: x" }', "steps"),
        ('{ name = "ResNet-50", parameters = 25600000, step = 600000, source = "external: x" }', "step"),
    ],
    ids=["too-small", "uncited", "no-source", "misspelt-field", "run-too-short", "run-not-a-number", "misspelt-steps"],
)
def test_a_malformed_reference_model_is_refused_at_load(data_copy: Path, value: str, message: str) -> None:
    path = data_copy / "architectures.rules.toml"
    text = path.read_text()
    line = re.search(r"^reference_model = .*$", text, re.M)
    assert line is not None
    path.write_text(text.replace(line.group(0), f"reference_model = {value}", 1))
    with pytest.raises(RulebookError, match=message) as info:
        load_rulebook(data_copy)
    assert "architectures.rules.toml" in str(info.value)


# ------------------------------------------------------------------------------------ training horizon
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
    profile = {**_profile_for(rule_id), "batch_size": _BOOK.rules[rule_id].base_batch_size}
    plain = recommend(profile)
    same = recommend({**profile, "total_steps": ref.steps})
    assert same.lr_scaling.horizon_factor == 1.0
    assert same.lr_scaling.reference_steps == ref.steps and same.lr_scaling.total_steps == ref.steps
    assert same.optimizer.hyperparameters.get("lr") == plain.optimizer.hyperparameters.get("lr")
    assert "equally long" in same.lr_scaling.reason or "Adam/AdamW transformers only" in same.lr_scaling.reason


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
    """The law was measured on AdamW transformers; SGD + momentum rows keep their lr, with the reason given."""
    rec = recommend(architecture=architecture, batch_size=256, total_steps=200)
    assert rec.optimizer.name == "sgd_momentum"
    assert rec.optimizer.hyperparameters["lr"] == 0.1
    scaling = rec.lr_scaling
    assert scaling.horizon_factor == 1.0
    assert scaling.reference_steps == 600_000 and scaling.total_steps == 200
    assert "Adam/AdamW transformers only" in scaling.reason


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


def test_a_short_run_keeps_an_adaptive_lr_in_the_search_range_of_004_6_3() -> None:
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


@pytest.mark.parametrize("total_steps", [100, 2_000, 7_777, 123_457, 5_000_000])
@pytest.mark.parametrize("architecture", ["resnet", "vit", "gpt"])
def test_the_scaled_lr_stays_inside_its_own_search_range(architecture: str, total_steps: int) -> None:
    """The range is rounded to 3 digits; rounding must never leave the recommendation itself outside."""
    rec = recommend(architecture=architecture, total_steps=total_steps, num_parameters=3_333_333)
    low, high = rec.search_space["lr"]
    assert low <= rec.optimizer.hyperparameters["lr"] <= high


def _profile_for(rule_id: str) -> dict[str, object]:
    """A profile that makes ``rule_id`` the rule that sets the lr."""
    when = _BOOK.rules[rule_id].when
    profile: dict[str, object] = {}
    for field in ("domain", "architecture", "goal"):
        value = getattr(when, field, None)
        if isinstance(value, str):
            profile[field] = value
    family = getattr(when, "family", None)
    if "architecture" not in profile and isinstance(family, str):
        profile["architecture"] = family
    return profile


@pytest.mark.parametrize(
    ("profile", "ratio"),
    [
        # Goyal et al. 2017 §2.2: 5 epochs of warmup, whatever the run's length
        ({"architecture": "resnet", "batch_size": 1024, "epochs": 90}, 5 / 90),
        ({"architecture": "resnet", "batch_size": 8192, "epochs": 350}, 5 / 350),
        # the length in epochs from steps x batch over the data set: 1000 steps x 1024 / 102,400 = 10 epochs
        ({"architecture": "resnet", "batch_size": 1024, "total_steps": 1000, "dataset_size": 102_400}, 5 / 10),
        # never more than 004's fraction: a 20-epoch run warms up for 10% of it, not 25%
        ({"architecture": "resnet", "batch_size": 1024, "epochs": 20}, 0.1),
    ],
    ids=["90-epochs", "350-epochs", "epochs-from-steps", "capped-at-default"],
)
def test_the_added_warmup_lasts_five_epochs_where_the_runs_epochs_are_known(
    profile: dict[str, object], ratio: float
) -> None:
    rec = recommend(profile)
    assert rec.optimizer.name == "sgd_momentum"
    assert rec.schedule.warmup_ratio == pytest.approx(min(ratio, _PR.default_warmup_ratio), rel=1e-4)
    (note,) = [n for n in rec.notes if "gradual warmup" in n]
    assert "5 epochs" in note and "Goyal et al. 2017" in note


#: (id, profile, optimizer, lr, batch rule): a row whose source states its own batch rule follows it
OWN_BATCH_RULE = [
    # Tan & Le 2019's official script scales RMSprop's 0.016 per 256 images linearly (0.128 at 2048)
    ("efficientnet-2048", {"architecture": "efficientnet", "batch_size": 2048}, "rmsprop", 0.128, "linear"),
    ("efficientnet-64", {"architecture": "efficientnet", "batch_size": 64}, "rmsprop", 0.004, "linear"),
    # a row that states none keeps the optimizer's catalog rule: Adam's square root (004 §6.4.3)
    ("lstm-256", {"architecture": "lstm", "batch_size": 256}, "adam", 2e-3, "sqrt"),
]


@pytest.mark.parametrize(
    ("profile", "optimizer", "lr", "rule"), [r[1:] for r in OWN_BATCH_RULE], ids=[r[0] for r in OWN_BATCH_RULE]
)
def test_a_rows_own_batch_rule_replaces_the_catalog_rule(
    profile: dict[str, object], optimizer: str, lr: float, rule: str
) -> None:
    rec = recommend(profile)
    assert rec.optimizer.name == optimizer
    assert rec.optimizer.hyperparameters["lr"] == pytest.approx(lr, rel=1e-3)
    assert rec.lr_scaling is not None and rec.lr_scaling.rule == rule
    stated = _BOOK.rules[f"architecture.{profile['architecture']}"].batch_rule
    if stated is not None:
        assert f"architecture.{profile['architecture']}'s own linear rule" in rec.lr_scaling.reason
        assert stated.source.removeprefix("external: ") in rec.lr_scaling.reason
