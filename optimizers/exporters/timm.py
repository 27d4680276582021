"""timm: the arguments of the timm calls that train a model the recommended way, one section per call.

``{"create_optimizer_v2": {...}, "create_scheduler_v2": {...}, "train_args": {...}}``:

- ``create_optimizer_v2``: keyword arguments of ``timm.optim.create_optimizer_v2(model, **kw)``
  (timm/optim/_optim_factory.py): ``opt`` from the registry, lr, weight_decay, ``filter_bias_and_bn``,
  ``layer_decay`` and the optimizer class's own keywords.
- ``create_scheduler_v2``: keyword arguments of ``timm.scheduler.create_scheduler_v2(optimizer, **kw)``
  (timm/scheduler/scheduler_factory.py). Counted in optimizer updates: ``step_on_epochs=False`` with
  ``updates_per_epoch=1`` makes every ``*_epochs`` count an update, so call
  ``lr_scheduler.step_update(num_updates)`` after each optimizer step, as timm's train.py does
  (``lr_scheduler.step_update(num_updates=num_updates, ...)``); the second value it returns is then the
  run's length in updates. The curve is the answer's (optimizers/schedulers.py): warmup from
  ``WARMUP_START_FACTOR`` of the peak (``warmup_lr``), the decay after it (``warmup_prefix=True``), cosine
  and poly (linear is poly with power 1) to ``final_lr_fraction`` of the peak (``min_lr``), step decay as
  ``multistep``, exponential decay as ``step`` decaying every update, constant as ``step`` with rate 1, warm
  restarts as cosine cycles (``cycle_mul=2``). One-cycle and inverse-square-root decay are refused: timm's
  factory builds cosine, tanh, step, multistep, plateau and poly only.
- ``train_args``: the argparse destinations of timm's train.py for the rest: ``clip_grad`` / ``clip_mode``
  (``--clip-grad``, ``--clip-mode``: utils.dispatch_clip_grad), ``model_ema`` / ``model_ema_decay``
  (``--model-ema``, ``--model-ema-decay``: timm.utils.ModelEmaV3 through timm/task/task.py setup_ema),
  ``batch_size`` (``-b``, per process: train.py's global batch is batch_size x world_size x grad_accum_steps)
  and ``amp`` / ``amp_dtype`` (``--amp``, ``--amp-dtype``).

Names read at huggingface/pytorch-image-models aa4b5850c1543fa488abf260f18390eda46cf85d (timm 1.0.29.dev0).
"""

from __future__ import annotations

import math
from typing import Any, Final

from optirec.rules import Recommendation
from optirec.rules.recommendation import ScheduleSpec

from .common import (
    PLACEHOLDER_TOTAL_STEPS,
    RESTART_FIRST_CYCLE,
    WARMUP_START_FACTOR,
    Unsupported,
    lookahead_base_hp,
    optimizer_label,
    pop_except,
    pop_only,
    refuse_leftovers,
    refuse_split,
)
from .formats import LABELS

_TIMM_PLAIN: Final = {  # catalog name -> timm name, for torch classes timm passes extra kwargs to
    "adam": "adam",
    "adamw": "adamw",
    "adamax": "adamax",
    "nadam": "nadam",
    "radam": "radam",
    "adagrad": "adagrad",
    "rmsprop": "rmsprop",
}
#: timm/scheduler/scheduler_factory.py create_scheduler_v2: the ``sched`` values it builds
TIMM_SCHEDULERS: Final = ("cosine", "tanh", "step", "multistep", "plateau", "poly")
#: why timm cannot run a schedule, and the closest it has
_NO_TIMM_SCHEDULE: Final = {
    "one_cycle": (
        "create_scheduler_v2 builds cosine, tanh, step, multistep, plateau and poly only (timm/scheduler/"
        "scheduler_factory.py), none rises and falls over the run while cycling momentum as OneCycleLR does; the "
        "closest is sched='cosine' with a warmup"
    ),
    "inverse_sqrt": (
        "create_scheduler_v2 builds cosine, tanh, step, multistep, plateau and poly only (timm/scheduler/"
        "scheduler_factory.py), none decays as 1/sqrt(step); the closest is sched='poly', whose power shapes a "
        "falling curve but reaches min_lr at the end of the run, where 1/sqrt(step) never does"
    ),
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
        out.update(pop_except(hp, ("lr", "weight_decay")))  # dampening etc. go through to torch.optim.SGD
        return out
    if name in _TIMM_PLAIN:
        out = {"opt": _TIMM_PLAIN[name]}
        if name == "rmsprop":  # timm defaults momentum and alpha to 0.9: pass both
            out["momentum"] = hp.pop("momentum", 0.0)
            out["alpha"] = hp.pop("alpha", 0.99)
        if name == "adagrad":  # timm defaults eps to 1e-8, torch to 1e-10
            out["eps"] = hp.pop("eps", 1e-10)
        out.update(pop_except(hp, ("lr", "weight_decay")))  # betas, eps, amsgrad, ... are torch keywords
        return out
    if name == "lamb":
        # pytorch_optimizer.Lamb (the catalog's class) decouples weight decay (weight_decouple=True), rescales
        # gradients by their global norm only with pre_norm=True and adapts every parameter; timm's Lamb
        # (timm/optim/lamb.py) by default couples the decay, clips the global norm at max_grad_norm=1.0 and
        # adapts only decayed parameters (always_adapt=False)
        notes.append(
            "opt=lamb is timm's Lamb with decoupled_decay, max_grad_norm=None and always_adapt=True, as "
            "pytorch_optimizer.Lamb's defaults; timm applies the decoupled decay after computing the update, "
            "pytorch_optimizer before, which moves the trust ratio slightly."
        )
        return {
            "opt": "lamb",
            **pop_only(hp, ("betas", "eps")),
            "decoupled_decay": hp.pop("weight_decouple", True),
            "max_grad_norm": None,
            "always_adapt": True,
        }
    if name == "lion":
        return {"opt": "lion", **pop_only(hp, ("betas",))}
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
        return {"opt": "muon", **pop_only(hp, ("momentum", "nesterov"))}
    if name in ("ranger", "lookahead"):
        k = hp.pop("k", 6 if name == "ranger" else 5)
        alpha = hp.pop("lookahead_alpha", 0.5)
        if (k, alpha) != (6, 0.5):
            raise Unsupported(
                f"the optimizer {optimizer_label(name)} with k={k}, alpha={alpha}",
                "timm's lookahead_ prefix always wraps with k=6, alpha=0.5",
            )
        if name == "ranger":
            notes.append(
                "opt=lookahead_radam is RAdam + Lookahead(k=6, alpha=0.5) without pytorch_optimizer.Ranger's "
                "gradient centralization, and with RAdam's eps (1e-8, not 1e-5)."
            )
            return {"opt": "lookahead_radam", **pop_only(hp, ("betas",))}
        base = str(hp.pop("base", "adam"))
        base_hp = lookahead_base_hp(base, hp)
        inner = _timm_opt(base, base_hp, notes)
        hp.clear()
        hp.update(base_hp)  # the base's lr, weight_decay and leftovers are the caller's to place
        return {**inner, "opt": f"lookahead_{inner['opt']}"}
    raise Unsupported(f"the optimizer {optimizer_label(name)}", "timm's optimizer registry has no such optimizer")


def _optimizer_section(rec: Recommendation, notes: list[str]) -> dict[str, Any]:
    name = rec.optimizer.name
    hp = dict(rec.optimizer.hyperparameters)
    out = _timm_opt(name, hp, notes)
    kwargs: dict[str, Any] = {
        "opt": out.pop("opt"),
        "lr": hp.pop("lr", None),
        "weight_decay": hp.pop("weight_decay", 0.0),
    }
    refuse_leftovers(hp, LABELS["timm"])
    kwargs.update(out)
    no_decay = any(g.name == "no_decay" for g in rec.param_groups)
    # timm exempts 1-D parameters, names ending in .bias and model.no_weight_decay() when filter_bias_and_bn
    # (its default, True): timm/optim/_param_groups.py param_groups_weight_decay; the answer's no_decay group
    kwargs["filter_bias_and_bn"] = no_decay
    if no_decay and kwargs["weight_decay"]:
        notes.append(
            "filter_bias_and_bn=True: timm spares 1-D parameters, names ending in .bias and the names of "
            "model.no_weight_decay() (timm/optim/_param_groups.py); it does not read no_weight_decay_keywords(), "
            "which build() also honours."
        )
    for g in rec.param_groups:
        if g.layerwise_lr_decay is not None:
            kwargs["layer_decay"] = g.layerwise_lr_decay
            notes.append(
                f"layer_decay={g.layerwise_lr_decay}: timm puts each layer's factor in its param group's lr_scale, "
                "which only timm's schedulers apply (timm/scheduler/scheduler.py Scheduler.update_groups): build "
                "the create_scheduler_v2 section too and call step_update after every optimizer step, or every "
                "layer trains at the full lr. timm reads the layers from model.group_matcher (timm models, as "
                "build() does); a model without one is cut into groups of 12 parameter tensors "
                "(timm/optim/_param_groups.py auto_group_layers), not into its blocks."
            )
    if name == "rmsprop" and any("RMSpropTF" in r.effect for r in rec.rationale):
        notes.append(
            "opt=rmsprop is torch.optim.RMSprop, the update this answer recommends (its catalog class); the "
            "rationale's TensorFlow recipe is timm's opt='rmsproptf' (timm/optim/rmsprop_tf.py: eps inside the "
            "square root, square_avg starting at ones, the lr inside the momentum buffer), which trains "
            "differently with the same eps: use it to reproduce that recipe rather than this answer."
        )
    return kwargs


def _counts(s: ScheduleSpec) -> tuple[int, int, bool]:
    """(total, warmup, placeholder) as optimizers/schedulers.py build_scheduler resolves them; an unknown
    total is ``PLACEHOLDER_TOTAL_STEPS`` (as ``build(..., total_steps=PLACEHOLDER_TOTAL_STEPS)`` would)."""
    placeholder = s.total_steps is None
    total = PLACEHOLDER_TOTAL_STEPS if s.total_steps is None else s.total_steps
    known = not placeholder and s.warmup_steps is not None
    warmup = s.warmup_steps if known and s.warmup_steps is not None else round(total * s.warmup_ratio)
    return total, warmup, placeholder


def _scheduler_kwargs(s: ScheduleSpec, lr: Any) -> dict[str, Any]:
    """``create_scheduler_v2`` kwargs whose lr curve, per optimizer update, is the answer's schedule ``s``."""
    if s.name in _NO_TIMM_SCHEDULE:
        raise Unsupported(f"the {s.name!r} schedule", _NO_TIMM_SCHEDULE[s.name])
    if not isinstance(lr, int | float) or isinstance(lr, bool):
        raise Unsupported("a schedule without an lr", "create_scheduler_v2's warmup_lr and min_lr are absolute lrs")
    total, warmup, _ = _counts(s)
    if warmup < 0 or (warmup > 0 and warmup >= total):
        raise Unsupported(f"a warmup of {warmup} steps in {total}", "the warmup must end before the run does")
    main = max(1, total - warmup)
    final = s.final_lr_fraction or 0.0
    out: dict[str, Any] = {"sched": "cosine", "num_epochs": main}
    if s.name == "cosine":
        out["min_lr"] = final * lr
    elif s.name in ("linear", "poly"):  # PolyLRScheduler: min_lr + (lr - min_lr) * (1 - t/T) ** power
        out.update(sched="poly", decay_rate=1.0 if s.name == "linear" or s.power is None else s.power)
        out["min_lr"] = final * lr
    elif s.name == "step":
        if s.milestones is not None and s.total_steps is not None:
            milestones = s.milestones
        else:
            milestones = [max(1, round(f * total)) for f in (s.milestone_fractions or [0.5, 0.75])]
        shifted = sorted({m - warmup for m in milestones if m > warmup}) or [main]
        # MultiStepLRScheduler decays when bisect_right(decay_t, t + 1) grows, i.e. at t = milestone - 1, where
        # torch's MultiStepLR decays at t = milestone: each milestone is one later here
        out.update(sched="multistep", decay_milestones=[m + 1 for m in shifted], decay_rate=s.gamma or 0.1)
    elif s.name == "exponential":
        end = s.final_lr_fraction or 0.01
        gamma = s.gamma if s.gamma is not None and s.total_steps is not None else end ** (1 / main)
        # StepLRScheduler: lr * decay_rate ** (t // decay_t); decay_t = 1 update is lr * gamma ** t
        out.update(sched="step", decay_epochs=1, decay_rate=gamma)
    elif s.name == "constant":
        out.update(sched="step", decay_epochs=main, decay_rate=1.0)
    elif s.name == "cosine_restarts":
        # CosineAnnealingWarmRestarts(T_0, T_mult=2): cycles T_0, 2 T_0, 4 T_0, ...; timm's cosine cycles with
        # cycle_mul=2, no decay between cycles, as many as cover the run
        first = max(1, round(main * RESTART_FIRST_CYCLE))
        cycles = max(1, math.ceil(math.log2(main / first + 1)))
        out.update(num_epochs=first, min_lr=0.0, cycle_mul=2.0, cycle_decay=1.0, cycle_limit=cycles)
    else:  # pragma: no cover - ScheduleSpec's Literal keeps this out
        raise Unsupported(f"the {s.name!r} schedule", "it is not a known schedule")
    out["warmup_epochs"] = warmup
    if warmup > 0:
        out.update(warmup_lr=WARMUP_START_FACTOR * lr, warmup_prefix=True)
    out.update(step_on_epochs=False, updates_per_epoch=1)
    return out


def _scheduler_section(rec: Recommendation, lr: Any, notes: list[str]) -> dict[str, Any]:
    kwargs = _scheduler_kwargs(rec.schedule, lr)
    _, _, placeholder = _counts(rec.schedule)
    if placeholder and rec.schedule.name != "constant":
        notes.append(
            f"total_steps is unknown: create_scheduler_v2's counts assume a run of {PLACEHOLDER_TOTAL_STEPS} "
            "updates (num_epochs, warmup_epochs, decay_milestones); give total_steps in the profile for yours."
        )
    if rec.schedule.name == "cosine_restarts":
        notes.append(
            f"sched=cosine with cycle_mul=2 runs {kwargs['cycle_limit']} whole cycles, so the length it returns "
            "can exceed the run's; torch's warm restarts would go on cycling past it."
        )
    return kwargs


def _train_args(rec: Recommendation, notes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    clip = rec.gradient_clipping
    # train.py --clip-grad (default None: no clipping) and --clip-mode (default "norm": clip_grad_norm_)
    out["clip_grad"] = clip.max_norm if clip is not None else None
    if clip is not None:
        out["clip_mode"] = "norm"
    if rec.ema is not None:  # train.py --model-ema / --model-ema-decay (default 0.9998, so always given)
        out.update(model_ema=True, model_ema_decay=rec.ema.decay)
        notes.append(
            "model_ema: train.py keeps timm.utils.ModelEmaV3 at a fixed decay (model_ema_warmup off), updated "
            "after every optimizer update; it averages floating-point buffers (BatchNorm statistics) as well."
        )
    profile = rec.profile or {}
    devices = profile.get("num_devices") or 1
    if rec.batch_size is not None:
        if rec.batch_size % devices == 0:
            out["batch_size"] = rec.batch_size // devices  # train.py -b is per process
        else:
            notes.append(
                f"batch_size: the recommended {rec.batch_size} does not divide over {devices} devices; train.py's "
                "-b is per process (global batch = batch_size x world_size x grad_accum_steps)."
            )
    if profile.get("mixed_precision"):
        out["amp"] = True
        dtype = {"bf16": "bfloat16", "fp16": "float16"}.get(str(profile.get("precision")))
        if dtype is not None:
            out["amp_dtype"] = dtype
    return out


def timm_args(rec: Recommendation, notes: list[str]) -> dict[str, Any]:
    refuse_split(rec)
    optimizer = _optimizer_section(rec, notes)
    scheduler = _scheduler_section(rec, optimizer["lr"], notes)
    train = _train_args(rec, notes)
    for g in rec.param_groups:
        if g.frozen:
            notes.append(
                f"param_groups.{g.name}: freeze {', '.join(g.match)} yourself before create_optimizer_v2, which "
                "leaves out parameters with requires_grad=False (timm/optim/_param_groups.py); "
                "timm.utils.freeze(model, [names]) does it (timm/utils/model.py)."
            )
    if rec.phases:
        plan = " -> ".join(p.optimizer.name for p in rec.phases)
        notes.append(
            f"phases: only the first phase is exported; the plan is {plan}, switching when {rec.phases[0].trigger}."
        )
    return {"create_optimizer_v2": optimizer, "create_scheduler_v2": scheduler, "train_args": train}
