"""The Recommendation: the engine's answer (the JSON contract of ../shared/DESIGN.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "EMA",
    "Alternative",
    "AvoidEntry",
    "Clipping",
    "LRScaling",
    "MemoryEstimate",
    "OptimizerChoice",
    "ParamGroup",
    "Phase",
    "RationaleEntry",
    "Recommendation",
    "RulebookInfo",
    "ScheduleSpec",
    "TuningHint",
]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OptimizerChoice(_Out):
    name: str = Field(description="Canonical optimizer name (GET /optimizers).")
    hyperparameters: dict[str, Any] = Field(description="Keyword arguments in torch.optim naming.")


class ScheduleSpec(_Out):
    name: Literal["constant", "step", "cosine", "linear", "exponential", "one_cycle", "cosine_restarts"]
    warmup_steps: int | None = Field(description="Linear warmup steps; null when total_steps is unknown.")
    warmup_ratio: float = Field(description="Warmup as a fraction of total steps (0 = none).")
    total_steps: int | None
    milestones: list[int] | None = None
    milestone_fractions: list[float] | None = None
    gamma: float | None = None


class LRScaling(_Out):
    """How the table's lr became yours: ``factor`` for the batch size (``rule``), ``size_factor`` for the
    model size (from ``reference_model``'s parameters to ``num_parameters``), ``horizon_factor`` for the
    training length (from the reference run's ``reference_steps`` to your ``total_steps``);
    ``lr = base_lr x factor x size_factor x horizon_factor``, kept inside 004 §6.3's range."""

    rule: Literal["linear", "sqrt", "none"]
    base_lr: float
    base_batch_size: int | None
    batch_size: int | None
    factor: float
    reason: str
    reference_model: str | None = None
    reference_parameters: int | None = None
    num_parameters: int | None = None
    size_factor: float = 1.0
    reference_steps: int | None = None
    total_steps: int | None = None
    horizon_factor: float = 1.0


class Clipping(_Out):
    max_norm: float


class EMA(_Out):
    decay: float


class ParamGroup(_Out):
    name: str = Field(description="Which parameters: embeddings, dense, no_decay, frozen, layerwise.")
    match: list[str] = Field(description="What selects them (module types or name patterns).")
    optimizer: str | None = None
    hyperparameters: dict[str, Any] = {}
    frozen: bool = False
    layerwise_lr_decay: float | None = None
    why: str


class Alternative(_Out):
    name: str
    score: float
    why: str
    rule: str | None = None
    hyperparameters: dict[str, Any] = {}


class AvoidEntry(_Out):
    name: str
    why: str
    rule: str
    source: str


class RationaleEntry(_Out):
    rule: str
    source: str
    level: str
    status: Literal["chosen", "supports", "outvoted", "applied", "avoid", "info"]
    effect: str
    detail: str | None = None


class MemoryEstimate(_Out):
    state_multiplier: float
    optimizer_state_bytes: int | None
    parameter_bytes: int | None = None
    gradient_bytes: int | None = None
    total_bytes: int | None = None
    device_memory_bytes: int | None = None
    budget_multiplier: float | None = None
    fits: bool | None = None


class Phase(_Out):
    name: str
    optimizer: OptimizerChoice
    start_step: int | None
    end_step: int | None
    trigger: str
    why: str


class TuningHint(_Out):
    name: str
    priority: int
    low: float
    high: float
    scale: Literal["log", "linear"]
    why: str
    source: str


class RulebookInfo(_Out):
    version: str
    hash: str


class Recommendation(_Out):
    """Optimizer, hyperparameters, schedule and everything else the job needs, with the reasons."""

    optimizer: OptimizerChoice
    schedule: ScheduleSpec
    batch_size: int | None
    lr_scaling: LRScaling
    gradient_clipping: Clipping | None
    param_groups: list[ParamGroup]
    alternatives: list[Alternative]
    avoid: list[AvoidEntry]
    rationale: list[RationaleEntry]
    warnings: list[str]
    memory: MemoryEstimate
    search_space: dict[str, list[float]] = Field(description="Priority-ordered tuning ranges (004 §6.3).")
    tuning: list[TuningHint]
    phases: list[Phase]
    ema: EMA | None
    notes: list[str]
    profile: dict[str, Any] = Field(description="The validated profile this answers, as understood.")
    rulebook: RulebookInfo
