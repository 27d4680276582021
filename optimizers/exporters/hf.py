"""Hugging Face: keyword arguments for ``transformers.TrainingArguments``."""

from __future__ import annotations

from typing import Any, Final

from optirec.rules import Recommendation
from optirec.rules.recommendation import ScheduleSpec

from .common import (
    Unsupported,
    advice_notes,
    has_warmup,
    optimizer_label,
    py_literal,
    refuse_leftovers,
    refuse_split,
    warmup_of,
)
from .formats import LABELS

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
#: torch defaults of the keys that go into optim_args (a key left at its default is not passed)
_HF_OPTIM_ARGS: Final[dict[str, dict[str, Any]]] = {
    "sgd": {"momentum": 0.0, "dampening": 0.0, "nesterov": False},
    "adagrad": {"eps": 1e-10, "lr_decay": 0.0, "initial_accumulator_value": 0.0},
    "rmsprop": {"alpha": 0.99, "eps": 1e-8, "momentum": 0.0, "centered": False},
}
_HF_SCHEDULES: Final = {
    "constant": "constant",
    "linear": "linear",
    "cosine": "cosine",
    "inverse_sqrt": "inverse_sqrt",  # transformers' timescale defaults to the warmup steps (else 10,000), as ours
    "poly": "polynomial",
}
_TORCH_NAMES: Final = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop"}


def installed_major() -> int | None:
    """The major version of the installed transformers (read from its metadata, never imported), or None."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("transformers").split(".", 1)[0])
    except (PackageNotFoundError, ValueError):
        return None


def hf_args(rec: Recommendation, notes: list[str], *, major: int | None = None) -> dict[str, Any]:
    """TrainingArguments kwargs for transformers ``major`` (default: the installed one; 5 when none is)."""
    if major is None:
        major = installed_major()
        if major is None:
            major = 5
            notes.append("transformers is not installed here: the arguments are written for transformers 5.")
    if major < 5:
        notes.append(f"written for transformers {major}.x (the installed major version).")
    name = rec.optimizer.name
    hp = dict(rec.optimizer.hyperparameters)
    optim = _HF_OPTIM.get(name)
    if optim is None:
        raise Unsupported(f"the optimizer {optimizer_label(name)}", "no TrainingArguments.optim value runs it")
    refuse_split(rec)
    out: dict[str, Any] = {"optim": optim, "learning_rate": hp.pop("lr")}
    weight_decay = hp.pop("weight_decay", 0.0)
    if name == "adam" and weight_decay:
        raise Unsupported(
            f"the optimizer {optimizer_label(name)} with weight_decay={weight_decay}",
            "Adam adds weight decay to the gradient (L2), while every Adam-family optim value applies decoupled "
            "AdamW decay; the two agree only at weight_decay 0",
        )
    out["weight_decay"] = weight_decay
    if name in ("adam", "adamw", "lion"):
        if "betas" in hp:
            out["adam_beta1"], out["adam_beta2"] = (float(b) for b in hp.pop("betas"))
        if name != "lion":
            out["adam_epsilon"] = hp.pop("eps", 1e-8)
        else:
            notes.append("optim=lion_32bit is bitsandbytes' Lion: pip install bitsandbytes.")
    elif optim == "schedule_free_adamw":
        if "betas" in hp:
            out["adam_beta1"], out["adam_beta2"] = (float(b) for b in hp.pop("betas"))
        out["adam_epsilon"] = hp.pop("eps", 1e-8)
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
        args = {k: hp.pop(k) for k in list(hp) if k in defaults}
        changed = {k: v for k, v in args.items() if v != defaults[k]}
        if changed and major < 5:
            raise Unsupported(
                f"the hyperparameters {', '.join(f'{k}={v!r}' for k, v in changed.items())} on transformers {major}.x",
                f"its Trainer builds torch.optim.{_TORCH_NAMES[optim]} from the lr alone and drops optim_args "
                "(huggingface/transformers#44075, fixed in 5.x by #44203)",
            )
        if changed:
            out["optim_args"] = ",".join(f"{k}={py_literal(v)}" for k, v in changed.items())
            notes.append(
                f"optim_args ({out['optim_args']}) reach torch.optim.{_TORCH_NAMES[optim]} only in transformers "
                "releases with huggingface/transformers#44203 (Feb 2026); older Trainers silently ignore them."
            )
    refuse_leftovers(hp, LABELS["hf"])

    schedule = rec.schedule
    steps, ratio = warmup_of(schedule)
    schedule_free = optim.startswith("schedule_free_")
    if schedule_free:
        _hf_schedule_free_warmup(name, schedule, notes)
    kind = _HF_SCHEDULES.get(schedule.name)
    if kind is None:
        why = "lr_scheduler_type has no such decay"
        if schedule.name == "cosine_restarts":
            why = (
                "cosine_with_restarts restarts at equal intervals, while the recommended warm restarts double "
                "each cycle (T_mult=2)"
            )
        if schedule.name in ("step", "exponential"):
            why = (
                f"lr_scheduler_type has no {'multi-step' if schedule.name == 'step' else 'exponential'} decay "
                "(transformers trainer_utils.py SchedulerType; none of its curves is this one); for the exact curve "
                "give the Trainer optirec's scheduler: Trainer(optimizers=tuple(build(model, rec))[:2])"
            )
        raise Unsupported(f"the {schedule.name!r} schedule", why)
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
    elif major < 5:  # 4.x: warmup_steps is an int; the ratio has its own field
        out["warmup_steps"] = 0
        if ratio > 0:
            out["warmup_ratio"] = ratio
    else:
        out["warmup_steps"] = ratio if ratio > 0 else 0
        if ratio > 0:
            notes.append(
                f"warmup_steps={ratio} is a ratio of the total steps (transformers >= 5); "
                f"on transformers 4.x pass warmup_ratio={ratio} instead. The Trainer rounds it up "
                "(TrainingArguments.get_warmup_steps: ceil(ratio x steps)) where optirec rounds to the nearest step, "
                "so its warmup may be one step longer."
            )
    if schedule.total_steps is not None:
        out["max_steps"] = schedule.total_steps
    else:
        notes.append("total_steps is unknown: set max_steps or num_train_epochs for the schedule's length.")
    out["max_grad_norm"] = rec.gradient_clipping.max_norm if rec.gradient_clipping is not None else 0.0
    if rec.gradient_clipping is None:
        notes.append(
            "max_grad_norm=0.0: the answer does not clip, so the Trainer's own default clipping at 1.0 is switched off."
        )
    _batch(rec, out, notes)
    _precision(rec, out, notes)
    if out["weight_decay"] and any(g.name == "no_decay" for g in rec.param_groups):
        notes.append(
            "weight decay: the Trainer chooses the decayed parameters itself (Trainer.get_decay_parameter_names: "
            "none for nn.LayerNorm modules and names containing bias, layernorm, rmsnorm or norm), so BatchNorm "
            "weights named like bn1 and other 1-D parameters are decayed, unlike the answer; for its exact split "
            "give the Trainer optirec's optimizer: Trainer(optimizers=tuple(build(model, rec))[:2])."
        )
    advice_notes(rec, "hf", notes)
    return out


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
    """per_device_train_batch_size x devices x gradient_accumulation_steps = the answer's global batch."""
    if rec.batch_size is None:
        notes.append("batch_size: the answer states none, so per_device_train_batch_size stays the Trainer's default.")
        return
    devices = int(rec.profile.get("num_devices") or 1)
    if rec.batch_size % devices:
        raise Unsupported(
            f"the global batch {rec.batch_size} over {devices} devices",
            "per_device_train_batch_size x devices x gradient_accumulation_steps must equal it, and it does not "
            "divide by the number of devices",
        )
    out["per_device_train_batch_size"] = rec.batch_size // devices
    out["gradient_accumulation_steps"] = 1
    notes.append(
        f"per_device_train_batch_size={rec.batch_size // devices} on each of {devices} device(s) makes the answer's "
        f"global batch of {rec.batch_size}; where that does not fit in memory, divide it by k and set "
        "gradient_accumulation_steps=k."
    )


def _precision(rec: Recommendation, out: dict[str, Any], notes: list[str]) -> None:
    """bf16 / fp16 mixed precision where the profile trains in it (TrainingArguments.bf16 / .fp16)."""
    precision = rec.profile.get("precision")
    if precision in ("bf16", "fp16"):
        out[precision] = True
    elif rec.profile.get("mixed_precision"):
        notes.append(
            "mixed_precision: the profile does not say bf16 or fp16; set bf16=True on hardware that has it, else "
            "fp16=True."
        )
