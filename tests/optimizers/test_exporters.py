"""Exporters: a Recommendation as Hugging Face TrainingArguments kwargs, a Lightning configure_optimizers,
timm create_optimizer_v2 kwargs, plain PyTorch code and an Optuna / Ray Tune search space.

Parametrised over recommendations for every architecture row of 004 §2.3, every domain, goal and data
characteristic, memory limits, the recommender hybrid, every catalog optimizer and every schedule.
The names a format may use are literal lists taken from the libraries' sources (transformers
``training_args.py`` / ``trainer_utils.py``, timm ``_optim_factory.py``); where a library is installed
its objects are built for real as well.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from optirec.optimizers.errors import BuildError, ExportError
from optirec.optimizers.exporters import (
    FORMATS,
    export,
    export_notes,
    to_hf,
    to_lightning,
    to_optuna,
    to_timm,
    to_torch_code,
)
from optirec.optimizers.exporters import hf as hf_exporter
from optirec.optimizers.exporters import lightning as lightning_exporter
from optirec.optimizers.schedulers import SCHEDULES
from optirec.rules import OptirecError, Recommendation, default_rulebook, profile_field_options, recommend
from optirec.rules.recommendation import OptimizerChoice, ParamGroup, ScheduleSpec

BOOK = default_rulebook()
OPTIONS = profile_field_options()
NAMES = sorted(BOOK.optimizers)
HANDWRITTEN = {"kfac": "optirec.optimizers.kfac", "newton": "optirec.optimizers.newton"}

# ------------------------------------------------------------------------------ names from the libraries
#: transformers (5.x) TrainingArguments fields, from src/transformers/training_args.py (a subset: every field
#: the exporter may set, and the neighbours it deliberately leaves alone)
HF_FIELDS = {
    "output_dir",
    "per_device_train_batch_size",
    "num_train_epochs",
    "max_steps",
    "learning_rate",
    "lr_scheduler_type",
    "lr_scheduler_kwargs",
    "warmup_steps",
    "optim",
    "optim_args",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "optim_target_modules",
    "gradient_accumulation_steps",
    "max_grad_norm",
    "bf16",
    "fp16",
}
#: transformers OptimizerNames values (training_args.py)
HF_OPTIM = {
    "adamw_torch",
    "adamw_torch_fused",
    "adamw_torch_xla",
    "adamw_torch_npu_fused",
    "adamw_apex_fused",
    "adafactor",
    "adamw_anyprecision",
    "adamw_torch_4bit",
    "adamw_torch_8bit",
    "ademamix",
    "sgd",
    "adagrad",
    "adamw_bnb_8bit",
    "adamw_8bit",
    "ademamix_8bit",
    "lion_8bit",
    "lion_32bit",
    "paged_adamw_32bit",
    "paged_adamw_8bit",
    "paged_ademamix_32bit",
    "paged_ademamix_8bit",
    "paged_lion_32bit",
    "paged_lion_8bit",
    "rmsprop",
    "rmsprop_bnb",
    "rmsprop_bnb_8bit",
    "rmsprop_bnb_32bit",
    "galore_adamw",
    "galore_adamw_8bit",
    "galore_adafactor",
    "galore_adamw_layerwise",
    "galore_adamw_8bit_layerwise",
    "galore_adafactor_layerwise",
    "lomo",
    "adalomo",
    "grokadamw",
    "schedule_free_radam",
    "schedule_free_adamw",
    "schedule_free_sgd",
    "apollo_adamw",
    "apollo_adamw_layerwise",
    "stable_adamw",
}
#: transformers SchedulerType values (trainer_utils.py)
HF_SCHEDULERS = {
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
    "constant",
    "constant_with_warmup",
    "inverse_sqrt",
    "reduce_lr_on_plateau",
    "cosine_with_min_lr",
    "cosine_warmup_with_min_lr",
    "warmup_stable_decay",
}
#: timm optimizer registry names (timm/optim/_optim_factory.py), without the apex / bitsandbytes ones
TIMM_OPT = {
    "sgd", "nesterov", "momentum", "sgdp", "sgdw", "adam", "adamw", "adamwlegacy", "adamp", "nadam", "nadamlegacy",
    "nadamw", "radam", "radamlegacy", "radamw", "adamax", "adafactor", "adafactorbv", "adopt", "adoptw", "lamb",
    "lambc", "lambw", "lars", "larc", "nlars", "nlarc", "adabelief", "radabelief", "adadelta", "adagrad", "adan",
    "adanw", "adahessian", "kron", "kronw", "laprop", "lion", "madgrad", "madgradw", "mars", "muon", "nmuon",
    "novograd", "rmsprop", "rmsproptf",
}  # fmt: skip
TIMM_KWARGS = {
    "opt", "lr", "weight_decay", "momentum", "foreach", "filter_bias_and_bn", "layer_decay", "betas", "eps", "alpha",
    "nesterov", "dampening", "decay_rate", "centered", "amsgrad", "momentum_decay", "lr_decay",
    "initial_accumulator_value", "max_grad_norm", "always_adapt", "decoupled_decay",
}  # fmt: skip
#: timm create_scheduler_v2's arguments (timm/scheduler/scheduler_factory.py) and the schedules timm cannot run
TIMM_SCHEDULER_KWARGS = {
    "sched", "num_epochs", "decay_epochs", "decay_milestones", "cooldown_epochs", "patience_epochs", "decay_rate",
    "min_lr", "warmup_lr", "warmup_epochs", "warmup_prefix", "noise", "noise_pct", "noise_std", "noise_seed",
    "cycle_mul", "cycle_decay", "cycle_limit", "k_decay", "plateau_mode", "step_on_epochs", "updates_per_epoch",
}  # fmt: skip
TIMM_NO_SCHEDULE = {"one_cycle", "inverse_sqrt"}

#: which catalog optimizers each format can run (the rest must raise ExportError naming them)
HF_CAN = {
    "sgd", "sgd_momentum", "nag", "adagrad", "rmsprop", "adam", "adamw", "adafactor", "lion", "schedulefree_adamw",
    "schedulefree_sgd",
}  # fmt: skip
#: the Trainer's schedule-free optim values: the optimizer warms up itself (warmup_steps in steps, a constant
#: scheduler), SGD's momentum stays at schedulefree.SGDScheduleFree's 0.9
HF_SCHEDULE_FREE = {"schedulefree_adamw": "schedule_free_adamw", "schedulefree_sgd": "schedule_free_sgd"}
HF_SCHEDULES = {"constant", "linear", "cosine", "inverse_sqrt", "poly"}
TIMM_CAN = {
    "sgd", "sgd_momentum", "nag", "adagrad", "rmsprop", "adam", "adamw", "adamax", "nadam", "radam", "lamb",
    "adafactor", "lion", "ranger", "muon",
}  # fmt: skip


# ---------------------------------------------------------------------------------- recommendations
def _profiles() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for arch in OPTIONS["architecture"]:
        out.append((f"arch-{arch}", {"architecture": arch, "total_steps": 2000}))
    for arch in ("resnet", "bert", "gpt", "lstm"):
        out.append((f"arch-{arch}-no-total", {"architecture": arch}))
        out.append((f"arch-{arch}-big-batch", {"architecture": arch, "batch_size": 4096, "total_steps": 500}))
    for domain in OPTIONS["domain"]:
        out.append((f"domain-{domain}", {"domain": domain, "total_steps": 1000}))
    for goal in OPTIONS["goal"]:
        out.append((f"goal-{goal}", {"architecture": "vit", "goal": goal, "total_steps": 1000}))
    for data in OPTIONS["data"]:
        out.append((f"data-{data}", {"data": [data], "total_steps": 1000}))
    out += [
        ("memory-limited", {"architecture": "bert", "memory_limited": True, "total_steps": 1000}),
        ("on-device", {"architecture": "cnn", "on_device": True}),
        ("small-device", {"architecture": "gpt", "num_parameters": 7_000_000_000, "device_memory_gb": 40}),
        ("recommender-hybrid", {"domain": "recommender", "total_steps": 1000}),
        ("recommender-embedding", {"domain": "recommender", "architecture": "embedding"}),
        ("tiny-model", {"num_parameters": 500, "data": ["dense_features"]}),
        ("best-accuracy-phases", {"architecture": "efficientnet", "goal": "best_accuracy", "total_steps": 1000}),
        ("transfer", {"architecture": "resnet", "goal": "transfer_learning", "total_steps": 1000}),
    ]
    return out


PROFILES = _profiles()
RECS = {pid: recommend(profile) for pid, profile in PROFILES}
BASE = recommend(architecture="resnet", total_steps=100)


def _with(rec: Recommendation, **update: Any) -> Recommendation:
    """A copy with fields replaced, validated again (as a client would send it)."""
    return Recommendation.model_validate(rec.model_copy(update=update).model_dump(mode="json"))


def _catalog_rec(name: str) -> Recommendation:
    hp = dict(BOOK.defaults[name])
    groups = [g for g in BASE.param_groups if g.optimizer is None]
    return _with(BASE, optimizer=OptimizerChoice(name=name, hyperparameters=hp), param_groups=groups)


def _schedule(name: str, *, total: int | None, warmup: bool, **fields: Any) -> ScheduleSpec:
    ratio = 0.1 if warmup else 0.0
    return ScheduleSpec(
        **fields,
        name=name,  # type: ignore[arg-type]
        warmup_steps=None if total is None else round(total * ratio),
        warmup_ratio=ratio,
        total_steps=total,
        milestones=[total // 2, total * 3 // 4] if name == "step" and total else None,
        milestone_fractions=[0.5, 0.75] if name == "step" else None,
        gamma=(0.1 if name == "step" else (0.01 ** (1 / total) if name == "exponential" and total else None)),
    )


SCHEDULE_NAMES = list(SCHEDULES)
SCHEDULE_CASES = [(name, total, warmup) for name in SCHEDULE_NAMES for total in (40, None) for warmup in (False, True)]


def _hybrid(rec: Recommendation) -> bool:
    return any(g.optimizer is not None for g in rec.param_groups)


def _has_warmup(schedule: ScheduleSpec) -> bool:
    return (schedule.warmup_steps or 0) > 0 or (schedule.warmup_steps is None and schedule.warmup_ratio > 0)


def _hf_schedule_free_ok(rec: Recommendation) -> bool:
    if rec.optimizer.name not in HF_SCHEDULE_FREE:
        return True
    if rec.optimizer.hyperparameters.get("momentum", 0.9) != 0.9:
        return False
    s = rec.schedule
    return not _has_warmup(s) or (s.name == "constant" and s.warmup_steps is not None)


def _hf_expected(rec: Recommendation) -> bool:
    hp = rec.optimizer.hyperparameters
    return (
        rec.optimizer.name in HF_CAN
        and rec.schedule.name in HF_SCHEDULES
        and not _hybrid(rec)
        and not (rec.optimizer.name == "adam" and hp.get("weight_decay"))
        and _hf_schedule_free_ok(rec)
    )


def _timm_expected(rec: Recommendation) -> bool:
    hp = rec.optimizer.hyperparameters
    lookahead_ok = rec.optimizer.name == "lookahead" and hp.get("k", 5) == 6 and hp.get("lookahead_alpha") == 0.5
    optimizer_ok = rec.optimizer.name in TIMM_CAN or lookahead_ok
    return optimizer_ok and not _hybrid(rec) and rec.schedule.name not in TIMM_NO_SCHEDULE


# ------------------------------------------------------------------------------------------- basics
def test_formats() -> None:
    assert FORMATS == ("json", "hf", "lightning", "timm", "torch", "optuna")


def test_export_error_is_a_build_error() -> None:
    assert issubclass(ExportError, BuildError)
    assert issubclass(ExportError, ValueError)
    assert issubclass(ExportError, OptirecError)


def test_unknown_format_names_the_valid_ones() -> None:
    with pytest.raises(ExportError) as info:
        export(BASE, "yaml")
    assert info.value.field == "format"
    for fmt in FORMATS:
        assert fmt in str(info.value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_accepts_the_object_its_json_dict_and_its_json_text(fmt: str) -> None:
    rec = RECS["arch-resnet"]
    expected = export(rec, fmt)
    assert export(rec.model_dump(mode="json"), fmt) == expected
    assert export(rec.model_dump_json(), fmt) == expected


def test_invalid_recommendation_is_an_export_error() -> None:
    with pytest.raises(ExportError) as info:
        to_hf({"optimizer": {"name": "sgd", "hyperparameters": []}})  # {"name": "sgd"} alone is valid (issue 23)
    assert info.value.field == "optimizer.hyperparameters"
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("pid", list(RECS))
def test_json_is_the_recommendation(pid: str) -> None:
    rec = RECS[pid]
    dumped = export(rec, "json")
    assert dumped == rec.model_dump(mode="json")
    assert Recommendation.model_validate(json.loads(json.dumps(dumped))) == rec


# --------------------------------------------------------------------------------------- Hugging Face
def _check_hf(rec: Recommendation, kw: dict[str, Any]) -> None:
    hp = rec.optimizer.hyperparameters
    assert set(kw) <= HF_FIELDS, set(kw) - HF_FIELDS
    assert kw["optim"] in HF_OPTIM
    assert kw["lr_scheduler_type"] in HF_SCHEDULERS
    assert kw["learning_rate"] == hp["lr"]
    assert kw["weight_decay"] == hp.get("weight_decay", 0.0)
    clip = rec.gradient_clipping
    assert kw["max_grad_norm"] == (clip.max_norm if clip is not None else 0.0)
    warm = kw["warmup_steps"]
    assert (isinstance(warm, int) and warm >= 0) or (isinstance(warm, float) and 0 < warm < 1)
    if rec.schedule.warmup_steps is not None:
        assert warm == rec.schedule.warmup_steps
    if rec.schedule.total_steps is not None:
        assert kw["max_steps"] == rec.schedule.total_steps
    else:
        assert "max_steps" not in kw
    if rec.batch_size is not None:  # the global batch over the devices, exactly
        devices = rec.profile.get("num_devices") or 1
        assert kw["per_device_train_batch_size"] * kw["gradient_accumulation_steps"] * devices == rec.batch_size
    else:
        assert "per_device_train_batch_size" not in kw  # the Trainer's default, with a note
    if "betas" in hp and kw["optim"] in ("adamw_torch", "lion_32bit", "schedule_free_adamw"):
        assert [kw["adam_beta1"], kw["adam_beta2"]] == list(hp["betas"])
    if kw["optim"] == "sgd":
        args = dict(a.split("=") for a in kw["optim_args"].split(",")) if "optim_args" in kw else {}
        assert float(args.get("momentum", 0.0)) == hp.get("momentum", 0.0)
        assert args.get("nesterov", "False") == str(hp.get("nesterov", False))
    if rec.optimizer.name in HF_SCHEDULE_FREE:
        assert kw["optim"] == HF_SCHEDULE_FREE[rec.optimizer.name]
        assert "momentum" not in kw.get("optim_args", "")  # the Trainer passes none to SGDScheduleFree
    if rec.schedule.name == "constant":
        warm_scheduler = _has_warmup(rec.schedule) and rec.optimizer.name not in HF_SCHEDULE_FREE
        assert kw["lr_scheduler_type"] == ("constant_with_warmup" if warm_scheduler else "constant")
    elif rec.schedule.name == "poly" or (rec.schedule.name == "linear" and rec.schedule.final_lr_fraction):
        assert kw["lr_scheduler_type"] == "polynomial"
    elif rec.schedule.name == "cosine" and rec.schedule.final_lr_fraction:
        assert kw["lr_scheduler_type"] == "cosine_with_min_lr"
    else:
        assert kw["lr_scheduler_type"] == rec.schedule.name


def _hf_case(rec: Recommendation) -> None:
    if _hf_expected(rec):
        _check_hf(rec, to_hf(rec))
        return
    with pytest.raises(ExportError) as info:
        to_hf(rec)
    message = str(info.value)
    assert message.startswith("format: hf ")
    assert "\n" not in message
    assert "formats that can express this recommendation:" in message
    assert "torch" in message.rsplit(":", 1)[1]
    if rec.optimizer.name not in HF_CAN or not _hf_schedule_free_ok(rec):
        assert repr(rec.optimizer.name) in message or "momentum" in message
    elif rec.optimizer.name == "adam" and rec.optimizer.hyperparameters.get("weight_decay"):
        assert "L2" in message  # the Trainer's Adam-family optim values all decay decoupled
    elif _hybrid(rec):
        assert "parameter split" in message
    elif rec.schedule.name not in HF_SCHEDULES:
        assert repr(rec.schedule.name) in message


@pytest.mark.parametrize("pid", list(RECS))
def test_hf_profiles(pid: str) -> None:
    _hf_case(RECS[pid])


@pytest.mark.parametrize("name", NAMES)
def test_hf_every_optimizer(name: str) -> None:
    rec = _catalog_rec(name)
    _hf_case(_with(rec, schedule=_schedule("cosine", total=100, warmup=True)))


@pytest.mark.parametrize(("schedule", "total", "warmup"), SCHEDULE_CASES)
def test_hf_every_schedule(schedule: str, total: int | None, warmup: bool) -> None:
    _hf_case(_with(RECS["arch-bert"], schedule=_schedule(schedule, total=total, warmup=warmup)))


def test_hf_sgd_momentum_goes_through_optim_args() -> None:
    kw = to_hf(_with(_catalog_rec("nag"), schedule=_schedule("cosine", total=100, warmup=False)))
    assert kw["optim"] == "sgd"
    assert kw["optim_args"] == "momentum=0.9,nesterov=True"


def test_hf_adam_with_weight_decay_is_refused() -> None:
    rec = _with(_catalog_rec("adam"), schedule=_schedule("cosine", total=100, warmup=False))
    assert to_hf(rec)["optim"] == "adamw_torch"  # weight_decay 0: the same update
    decayed = _with(rec, optimizer=OptimizerChoice(name="adam", hyperparameters={"lr": 1e-3, "weight_decay": 0.01}))
    with pytest.raises(ExportError, match=r"'adam'.*L2"):
        to_hf(decayed)


def test_hf_no_clipping_turns_the_default_off() -> None:
    rec = RECS["arch-bert"]
    assert rec.gradient_clipping is None
    assert to_hf(rec)["max_grad_norm"] == 0.0
    assert any("default clipping at 1.0 is switched off" in n for n in export_notes(rec, "hf"))


@pytest.mark.parametrize(
    ("version", "field", "absent"), [("5.24", "warmup_steps", "warmup_ratio"), ("4.57", "warmup_ratio", "warmup_steps")]
)
def test_hf_unknown_total_gives_a_warmup_ratio_and_a_note(version: str, field: str, absent: str) -> None:
    # transformers 5.x takes a float warmup_steps below 1 as a ratio; 4.x raises on it and has warmup_ratio
    rec = RECS["arch-bert-no-total"]
    notes: list[str] = []
    kw = hf_exporter.to_hf(rec, version=version, notes=notes)
    assert kw[field] == rec.schedule.warmup_ratio
    assert absent not in kw
    assert any(n.startswith(f"{field}=") and "math.ceil" in n for n in notes)
    assert any(n.startswith(f"written for transformers {version} (asked)") for n in notes)


def test_hf_builds_real_training_arguments() -> None:
    transformers = pytest.importorskip("transformers")
    import dataclasses

    fields = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    assert fields >= HF_FIELDS
    from transformers.trainer_utils import SchedulerType
    from transformers.training_args import OptimizerNames

    assert {o.value for o in OptimizerNames} >= {"adamw_torch", "sgd", "adagrad", "rmsprop", "adafactor"}
    assert {s.value for s in SchedulerType} >= {"linear", "cosine", "constant", "constant_with_warmup"}
    for rec in RECS.values():
        if _hf_expected(rec):
            kw = to_hf(rec)
            assert set(kw) <= fields
            transformers.TrainingArguments(output_dir="unused", report_to="none", use_cpu=True, **kw)


# --------------------------------------------------------------------------------------------- timm
def _timm_case(rec: Recommendation) -> None:
    if not _timm_expected(rec):
        with pytest.raises(ExportError) as info:
            to_timm(rec)
        message = str(info.value)
        assert message.startswith("format: timm ")
        assert "\n" not in message
        if _hybrid(rec):
            assert "parameter split" in message
        elif rec.optimizer.name in TIMM_CAN:
            assert repr(rec.schedule.name) in message
        else:
            assert repr(rec.optimizer.name) in message
        return
    out = to_timm(rec)
    assert set(out) == {"create_optimizer_v2", "create_scheduler_v2", "train_args"}
    assert set(out["create_scheduler_v2"]) <= TIMM_SCHEDULER_KWARGS
    kw = out["create_optimizer_v2"]
    hp = rec.optimizer.hyperparameters
    assert set(kw) <= TIMM_KWARGS, set(kw) - TIMM_KWARGS
    opt = kw["opt"]
    assert opt.removeprefix("lookahead_") in TIMM_OPT
    assert opt.startswith("lookahead_") == (rec.optimizer.name in ("lookahead", "ranger"))
    if rec.optimizer.name != "lookahead":
        assert kw["lr"] == hp["lr"]
        assert kw["weight_decay"] == hp.get("weight_decay", 0.0)
    if rec.optimizer.name in ("sgd", "sgd_momentum", "nag", "rmsprop"):
        assert kw["momentum"] == hp.get("momentum", 0.0)  # timm would default it to 0.9
    if rec.optimizer.name in ("sgd", "sgd_momentum", "nag"):
        assert kw["opt"] == ("nesterov" if hp.get("nesterov") else "momentum")
    if "betas" in hp:
        assert list(kw["betas"]) == list(hp["betas"])


@pytest.mark.parametrize("pid", list(RECS))
def test_timm_profiles(pid: str) -> None:
    _timm_case(RECS[pid])


@pytest.mark.parametrize("name", NAMES)
def test_timm_every_optimizer(name: str) -> None:
    _timm_case(_catalog_rec(name))


def test_timm_lookahead_needs_timms_fixed_k() -> None:
    rec = _catalog_rec("lookahead")  # k=5 in the catalog; timm's wrapper is fixed at k=6
    with pytest.raises(ExportError, match=r"'lookahead'.*k=6"):
        to_timm(rec)
    six = _with(
        rec, optimizer=OptimizerChoice(name="lookahead", hyperparameters={**BOOK.defaults["lookahead"], "k": 6})
    )
    assert to_timm(six)["create_optimizer_v2"]["opt"] == "lookahead_adam"


def test_timm_layerwise_decay() -> None:
    group = ParamGroup(name="layerwise", match=["layers"], layerwise_lr_decay=0.75, why="test")
    rec = _with(RECS["arch-vit"], param_groups=[*RECS["arch-vit"].param_groups, group])
    out = to_timm(rec)
    assert out["create_optimizer_v2"]["layer_decay"] == 0.75
    assert out["create_scheduler_v2"]["sched"] == "cosine"  # lr_scale only reaches the lr through timm's scheduler
    assert any("lr_scale" in n for n in export_notes(rec, "timm"))


def _timm_module() -> Any:
    try:
        return importlib.import_module("timm.optim")
    except ImportError:
        pytest.skip("timm is not installed")


def test_timm_creates_real_optimizers() -> None:
    timm_optim = _timm_module()
    torch = pytest.importorskip("torch")
    for rec in [*RECS.values(), *(_catalog_rec(n) for n in NAMES)]:
        if not _timm_expected(rec):
            continue
        model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))
        optimizer = timm_optim.create_optimizer_v2(model, **to_timm(rec)["create_optimizer_v2"])
        model(torch.randn(3, 4)).pow(2).mean().backward()
        optimizer.step()


# -------------------------------------------------------------------------------------------- torch
def _importable(name: str) -> bool:
    module = BOOK.optimizers[name].class_path.rsplit(".", 1)[0]
    try:
        return importlib.util.find_spec(module) is not None and hasattr(
            importlib.import_module(module), BOOK.optimizers[name].class_path.rsplit(".", 1)[1]
        )
    except ImportError:
        return False


def _resolve(path: str) -> Any:
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _model_for(rec: Recommendation) -> Any:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    if _hybrid(rec):

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.emb = torch.nn.Embedding(10, 4)
                self.fc = torch.nn.Linear(4, 2)

            def forward(self, idx: Any) -> Any:
                return self.fc(self.emb(idx))

        return Net(), torch.randint(0, 10, (8,))
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2)), torch.randn(8, 4)


def _expected_class_and_lr(rec: Recommendation) -> tuple[str, float | None]:
    name = rec.optimizer.name
    hp = rec.optimizer.hyperparameters
    if name == "lookahead":
        base = str(hp.get("base", "adam"))
        return BOOK.optimizers[name].class_path, hp.get("lr", BOOK.defaults[base].get("lr"))
    if name == "sam":
        base = str(hp.get("base", "sgd_momentum"))
        return BOOK.optimizers[name].class_path, hp.get("lr", BOOK.defaults[base].get("lr"))
    return BOOK.optimizers[name].class_path, hp.get("lr")


def _run_torch_code(rec: Recommendation, steps: int = 5) -> dict[str, Any]:
    """Parse and execute the snippet on a small model, then take a few training steps."""
    code = to_torch_code(rec)
    ast.parse(code)
    names = [rec.optimizer.name, *(g.optimizer for g in rec.param_groups if g.optimizer)]
    for name in names:
        assert name is not None
        if name in HANDWRITTEN and importlib.util.find_spec(HANDWRITTEN[name]) is None:
            pytest.skip(f"{HANDWRITTEN[name]} does not exist yet")
        if not _importable(name):
            pytest.skip(f"{BOOK.optimizers[name].class_path} cannot be imported here")
    model, inputs = _model_for(rec)
    namespace: dict[str, Any] = {"model": model}
    exec(compile(code, f"<torch code for {rec.optimizer.name}>", "exec"), namespace)
    optimizer = namespace["optimizer"]
    cls_path, lr = _expected_class_and_lr(rec)
    assert isinstance(optimizer, _resolve(cls_path)), type(optimizer)
    if lr is not None:
        group_lrs = {g.get("initial_lr", g["lr"]) for g in optimizer.param_groups}
        decay = next((g.layerwise_lr_decay for g in rec.param_groups if g.layerwise_lr_decay), None)
        if rec.schedule.name == "one_cycle":
            pass
        elif decay is None:
            assert group_lrs == {lr}, (group_lrs, lr)
        else:  # layer-wise decay: the head at lr, each layer below it decay x the lr of the one above
            assert max(group_lrs) == pytest.approx(lr), (group_lrs, lr)
            depths = [math.log(v / lr) / math.log(decay) for v in group_lrs]
            assert all(d > -1e-9 and abs(d - round(d)) < 1e-6 for d in depths), (group_lrs, lr, decay)
        assert optimizer.defaults["lr"] == lr

    def compute_loss() -> Any:
        return model(inputs).pow(2).mean()

    losses = [float(namespace["training_step"](compute_loss)) for _ in range(steps)]
    assert all(math.isfinite(v) for v in losses), losses
    return namespace


@pytest.mark.parametrize("pid", list(RECS))
def test_torch_code_profiles(pid: str) -> None:
    rec = RECS[pid]
    namespace = _run_torch_code(rec)
    if rec.gradient_clipping is not None:
        clip = f"clip_grad_norm_(model.parameters(), max_norm={rec.gradient_clipping.max_norm})"
        assert clip in to_torch_code(rec)
    if _hybrid(rec):
        main = next(g for g in rec.param_groups if g.optimizer == rec.optimizer.name)
        others = [g for g in rec.param_groups if g.optimizer and g is not main]
        for g in others:
            assert isinstance(namespace[f"{g.name}_optimizer"], _resolve(BOOK.optimizers[str(g.optimizer)].class_path))
    if rec.ema is not None:
        assert "ema_model" in namespace


@pytest.mark.parametrize("name", NAMES)
def test_torch_code_every_optimizer(name: str) -> None:
    rec = _catalog_rec(name)
    code = to_torch_code(rec)
    ast.parse(code)
    if name == "sophia":
        assert "torch.autograd.grad(loss, params, create_graph=True)" in code
    elif BOOK.optimizers[name].needs_closure:
        assert re.search(r"optimizer\.step\((closure|second_pass)\)", code)
    if BOOK.optimizers[name].class_path.startswith("pytorch_optimizer."):
        assert "import pytorch_optimizer" in code
    _run_torch_code(rec)


@pytest.mark.parametrize(("schedule", "total", "warmup"), SCHEDULE_CASES)
def test_torch_code_every_schedule(schedule: str, total: int | None, warmup: bool) -> None:
    rec = _with(RECS["arch-resnet"], schedule=_schedule(schedule, total=total, warmup=warmup))
    code = to_torch_code(rec)
    assert ("SequentialLR" in code) == (warmup and schedule != "one_cycle")
    namespace = _run_torch_code(rec, steps=12)
    if schedule == "step" and total and not warmup:
        assert namespace["scheduler"].milestones == {20: 1, 30: 1}


#: schedule shapes of the published recipes: (name, extra ScheduleSpec fields)
SHAPES = [
    ("cosine", {"final_lr_fraction": 0.1}),
    ("linear", {"final_lr_fraction": 0.1}),
    ("poly", {"power": 0.9}),
    ("poly", {"power": 2.0, "final_lr_fraction": 0.05}),
    ("inverse_sqrt", {}),
    ("exponential", {"final_lr_fraction": 0.2}),
]


@pytest.mark.parametrize("warmup", [False, True], ids=["no-warmup", "warmup"])
@pytest.mark.parametrize(("name", "fields"), SHAPES, ids=[f"{n}-{sorted(f.items())}" for n, f in SHAPES])
def test_torch_code_schedule_is_the_built_curve(name: str, fields: dict[str, Any], warmup: bool) -> None:
    """The snippet's scheduler and build()'s give the same lr at every step."""
    import torch

    from optirec.optimizers import build_scheduler

    spec = _schedule(name, total=40, warmup=warmup, **fields)
    if name == "exponential":
        spec = spec.model_copy(update={"gamma": None})
    rec = _with(RECS["arch-resnet"], schedule=spec)
    namespace = _run_torch_code(rec, steps=0)
    snippet_opt, snippet_sched = namespace["optimizer"], namespace["scheduler"]
    built_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=snippet_opt.defaults["lr"])
    built_sched = build_scheduler(built_opt, spec)
    for step in range(40):
        assert snippet_opt.param_groups[0]["lr"] == pytest.approx(built_opt.param_groups[0]["lr"], rel=1e-9), step
        snippet_opt.step()
        snippet_sched.step()
        built_opt.step()
        built_sched.step()


def test_hf_schedule_kwargs_for_recipe_shapes() -> None:
    bert = RECS["arch-bert"]
    kw = to_hf(_with(bert, schedule=_schedule("cosine", total=100, warmup=True, final_lr_fraction=0.1)))
    assert kw["lr_scheduler_type"] == "cosine_with_min_lr" and kw["lr_scheduler_kwargs"] == {"min_lr_rate": 0.1}
    kw = to_hf(_with(bert, schedule=_schedule("linear", total=100, warmup=True, final_lr_fraction=0.1)))
    lr = bert.optimizer.hyperparameters["lr"]
    assert kw["lr_scheduler_type"] == "polynomial"
    assert kw["lr_scheduler_kwargs"] == {"power": 1.0, "lr_end": pytest.approx(0.1 * lr)}
    kw = to_hf(_with(bert, schedule=_schedule("poly", total=100, warmup=False, power=0.9)))
    assert kw["lr_scheduler_type"] == "polynomial" and kw["lr_scheduler_kwargs"] == {"power": 0.9, "lr_end": 0.0}
    assert to_hf(_with(bert, schedule=_schedule("inverse_sqrt", total=100, warmup=True)))["lr_scheduler_type"] == (
        "inverse_sqrt"
    )


def test_torch_code_wrappers_compose_their_base() -> None:
    code = to_torch_code(_catalog_rec("lookahead"))
    assert "base_optimizer = torch.optim.Adam(" in code
    assert "optimizer = pytorch_optimizer.Lookahead(base_optimizer, k=5, alpha=0.5)" in code
    code = to_torch_code(_catalog_rec("sam"))
    assert "pytorch_optimizer.SAM(model.parameters(), base_optimizer=torch.optim.SGD, rho=0.05" in code


# ---------------------------------------------------------------------------------------- lightning
#: what a Lightning export may define at its top level: LightningModule methods only (helpers are nested)
LIGHTNING_METHODS = {
    "configure_optimizers",
    "configure_gradient_clipping",
    "configure_callbacks",
    "_schedule_free",
    "on_train_batch_start",
    "on_validation_epoch_start",
    "on_test_epoch_start",
    "on_predict_epoch_start",
    "on_train_epoch_end",
    "on_train_end",
}


def _embedded_json(source: str) -> Any:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "RECOMMENDATION_JSON" for t in node.targets
        ):
            return json.loads(ast.literal_eval(node.value))
    raise AssertionError("no RECOMMENDATION_JSON in the source")


def _imports_optirec(source: str) -> bool:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "optirec" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "optirec":
            return True
    return False


def _methods(source: str) -> list[str]:
    return [n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)]


@pytest.mark.parametrize("pid", list(RECS))
def test_lightning_build_form_embeds_the_recommendation(pid: str) -> None:
    rec = RECS[pid]
    source = lightning_exporter.to_lightning(rec, standalone=False)
    methods = _methods(source)
    assert methods[0] == "configure_optimizers" and set(methods) <= LIGHTNING_METHODS
    assert ("configure_gradient_clipping" in methods) == (rec.gradient_clipping is not None)
    assert ("configure_callbacks" in methods) == (rec.ema is not None)
    assert Recommendation.model_validate(_embedded_json(source)) == rec
    assert "from optirec.optimizers import build" in source
    assert '"interval": "step"' in source


@pytest.mark.parametrize("pid", list(RECS))
def test_lightning_default_form_is_standalone_unless_refused(pid: str) -> None:
    """export(rec, "lightning") is torch-only wherever standalone_refusal() finds nothing, else the build() form
    with a note naming why; standalone=True refuses that with the same reason."""
    rec = RECS[pid]
    notes: list[str] = []
    source = export(rec, "lightning", notes=notes)
    assert isinstance(source, str)
    assert set(_methods(source)) <= LIGHTNING_METHODS
    assert to_lightning(rec) == source == lightning_exporter.to_lightning(rec)
    refusal = lightning_exporter.standalone_refusal(rec)
    if refusal is None:
        assert not _imports_optirec(source) and "RECOMMENDATION_JSON" not in source
        assert source == lightning_exporter.to_lightning(rec, standalone=True)
        assert not any(n.startswith("standalone:") for n in notes)
    else:
        assert _imports_optirec(source)
        assert any(n.startswith("standalone:") and refusal.what in n for n in notes), notes
        with pytest.raises(ExportError) as info:
            lightning_exporter.to_lightning(rec, standalone=True)
        assert refusal.what in str(info.value) and "standalone=False" in str(info.value)


def test_lightning_json_with_awkward_text_survives() -> None:
    rec = _with(RECS["arch-gpt"], warnings=["quotes ''' and \"\"\" and a backslash \\ and \u00fc"])
    source = lightning_exporter.to_lightning(rec, standalone=False)
    assert Recommendation.model_validate(_embedded_json(source)) == rec
    ast.parse(lightning_exporter.to_lightning(rec))  # the warnings go into the header comments


class _FakeTrainer:
    """What configure_optimizers may ask of self.trainer: the run's length."""

    def __init__(self, steps: float) -> None:
        self.estimated_stepping_batches = steps


def _lightning_module(source: str, trainer_steps: float = 100) -> Any:
    import torch

    namespace: dict[str, Any] = {}
    exec(source, namespace)

    class Module(torch.nn.Module):
        locals().update({name: namespace[name] for name in _methods(source)})

        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)
            self.fc = torch.nn.Linear(4, 2)
            self.trainer = _FakeTrainer(trainer_steps)

    return Module()


#: (profile, form) pairs: every form each profile can take (standalone=True only where nothing refuses it)
RUN_CASES = [
    (pid, form)
    for pid in ("arch-resnet", "arch-gpt", "recommender-hybrid", "domain-nlp")
    for form in (False, True, None)
    if not (form and lightning_exporter.standalone_refusal(RECS[pid]) is not None)
]


@pytest.mark.parametrize(("pid", "standalone"), RUN_CASES, ids=[f"{p}-{f}" for p, f in RUN_CASES])
def test_lightning_method_runs(pid: str, standalone: bool | None) -> None:
    import torch

    rec = RECS[pid]
    config = _lightning_module(lightning_exporter.to_lightning(rec, standalone=standalone)).configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.Optimizer)
    assert config["lr_scheduler"]["interval"] == "step"
    assert isinstance(config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.LRScheduler)


LIGHTNING_SCHEDULES = [(n, f) for n in SCHEDULE_NAMES for f in ({},)] + SHAPES


@pytest.mark.parametrize("known", [True, False], ids=["total-known", "total-from-trainer"])
@pytest.mark.parametrize("warmup", [False, True], ids=["no-warmup", "warmup"])
@pytest.mark.parametrize(
    ("name", "fields"), LIGHTNING_SCHEDULES, ids=[f"{n}-{sorted(f.items())}" for n, f in LIGHTNING_SCHEDULES]
)
def test_lightning_standalone_schedule_is_the_built_curve(
    name: str, fields: dict[str, Any], warmup: bool, known: bool
) -> None:
    """The standalone scheduler and build_scheduler's give the same lr at every step; without total_steps in the
    answer both take the length from the Trainer (estimated_stepping_batches, here 37: warmup 4 by the ratio)."""
    import torch

    from optirec.optimizers import build_scheduler

    spec = _schedule(name, total=40 if known else None, warmup=warmup, **fields)
    if name == "exponential" and fields:
        spec = spec.model_copy(update={"gamma": None})
    rec = _with(RECS["arch-resnet"], schedule=spec)
    source = lightning_exporter.to_lightning(rec, standalone=True)
    assert not _imports_optirec(source)
    steps = 40 if known else 37
    config = _lightning_module(source, trainer_steps=37).configure_optimizers()
    opt, sched = config["optimizer"], config["lr_scheduler"]["scheduler"]
    built_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    built_sched = build_scheduler(built_opt, spec, total_steps=None if known else 37)
    peak = rec.optimizer.hyperparameters["lr"]
    for step in range(steps if name == "one_cycle" else steps + 3):  # (OneCycleLR refuses to step past its end)
        want = built_opt.param_groups[0]["lr"]
        for g in opt.param_groups:  # (one-cycle's initial_lr is max_lr / div_factor: compare with the peak)
            assert g["lr"] / peak == pytest.approx(want, rel=1e-9), step
        opt.step()
        sched.step()
        built_opt.step()
        built_sched.step()


@pytest.mark.parametrize("steps", [float("inf"), -1, 0], ids=["endless", "iterable-without-max-steps", "none"])
def test_lightning_standalone_refuses_a_run_without_length(steps: float) -> None:
    rec = _with(RECS["arch-resnet"], schedule=_schedule("cosine", total=None, warmup=True))
    module = _lightning_module(lightning_exporter.to_lightning(rec), trainer_steps=steps)
    with pytest.raises(ValueError, match="length of the run"):
        module.configure_optimizers()


@pytest.mark.parametrize("name", NAMES)
def test_lightning_every_catalog_optimizer(name: str) -> None:
    """Each catalog optimizer: the standalone form builds its class (as the torch export does), or the default is
    the build() form with the reason in a note."""
    import torch

    rec = _catalog_rec(name)
    notes: list[str] = []
    source = export(rec, "lightning", notes=notes)
    assert isinstance(source, str)
    refusal = lightning_exporter.standalone_refusal(rec)
    if refusal is not None:
        assert any(n.startswith("standalone:") for n in notes)
        assert _imports_optirec(source)
        return
    assert not _imports_optirec(source)
    if importlib.util.find_spec(BOOK.optimizers[name].class_path.split(".")[0]) is None:
        pytest.skip(f"{BOOK.optimizers[name].class_path} is not installed")
    optimizer = _lightning_module(source).configure_optimizers()["optimizer"]
    path = BOOK.optimizers[name].class_path
    module, _, cls = path.rpartition(".")
    assert type(optimizer) is getattr(importlib.import_module(module), cls)
    assert isinstance(optimizer, torch.optim.Optimizer)


# ------------------------------------------------------------------------------------------- optuna
_RAY_LOG = {"loguniform": True, "lograndint": True, "uniform": False, "randint": False}


@pytest.mark.parametrize("pid", list(RECS))
def test_optuna_space_is_centred_on_the_recommendation(pid: str) -> None:
    rec = RECS[pid]
    space = to_optuna(rec)
    assert set(space) == {"params", "distributions", "first_trial", "ray_tune"}
    params, first, ray = space["params"], space["first_trial"], space["ray_tune"]
    groups = [f"{g.name}.lr" for g in rec.param_groups if g.optimizer not in (None, rec.optimizer.name)]
    assert [n for n in params if n not in groups] == list(rec.search_space)  # priority order (004 §6.3)
    assert list(ray) == list(params) == list(space["distributions"])
    lr = params["lr"]
    assert lr["type"] == "float" and lr["log"] is True
    assert lr["low"] < first["lr"] < lr["high"]
    assert first["lr"] == rec.optimizer.hyperparameters["lr"]
    for name, p in params.items():
        assert p["type"] in ("float", "int")
        assert p["low"] < p["high"]
        if p["log"]:
            assert p["low"] > 0
        if name in first:  # the answer inside its range (0 only on the lower end of a linear range)
            assert p["low"] < first[name] < p["high"] or first[name] == p["low"] == 0 or first[name] == p["high"]
        assert _RAY_LOG[ray[name]["type"]] == p["log"]
        assert ray[name]["lower"] == p["low"]
        assert ray[name]["upper"] == (p["high"] + 1 if p["type"] == "int" else p["high"])  # Ray's int upper: exclusive
    if "batch_size" in params:
        assert params["batch_size"]["type"] == "int"
        assert first["batch_size"] == rec.batch_size


def test_optuna_zero_weight_decay_is_searched_from_zero() -> None:
    rec = RECS["domain-recommender"]
    assert rec.optimizer.hyperparameters.get("weight_decay") == 0.0
    space = to_optuna(rec)
    assert space["params"]["weight_decay"] == {"type": "float", "low": 0.0, "high": 0.1, "log": False}
    assert space["first_trial"]["weight_decay"] == 0.0  # the answer is trial 0, no longer left to the sampler
    assert any(n.startswith("weight_decay: the answer is 0") for n in export_notes(rec, "optuna"))


def test_optuna_enqueued_first_trial_is_the_recommendation() -> None:
    optuna = pytest.importorskip("optuna")
    rec = RECS["arch-resnet"]
    space = to_optuna(rec)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study()
    study.enqueue_trial(space["first_trial"])
    seen: dict[str, Any] = {}  # (the space of arch-resnet has no split group: every name is a suggest_* name)

    def objective(trial: Any) -> float:
        for name, p in space["params"].items():
            suggest: Callable[..., Any] = trial.suggest_int if p["type"] == "int" else trial.suggest_float
            seen[name] = suggest(name, p["low"], p["high"], log=p["log"])
        return 0.0

    study.optimize(objective, n_trials=1)
    assert seen == space["first_trial"]


# ---------------------------------------------------------------------------------------------- notes
def test_notes_name_what_a_format_leaves_out() -> None:
    rec = RECS["best-accuracy-phases"]
    assert rec.ema is not None and rec.phases
    notes = export_notes(rec, "timm")
    assert to_timm(rec)["train_args"]["model_ema_decay"] == rec.ema.decay  # timm exports the EMA (train.py)
    assert any(n.startswith("phases:") for n in notes)
    collected: list[str] = []
    export(rec, "timm", collected)
    assert collected == notes
    assert export_notes(rec, "json") == []


@pytest.mark.parametrize(("fmt", "name"), [("hf", "lamb"), ("hf", "lbfgs"), ("timm", "sam"), ("timm", "kfac")])
def test_unsupported_optimizer_names_it_and_the_formats_that_can(fmt: str, name: str) -> None:
    with pytest.raises(ExportError) as info:
        export(_catalog_rec(name), fmt)
    message = str(info.value)
    assert f"{name!r}" in message
    assert BOOK.optimizers[name].display_name in message
    can = message.split("formats that can express this recommendation: ")[1].split(", ")
    assert fmt not in can
    assert {"json", "torch", "lightning", "optuna"} <= set(can)


def test_hybrid_is_refused_by_single_optimizer_formats() -> None:
    rec = RECS["recommender-hybrid"]
    assert _hybrid(rec)
    for fmt in ("hf", "timm"):
        with pytest.raises(ExportError, match="embeddings -> adagrad"):
            export(rec, fmt)


# ----------------------------------------------------------------------------------------------- CLI
def _cli(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    from optirec.service.cli import main

    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_format(capsys: pytest.CaptureFixture[str], fmt: str) -> None:
    code, out, err = _cli(capsys, ["recommend", "--architecture", "resnet", "--total-steps", "1000", "--format", fmt])
    assert code == 0, err
    rec = recommend(architecture="resnet", total_steps=1000)
    if fmt in ("lightning", "torch"):
        ast.parse(out)
        assert out == export(rec, fmt)
    else:
        assert json.loads(out) == json.loads(json.dumps(export(rec, fmt)))
    for line in err.splitlines():
        assert line.startswith("optirec: note: ")


def test_cli_compact_dict_format(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _cli(capsys, ["recommend", "--architecture", "bert", "--format", "hf", "--compact"])
    assert code == 0
    assert len(out.strip().splitlines()) == 1
    assert json.loads(out)["optim"] == "adamw_torch"


def test_cli_unknown_format_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(capsys, ["recommend", "--architecture", "resnet", "--format", "yaml"])
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("optirec: error: format: unknown format 'yaml'; valid values: json, hf,")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--architecture", "efficientnet", "--format", "hf"], "'exponential' schedule"),
        (["--domain", "recommender", "--format", "timm"], "parameter split"),
    ],
)
def test_cli_export_error_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], named: str
) -> None:
    code, out, err = _cli(capsys, ["recommend", *argv])
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("optirec: error: format: ")
    assert named in err


def test_cli_formats_match_the_exporters() -> None:
    from optirec.service import cli

    assert cli._EXPORT_FORMATS == FORMATS


# ------------------------------------------------------------------------------------ stays pure Python
def test_exporters_source_imports_no_torch() -> None:
    import optirec.optimizers.exporters as module

    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            assert name.split(".")[0] not in {"torch", "numpy", "pytorch_optimizer"}, name


def test_importing_the_exporters_does_not_import_torch(run_python: Any) -> None:
    script = (
        "import sys\n"
        "from optirec.rules import recommend\n"
        "from optirec.optimizers.exporters import export\n"
        "for fmt in ('json', 'hf', 'lightning', 'timm', 'torch', 'optuna'):\n"
        "    try:\n"
        "        export(recommend(architecture='gpt', total_steps=100), fmt)\n"
        "    except ValueError:\n"
        "        pass\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'numpy', 'pytorch_optimizer')))\n"
    )
    result = run_python("-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]", (
        "importing optirec.optimizers.exporters pulled in torch (is optirec/optimizers/__init__.py importing "
        "torch-using modules eagerly?)"
    )
