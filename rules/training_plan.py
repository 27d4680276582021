"""The parts of an answer that follow from the chosen optimizer and the training settings: the schedule,
the parameter groups, the Adam -> SGD phases (004 §6.4.2) and the search space (004 §6.3)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal

from .construct import new
from .loader import CompiledRule, Rulebook
from .lr_terms import lr_search_range
from .profile import Profile
from .recommendation import AvoidEntry, OptimizerChoice, ParamGroup, Phase, ScheduleSpec, TuningHint

__all__ = ["TRAIN_NOTES", "param_groups", "phases", "schedule", "tuning_hints"]

#: Training settings that are advice rather than numbers, and what to tell the user about them.
TRAIN_NOTES = (
    (
        "long_schedule",
        "Plan a long schedule: this recipe keeps improving well past a short run, so budget the full "
        "schedule before judging it (004 §2.3 Mask R-CNN, §2.5 best accuracy).",
    ),
    (
        "separate_lr",
        "Give the discriminator its own optimizer: its lr may differ from the generator's when one network "
        "overpowers the other (004 §2.3 GAN discriminator).",
    ),
    (
        "truncate_bptt",
        "Tune the sequence length of truncated backpropagation through time: long windows explode or vanish "
        "gradients, short ones lose context (004 §2.3 GRU).",
    ),
)
#: Hybrid recommender split (004 §5.6.1), in order of preference when one is ruled out
_SPARSE_CHOICES = ("adagrad", "adam", "rmsprop", "sgd_momentum", "sgd")
_DENSE_CHOICES = ("adam", "adamw", "rmsprop", "sgd_momentum", "sgd")
#: what a recipe's weight-decay exclusions select, in the words of a param group's ``match``
_EXCLUDED = {
    "bias": "bias",
    "norm": "norm weights (BatchNorm/LayerNorm/GroupNorm)",
    "one_d": "1-D parameters",
    "gain": "gains (1-D scales)",
    "embedding": "embeddings (torch.nn.Embedding)",
    "position_embedding": "position embeddings (pos_embed)",
    "cls_token": "class tokens (cls_token)",
}


def schedule(
    book: Rulebook,
    default_name: str,
    default_warmup: bool,
    train: dict[str, Any],
    total: int | None,
    notes: list[str],
) -> ScheduleSpec:
    """The schedule: the rules' (or recipe's) shape, warmup as a ratio and in steps, milestones in steps."""
    pr = book.principles
    name = train.get("schedule", default_name)
    warmup = train.get("warmup", default_warmup)
    ratio = 0.0
    if warmup:
        if "warmup_ratio" in train:
            ratio = train["warmup_ratio"]
        elif train.get("short_warmup"):
            ratio = pr.short_warmup_ratio
        else:
            ratio = pr.default_warmup_ratio
    warmup_steps: int | None = round(total * ratio) if total is not None else (0 if ratio == 0 else None)
    if warmup_steps and total and "warmup_steps" in train and train["warmup_steps"] < warmup_steps:
        # a recipe's warmup: a run longer than the recipe's keeps its warmup steps (the warmup gets past the first
        # steps' instability, which does not grow with the run), a shorter one its fraction (policy)
        warmup_steps = train["warmup_steps"]
        ratio = round(warmup_steps / total, 6)
    milestones = fractions = None
    gamma = None
    final = train.get("final_lr_fraction") if name in ("cosine", "linear", "poly", "exponential") else None
    if name == "step":
        fractions = list(train.get("step_milestones", pr.step_milestones))
        gamma = train.get("step_gamma", pr.step_gamma)
        if total is not None:
            milestones = [max(1, round(f * total)) for f in fractions]
    elif name == "exponential":
        # decay to the recipe's final fraction, else to 1% of the peak lr by the end of training (stated policy)
        end = final if final else 0.01
        gamma = float(f"{end ** (1 / total):.8g}") if total else None
        final = end
    if total is None:
        notes.append(
            "total_steps is unknown (give total_steps, or epochs with steps_per_epoch or dataset_size): "
            "the schedule is given as ratios."
        )
    spec: ScheduleSpec = new(
        ScheduleSpec,
        name=name,
        warmup_steps=warmup_steps,
        warmup_ratio=ratio,
        total_steps=total,
        milestones=milestones,
        milestone_fractions=fractions,
        gamma=gamma,
        final_lr_fraction=final,
        power=train.get("poly_power") if name == "poly" else None,
    )
    return spec


def param_groups(
    book: Rulebook,
    chosen: str,
    hp: dict[str, Any],
    train: dict[str, Any],
    derive: Callable[[str], dict[str, Any]],
    excluded: Collection[str],
    notes: list[str],
) -> list[ParamGroup]:
    """No weight decay on biases and norms (and what a recipe also exempts), the recommender's hybrid split,
    freezing and layer-wise lr decay."""
    groups: list[ParamGroup] = []
    if train.get("hybrid"):
        groups.extend(_hybrid_groups(chosen, derive, excluded, notes))
    if hp.get("weight_decay", 0) and book.optimizers[chosen].family != "second_order":
        match = ["bias", "norm weights (BatchNorm/LayerNorm/GroupNorm)", "1-D parameters"]
        extra = [_EXCLUDED[k] for k in train.get("weight_decay_excludes", ()) if _EXCLUDED[k] not in match]
        groups.append(
            _group(
                name="no_decay",
                match=match + extra,
                why="Weight decay is not applied to biases and normalisation weights (as timm and Hugging Face do)"
                + (f"; the recipe also exempts {', '.join(extra)}." if extra else "."),
                hyperparameters={"weight_decay": 0.0},
            )
        )
    if train.get("freeze_backbone"):
        groups.append(
            _group(
                name="frozen",
                match=["early backbone layers"],
                why="Transfer learning: freeze the early, generic layers at first (004 §2.5 transfer learning).",
                frozen=True,
            )
        )
    if "layerwise_lr_decay" in train:
        decay = train["layerwise_lr_decay"]
        groups.append(
            _group(
                name="layerwise",
                match=["layers, from the head down"],
                why=f"Each layer below the head gets {decay}x the lr of the layer above it (004 §2.5 transfer "
                "learning: per-layer learning rates).",
                layerwise_lr_decay=decay,
            )
        )
    return groups


def _group(
    *,
    name: str,
    match: list[str],
    why: str,
    optimizer: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
    frozen: bool = False,
    layerwise_lr_decay: float | None = None,
) -> ParamGroup:
    group: ParamGroup = new(
        ParamGroup,
        name=name,
        match=match,
        optimizer=optimizer,
        hyperparameters=hyperparameters if hyperparameters is not None else {},
        frozen=frozen,
        layerwise_lr_decay=layerwise_lr_decay,
        why=why,
    )
    return group


def _hybrid_groups(
    chosen: str, derive: Callable[[str], dict[str, Any]], excluded: Collection[str], notes: list[str]
) -> list[ParamGroup]:
    """004 §5.6.1: embeddings -> Adagrad, dense layers -> Adam; each replaced when avoided for this profile."""
    emb = next((o for o in _SPARSE_CHOICES if o not in excluded), chosen)
    dense = next((o for o in _DENSE_CHOICES if o not in excluded), chosen)
    if emb == dense:
        notes.append(
            f"The recommender split (embeddings -> Adagrad, dense -> Adam, 004 §5.6.1) collapses to one "
            f"optimizer, {emb}, because the profile rules the usual pair out."
        )
        return []
    swapped = " (its usual optimizer is ruled out for this profile)"
    return [
        _group(
            name="embeddings",
            match=["torch.nn.Embedding", "torch.nn.EmbeddingBag"],
            why="Sparse embedding rows get per-row adaptive steps (004 §5.6.1)"
            + ("" if emb == "adagrad" else swapped)
            + ".",
            optimizer=emb,
            hyperparameters=derive(emb),
        ),
        _group(
            name="dense",
            match=["*"],
            why="The dense interaction layers see dense gradients (004 §5.6.1)"
            + ("" if dense == "adam" else swapped)
            + ".",
            optimizer=dense,
            hyperparameters=derive(dense),
        ),
    ]


def tuning_hints(
    book: Rulebook,
    family: str,
    lr: float | None,
    lr_range: tuple[float, float] | None,
    batch: int | None,
    budgeted: bool,
    has_weight_decay: bool,
    momentum: bool,
) -> tuple[TuningHint, ...]:
    """004 §6.3's tuning hints for these arguments alone (plus the rulebook's constants): they are a memo key."""
    pr = book.principles
    src = pr.sources["tuning"]
    ranges: list[tuple[str, float, float, Literal["log", "linear"], str]] = []
    if lr:
        lo, hi = lr_range if lr_range is not None else lr_search_range(lr, pr)
        ranges.append(("lr", lo, hi, "log", src))
    if batch:
        hi_b = batch if budgeted else batch * 4
        ranges.append(("batch_size", float(max(1, batch // 4)), float(hi_b), "log", src))
    if family == "sgd":
        lo, hi = pr.sgd_weight_decay_range
        ranges.append(("weight_decay", lo, hi, "log", pr.sources["sgd_weight_decay_range"]))
    elif has_weight_decay or family == "adaptive":
        lo, hi = pr.adaptive_weight_decay_range
        ranges.append(("weight_decay", lo, hi, "log", src))
    if family == "sgd" and momentum:
        lo, hi = pr.momentum_range
        ranges.append(("momentum", lo, hi, "linear", src))
    why = book.tuning_why
    return tuple(
        new(TuningHint, name=name, priority=why[name][0], low=lo, high=hi, scale=scale, why=why[name][1], source=source)
        for name, lo, hi, scale, source in ranges
    )


def phases(
    book: Rulebook,
    p: Profile,
    chosen: str,
    hp: dict[str, Any],
    sched: ScheduleSpec,
    matched: list[CompiledRule],
    derive: Callable[[str, list[CompiledRule]], dict[str, Any]],
    notes: list[str],
) -> list[Phase]:
    """004 §6.4.2: best accuracy with an adaptive optimizer -> finish with SGD + momentum."""
    if p.goal != "best_accuracy" or book.optimizers[chosen].family != "adaptive":
        return []
    pr = book.principles
    total = sched.total_steps
    switch = round(total * pr.switch_fraction) if total is not None else None
    trigger = "validation loss stops improving"
    if switch is not None:
        trigger += f", or step {switch} at the latest"
    notes.append(
        f"Best-accuracy plan: train with {chosen} until validation loss plateaus, then switch to SGD + momentum "
        f"for the rest ({pr.sources['switching']})."
    )
    return [
        new(
            Phase,
            name="adaptive",
            optimizer=new(OptimizerChoice, name=chosen, hyperparameters=dict(hp)),
            start_step=0,
            end_step=switch,
            trigger=trigger,
            why="Reach a good region fast with the adaptive optimizer.",
        ),
        new(
            Phase,
            name="sgd_finish",
            optimizer=new(OptimizerChoice, name="sgd_momentum", hyperparameters=derive("sgd_momentum", matched)),
            start_step=switch,
            end_step=total,
            trigger="after the adaptive phase",
            why="SGD + momentum settles in flatter minima that generalise better (004 §6.4.2, §5.1.1).",
        ),
    ]


def hybrid_excluded(avoid: Mapping[str, AvoidEntry], over_budget: Collection[str]) -> set[str]:
    """The optimizers the recommender split may not use: avoided or over the memory budget."""
    return set(avoid) | set(over_budget)
