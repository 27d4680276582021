"""Hugging Face: keyword arguments for ``transformers.TrainingArguments``, for the installed transformers release
(read with ``importlib.metadata``, never imported) or the one asked for: ``to_hf(rec, version="4.57")``.

Every name and behaviour below was read in the transformers sources (5.24 installed; the 4.57.6, 5.0.0, 5.2.0 and
5.3.0 releases' ``training_args.py``, ``trainer.py``, ``trainer_optimizer.py`` and ``optimization.py``):

- ``optim``: ``OptimizerNames`` (training_args.py). ``sgd`` / ``adagrad`` / ``rmsprop`` are torch's classes, built
  from ``learning_rate`` alone before 5.3; from 5.3 (huggingface/transformers#44203, merged 2026-02-25)
  ``trainer_optimizer.py`` ``_get_sgd`` / ``_get_adagrad`` / ``_get_rmsprop`` read these ``optim_args`` keys:
  SGD momentum, dampening, nesterov; Adagrad lr_decay, eps; RMSprop momentum, alpha, eps, centered. A value the
  target release would drop is refused, never written.
- Weight decay: ``Trainer.create_optimizer`` puts ``weight_decay`` on the names ``Trainer.get_decay_parameter_names``
  returns (trainer_pt_utils.py ``get_parameter_names``: every parameter outside ``nn.LayerNorm`` modules whose
  lower-cased name matches none of ``bias``, ``layernorm``, ``rmsnorm``, ``(^|.)norm(.|$)``, ``_norm(.|$)``) and 0 on
  the rest, the same in 4.57 and 5.24; no TrainingArguments field changes it (``optimizer_cls_and_kwargs`` only
  replaces the class, the groups stay the Trainer's), so a different split is named in a note with the two ways to
  get the answer's.
- Schedule: ``lr_scheduler_type`` (trainer_utils.py ``SchedulerType``) and ``lr_scheduler_kwargs``; every warmup
  rises from 0 (``current_step / num_warmup_steps``, optimization.py). ``warmup_steps`` is an int in 4.x
  (``__post_init__`` raises otherwise) with ``warmup_ratio`` beside it; from 5.0 a float below 1 is a ratio
  (``get_warmup_steps``: ``math.ceil(num_training_steps * warmup_steps)``).
- ``max_grad_norm`` (default 1.0; the Trainer clips only when it is > 0), ``per_device_train_batch_size`` (default
  8), ``gradient_accumulation_steps`` (default 1; ``max_steps`` counts optimizer updates), ``bf16`` / ``fp16``.
"""

from __future__ import annotations

import importlib.metadata
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from optirec.rules import Recommendation
from optirec.rules.recommendation import ScheduleSpec

from ..errors import ExportError
from .common import (
    WARMUP_START_FACTOR,
    RecommendationLike,
    Unsupported,
    advice_notes,
    coerce,
    has_warmup,
    optimizer_label,
    py_literal,
    refuse_leftovers,
    refuse_split,
    warmup_of,
)
from .formats import LABELS

__all__ = ["CHECKED_VERSIONS", "hf_args", "target_version", "to_hf"]

_HF_OPTIM: Final = {
    "sgd": "sgd",
    "sgd_momentum": "sgd",
    "nag": "sgd",
    "adagrad": "adagrad",
    "rmsprop": "rmsprop",
    "adam": "adamw_torch",  # only without weight decay, where Adam and AdamW are the same update
    "adamw": "adamw_torch",
    "adafactor": "adafactor",
    "lion": "lion_32bit",
    # transformers' schedule-free support runs facebookresearch's schedulefree classes (the same algorithm as
    # pytorch_optimizer's ScheduleFreeAdamW / ScheduleFreeSGD) and calls optimizer.train() / eval() itself
    "schedulefree_adamw": "schedule_free_adamw",
    "schedulefree_sgd": "schedule_free_sgd",
}
#: the momentum of schedulefree.SGDScheduleFree, which the Trainer does not pass (so it cannot be changed)
_HF_SCHEDULE_FREE_SGD_MOMENTUM: Final = 0.9
#: the optim_args keys trainer_optimizer.py _get_sgd / _get_adagrad / _get_rmsprop read (5.3+), with torch's
#: defaults: a key at its default is not written (weight_decay goes through TrainingArguments.weight_decay)
_HF_OPTIM_ARGS: Final[dict[str, dict[str, Any]]] = {
    "sgd": {"momentum": 0.0, "dampening": 0.0, "nesterov": False},
    "adagrad": {"eps": 1e-10, "lr_decay": 0.0},
    "rmsprop": {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False},
}
#: torch keywords the Trainer never passes: harmless only at torch's default
_HF_TORCH_ONLY: Final[dict[str, dict[str, Any]]] = {"adagrad": {"initial_accumulator_value": 0.0}}
_HF_SCHEDULES: Final = {
    "constant": "constant",
    "linear": "linear",
    "cosine": "cosine",
    "inverse_sqrt": "inverse_sqrt",  # transformers' timescale defaults to the warmup steps (else 10,000), as ours
    "poly": "polynomial",
}
_TORCH_NAMES: Final = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop"}
#: TrainingArguments.per_device_train_batch_size's default (training_args.py, 4.57 and 5.24)
HF_DEFAULT_BATCH: Final = 8
#: the releases whose sources this module was checked against
CHECKED_VERSIONS: Final = ("4.57.6", "5.0.0", "5.2.0", "5.3.0", "5.24.0")
_OPTIM_ARGS_SINCE: Final = (5, 3)  # huggingface/transformers#44203: optim_args reach torch SGD/Adagrad/RMSprop
_FLOAT_WARMUP_SINCE: Final = (5, 0)  # warmup_steps: float (a ratio below 1); 4.x: int, and warmup_ratio
_EXACT_WAY: Final = (
    "optimizer, scheduler, _ = build(model, rec) (optirec.optimizers) and Trainer(..., optimizers=(optimizer, "
    "scheduler))"
)


@dataclass(frozen=True)
class Target:
    """The transformers release written for: ``major.minor`` and where that came from."""

    major: int
    minor: int
    source: str  # "installed", "asked" or "newest checked (transformers is not installed)"

    @property
    def label(self) -> str:
        return f"{self.major}.{self.minor}"

    def at_least(self, version: tuple[int, int]) -> bool:
        return (self.major, self.minor) >= version


def _parse(version: str) -> tuple[int, int] | None:
    m = re.match(r"\s*v?(\d+)\.(\d+)", version)
    return (int(m.group(1)), int(m.group(2))) if m else None


@lru_cache(maxsize=1)
def _installed() -> str | None:
    try:
        return importlib.metadata.version("transformers")
    except importlib.metadata.PackageNotFoundError:
        return None


def target_version(version: str | None = None) -> Target:
    """The release written for: ``version`` ("4.57", "5.24.0", ...), else the installed one, else the newest
    checked. Raises :class:`ExportError` (field ``version``) for a string that is no release number."""
    if version is not None:
        parsed = _parse(version)
        if parsed is None:
            raise ExportError("version", f"not a transformers release number: {version!r} (e.g. '4.57' or '5.24')")
        return Target(*parsed, source="asked")
    installed = _installed()
    parsed = _parse(installed) if installed is not None else None
    if parsed is None:
        newest = _parse(CHECKED_VERSIONS[-1])
        assert newest is not None
        return Target(*newest, source="newest checked (transformers is not installed)")
    return Target(*parsed, source="installed")


def _newest_checked(major: int) -> str:
    """The newest release of ``major`` this module was checked against (4 -> 4.57, 5 -> 5.24), else ``major.0``."""
    of_major = [v for v in CHECKED_VERSIONS if v.split(".", 1)[0] == str(major)]
    return of_major[-1] if of_major else f"{major}.0"


def _version_note(target: Target, notes: list[str]) -> None:
    checked = [parsed for parsed in map(_parse, CHECKED_VERSIONS) if parsed is not None]
    where = f"transformers {target.label} ({target.source})"
    if (target.major, target.minor) < min(checked):
        where += f"; older than every release this export was checked against ({', '.join(CHECKED_VERSIONS)})"
    elif (target.major, target.minor) > max(checked):
        where += f"; written as for {CHECKED_VERSIONS[-1]}, the newest release checked"
    notes.append(f"written for {where}; to_hf(rec, version=...) (optirec.optimizers.exporters.hf) writes for another.")


def hf_args(
    rec: Recommendation, notes: list[str], version: str | None = None, *, major: int | None = None
) -> dict[str, Any]:
    """The ``hf`` format: TrainingArguments keyword arguments for ``version`` (default: the installed release);
    ``major`` alone means the newest release of that major version checked."""
    if version is None and major is not None:
        version = _newest_checked(major)
    target = target_version(version)
    name = rec.optimizer.name
    hp = dict(rec.optimizer.hyperparameters)
    optim = _HF_OPTIM.get(name)
    if optim is None:
        raise Unsupported(f"the optimizer {optimizer_label(name)}", "no TrainingArguments.optim value runs it")
    refuse_split(rec)
    if "lr" not in hp:  # a hand-written recommendation may leave it to the optimizer class; TrainingArguments cannot
        raise Unsupported(
            "a recommendation without optimizer.hyperparameters.lr",
            "TrainingArguments.learning_rate has its own default (5e-5), not the optimizer class's",
        )
    out: dict[str, Any] = {"optim": optim, "learning_rate": hp.pop("lr")}
    weight_decay = hp.pop("weight_decay", 0.0)
    if name == "adam" and weight_decay:
        raise Unsupported(
            f"the optimizer {optimizer_label(name)} with weight_decay={weight_decay}",
            "Adam adds weight decay to the gradient (L2), while every Adam-family optim value applies decoupled "
            "AdamW decay; the two agree only at weight_decay 0",
        )
    out["weight_decay"] = weight_decay
    _optimizer(name, optim, hp, out, notes, target)
    refuse_leftovers(hp, LABELS["hf"])
    _schedule(rec, optim, out, notes, target)
    out["max_grad_norm"] = rec.gradient_clipping.max_norm if rec.gradient_clipping is not None else 0.0
    if rec.gradient_clipping is None:
        notes.append(
            "max_grad_norm=0.0: the answer does not clip, so the Trainer's default clipping at 1.0 is switched off."
        )
    _batch(rec, out, notes)
    _precision(rec, out, notes)
    _decay_note(rec, weight_decay, notes)
    advice_notes(rec, "hf", notes)
    _version_note(target, notes)
    return out


def to_hf(rec: RecommendationLike, *, version: str | None = None, notes: list[str] | None = None) -> dict[str, Any]:
    """TrainingArguments keyword arguments for transformers ``version`` ("4.57", "5.24", ...; default: the
    installed release, else the newest checked). Pass a list as ``notes`` to receive what the Trainer does
    differently or leaves to you. Raises :class:`ExportError` (field ``format``) for what that release cannot
    express, or (field ``version``) for a version string that is no release number."""
    r = coerce(rec)
    target = target_version(version)
    found: list[str] = []
    try:
        result = hf_args(r, found, version)
    except Unsupported as exc:
        raise ExportError(
            "format", f"hf ({LABELS['hf']}, transformers {target.label}) cannot express {exc.what}: {exc.why}"
        ) from None
    if notes is not None:
        notes.extend(found)
    return result


def _optimizer(
    name: str, optim: str, hp: dict[str, Any], out: dict[str, Any], notes: list[str], target: Target
) -> None:
    """The optimizer's own hyperparameters, popped from ``hp`` where the Trainer takes them."""
    if name in ("adam", "adamw", "lion") or optim == "schedule_free_adamw":
        if "betas" in hp:
            out["adam_beta1"], out["adam_beta2"] = (float(b) for b in hp.pop("betas"))
        if name != "lion":
            out["adam_epsilon"] = hp.pop("eps", 1e-8)
        else:
            notes.append("optim=lion_32bit is bitsandbytes' Lion: pip install bitsandbytes.")
    elif optim == "schedule_free_sgd":
        momentum = hp.pop("momentum", _HF_SCHEDULE_FREE_SGD_MOMENTUM)
        if momentum != _HF_SCHEDULE_FREE_SGD_MOMENTUM:
            raise Unsupported(
                f"the hyperparameter momentum={momentum}",
                f"the Trainer builds schedulefree.SGDScheduleFree without a momentum argument, so it stays at "
                f"{_HF_SCHEDULE_FREE_SGD_MOMENTUM}",
            )
    elif name == "adafactor":
        decay = hp.pop("beta2_decay", -0.8)
        if decay != -0.8:
            raise Unsupported(
                f"the hyperparameter beta2_decay={decay}", "the Trainer's Adafactor keeps decay_rate at -0.8"
            )
        notes.append(
            "optim=adafactor is transformers' Adafactor with scale_parameter=False, relative_step=False: the lr is "
            "an absolute step size, whereas torch.optim.Adafactor scales it by each parameter's RMS."
        )
    else:
        defaults = _HF_OPTIM_ARGS[optim]
        for key, default in _HF_TORCH_ONLY.get(optim, {}).items():
            if key in hp and hp[key] == default:
                del hp[key]
        args = {k: hp.pop(k) for k in list(hp) if k in defaults}
        changed = {k: v for k, v in args.items() if v != defaults[k]}
        if changed and not target.at_least(_OPTIM_ARGS_SINCE):
            shown = ", ".join(f"{k}={py_literal(v)}" for k, v in changed.items())
            raise Unsupported(
                f"the hyperparameters {shown} of torch.optim.{_TORCH_NAMES[optim]}",
                f"the Trainer of transformers {target.label} builds it from learning_rate alone and ignores "
                "optim_args (they reach SGD, Adagrad and RMSprop from transformers 5.3, "
                "huggingface/transformers#44203)",
            )
        if changed:
            out["optim_args"] = ",".join(f"{k}={py_literal(v)}" for k, v in changed.items())


def _schedule(rec: Recommendation, optim: str, out: dict[str, Any], notes: list[str], target: Target) -> None:
    schedule = rec.schedule
    steps, ratio = warmup_of(schedule)
    schedule_free = optim.startswith("schedule_free_")
    if schedule_free:
        _hf_schedule_free_warmup(rec.optimizer.name, schedule, notes)
    kind = _HF_SCHEDULES.get(schedule.name)
    if kind is None:
        raise Unsupported(f"the {schedule.name!r} schedule", _no_scheduler(schedule, out["learning_rate"]))
    if kind == "constant" and has_warmup(schedule) and not schedule_free:
        kind = "constant_with_warmup"  # (a schedule-free optimizer warms up itself: the scheduler stays constant)
    final = schedule.final_lr_fraction or 0.0
    if kind == "cosine" and final:
        kind = "cosine_with_min_lr"
        out["lr_scheduler_kwargs"] = {"min_lr_rate": final}
    elif (kind == "linear" and final) or kind == "polynomial":
        # polynomial decay to lr_end (an absolute lr); linear decay to a fraction is its power-1 case
        power = 1.0 if kind == "linear" else (schedule.power if schedule.power is not None else 1.0)
        kind = "polynomial"
        out["lr_scheduler_kwargs"] = {"power": power, "lr_end": final * out["learning_rate"]}
    out["lr_scheduler_type"] = kind
    if steps is not None:
        out["warmup_steps"] = steps
    elif ratio <= 0:
        out["warmup_steps"] = 0
    else:
        field = "warmup_steps" if target.at_least(_FLOAT_WARMUP_SINCE) else "warmup_ratio"
        out[field] = ratio
        notes.append(
            f"{field}={ratio} is a ratio of the total steps, which are unknown; the Trainer rounds ratio x steps up "
            "(TrainingArguments.get_warmup_steps: math.ceil), the answer to the nearest step, so the warmup may be "
            "one step longer."
        )
    if has_warmup(schedule) and not schedule_free:
        notes.append(
            f"warmup: the Trainer's warmup rises linearly from 0 (its first step has lr 0), the answer's from "
            f"{WARMUP_START_FACTOR} x lr: during the warmup they differ by at most {WARMUP_START_FACTOR:.1%} of the "
            "peak lr, and not after it."
        )
    if schedule.total_steps is not None:
        out["max_steps"] = schedule.total_steps
    else:
        notes.append("total_steps is unknown: set max_steps or num_train_epochs for the schedule's length.")


def _hf_schedule_free_warmup(name: str, schedule: ScheduleSpec, notes: list[str]) -> None:
    """The Trainer hands ``warmup_steps`` to a schedule-free optimizer as its own warmup, in steps."""
    notes.append(
        "optim=schedule_free_* runs facebookresearch's schedulefree implementation (pip install schedulefree), "
        "the same algorithm as pytorch_optimizer's; the Trainer calls optimizer.train() and optimizer.eval() itself."
    )
    if not has_warmup(schedule):
        return
    if schedule.name != "constant":
        raise Unsupported(
            f"a warmup before the {schedule.name!r} schedule of the optimizer {optimizer_label(name)}",
            "the Trainer passes warmup_steps to the optimizer (its own warmup) as well as to the scheduler, so the "
            "warmup would be applied twice",
        )
    if schedule.warmup_steps is None:
        raise Unsupported(
            f"a warmup of {schedule.warmup_ratio:g} of the steps for the optimizer {optimizer_label(name)}",
            "the Trainer passes warmup_steps to the optimizer unconverted, which counts it in steps, not as a ratio; "
            "give total_steps in the profile",
        )
    notes.append(
        f"warmup_steps={schedule.warmup_steps} is the schedule-free optimizer's own linear warmup (the Trainer "
        "passes it there); lr_scheduler_type stays constant."
    )


def _batch(rec: Recommendation, out: dict[str, Any], notes: list[str]) -> None:
    """per_device_train_batch_size x gradient_accumulation_steps x devices = the answer's global batch, exactly."""
    devices = int(rec.profile.get("num_devices") or 1)
    launch = f" (launch {devices} processes: torchrun --nproc_per_node={devices} or accelerate launch)"
    if rec.batch_size is None:
        notes.append(
            f"batch_size: the answer gives none, so per_device_train_batch_size stays the Trainer's default "
            f"({HF_DEFAULT_BATCH} per device{f' x {devices} devices' if devices > 1 else ''}); set the batch the "
            "learning rate is for."
        )
        return
    if rec.batch_size % devices:
        raise Unsupported(
            f"the global batch of {rec.batch_size} over {devices} devices",
            f"per_device_train_batch_size x gradient_accumulation_steps x devices must equal it, and {rec.batch_size} "
            f"is not a multiple of {devices}",
        )
    per = rec.batch_size // devices
    out["per_device_train_batch_size"] = per
    out["gradient_accumulation_steps"] = 1
    split = (
        f"per_device_train_batch_size x gradient_accumulation_steps x devices = {per} x 1 x {devices}"
        f"{launch if devices > 1 else ''}"
    )
    mem = rec.memory
    if (
        mem is not None
        and mem.fits is False
        and mem.per_device_bytes is not None
        and mem.device_memory_bytes is not None
    ):
        notes.append(
            f"batch_size: {split} = the answer's global batch of {rec.batch_size}, but its memory estimate puts the "
            f"weights, gradients and optimizer state at {mem.per_device_bytes / 1e9:.1f} GB per device, more than "
            f"the device's {mem.device_memory_bytes / 1e9:.1f} GB before any activations: no "
            "per_device_train_batch_size fits, and gradient_accumulation_steps (it only shrinks a step's "
            "activations) cannot change that; shard or offload first."
        )
        return
    notes.append(
        f"batch_size: {split} = the answer's global batch of {rec.batch_size}; the answer estimates no activation "
        f"memory, so where {per} samples do not fit a device, divide per_device_train_batch_size by a k that "
        "divides it and multiply gradient_accumulation_steps by k."
    )


def _precision(rec: Recommendation, out: dict[str, Any], notes: list[str]) -> None:
    """bf16 / fp16 autocast where the profile trains in mixed precision, read as rules/memory.py plan_memory does
    (precision bf16/fp16: half-precision weights and gradients with fp32 master weights, i.e. autocast; or
    mixed_precision without a precision)."""
    precision = rec.profile.get("precision")
    if precision in ("bf16", "fp16"):
        out[precision] = True
    elif precision is None and rec.profile.get("mixed_precision"):
        out["bf16"] = True
        notes.append(
            "mixed_precision: the profile does not say bf16 or fp16; bf16=True is written (fp16=True instead where "
            "the GPU has no bfloat16)."
        )
    elif rec.profile.get("mixed_precision"):
        notes.append(f"mixed_precision: the profile's precision is {precision}, so neither bf16 nor fp16 is set.")


def _decay_note(rec: Recommendation, weight_decay: float, notes: list[str]) -> None:
    """Name where the Trainer's decayed parameters differ from the answer's (there is no field to change them)."""
    if not weight_decay:
        return
    trainer = (
        "the Trainer decays every parameter except those of nn.LayerNorm modules and those whose names contain "
        "bias, layernorm, rmsnorm or a norm / _norm name part (Trainer.get_decay_parameter_names)"
    )
    exact = (
        "for the answer's split subclass Trainer with get_decay_parameter_names(self, model) returning "
        "[p.name for p in describe_parameters(model) if not p.no_decay] (optirec.optimizers.groups), or pass "
        f"optirec's optimizer: {_EXACT_WAY}; optimizer_cls_and_kwargs keeps the Trainer's split."
    )
    if any(g.name == "no_decay" and g.optimizer is None for g in rec.param_groups):
        notes.append(
            f"weight decay: {trainer}, while the answer decays no 0-/1-D parameter, bias, normalisation weight or "
            "name the model's no_weight_decay() lists: the Trainer decays those of them that match none of its "
            "patterns, e.g. BatchNorm/GroupNorm weights named like bn1 or normalization, layer-scale gammas, "
            f"cls_token; no TrainingArguments field changes that; {exact}"
        )
    else:
        notes.append(
            f"weight decay: the answer decays every parameter, but {trainer}; no TrainingArguments field changes "
            f"that; for the answer's decay pass optirec's optimizer: {_EXACT_WAY}."
        )


# --------------------------------------------------------------------------- step / exponential: the nearest
def _no_scheduler(schedule: ScheduleSpec, lr: float) -> str:
    if schedule.name == "cosine_restarts":
        return (
            "cosine_with_restarts restarts at equal intervals, while the recommended warm restarts double each "
            f"cycle (T_mult=2); for the exact curve: {_EXACT_WAY}"
        )
    if schedule.name == "step":
        why = (
            "lr_scheduler_type has no multi-step decay (trainer_utils.py SchedulerType; warmup_stable_decay drops once)"
        )
    elif schedule.name == "exponential":
        why = "lr_scheduler_type has no exponential decay (trainer_utils.py SchedulerType)"
    else:
        return f"lr_scheduler_type has no such decay; for the exact curve: {_EXACT_WAY}"
    label, kwargs, mean, worst = nearest_scheduler(schedule, lr)
    return (
        f"{why}; the nearest is lr_scheduler_type={label!r} with lr_scheduler_kwargs={kwargs}, on average "
        f"{mean:.1%} (at most {worst:.1%}) of the peak lr from the answer's curve; for the exact curve: "
        f"{_EXACT_WAY}, or the torch format"
    )


def nearest_scheduler(schedule: ScheduleSpec, lr: float) -> tuple[str, dict[str, Any], float, float]:
    """The HF scheduler (type, lr_scheduler_kwargs) nearest to a step or exponential schedule, and its mean and
    largest distance from it over the run, in fractions of the peak lr: every candidate's curve written as
    optimization.py's lambdas, the answer's as optimizers/schedulers.py composes it (a warmup from
    WARMUP_START_FACTOR, then MultiStepLR / ExponentialLR). Without total_steps the shape is taken over 1,000
    steps (milestone_fractions, final_lr_fraction)."""
    total = schedule.total_steps or 1000
    warm = schedule.warmup_steps if schedule.total_steps is not None and schedule.warmup_steps is not None else None
    if warm is None:
        warm = round(total * schedule.warmup_ratio)
    main = max(1, total - warm)
    answer = _answer_curve(schedule, total, warm, main)
    final = _sig(answer(total - 1)) if total > warm else 1.0
    points = range(total) if total <= 2000 else [round(i * (total - 1) / 1999) for i in range(2000)]
    best: tuple[float, float, str, dict[str, Any]] | None = None
    for label, kwargs, curve in _candidates(schedule, lr, total, warm, final):
        gaps = [abs(curve(t) - answer(t)) for t in points]
        mean, worst = sum(gaps) / len(gaps), max(gaps)
        if best is None or mean < best[0]:
            best = (mean, worst, label, kwargs)
    assert best is not None
    return best[2], best[3], best[0], best[1]


def _sig(value: float) -> float:
    """``value`` to 6 significant digits (the kwargs are shown to users)."""
    return float(f"{value:.6g}")


def _answer_curve(schedule: ScheduleSpec, total: int, warm: int, main: int) -> Callable[[int], float]:
    if schedule.name == "step":
        if schedule.milestones is not None and schedule.total_steps is not None:
            milestones = schedule.milestones
        else:
            milestones = [max(1, round(f * total)) for f in (schedule.milestone_fractions or [0.5, 0.75])]
        shifted = sorted({m - warm for m in milestones if m > warm}) or [main]
        gamma = schedule.gamma or 0.1

        def decay(u: int) -> float:
            return float(gamma ** sum(1 for m in shifted if u >= m))

    else:
        end = schedule.final_lr_fraction or 0.01
        rate = schedule.gamma if schedule.gamma is not None and schedule.total_steps is not None else end ** (1 / main)

        def decay(u: int) -> float:
            return float(rate**u)

    def curve(t: int) -> float:
        if t < warm:
            return WARMUP_START_FACTOR + (1 - WARMUP_START_FACTOR) * t / warm
        return decay(t - warm)

    return curve


def _candidates(
    schedule: ScheduleSpec, lr: float, total: int, warm: int, final: float
) -> list[tuple[str, dict[str, Any], Callable[[int], float]]]:
    """optimization.py's lambdas (4.57 and 5.24): linear, cosine, cosine_with_min_lr, polynomial,
    warmup_stable_decay, each with the answer's warmup steps and final fraction of the lr."""
    span = max(1, total - warm)

    def warmed(after: Callable[[float], float]) -> Callable[[int], float]:
        return lambda t: t / max(1, warm) if t < warm else after(min(1.0, (t - warm) / span))

    out: list[tuple[str, dict[str, Any], Callable[[int], float]]] = [
        ("linear", {}, warmed(lambda p: 1.0 - p)),
        ("cosine", {}, warmed(lambda p: 0.5 * (1.0 + math.cos(math.pi * p)))),
        (
            "cosine_with_min_lr",
            {"min_lr_rate": final},
            warmed(lambda p: final + (1 - final) * 0.5 * (1.0 + math.cos(math.pi * p))),
        ),
    ]
    for power in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0):
        out.append(
            (
                "polynomial",
                {"power": power, "lr_end": _sig(final * lr)},
                warmed(_poly(final, power)),
            )
        )
    decays = {span}
    if schedule.name == "step":
        fractions = schedule.milestone_fractions or [0.5, 0.75]
        decays |= {max(1, total - max(warm, round(f * total))) for f in fractions}
    for steps in sorted(decays):
        stable = total - warm - steps
        for kind in ("linear", "cosine", "1-sqrt"):
            out.append(
                (
                    "warmup_stable_decay",
                    {"num_decay_steps": steps, "decay_type": kind, "min_lr_ratio": final},
                    _wsd(warm, stable, steps, kind, final),
                )
            )
    return out


def _poly(final: float, power: float) -> Callable[[float], float]:
    return lambda p: final + (1 - final) * (1.0 - p) ** power


def _wsd(warm: int, stable: int, steps: int, kind: str, floor: float) -> Callable[[int], float]:
    """optimization.py _get_wsd_scheduler_lambda with warmup_type linear (it warms up from min_lr_ratio)."""

    def shape(p: float) -> float:
        if kind == "linear":
            return 1.0 - p
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * p))
        return 1.0 - math.sqrt(p)

    def curve(t: int) -> float:
        if t < warm:
            return t / max(1, warm) * (1 - floor) + floor
        if t < warm + stable:
            return 1.0
        if t < warm + stable + steps:
            return shape((t - warm - stable) / max(1, steps)) * (1 - floor) + floor
        return floor

    return curve
