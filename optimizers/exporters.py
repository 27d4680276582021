"""Export a Recommendation to the formats training code already speaks.

    from optirec.optimizers.exporters import export, to_hf
    args = TrainingArguments(output_dir="out", **to_hf(rec))
    print(export(rec, "torch"))

=========  ===========================================================================================
format     what comes out
=========  ===========================================================================================
json       the Recommendation itself (``model_dump(mode="json")``)
hf         keyword arguments for ``transformers.TrainingArguments``
lightning  the source of a LightningModule ``configure_optimizers(self)`` that calls ``optirec``'s build
timm       keyword arguments for ``timm.optim.create_optimizer_v2(model, **kwargs)``
torch      a plain PyTorch snippet: optimizer, LR scheduler, clipping and a ``training_step(compute_loss)``
optuna     an HPO search space centred on the recommendation, for Optuna and Ray Tune
=========  ===========================================================================================

Pure Python: this module never imports torch (the torch snippet is text), so ``optirec recommend
--format ...`` stays fast.  What a format cannot express raises :class:`ExportError` (field
``format``) naming the optimizer, schedule or parameter split and the formats that can; what it only
approximates or leaves to the user is listed by ``export(rec, fmt, notes=[])`` / :func:`export_notes`.

Names used, and where they come from:

- Hugging Face: ``TrainingArguments`` field names, ``OptimizerNames`` values (``adamw_torch``,
  ``adafactor``, ``sgd``, ``adagrad``, ``rmsprop``, ``lion_32bit``, ``schedule_free_adamw``,
  ``schedule_free_sgd``) and ``SchedulerType`` values (``constant``, ``constant_with_warmup``, ``linear``,
  ``cosine``, ...) from ``src/transformers/training_args.py``, ``trainer_utils.py`` and
  ``trainer_optimizer.py`` of huggingface/transformers.  For the schedule-free values the Trainer builds
  facebookresearch's ``schedulefree`` classes with ``warmup_steps`` (the optimizer's own warmup), adam
  betas/epsilon for AdamW and no momentum for SGD (the class default, 0.9), and calls the optimizer's
  ``train()`` / ``eval()`` itself.  ``optim_args`` reach torch's SGD/Adagrad/RMSprop only in releases with
  huggingface/transformers#44203 (Feb 2026); ``warmup_steps`` takes a float ratio since transformers
  5 (``warmup_ratio`` was deprecated by huggingface/transformers#41326).  ``max_grad_norm=0`` turns
  clipping off (the default, 1.0, would clip).
- Schedule-Free (``needs_eval_mode`` in the catalog): the torch snippet's ``training_step`` calls
  ``optimizer.train()`` and it defines ``averaged_weights()`` to evaluate and checkpoint in; the Lightning
  source adds the hooks that switch the optimizer (train before each training batch, eval for validation,
  testing, prediction and at the end of each training epoch, so checkpoints hold the averaged weights).
- timm: the optimizer registry of ``timm/optim/_optim_factory.py`` (huggingface/pytorch-image-models):
  ``sgd``/``nesterov`` = SGD with Nesterov momentum, ``momentum`` = classical momentum, ``adam``,
  ``adamw``, ``adamax``, ``nadam``, ``radam``, ``adagrad``, ``rmsprop``, ``lamb``, ``adafactor``,
  ``lion``, ``muon`` and the ``lookahead_<opt>`` prefix (timm's Lookahead is fixed at k=6, alpha=0.5).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, Final

from pydantic import ValidationError

from optirec.rules import Recommendation, Rulebook, default_rulebook
from optirec.rules.recommendation import ParamGroup, ScheduleSpec

from .errors import ExportError

__all__ = [
    "FORMATS",
    "export",
    "export_notes",
    "to_hf",
    "to_lightning",
    "to_optuna",
    "to_timm",
    "to_torch_code",
]

FORMATS: Final = ("json", "hf", "lightning", "timm", "torch", "optuna")

RecommendationLike = Recommendation | Mapping[str, Any] | str | bytes

_LABELS: Final = {
    "json": "JSON",
    "hf": "Hugging Face TrainingArguments",
    "lightning": "Lightning configure_optimizers",
    "timm": "timm create_optimizer_v2",
    "torch": "PyTorch code",
    "optuna": "Optuna/Ray Tune search space",
}

# Conventions shared with optimizers/schedulers.py and optimizers/registry.py (which import torch,
# so the values are repeated here rather than imported).
_WARMUP_START_FACTOR: Final = 1e-3  # warmup starts at this fraction of the peak lr
_RESTART_FIRST_CYCLE: Final = 0.25  # warm restarts: first cycle = 25% of the post-warmup steps, then doubling
_INVERSE_SQRT_TIMESCALE: Final = 10_000  # inverse_sqrt without warmup: T5's 1/sqrt(max(n, 10^4))
_LOOKAHEAD_BASE_KEYS: Final = ("lr", "weight_decay", "betas", "momentum")
_RENAMED: Final = {"lookahead_alpha": "alpha"}
_PLACEHOLDER_TOTAL_STEPS: Final = 10_000


class _Unsupported(Exception):
    """Raised inside an exporter: ``what`` (optimizer, schedule, ...) cannot be expressed, and why."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")
        self.what = what
        self.why = why


# ------------------------------------------------------------------------------------------ helpers
def _coerce(rec: RecommendationLike) -> Recommendation:
    if isinstance(rec, Recommendation):
        return rec
    try:
        if isinstance(rec, str | bytes):
            return Recommendation.model_validate_json(rec)
        return Recommendation.model_validate(rec)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "recommendation"
        raise ExportError("recommendation", f"not a valid Recommendation ({where}: {err['msg']})") from None


def _book() -> Rulebook:
    return default_rulebook()


def _display(name: str) -> str:
    spec = _book().optimizers.get(name)
    return f"{name!r} ({spec.display_name})" if spec is not None else repr(name)


def _py(value: Any) -> str:
    """A Python literal for a hyperparameter value (lists become tuples, as torch expects for betas)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            return f"float({str(value)!r})"
        return repr(value)
    if isinstance(value, list | tuple):
        inner = ", ".join(_py(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    return repr(value)


def _kwargs(hp: Mapping[str, Any]) -> str:
    return ", ".join(f"{_RENAMED.get(k, k)}={_py(v)}" for k, v in hp.items())


def _hybrid(rec: Recommendation) -> list[ParamGroup]:
    """Param groups that give part of the model a different optimizer (004 §5.6.1)."""
    return [g for g in rec.param_groups if g.optimizer is not None]


def _no_split(rec: Recommendation) -> None:
    groups = _hybrid(rec)
    if groups:
        split = ", ".join(f"{g.name} -> {g.optimizer}" for g in groups)
        raise _Unsupported(
            f"the parameter split ({split})",
            "it builds a single optimizer for the whole model, not one optimizer per parameter group",
        )


def _advice_notes(rec: Recommendation, fmt: str, notes: list[str]) -> None:
    """What the dict formats leave to the user: freezing, layer-wise lr, EMA, optimizer phases."""
    for g in rec.param_groups:
        if g.frozen:
            notes.append(f"param_groups.{g.name}: freeze {', '.join(g.match)} yourself (requires_grad_(False)).")
        if g.layerwise_lr_decay is not None and fmt != "timm":
            notes.append(
                f"param_groups.{g.name}: layer-wise lr decay {g.layerwise_lr_decay} is not expressed; "
                "build those parameter groups yourself."
            )
    if rec.ema is not None:
        notes.append(f"ema: keep an exponential moving average of the weights (decay {rec.ema.decay}) yourself.")
    if rec.phases:
        plan = " -> ".join(p.optimizer.name for p in rec.phases)
        notes.append(
            f"phases: only the first phase is exported; the plan is {plan}, switching when {rec.phases[0].trigger}."
        )


def _warmup(schedule: ScheduleSpec) -> tuple[int | None, float]:
    """(warmup steps when known, warmup ratio)."""
    return schedule.warmup_steps, schedule.warmup_ratio


def _has_warmup(schedule: ScheduleSpec) -> bool:
    steps, ratio = _warmup(schedule)
    return (steps or 0) > 0 if steps is not None else ratio > 0


def _describe_schedule(schedule: ScheduleSpec) -> str:
    if not _has_warmup(schedule):
        return f"{schedule.name}, no warmup"
    if schedule.warmup_steps is not None:
        return f"{schedule.name}, {schedule.warmup_steps} warmup steps"
    return f"{schedule.name}, warmup {schedule.warmup_ratio:.0%} of the steps"


# --------------------------------------------------------------------------------------------- json
def _json(rec: Recommendation, notes: list[str]) -> dict[str, Any]:
    return rec.model_dump(mode="json")


# ------------------------------------------------------------------------------------- Hugging Face
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
#: keys that may stay in the hyperparameters when they hold these (class default) values
_HARMLESS_DEFAULTS: Final[dict[str, Any]] = {"amsgrad": False, "maximize": False, "foreach": None}
_HF_SCHEDULES: Final = {
    "constant": "constant",
    "linear": "linear",
    "cosine": "cosine",
    "inverse_sqrt": "inverse_sqrt",  # transformers' timescale defaults to the warmup steps (else 10,000), as ours
    "poly": "polynomial",
}
_TORCH_NAMES: Final = {"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop"}


def _leftovers(hp: Mapping[str, Any], fmt_label: str) -> None:
    for key, value in hp.items():
        if key in _HARMLESS_DEFAULTS and _HARMLESS_DEFAULTS[key] == value:
            continue
        raise _Unsupported(f"the hyperparameter {key}={value!r}", f"{fmt_label} has no place for it")


def _hf(rec: Recommendation, notes: list[str]) -> dict[str, Any]:
    name = rec.optimizer.name
    hp = dict(rec.optimizer.hyperparameters)
    optim = _HF_OPTIM.get(name)
    if optim is None:
        raise _Unsupported(f"the optimizer {_display(name)}", "no TrainingArguments.optim value runs it")
    _no_split(rec)
    out: dict[str, Any] = {"optim": optim, "learning_rate": hp.pop("lr")}
    weight_decay = hp.pop("weight_decay", 0.0)
    if name == "adam" and weight_decay:
        raise _Unsupported(
            f"the optimizer {_display(name)} with weight_decay={weight_decay}",
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
            raise _Unsupported(
                f"the hyperparameter momentum={momentum}",
                f"the Trainer builds schedulefree.SGDScheduleFree without a momentum argument, so it stays at "
                f"{_HF_SCHEDULE_FREE_SGD_MOMENTUM}",
            )
    elif name == "adafactor":
        decay = hp.pop("beta2_decay", -0.8)
        if decay != -0.8:
            raise _Unsupported(
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
        if changed:
            out["optim_args"] = ",".join(f"{k}={_py(v)}" for k, v in changed.items())
            notes.append(
                f"optim_args ({out['optim_args']}) reach torch.optim.{_TORCH_NAMES[optim]} only in transformers "
                "releases with huggingface/transformers#44203 (Feb 2026); older Trainers silently ignore them."
            )
    _leftovers(hp, _LABELS["hf"])

    schedule = rec.schedule
    steps, ratio = _warmup(schedule)
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
        raise _Unsupported(f"the {schedule.name!r} schedule", why)
    if kind == "constant" and _has_warmup(schedule) and not schedule_free:
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
    else:
        out["warmup_steps"] = ratio if ratio > 0 else 0
        if ratio > 0:
            notes.append(
                f"warmup_steps={ratio} is a ratio of the total steps (transformers >= 5); "
                f"on transformers 4.x pass warmup_ratio={ratio} instead."
            )
    if schedule.total_steps is not None:
        out["max_steps"] = schedule.total_steps
    else:
        notes.append("total_steps is unknown: set max_steps or num_train_epochs for the schedule's length.")
    out["max_grad_norm"] = rec.gradient_clipping.max_norm if rec.gradient_clipping is not None else 0.0
    if rec.batch_size is not None:
        out["per_device_train_batch_size"] = rec.batch_size
        notes.append(
            f"per_device_train_batch_size={rec.batch_size} is the recommended global batch: on several devices "
            "divide it by their number (or use gradient_accumulation_steps)."
        )
    _advice_notes(rec, "hf", notes)
    return out


def _hf_schedule_free_warmup(name: str, schedule: ScheduleSpec, notes: list[str]) -> None:
    """The Trainer hands ``warmup_steps`` to a schedule-free optimizer as its own warmup, in steps."""
    notes.append(
        "optim=schedule_free_* runs facebookresearch's schedulefree implementation (pip install schedulefree), "
        "the same algorithm as pytorch_optimizer's; the Trainer calls optimizer.train() and optimizer.eval() itself."
    )
    if not _has_warmup(schedule):
        return
    if schedule.name != "constant":
        raise _Unsupported(
            f"a warmup before the {schedule.name!r} schedule of the optimizer {_display(name)}",
            "the Trainer passes warmup_steps to the optimizer (its own warmup) as well as to the scheduler, so the "
            "warmup would be applied twice",
        )
    if schedule.warmup_steps is None:
        raise _Unsupported(
            f"a warmup of {schedule.warmup_ratio:g} of the steps for the optimizer {_display(name)}",
            "the Trainer passes warmup_steps to the optimizer unconverted, which counts it in steps, not as a ratio; "
            "give total_steps in the profile",
        )
    notes.append(
        f"warmup_steps={schedule.warmup_steps} is the schedule-free optimizer's own linear warmup (the Trainer "
        "passes it there); lr_scheduler_type stays constant."
    )


# --------------------------------------------------------------------------------------------- timm
_TIMM_PLAIN: Final = {  # catalog name -> timm name, for torch classes timm passes extra kwargs to
    "adam": "adam",
    "adamw": "adamw",
    "adamax": "adamax",
    "nadam": "nadam",
    "radam": "radam",
    "adagrad": "adagrad",
    "rmsprop": "rmsprop",
}


def _timm_opt(name: str, hp: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """timm's ``opt`` name and its optimizer-specific kwargs.

    Takes what it uses out of ``hp`` and leaves lr, weight_decay and anything it cannot place there.
    """
    if name in ("sgd", "sgd_momentum", "nag"):
        # timm's "nesterov" (= "sgd") is SGD(nesterov=True), "momentum" is SGD(nesterov=False); momentum is
        # always passed because timm defaults it to 0.9
        nesterov = hp.pop("nesterov", False)
        out: dict[str, Any] = {"opt": "nesterov" if nesterov else "momentum", "momentum": hp.pop("momentum", 0.0)}
        out.update(_pop_except(hp, ("lr", "weight_decay")))  # dampening etc. go through to torch.optim.SGD
        return out
    if name in _TIMM_PLAIN:
        out = {"opt": _TIMM_PLAIN[name]}
        if name == "rmsprop":  # timm defaults momentum and alpha to 0.9: pass both
            out["momentum"] = hp.pop("momentum", 0.0)
            out["alpha"] = hp.pop("alpha", 0.99)
        if name == "adagrad":  # timm defaults eps to 1e-8, torch to 1e-10
            out["eps"] = hp.pop("eps", 1e-10)
        out.update(_pop_except(hp, ("lr", "weight_decay")))  # betas, eps, amsgrad, ... are torch keywords
        return out
    if name == "lamb":
        return {"opt": "lamb", **_pop_only(hp, ("betas", "eps"))}
    if name == "lion":
        return {"opt": "lion", **_pop_only(hp, ("betas",))}
    if name == "adafactor":
        notes.append(
            "opt=adafactor is timm's Adafactor: with an lr given the step is absolute, whereas "
            "torch.optim.Adafactor scales it by each parameter's RMS."
        )
        return {"opt": "adafactor", "decay_rate": hp.pop("beta2_decay", -0.8)}
    if name == "muon":
        notes.append(
            "opt=muon is timm's Muon: it sends every non-matrix parameter to its AdamW fallback itself, and its "
            "lr adjustment may differ from torch.optim.Muon's."
        )
        return {"opt": "muon", **_pop_only(hp, ("momentum", "nesterov"))}
    if name in ("ranger", "lookahead"):
        k = hp.pop("k", 6 if name == "ranger" else 5)
        alpha = hp.pop("lookahead_alpha", 0.5)
        if (k, alpha) != (6, 0.5):
            raise _Unsupported(
                f"the optimizer {_display(name)} with k={k}, alpha={alpha}",
                "timm's lookahead_ prefix always wraps with k=6, alpha=0.5",
            )
        if name == "ranger":
            notes.append(
                "opt=lookahead_radam is RAdam + Lookahead(k=6, alpha=0.5) without pytorch_optimizer.Ranger's "
                "gradient centralization, and with RAdam's eps (1e-8, not 1e-5)."
            )
            return {"opt": "lookahead_radam", **_pop_only(hp, ("betas",))}
        base = str(hp.pop("base", "adam"))
        base_hp = _lookahead_base_hp(base, hp)
        inner = _timm_opt(base, base_hp, notes)
        hp.clear()
        hp.update(base_hp)  # the base's lr, weight_decay and leftovers are the caller's to place
        return {**inner, "opt": f"lookahead_{inner['opt']}"}
    raise _Unsupported(f"the optimizer {_display(name)}", "timm's optimizer registry has no such optimizer")


def _pop_except(hp: dict[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    """Every entry of ``hp`` but ``keep``, removed from it (lists as tuples)."""
    return {k: _tuple(hp.pop(k)) for k in [k for k in hp if k not in keep]}


def _pop_only(hp: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The entries ``keys`` of ``hp`` that are there, removed from it (lists as tuples)."""
    return {k: _tuple(hp.pop(k)) for k in keys if k in hp}


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _lookahead_base_hp(base: str, wrapper_hp: Mapping[str, Any]) -> dict[str, Any]:
    """The base optimizer's hyperparameters: its catalog defaults, overridden as optimizers/registry.py does."""
    book = _book()
    if base not in book.optimizers:
        raise _Unsupported(f"the base optimizer {base!r}", "it is not in the optimizer catalog")
    if book.optimizers[base].needs_eval_mode:  # as optimizers/registry.py refuses to build it
        raise _Unsupported(
            f"the base optimizer {_display(base)}",
            "a wrapper cannot wrap an optimizer that keeps separate training and evaluation weights (Schedule-Free)",
        )
    base_hp = {k: v for k, v in book.defaults[base].items() if k != "base"}
    for key in _LOOKAHEAD_BASE_KEYS:
        if key in wrapper_hp and (key in base_hp or key in ("lr", "weight_decay")):
            base_hp[key] = wrapper_hp[key]
    return base_hp


def _timm(rec: Recommendation, notes: list[str]) -> dict[str, Any]:
    name = rec.optimizer.name
    hp = dict(rec.optimizer.hyperparameters)
    out = _timm_opt(name, hp, notes)
    _no_split(rec)
    kwargs: dict[str, Any] = {
        "opt": out.pop("opt"),
        "lr": hp.pop("lr", None),
        "weight_decay": hp.pop("weight_decay", 0.0),
    }
    _leftovers(hp, _LABELS["timm"])
    kwargs.update(out)
    for g in rec.param_groups:
        if g.layerwise_lr_decay is not None:
            kwargs["layer_decay"] = g.layerwise_lr_decay
    notes.append(
        "create_optimizer_v2 builds the optimizer only: take the schedule "
        f"({_describe_schedule(rec.schedule)}) and "
        + (
            f"gradient clipping (max_norm {rec.gradient_clipping.max_norm}) "
            if rec.gradient_clipping is not None
            else "the (absent) clipping "
        )
        + "from the recommendation (timm.scheduler.create_scheduler_v2, your training loop)."
    )
    _advice_notes(rec, "timm", notes)
    return kwargs


# ---------------------------------------------------------------------------------------- lightning
def _json_literal(text: str) -> str:
    """A Python string literal holding ``text`` exactly, as readable as possible."""
    if "'''" not in text and not text.endswith(("'", "\\")):
        return "r'''" + text + "'''"
    return repr(text)


#: Schedule-Free in Lightning: train() lazily before every training batch (validation may run mid-epoch, and the
#: checkpoint callbacks save after it), eval() wherever evaluation starts and when a training epoch or the fit ends
_LIGHTNING_SCHEDULE_FREE_HOOKS: Final = [
    "",
    "",
    "def _schedule_free(self, mode):",
    '    """Schedule-Free: optimizer.train() before training steps, optimizer.eval() (the averaged weights) to',
    '    evaluate and checkpoint."""',
    "    optimizers = self.optimizers(use_pl_optimizer=False)",
    "    for optimizer in optimizers if isinstance(optimizers, list) else [optimizers]:",
    "        switch = getattr(optimizer, mode, None)",
    "        if callable(switch):",
    "            switch()",
    "",
    "",
    "def on_train_batch_start(self, batch, batch_idx):",
    '    self._schedule_free("train")',
    "",
    "",
    "def on_validation_epoch_start(self):",
    '    self._schedule_free("eval")',
    "",
    "",
    "def on_test_epoch_start(self):",
    '    self._schedule_free("eval")',
    "",
    "",
    "def on_predict_epoch_start(self):",
    '    self._schedule_free("eval")',
    "",
    "",
    "def on_train_epoch_end(self):",
    '    self._schedule_free("eval")  # the end-of-epoch checkpoint holds the averaged weights',
    "",
    "",
    "def on_train_end(self):",
    '    self._schedule_free("eval")',
]


def _lightning(rec: Recommendation, notes: list[str]) -> str:
    book = _book()
    names = [rec.optimizer.name, *(g.optimizer for g in _hybrid(rec) if g.optimizer)]
    spec = book.optimizers.get(rec.optimizer.name)
    what = spec.display_name if spec is not None else rec.optimizer.name
    payload = json.dumps(rec.model_dump(mode="json"), ensure_ascii=True, indent=1)
    lines = [
        "def configure_optimizers(self):",
        f'    """{what} with a {rec.schedule.name} schedule, as optirec recommends '
        f'(rulebook {rec.rulebook.version}, {rec.rulebook.hash[:12]})."""',
        "    from optirec import Recommendation",
        "    from optirec.optimizers import build",
        "",
        "    RECOMMENDATION_JSON = " + _json_literal(payload),
        "    recommendation = Recommendation.model_validate_json(RECOMMENDATION_JSON)",
    ]
    if rec.gradient_clipping is not None:
        lines.append(
            f"    # gradient clipping: Trainer(gradient_clip_val={rec.gradient_clipping.max_norm}, "
            'gradient_clip_algorithm="norm")'
        )
    if any(book.optimizers[n].needs_closure for n in names if n in book.optimizers):
        lines.append(
            "    # this optimizer's step() takes a closure: Lightning's automatic optimization passes one "
            "(LBFGS works);"
        )
        lines.append("    # for SAM / Sophia / Newton use manual optimization (self.automatic_optimization = False).")
    lines += [
        "    optimizer, scheduler, _clipping = build(self, recommendation)",
        "    if scheduler is None:",
        '        return {"optimizer": optimizer}',
        '    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}',
    ]
    if any(book.optimizers[n].needs_eval_mode for n in names if n in book.optimizers):
        lines += _LIGHTNING_SCHEDULE_FREE_HOOKS
        notes.append(
            "Schedule-Free: the source adds LightningModule hooks (paste them next to configure_optimizers) that call "
            "optimizer.train() before each training batch and optimizer.eval() for validation, testing, prediction "
            "and at the end of each training epoch, so evaluation and checkpoints see the averaged weights; with "
            "BatchNorm, recompute its running statistics at those weights before evaluating."
        )
    if rec.ema is not None:
        notes.append(f"ema: keep an exponential moving average of the weights (decay {rec.ema.decay}) yourself.")
    if rec.phases:
        notes.append("phases: build() runs the first phase; switch optimizers yourself.")
    if rec.schedule.total_steps is None and rec.schedule.name != "constant":
        notes.append(
            "total_steps is unknown: build() needs it for this schedule; add total_steps to the profile "
            "(or call build(self, recommendation, total_steps=self.trainer.estimated_stepping_batches))."
        )
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------- torch
class _TorchCode:
    """Builds the PyTorch snippet: header comments, imports, optimizers, schedulers, training_step."""

    def __init__(self, rec: Recommendation, notes: list[str]) -> None:
        self.rec = rec
        self.notes = notes
        self.book = _book()
        self.imports: list[str] = ["import torch"]
        self.body: list[str] = []
        #: (optimizer variable, scheduler variable, catalog name), the main optimizer first
        self.optimizers: list[tuple[str, str, str]] = []
        self.needs_decay_helper = False

    # -------------------------------------------------------------- pieces
    def _import(self, line: str) -> None:
        if line not in self.imports:
            self.imports.append(line)

    def _import_for(self, class_path: str) -> None:
        module = class_path.rsplit(".", 1)[0]
        line = "import torch" if module.split(".")[0] == "torch" else f"import {module}"
        if line not in self.imports:
            self.imports.append(line)

    def _spec(self, name: str) -> Any:
        spec = self.book.optimizers.get(name)
        if spec is None:
            raise _Unsupported(f"the optimizer {name!r}", "it is not in the optimizer catalog")
        return spec

    def _params(self, name: str, hp: Mapping[str, Any], params: str) -> str:
        """The parameter expression, split for weight decay where the recommendation asks for it."""
        has_no_decay = any(g.name == "no_decay" for g in self.rec.param_groups)
        if has_no_decay and hp.get("weight_decay") and self._spec(name).family != "second_order":
            self.needs_decay_helper = True
            return f"_decay_groups({params}, {_py(hp['weight_decay'])})"
        return params

    def construct(self, var: str, name: str, hp: Mapping[str, Any], params: str) -> None:
        """``var = <class>(...)`` for catalog optimizer ``name``; wrappers get their base built too."""
        spec = self._spec(name)
        self._import_for(spec.class_path)
        hp = dict(hp)
        base = str(hp.pop("base", "sgd_momentum" if name == "sam" else "adam"))
        if name == "lookahead":
            self.construct("base_optimizer", base, _lookahead_base_hp(base, hp), params)
            wrapper = {k: v for k, v in hp.items() if k in ("k", "lookahead_alpha")}
            self.body.append(f"{var} = {_call(spec.class_path, 'base_optimizer', _kwargs(wrapper))}")
            return
        if name == "sam":
            base_hp = _lookahead_base_hp(base, hp)
            base_path = self._spec(base).class_path
            self._import_for(base_path)
            sam = {k: v for k, v in hp.items() if k in ("rho", "adaptive")}
            first = self._params(base, base_hp, params)
            args = f"base_optimizer={base_path}, " + ", ".join(a for a in (_kwargs(sam), _kwargs(base_hp)) if a)
            self.body.append(f"{var} = {_call(spec.class_path, first, args)}")
            return
        takes_model = spec.torch_call.replace(" ", "").startswith(
            (f"{spec.class_path}(model,", f"{spec.class_path}(model)")
        )
        first = "model" if takes_model else self._params(name, hp, params)
        self.body.append(f"{var} = {_call(spec.class_path, first, _kwargs(hp))}")

    def schedule(self, opt_var: str, sched_var: str) -> None:
        """``sched_var = ...`` for the recommendation's schedule, as optimizers/schedulers.py builds it."""
        s = self.rec.schedule
        t = "torch.optim.lr_scheduler"
        main_steps = "max(1, total_steps - warmup_steps)"
        if s.name == "one_cycle":
            self.body.append(
                f"{sched_var} = {t}.OneCycleLR({opt_var}, "
                f'max_lr=[g["lr"] for g in {opt_var}.param_groups], total_steps=total_steps, '
                "pct_start=min(0.5, max(warmup_steps / total_steps, 0.05)), "
                f'cycle_momentum="momentum" in {opt_var}.defaults or "betas" in {opt_var}.defaults)'
            )
            return
        final = s.final_lr_fraction or 0.0
        if s.name == "constant":
            main = f"{t}.ConstantLR({opt_var}, factor=1.0, total_iters=0)"
        elif s.name == "cosine" and final:
            self._import("import math")
            main = (
                f"{t}.LambdaLR({opt_var}, lambda t: {_py(final)} + (1 - {_py(final)}) * 0.5 * "
                f"(1 + math.cos(math.pi * min(t, {main_steps}) / {main_steps})))"
            )
        elif s.name == "cosine":
            main = f"{t}.CosineAnnealingLR({opt_var}, T_max={main_steps})"
        elif s.name == "linear":
            main = f"{t}.LinearLR({opt_var}, start_factor=1.0, end_factor={_py(final)}, total_iters={main_steps})"
        elif s.name == "poly" and final:
            power = _py(s.power if s.power is not None else 1.0)
            main = (
                f"{t}.LambdaLR({opt_var}, lambda t: {_py(final)} + (1 - {_py(final)}) * "
                f"(1 - min(t, {main_steps}) / {main_steps}) ** {power})"
            )
        elif s.name == "poly":
            power = _py(s.power if s.power is not None else 1.0)
            main = f"{t}.PolynomialLR({opt_var}, total_iters={main_steps}, power={power})"
        elif s.name == "inverse_sqrt":
            self._import("import math")
            scale = f"(warmup_steps if warmup_steps > 0 else {_INVERSE_SQRT_TIMESCALE})"
            main = f"{t}.LambdaLR({opt_var}, lambda t: math.sqrt({scale} / ({scale} + t)))"
        elif s.name == "step":
            if s.milestones is not None and s.total_steps is not None:
                steps = f"({', '.join(str(m) for m in s.milestones)},)"
            else:
                fractions = ", ".join(_py(f) for f in (s.milestone_fractions or [0.5, 0.75]))
                steps = f"(max(1, round(f * total_steps)) for f in ({fractions},))"
            milestones = f"sorted({{m - warmup_steps for m in {steps} if m > warmup_steps}}) or [{main_steps}]"
            main = f"{t}.MultiStepLR({opt_var}, milestones={milestones}, gamma={_py(s.gamma or 0.1)})"
        elif s.name == "exponential":
            gamma = _py(s.gamma) if s.gamma is not None else f"{_py(final or 0.01)} ** (1 / {main_steps})"
            main = f"{t}.ExponentialLR({opt_var}, gamma={gamma})"
        else:  # cosine_restarts: first cycle a quarter of the post-warmup steps, each next one twice as long
            main = (
                f"{t}.CosineAnnealingWarmRestarts({opt_var}, "
                f"T_0=max(1, round({main_steps} * {_RESTART_FIRST_CYCLE})), T_mult=2)"
            )
        if not _has_warmup(s):
            self.body.append(f"{sched_var} = {main}")
            return
        self.body += [
            f"{sched_var} = {t}.SequentialLR(",
            f"    {opt_var},",
            "    schedulers=[",
            f"        {t}.LinearLR({opt_var}, start_factor={_WARMUP_START_FACTOR}, total_iters=warmup_steps),",
            f"        {main},",
            "    ],",
            "    milestones=[warmup_steps],",
            ")",
        ]

    # -------------------------------------------------------------- whole snippet
    def build(self) -> str:
        rec = self.rec
        name = rec.optimizer.name
        spec = self._spec(name)
        groups = _hybrid(rec)
        if groups:
            self._hybrid_optimizers(groups)
        elif name == "muon":
            self.body.append(
                "# Muon takes the 2-D hidden weight matrices, AdamW the rest "
                "(move the embeddings and the output head there too)"
            )
            self.construct(
                "optimizer", name, rec.optimizer.hyperparameters, "[p for p in model.parameters() if p.ndim == 2]"
            )
            self.construct(
                "adamw_optimizer",
                "adamw",
                self.book.defaults["adamw"],
                "[p for p in model.parameters() if p.ndim != 2]",
            )
            self.optimizers = [("optimizer", "scheduler", name), ("adamw_optimizer", "adamw_scheduler", "adamw")]
        else:
            self.construct("optimizer", name, rec.optimizer.hyperparameters, "model.parameters()")
            self.optimizers = [("optimizer", "scheduler", name)]

        s = rec.schedule
        self.body.append("")
        if s.total_steps is not None:
            self.body.append(f"total_steps = {s.total_steps}")
        else:
            self.body.append(
                f"total_steps = {_PLACEHOLDER_TOTAL_STEPS}  # not in the profile: your run's number of optimizer steps"
            )
        if s.warmup_steps is not None:
            self.body.append(f"warmup_steps = {s.warmup_steps}")
        elif s.warmup_ratio > 0:
            self.body.append(f"warmup_steps = max(1, round(total_steps * {_py(s.warmup_ratio)}))")
        else:
            self.body.append("warmup_steps = 0")
        for opt_var, sched_var, _ in self.optimizers:
            self.schedule(opt_var, sched_var)

        if rec.ema is not None:
            self.body += [
                "",
                f"# weight EMA (decay {rec.ema.decay}): evaluate with ema_model",
                "ema_model = torch.optim.swa_utils.AveragedModel(",
                f"    model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn({_py(rec.ema.decay)})",
                ")",
            ]
        self._training_step()
        return self._assemble(spec)

    def _hybrid_optimizers(self, groups: list[ParamGroup]) -> None:
        rec = self.rec
        chosen = rec.optimizer.name
        main = next((g for g in groups if g.optimizer == chosen), None) or next(
            (g for g in groups if "*" in g.match), groups[-1]
        )
        selectors = [m for g in groups for m in g.match if m.startswith("torch.nn.")]
        if not selectors:
            raise _Unsupported("the parameter split", "its groups name no torch.nn module types to select by")
        self.body += [
            "# 004 §5.6.1: each kind of parameter gets its own optimizer",
            "selected_ids = {",
            "    id(p)",
            "    for m in model.modules()",
            f"    if isinstance(m, {_py(tuple(selectors)).replace(chr(39), '')})",
            "    for p in m.parameters(recurse=False)",
            "}",
        ]
        ordered = [main, *(g for g in groups if g is not main)]
        for g in ordered:
            assert g.optimizer is not None
            var, sched = ("optimizer", "scheduler") if g is main else (f"{g.name}_optimizer", f"{g.name}_scheduler")
            test = "not in" if "*" in g.match else "in"
            params = f"[p for p in model.parameters() if id(p) {test} selected_ids]"
            hp = rec.optimizer.hyperparameters if g.optimizer == chosen else g.hyperparameters
            self.body.append(f"# {g.name} ({', '.join(g.match)}): {g.optimizer}")
            self.construct(var, g.optimizer, hp, params)
            self.optimizers.append((var, sched, g.optimizer))

    def _training_step(self) -> None:
        """``training_step(compute_loss)``: backward, clipping and step the way each optimizer needs them
        (as optimizers/training.py does)."""
        rec = self.rec
        clip = (
            [f"    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={_py(rec.gradient_clipping.max_norm)})"]
            if rec.gradient_clipping is not None
            else []
        )
        main_var, _, main_name = self.optimizers[0]
        body = [
            "",
            "",
            "def training_step(compute_loss):",
            '    """One optimizer step. compute_loss() runs the forward pass and returns the loss (no backward)."""',
        ]
        switching = self._switching()
        body += [
            f"    {var}.train()  # Schedule-Free: the gradient is taken at the training weights" for var in switching
        ]
        if main_name == "lbfgs":
            body += [
                "",
                "    def closure():  # L-BFGS re-evaluates the loss during its line search",
                "        model.zero_grad(set_to_none=True)",
                "        loss = compute_loss()",
                "        loss.backward()",
                *("    " + line for line in clip),
                "        return loss",
                "",
                f"    loss = {main_var}.step(closure)",
            ]
        elif main_name == "newton":
            body += [
                "",
                "    def closure():  # Newton differentiates the loss twice itself: no backward here",
                "        model.zero_grad(set_to_none=True)",
                "        return compute_loss()",
                "",
                f"    loss = {main_var}.step(closure)",
            ]
        elif main_name == "sam":
            body += [
                "    model.zero_grad(set_to_none=True)",
                "    loss = compute_loss()  # the gradients at the current weights first",
                "    loss.backward()",
                *clip,
                "",
                "    def second_pass():  # then the loss at the perturbed weights",
                "        value = compute_loss()",
                "        value.backward()",
                "        return value",
                "",
                f"    {main_var}.step(second_pass)",
                "    model.zero_grad(set_to_none=True)",
            ]
        elif main_name == "sophia":
            body += [
                "    model.zero_grad(set_to_none=True)",
                "    loss = compute_loss()",
                "    # Sophia's Hessian estimate differentiates the gradient again, so the gradient keeps its graph",
                "    params = [p for p in model.parameters() if p.requires_grad]",
                "    grads = torch.autograd.grad(loss, params, create_graph=True)",
                "    for p, g in zip(params, grads):",
                "        p.grad = g",
                *clip,
                f"    {main_var}.step()",
                "    model.zero_grad(set_to_none=True)  # drop the graph-carrying gradients",
            ]
        else:
            body += [
                "    model.zero_grad(set_to_none=True)",
                "    loss = compute_loss()",
                "    loss.backward()",
                *clip,
            ]
            body += [f"    {opt_var}.step()" for opt_var, _, _ in self.optimizers]
        body += [f"    {sched}.step()" for _, sched, _ in self.optimizers]
        if rec.ema is not None:
            body.append("    ema_model.update_parameters(model)")
        body.append("    return loss.detach()")
        if switching:
            self._import("import contextlib")
            body += [
                "",
                "",
                "@contextlib.contextmanager",
                "def averaged_weights():",
                '    """Schedule-Free: evaluate and save checkpoints inside `with averaged_weights():` (the averaged',
                '    weights x, not the training point y); training resumes at the training weights afterwards."""',
                *(f"    {var}.eval()" for var in switching),
                "    try:",
                "        yield",
                "    finally:",
                *(f"        {var}.train()" for var in switching),
            ]
            self.notes.append(
                "Schedule-Free: evaluate and checkpoint inside `with averaged_weights():`; with BatchNorm, recompute "
                "its running statistics at those weights first (a few forward passes in train mode)."
            )
        self.body += body

    def _switching(self) -> list[str]:
        """The optimizer variables that switch weights between training and evaluation (Schedule-Free)."""
        return [var for var, _, name in self.optimizers if self._spec(name).needs_eval_mode]

    def _assemble(self, spec: Any) -> str:
        rec = self.rec
        s = rec.schedule
        details = [f"schedule {_describe_schedule(s)}"]
        if rec.gradient_clipping is not None:
            details.append(f"gradient norm clipped at {rec.gradient_clipping.max_norm}")
        header = [
            f"# optirec: {spec.display_name} ({rec.optimizer.name}), {', '.join(details)}",
            f"# rulebook {rec.rulebook.version} ({rec.rulebook.hash[:12]}); `model` is your torch.nn.Module,",
            "# call training_step(compute_loss) once per batch.",
        ]
        if self._switching():
            header.append("# Schedule-Free: evaluate and save checkpoints inside `with averaged_weights():`.")
        header += [f"# warning: {w}" for w in rec.warnings]
        for g in rec.param_groups:
            if g.frozen or g.layerwise_lr_decay is not None:
                header.append(f"# {g.name} ({', '.join(g.match)}): {g.why}")
                self.notes.append(
                    f"param_groups.{g.name}: described in a comment, not coded (it depends on the model)."
                )
        if rec.phases:
            header.append("# phases (004 §6.4.2):")
            for p in rec.phases:
                if p.optimizer.name in self.book.optimizers:
                    path = self._spec(p.optimizer.name).class_path
                    call = _call(path, "model.parameters()", _kwargs(p.optimizer.hyperparameters))
                    header.append(f"#   {p.name}: {call}  # {p.trigger}")
            self.notes.append("phases: the snippet builds the first phase; switch optimizers yourself.")
        lines = [*header, *sorted(self.imports, key=lambda i: (i != "import torch", i))]
        if self.needs_decay_helper:
            lines += [
                "",
                "",
                "def _decay_groups(parameters, weight_decay):",
                '    """Weight decay on matrices and kernels only: biases and normalisation weights get none."""',
                "    parameters = [p for p in parameters if p.requires_grad]",
                "    return [",
                '        {"params": [p for p in parameters if p.ndim > 1], "weight_decay": weight_decay},',
                '        {"params": [p for p in parameters if p.ndim <= 1], "weight_decay": 0.0},',
                "    ]",
                "",
            ]
        lines += ["", *self.body]
        return "\n".join(lines) + "\n"


def _call(path: str, first: str, args: str) -> str:
    return f"{path}({first}, {args})" if args else f"{path}({first})"


def _torch(rec: Recommendation, notes: list[str]) -> str:
    code = _TorchCode(rec, notes).build()
    if rec.schedule.total_steps is None:
        notes.append(f"total_steps is unknown: the snippet uses a placeholder of {_PLACEHOLDER_TOTAL_STEPS} steps.")
    return code


# ------------------------------------------------------------------------------------------- optuna
_INT_PARAMS: Final = frozenset({"batch_size"})
#: learning-rate-free optimizers: lr is a multiplier of the step size they estimate (1.0 by their authors)
_LR_FREE: Final = frozenset({"prodigy", "dadapt_adam"})


def _recommended(rec: Recommendation, name: str) -> Any:
    if name == "batch_size":
        return rec.batch_size
    return rec.optimizer.hyperparameters.get(name)


def _optuna(rec: Recommendation, notes: list[str]) -> dict[str, Any]:
    hints = {h.name: h for h in rec.tuning}
    params: dict[str, dict[str, Any]] = {}
    first: dict[str, Any] = {}
    ray: dict[str, str] = {}
    for name, bounds in rec.search_space.items():
        low, high = float(bounds[0]), float(bounds[1])
        hint = hints.get(name)
        scale = hint.scale if hint is not None else ("log" if low > 0 and high >= 10 * low else "linear")
        log = scale == "log" and low > 0
        value = _recommended(rec, name)
        if name in _INT_PARAMS:
            lo_i, hi_i = math.ceil(low), math.floor(high)
            params[name] = {"type": "int", "low": lo_i, "high": hi_i, "log": log}
            ray[name] = f"{'lograndint' if log else 'randint'}({lo_i}, {hi_i + 1})"
            lo_v: float = lo_i
            hi_v: float = hi_i
        else:
            params[name] = {"type": "float", "low": low, "high": high, "log": log}
            ray[name] = f"{'loguniform' if log else 'uniform'}({low!r}, {high!r})"
            lo_v, hi_v = low, high
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if lo_v <= value <= hi_v:
            first[name] = int(value) if name in _INT_PARAMS else value
        else:
            notes.append(
                f"{name}: the recommended value {value!r} lies outside the search range [{bounds[0]}, {bounds[1]}], "
                "so the first trial lets Optuna sample it."
            )
    if not params:
        notes.append("the recommendation has no search space.")
    if rec.optimizer.name in _LR_FREE and "lr" in params:
        notes.append(
            f"lr: {rec.optimizer.name} estimates its own step size and lr only multiplies it (the authors keep it at "
            "1.0), so searching lr searches that multiplier."
        )
    return {"params": params, "first_trial": first, "ray_tune": ray}


# --------------------------------------------------------------------------------------------- public
_EXPORTERS: Final[dict[str, Callable[[Recommendation, list[str]], Any]]] = {
    "json": _json,
    "hf": _hf,
    "lightning": _lightning,
    "timm": _timm,
    "torch": _torch,
    "optuna": _optuna,
}


def _expressing(rec: Recommendation) -> list[str]:
    ok = []
    for fmt in FORMATS:
        try:
            _EXPORTERS[fmt](rec, [])
        except _Unsupported:
            continue
        ok.append(fmt)
    return ok


def _run(rec: RecommendationLike, fmt: str, notes: list[str] | None) -> Any:
    if fmt not in _EXPORTERS:
        raise ExportError("format", f"unknown format {fmt!r}; valid values: {', '.join(FORMATS)}")
    r = _coerce(rec)
    found: list[str] = []
    try:
        result = _EXPORTERS[fmt](r, found)
    except _Unsupported as exc:
        others = [f for f in _expressing(r) if f != fmt]
        raise ExportError(
            "format",
            f"{fmt} ({_LABELS[fmt]}) cannot express {exc.what}: {exc.why}; "
            f"formats that can express this recommendation: {', '.join(others)}",
        ) from None
    if notes is not None:
        notes.extend(found)
    return result


def export(rec: RecommendationLike, fmt: str, notes: list[str] | None = None) -> dict[str, Any] | str:
    """``rec`` in format ``fmt`` (one of :data:`FORMATS`): a dict, or source code for lightning/torch.

    ``rec`` is a Recommendation, its JSON dict or its JSON text.  Pass a list as ``notes`` to receive
    what the format approximates or leaves to you.  Raises :class:`ExportError` (field ``format``) for
    an unknown format or for what the format cannot express.
    """
    result: dict[str, Any] | str = _run(rec, fmt, notes)
    return result


def export_notes(rec: RecommendationLike, fmt: str) -> list[str]:
    """What format ``fmt`` approximates or leaves to the user for ``rec`` (empty when it is exact)."""
    notes: list[str] = []
    _run(rec, fmt, notes)
    return notes


def to_hf(rec: RecommendationLike) -> dict[str, Any]:
    """Keyword arguments for ``transformers.TrainingArguments`` (add ``output_dir`` and the rest yourself)."""
    result: dict[str, Any] = _run(rec, "hf", None)
    return result


def to_lightning(rec: RecommendationLike) -> str:
    """Source of a ``configure_optimizers(self)`` method that builds the recommendation with optirec."""
    result: str = _run(rec, "lightning", None)
    return result


def to_timm(rec: RecommendationLike) -> dict[str, Any]:
    """Keyword arguments for ``timm.optim.create_optimizer_v2(model, **kwargs)``."""
    result: dict[str, Any] = _run(rec, "timm", None)
    return result


def to_torch_code(rec: RecommendationLike) -> str:
    """A plain PyTorch snippet (``model`` in scope): optimizer, scheduler, clipping and ``training_step``."""
    result: str = _run(rec, "torch", None)
    return result


def to_optuna(rec: RecommendationLike) -> dict[str, Any]:
    """The search space (``params``), the recommended values (``first_trial``, for ``study.enqueue_trial``)
    and the same space for Ray Tune (``ray_tune``: ``tune.<call>`` expressions as strings)."""
    result: dict[str, Any] = _run(rec, "optuna", None)
    return result
