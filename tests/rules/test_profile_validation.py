"""Profile validation: aliases normalise to canonical names; everything else is refused with the field named.

Valid inputs and invalid inputs are two tables side by side.  Every invalid case is checked through both
entry points (``parse_profile`` and ``recommend``), which raise the same ``ProfileError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from optirec import OptirecError, ProfileError
from optirec.rules import Profile, default_rulebook, parse_profile, profile_field_options, recommend
from optirec.rules.loader import normalize
from optirec.rules.profile import ENUM_FIELDS

_BOOK = default_rulebook()
ENTRY_POINTS: list[Callable[..., Any]] = [parse_profile, recommend]
ENTRY_IDS = ["parse_profile", "recommend"]

# ---------------------------------------------------------------------------------------- valid inputs
VALID = [
    pytest.param({}, {}, id="empty"),
    pytest.param({"domain": "CV"}, {"domain": "computer_vision"}, id="domain-CV"),
    pytest.param({"domain": "cv"}, {"domain": "computer_vision"}, id="domain-cv"),
    pytest.param({"domain": "Computer Vision"}, {"domain": "computer_vision"}, id="domain-label-spaces"),
    pytest.param({"domain": "computer-vision"}, {"domain": "computer_vision"}, id="domain-hyphen"),
    pytest.param({"domain": "  NLP  "}, {"domain": "nlp"}, id="domain-padded-upper"),
    pytest.param({"domain": "RL"}, {"domain": "reinforcement_learning"}, id="domain-RL"),
    pytest.param({"domain": "RecSys"}, {"domain": "recommender"}, id="domain-recsys"),
    pytest.param({"domain": "Time-Series"}, {"domain": "time_series"}, id="domain-time-series"),
    pytest.param({"domain": "Large Language Model"}, {"domain": "llm"}, id="domain-llm-words"),
    pytest.param({"architecture": "resnet50"}, {"architecture": "resnet"}, id="arch-resnet50"),
    pytest.param({"architecture": "ResNet50"}, {"architecture": "resnet"}, id="arch-ResNet50"),
    pytest.param({"architecture": "ResNet"}, {"architecture": "resnet"}, id="arch-ResNet"),
    pytest.param({"architecture": "RoBERTa"}, {"architecture": "roberta"}, id="arch-roberta"),
    pytest.param({"architecture": "LLaMA"}, {"architecture": "llama"}, id="arch-llama"),
    pytest.param({"architecture": "Llama-2"}, {"architecture": "llama"}, id="arch-llama-2"),
    pytest.param({"architecture": "GPT-NeoX"}, {"architecture": "gpt"}, id="arch-gpt-neox"),
    pytest.param({"architecture": "ConvNeXt-T"}, {"architecture": "convnext"}, id="arch-convnext-t"),
    pytest.param({"architecture": "Swin-T"}, {"architecture": "swin"}, id="arch-swin-t"),
    pytest.param({"architecture": "DeiT"}, {"architecture": "deit"}, id="arch-deit"),
    pytest.param(
        {"architecture": "Stable Diffusion"}, {"architecture": "latent_diffusion"}, id="arch-stable-diffusion"
    ),
    pytest.param({"architecture": "wav2vec 2.0"}, {"architecture": "wav2vec2"}, id="arch-wav2vec-2-0"),
    pytest.param({"architecture": "AWD-LSTM"}, {"architecture": "awd_lstm"}, id="arch-awd-lstm"),
    pytest.param({"architecture": "nnU-Net"}, {"architecture": "nnunet"}, id="arch-nnu-net"),
    pytest.param({"architecture": "StyleGAN2"}, {"architecture": "stylegan"}, id="arch-stylegan2"),
    pytest.param({"domain": "ASR"}, {"domain": "speech"}, id="domain-asr"),
    pytest.param({"domain": "image generation"}, {"domain": "generative"}, id="domain-image-generation"),
    pytest.param({"architecture": "U-Net"}, {"architecture": "unet"}, id="arch-u-net"),
    pytest.param({"architecture": "EfficientNet-B0"}, {"architecture": "efficientnet"}, id="arch-effnet-b0"),
    pytest.param({"architecture": "Vision Transformer"}, {"architecture": "vit"}, id="arch-vision-transformer"),
    pytest.param({"architecture": "DCGAN"}, {"architecture": "gan_generator"}, id="arch-dcgan"),
    pytest.param({"architecture": "critic"}, {"architecture": "gan_discriminator"}, id="arch-critic"),
    pytest.param({"architecture": "SAC"}, {"architecture": "sac"}, id="arch-sac"),
    pytest.param({"architecture": "A3C"}, {"architecture": "a2c"}, id="arch-a3c"),
    pytest.param({"architecture": "YOLOv8"}, {"architecture": "yolo"}, id="arch-yolov8"),
    pytest.param({"architecture": "two tower"}, {"architecture": "two_tower"}, id="arch-two-tower"),
    pytest.param({"phase": "Pre-training"}, {"phase": "pretraining"}, id="phase-pre-training"),
    pytest.param({"phase": "SFT"}, {"phase": "fine_tuning"}, id="phase-sft"),
    pytest.param({"phase": "scratch"}, {"phase": "from_scratch"}, id="phase-scratch"),
    pytest.param({"sharding": "ZeRO-3"}, {"sharding": "zero3"}, id="sharding-zero-3"),
    pytest.param({"sharding": "FSDP"}, {"sharding": "fsdp"}, id="sharding-fsdp"),
    pytest.param({"sharding": "DDP"}, {"sharding": "none"}, id="sharding-ddp"),
    pytest.param({"adapter": "QLoRA"}, {"adapter": "lora"}, id="adapter-qlora"),
    pytest.param({"backbone": "ResNet50"}, {"backbone": "resnet"}, id="backbone-resnet50"),
    pytest.param(
        {"architecture": "MoCo v3", "backbone": "ViT"}, {"architecture": "moco", "backbone": "vit"}, id="moco-vit"
    ),
    pytest.param({"adapter": "PEFT"}, {"adapter": "lora"}, id="adapter-peft"),
    pytest.param({"adapter": "full fine-tuning"}, {"adapter": "none"}, id="adapter-full"),
    pytest.param({"precision": "bfloat16"}, {"precision": "bf16"}, id="precision-bfloat16"),
    pytest.param({"precision": "half"}, {"precision": "fp16"}, id="precision-half"),
    pytest.param({"optimizer_state_precision": "8-bit"}, {"optimizer_state_precision": "8bit"}, id="state-8-bit"),
    pytest.param({"optimizer_state_precision": "int8"}, {"optimizer_state_precision": "8bit"}, id="state-int8"),
    pytest.param(
        {"num_devices": 2048.0, "batch_tokens": 4e6, "sequence_length": 2048, "total_tokens": 1.4e12},
        {"num_devices": 2048, "batch_tokens": 4_000_000, "sequence_length": 2048, "total_tokens": 1_400_000_000_000},
        id="scale-fields-as-floats",
    ),
    pytest.param({"goal": "pretraining"}, {"goal": None, "phase": "pretraining"}, id="goal-pretraining-is-a-phase"),
    pytest.param(
        {"goal": "pre-training", "phase": "pretraining"},
        {"goal": None, "phase": "pretraining"},
        id="goal-pretraining-agrees-with-phase",
    ),
    pytest.param({"goal": "Fine-Tuning"}, {"goal": "fine_tuning"}, id="goal-fine-tuning"),
    pytest.param({"goal": "SOTA"}, {"goal": "best_accuracy"}, id="goal-sota"),
    pytest.param({"goal": "multi-task"}, {"goal": "multitask"}, id="goal-multi-task"),
    pytest.param({"rl_method": "Policy Gradient"}, {"rl_method": "policy_based"}, id="rl-policy-gradient"),
    pytest.param({"rl_method": "q-learning"}, {"rl_method": "value_based"}, id="rl-q-learning"),
    pytest.param({"data": "sparse"}, {"data": ["sparse_features"]}, id="data-single-string"),
    pytest.param({"data": "Large Batch"}, {"data": ["large_batch"]}, id="data-single-canonical-words"),
    pytest.param({"data": ["Noisy Labels", "noise", "noisy"]}, {"data": ["noisy"]}, id="data-duplicate-aliases"),
    pytest.param(
        {"data": ["drift", "sparse", "Drift"]},
        {"data": ["non_stationary", "sparse_features"]},
        id="data-dedup-keeps-order",
    ),
    pytest.param({"data": ("noisy", "imbalanced")}, {"data": ["noisy", "imbalanced"]}, id="data-tuple"),
    pytest.param({"data": None}, {"data": []}, id="data-null"),
    pytest.param({"data": []}, {"data": []}, id="data-empty"),
    pytest.param({"data": ["noisy"] * 16}, {"data": ["noisy"]}, id="data-16-items-is-the-limit"),
    pytest.param({"num_parameters": 7e9}, {"num_parameters": 7_000_000_000}, id="whole-float-parameters"),
    pytest.param({"batch_size": 1}, {"batch_size": 1}, id="batch-min"),
    pytest.param({"batch_size": 2**26}, {"batch_size": 2**26}, id="batch-max"),
    pytest.param({"device_memory_gb": 80}, {"device_memory_gb": 80.0}, id="device-memory-int"),
    pytest.param({"device_memory_gb": 0.5}, {"device_memory_gb": 0.5}, id="device-memory-fraction"),
    pytest.param(
        {"memory_limited": False, "on_device": True}, {"memory_limited": False, "on_device": True}, id="bools"
    ),
    pytest.param({"mixed_precision": True}, {"mixed_precision": True}, id="mixed-precision"),
    pytest.param(
        {"total_steps": 10, "epochs": 2, "steps_per_epoch": 5, "dataset_size": 100},
        {"total_steps": 10, "epochs": 2, "steps_per_epoch": 5, "dataset_size": 100},
        id="length-fields",
    ),
]


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_valid_profiles_normalise(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    profile = parse_profile(raw)
    assert isinstance(profile, Profile)
    for field, value in expected.items():
        got = getattr(profile, field)
        assert got == value, field
        assert type(got) is type(value), field
    untouched = set(Profile.model_fields) - set(expected) - set(raw)
    for field in untouched:
        assert getattr(profile, field) == Profile.model_fields[field].get_default(call_default_factory=True), field


@pytest.mark.parametrize(("raw", "expected"), VALID)
def test_valid_profiles_are_accepted_by_recommend(raw: dict[str, Any], expected: dict[str, Any]) -> None:
    rec = recommend(raw)
    for field, value in expected.items():
        if value not in (None, []):
            assert rec.profile[field] == value


def _every_term() -> list[Any]:
    out = []
    for field, kind in ENUM_FIELDS.items():
        for term in _BOOK.vocabulary[kind]:
            out.append(pytest.param(field, term.name, term.name, id=f"{field}:{term.name}"))
            out.append(pytest.param(field, term.name.upper(), term.name, id=f"{field}:{term.name}:upper"))
            for alias in term.aliases:
                out.append(pytest.param(field, alias, term.name, id=f"{field}:{term.name}<-{alias}"))
    return out


@pytest.mark.parametrize(("field", "value", "canonical"), _every_term())
def test_every_vocabulary_name_and_alias_resolves(field: str, value: str, canonical: str) -> None:
    profile = parse_profile({field: value})
    got = getattr(profile, field)
    assert got == ([canonical] if field == "data" else canonical)


@pytest.mark.parametrize("kind", [*ENUM_FIELDS.values(), "optimizer"])
def test_alias_keys_are_already_normalized(kind: str) -> None:
    """``Rulebook.resolve`` tries the raw value as a key before normalizing it: that shortcut gives the
    same answer only while every key of the alias table is its own normalized spelling."""
    table = _BOOK.aliases[kind]
    assert table, kind
    assert [key for key in table if normalize(key) != key] == []
    for key, canonical in table.items():
        assert _BOOK.resolve(kind, key) == canonical
        assert _BOOK.resolve(kind, f"  {key.upper()} ") == canonical


def test_parse_profile_accepts_keywords_and_merges_them() -> None:
    assert parse_profile(architecture="ResNet50", batch_size=64) == parse_profile(
        {"architecture": "resnet", "batch_size": 64}
    )
    base = parse_profile({"architecture": "resnet", "batch_size": 64})
    merged = parse_profile(base, batch_size=128, data="noisy")
    assert merged.architecture == "resnet" and merged.batch_size == 128 and merged.data == ["noisy"]
    assert parse_profile(base) is base
    assert parse_profile({"architecture": "vit"}, goal="SOTA").goal == "best_accuracy"
    assert parse_profile(None) == Profile()


def test_profile_field_options_come_from_the_vocabulary() -> None:
    options = profile_field_options()
    assert set(options) == set(ENUM_FIELDS)
    for field, kind in ENUM_FIELDS.items():
        assert options[field] == sorted(t.name for t in _BOOK.vocabulary[kind])


def test_json_schema_lists_the_live_vocabulary() -> None:
    schema = Profile.model_json_schema()
    props = schema["properties"]
    assert props["data"]["items"]["enum"] == _BOOK.valid("data")
    for field in ("domain", "architecture", "goal", "rl_method"):
        enums = [branch.get("enum") for branch in props[field]["anyOf"] if "enum" in branch]
        assert enums == [_BOOK.valid(ENUM_FIELDS[field])], field
    assert schema.get("additionalProperties") is False


# ---------------------------------------------------------------------------------------- invalid inputs
# (profile, field named, valid values expected (True = the field's vocabulary, list = exactly, None = none),
#  did-you-mean suggestion or None, text that str(err) must contain)
_FIELDS = list(Profile.model_fields)
INVALID = [
    # unknown vocabulary values, misspelt -> suggestion
    pytest.param(
        {"domain": "computer_visoin"}, "domain", True, "computer_vision", "computer_visoin", id="domain-misspelt"
    ),
    pytest.param({"domain": "xyzzy"}, "domain", True, None, "xyzzy", id="domain-unknown-no-suggestion"),
    pytest.param({"architecture": "resnett"}, "architecture", True, "resnet", "resnett", id="architecture-misspelt"),
    pytest.param(
        {"architecture": "trasnformer"}, "architecture", True, "transformer", "trasnformer", id="architecture-swap"
    ),
    pytest.param({"goal": "best_acuracy"}, "goal", True, "best_accuracy", "best_acuracy", id="goal-misspelt"),
    pytest.param({"goal": "fine-tunning"}, "goal", True, "fine_tuning", "fine-tunning", id="goal-misspelt-hyphen"),
    pytest.param({"rl_method": "valu"}, "rl_method", True, "value_based", "valu", id="rl_method-misspelt"),
    pytest.param({"phase": "pretrainin"}, "phase", True, "pretraining", "pretrainin", id="phase-misspelt"),
    pytest.param({"adapter": "lorra"}, "adapter", True, "lora", "lorra", id="adapter-misspelt"),
    pytest.param({"backbone": "resnett"}, "backbone", True, "resnet", "resnett", id="backbone-misspelt"),
    pytest.param({"sharding": "zero4"}, "sharding", True, "zero3", "zero4", id="sharding-unknown"),
    pytest.param({"precision": "bf61"}, "precision", True, "bf16", "bf61", id="precision-unknown"),
    pytest.param(
        {"optimizer_state_precision": "4bit"}, "optimizer_state_precision", True, "8bit", "4bit", id="state-unknown"
    ),
    pytest.param(
        {"goal": "pretraining", "phase": "fine_tuning"},
        "goal",
        True,
        None,
        "is a training phase, not a goal",
        id="goal-phase-conflict",
    ),
    pytest.param({"num_devices": 0}, "num_devices", None, None, "got 0", id="devices-0"),
    pytest.param({"num_devices": True}, "num_devices", None, None, "boolean", id="devices-bool"),
    pytest.param({"batch_tokens": "4M"}, "batch_tokens", None, None, "'4M'", id="batch-tokens-string"),
    pytest.param({"sequence_length": 1.5}, "sequence_length", None, None, "1.5", id="sequence-length-fraction"),
    pytest.param({"total_tokens": -1}, "total_tokens", None, None, "got -1", id="total-tokens-negative"),
    pytest.param({"data": ["noisey"]}, "data", True, "noisy", "noisey", id="data-misspelt"),
    pytest.param(
        {"data": "sparse_feature"}, "data", True, "sparse_features", "sparse_feature", id="data-string-misspelt"
    ),
    pytest.param(
        {"data": ["noisy", "imbalancd"]}, "data", True, "imbalanced", "imbalancd", id="data-second-item-misspelt"
    ),
    # enumerated fields given a non-string
    pytest.param({"domain": 5}, "domain", True, None, "must be a string", id="domain-int"),
    pytest.param({"architecture": ["resnet"]}, "architecture", True, None, "must be a string", id="architecture-list"),
    pytest.param({"data": [5]}, "data", True, None, "must be a string", id="data-item-int"),
    # unknown fields
    pytest.param({"batchsize": 3}, "batchsize", _FIELDS, "batch_size", "unknown field", id="unknown-field-batchsize"),
    pytest.param(
        {"archtecture": "resnet"}, "archtecture", _FIELDS, "architecture", "unknown field", id="unknown-field-arch"
    ),
    pytest.param({"optimizer": "adam"}, "optimizer", _FIELDS, None, "unknown field", id="unknown-field-optimizer"),
    # wrong types for numbers
    pytest.param({"batch_size": "x"}, "batch_size", None, None, "'x'", id="batch-string"),
    pytest.param({"batch_size": True}, "batch_size", None, None, "boolean", id="batch-true"),
    pytest.param({"batch_size": False}, "batch_size", None, None, "boolean", id="batch-false"),
    pytest.param({"batch_size": 7.5}, "batch_size", None, None, "7.5", id="batch-fraction"),
    pytest.param({"batch_size": [1]}, "batch_size", None, None, "integer", id="batch-list"),
    pytest.param({"batch_size": None, "epochs": "many"}, "epochs", None, None, "'many'", id="epochs-string"),
    pytest.param({"num_parameters": True}, "num_parameters", None, None, "boolean", id="params-bool"),
    pytest.param({"device_memory_gb": True}, "device_memory_gb", None, None, "boolean", id="device-bool"),
    pytest.param({"device_memory_gb": "lots"}, "device_memory_gb", None, None, "'lots'", id="device-string"),
    # out-of-range numbers
    pytest.param({"batch_size": 0}, "batch_size", None, None, "got 0", id="batch-0"),
    pytest.param({"batch_size": -1}, "batch_size", None, None, "got -1", id="batch-negative"),
    pytest.param({"batch_size": 1e30}, "batch_size", None, None, "less than or equal", id="batch-1e30"),
    pytest.param({"batch_size": 2**26 + 1}, "batch_size", None, None, "less than or equal", id="batch-over-max"),
    pytest.param({"num_parameters": 0}, "num_parameters", None, None, "got 0", id="params-0"),
    pytest.param({"num_parameters": 10**14}, "num_parameters", None, None, "less than or equal", id="params-huge"),
    pytest.param({"total_steps": 0}, "total_steps", None, None, "got 0", id="total-steps-0"),
    pytest.param({"epochs": -3}, "epochs", None, None, "got -3", id="epochs-negative"),
    pytest.param({"steps_per_epoch": 0}, "steps_per_epoch", None, None, "got 0", id="steps-per-epoch-0"),
    pytest.param({"dataset_size": 0}, "dataset_size", None, None, "got 0", id="dataset-0"),
    pytest.param({"device_memory_gb": 0}, "device_memory_gb", None, None, "greater than 0", id="device-0"),
    pytest.param({"device_memory_gb": -5}, "device_memory_gb", None, None, "got -5", id="device-negative"),
    pytest.param({"device_memory_gb": float("nan")}, "device_memory_gb", None, None, "finite", id="device-nan"),
    pytest.param({"device_memory_gb": float("inf")}, "device_memory_gb", None, None, "finite", id="device-inf"),
    pytest.param({"device_memory_gb": float("-inf")}, "device_memory_gb", None, None, "finite", id="device-minus-inf"),
    # strict booleans
    pytest.param({"memory_limited": "yes"}, "memory_limited", None, None, "'yes'", id="memory-limited-yes"),
    pytest.param({"memory_limited": 1}, "memory_limited", None, None, "boolean", id="memory-limited-1"),
    pytest.param({"memory_limited": 0}, "memory_limited", None, None, "boolean", id="memory-limited-0"),
    pytest.param({"on_device": "true"}, "on_device", None, None, "'true'", id="on-device-string"),
    pytest.param({"mixed_precision": 1.0}, "mixed_precision", None, None, "boolean", id="mixed-precision-float"),
    # data not a list / too long
    pytest.param({"data": 5}, "data", None, None, "list", id="data-int"),
    pytest.param({"data": {"noisy": True}}, "data", None, None, "list", id="data-mapping"),
    pytest.param({"data": ["noisy"] * 17}, "data", None, None, "16", id="data-17-items"),
    pytest.param({"data": _BOOK.valid("data") * 3}, "data", None, None, "16", id="data-24-items"),
]


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=ENTRY_IDS)
@pytest.mark.parametrize(("raw", "field", "valid", "suggestion", "text"), INVALID)
def test_invalid_profiles_are_refused(
    entry: Callable[..., Any], raw: dict[str, Any], field: str, valid: Any, suggestion: str | None, text: str
) -> None:
    with pytest.raises(ProfileError) as info:
        entry(raw)
    err = info.value
    assert isinstance(err, OptirecError) and isinstance(err, ValueError)
    assert len(err.issues) == 1, [i.sentence() for i in err.issues]
    issue = err.issues[0]
    assert issue.field == field
    if valid is True:
        assert list(issue.valid or []) == _BOOK.valid(ENUM_FIELDS[field])
    elif valid is None:
        assert not issue.valid
    else:
        assert list(issue.valid or []) == list(valid)
    assert issue.suggestion == suggestion
    message = str(err)
    assert message.startswith(f"{field}: "), message
    assert text in message, message
    if suggestion:
        assert f"did you mean {suggestion!r}" in message
    if issue.valid:
        assert "valid values: " + ", ".join(issue.valid) in message
    assert err.first_line() == issue.sentence()
    assert issue.as_dict()["field"] == field


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=ENTRY_IDS)
@pytest.mark.parametrize(
    "raw",
    [
        pytest.param([{"architecture": "resnet"}], id="list"),
        pytest.param(["architecture", "resnet"], id="list-of-strings"),
        pytest.param("resnet", id="string"),
        pytest.param('{"architecture": "resnet"}', id="json-text"),
        pytest.param(5, id="int"),
        pytest.param(b"{}", id="bytes"),
    ],
)
def test_non_mapping_profiles_are_refused(entry: Callable[..., Any], raw: Any) -> None:
    with pytest.raises(ProfileError) as info:
        entry(raw)
    issues = info.value.issues
    assert [i.field for i in issues] == ["profile"]
    assert "JSON object" in str(info.value)
    assert str(info.value).startswith("profile: ")


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=ENTRY_IDS)
def test_unknown_keyword_field_is_refused(entry: Callable[..., Any]) -> None:
    with pytest.raises(ProfileError) as info:
        entry(batchsize=256)
    issue = info.value.issues[0]
    assert issue.field == "batchsize"
    assert issue.suggestion == "batch_size"
    assert "batch_size" in (issue.valid or [])


@pytest.mark.parametrize("entry", ENTRY_POINTS, ids=ENTRY_IDS)
def test_every_problem_is_reported(entry: Callable[..., Any]) -> None:
    with pytest.raises(ProfileError) as info:
        entry({"domain": "visoin", "batch_size": 0, "memory_limited": "yes", "colour": "red"})
    err = info.value
    assert {i.field for i in err.issues} == {"domain", "batch_size", "memory_limited", "colour"}
    for issue in err.issues:
        assert issue.field in str(err)
    assert "(and 3 more problem(s))" in err.first_line()


def test_valid_and_invalid_tables_do_not_overlap() -> None:
    valid_raws = {repr(p.values[0]) for p in VALID}  # repr: True == 1 but {"batch_size": True} is not valid
    for case in INVALID:
        assert repr(case.values[0]) not in valid_raws, case.id
