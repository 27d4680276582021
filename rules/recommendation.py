"""The Recommendation: the engine's answer (the JSON contract of ../shared/DESIGN.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .hyperparameters import hyperparameters_schema, optimizer_name_schema
from .numbers import JsonBool, JsonFloat, JsonInt

__all__ = [
    "EMA",
    "AdaptedValue",
    "Alternative",
    "AvoidEntry",
    "Clipping",
    "LRScaling",
    "MemoryEstimate",
    "NearRecipe",
    "OptimizerChoice",
    "ParamGroup",
    "Phase",
    "RationaleEntry",
    "RecipeInfo",
    "Recommendation",
    "RulebookInfo",
    "ScheduleSpec",
    "TuningHint",
]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OptimizerChoice(_Out):
    name: str = Field(
        description="Canonical optimizer name (GET /optimizers).", json_schema_extra=optimizer_name_schema
    )
    hyperparameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword arguments in torch.optim naming; left out, the optimizer class's own defaults apply.",
        json_schema_extra=hyperparameters_schema,
    )


class ScheduleSpec(_Out):
    name: Literal[
        "constant", "step", "cosine", "linear", "exponential", "one_cycle", "cosine_restarts", "inverse_sqrt", "poly"
    ]
    warmup_steps: JsonInt | None = Field(
        default=None, description="Linear warmup steps; null when total_steps is unknown."
    )
    warmup_ratio: JsonFloat = Field(default=0.0, description="Warmup as a fraction of total steps (0 = none).")
    total_steps: JsonInt | None = None
    milestones: list[JsonInt] | None = None
    milestone_fractions: list[JsonFloat] | None = None
    gamma: JsonFloat | None = None
    final_lr_fraction: JsonFloat | None = Field(
        default=None, description="cosine / linear / poly / exponential decay ends at this fraction of the peak lr."
    )
    power: JsonFloat | None = Field(default=None, description="poly: lr x (1 - t/T) ** power.")


class LRScaling(_Out):
    """How the table's lr became yours: ``factor`` for the batch size (``rule``), ``size_factor`` for the
    model size (from ``reference_model``'s parameters to ``num_parameters``), ``horizon_factor`` for the
    training length (from the reference run's ``reference_steps`` to your ``total_steps``);
    ``lr = base_lr x factor x size_factor x horizon_factor``, kept inside 004 §6.3's range."""

    rule: Literal["linear", "sqrt", "none"]
    base_lr: JsonFloat
    base_batch_size: JsonInt | None = None
    batch_size: JsonInt | None = None
    factor: JsonFloat
    reason: str
    reference_model: str | None = None
    reference_parameters: JsonInt | None = None
    num_parameters: JsonInt | None = None
    size_factor: JsonFloat = 1.0
    reference_steps: JsonInt | None = None
    total_steps: JsonInt | None = None
    horizon_factor: JsonFloat = 1.0


class Clipping(_Out):
    max_norm: JsonFloat


class EMA(_Out):
    decay: JsonFloat


class ParamGroup(_Out):
    name: str = Field(description="Which parameters: embeddings, dense, no_decay, frozen, layerwise.")
    match: list[str] = Field(description="What selects them (module types or name patterns).")
    optimizer: str | None = Field(default=None, json_schema_extra=optimizer_name_schema)
    hyperparameters: dict[str, Any] = Field(default_factory=dict, json_schema_extra=hyperparameters_schema)
    frozen: JsonBool = False
    layerwise_lr_decay: JsonFloat | None = None
    why: str = ""


class Alternative(_Out):
    name: str = Field(json_schema_extra=optimizer_name_schema)
    score: JsonFloat
    why: str
    rule: str | None = None
    hyperparameters: dict[str, Any] = Field(default_factory=dict, json_schema_extra=hyperparameters_schema)


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
    """Bytes of the whole job (``*_bytes``) and of one device (``per_device_bytes``, compared with
    ``device_memory_bytes`` for ``fits``): sharded parts (``sharded``) are split over ``num_devices``."""

    state_multiplier: JsonFloat
    optimizer_state_bytes: JsonInt | None = None
    parameter_bytes: JsonInt | None = None
    gradient_bytes: JsonInt | None = None
    total_bytes: JsonInt | None = None
    device_memory_bytes: JsonInt | None = None
    budget_multiplier: JsonFloat | None = None
    fits: JsonBool | None = None
    per_device_bytes: JsonInt | None = None
    master_weight_bytes: JsonInt | None = None
    num_devices: JsonInt = 1
    sharded: list[str] = Field(default_factory=list, description="Parts split over the devices: state, grads, weights.")
    #: bytes one optimizer-state value of one parameter costs one device (for re-costing another optimizer)
    state_value_bytes_per_device: JsonFloat | None = None
    parameters: JsonInt | None = None


class Phase(_Out):
    name: str
    optimizer: OptimizerChoice
    start_step: JsonInt | None = None
    end_step: JsonInt | None = None
    trigger: str
    why: str


class TuningHint(_Out):
    name: str
    priority: JsonInt
    low: JsonFloat
    high: JsonFloat
    scale: Literal["log", "linear"]
    why: str
    source: str


class AdaptedValue(_Out):
    """A value of the recipe carried to the caller's job, and why it changed."""

    field: str
    from_: Any = Field(alias="from", serialization_alias="from")
    to: Any
    why: str

    model_config = ConfigDict(
        frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )


class NearRecipe(_Out):
    id: str
    title: str
    distance: JsonFloat
    optimizer: str


class RecipeInfo(_Out):
    """The published recipe the answer is based on, how near it is, and what was carried to your job."""

    id: str
    title: str
    source: str = Field(description="The citation: paper or official config, and where in it.")
    distance: JsonFloat = Field(description="How far its job is from yours (0 = the same job; see GET /rules).")
    table_distance: JsonFloat | None = Field(
        description="How far the seed table's row is; the recipe is nearer. null: no row describes a job of this "
        "architecture family, so none is comparable."
    )
    adapted: list[AdaptedValue] = Field(default_factory=list)
    nearest: list[NearRecipe] = Field(default_factory=list, description="The next-nearest recipes.")


class RulebookInfo(_Out):
    version: str
    hash: str


class Recommendation(_Out):
    """Optimizer, hyperparameters, schedule and everything else the job needs, with the reasons.

    The engine spells out every field.  A hand-written or edited one needs only ``optimizer`` (its ``name``):
    a field left out means what it says when empty -- a constant schedule, no batch size, no clipping, no
    parameter groups, no alternatives, notes or warnings, and no lr-scaling, memory or rulebook account
    (those describe how the engine reached its answer, so only the engine fills them in)."""

    optimizer: OptimizerChoice
    schedule: ScheduleSpec = Field(default_factory=lambda: ScheduleSpec(name="constant"))
    batch_size: JsonInt | None = None
    lr_scaling: LRScaling | None = Field(default=None, description="How the lr was scaled; null if not by optirec.")
    gradient_clipping: Clipping | None = None
    param_groups: list[ParamGroup] = Field(default_factory=list)
    alternatives: list[Alternative] = Field(
        default_factory=list,
        description="Other optimizers the rules support, best first, each with its own hyperparameters and why it "
        "ranks there; one only a far weaker rule names (score 0) comes last, its why starting 'not recommended' "
        "(a baseline to race against).",
    )
    avoid: list[AvoidEntry] = Field(default_factory=list)
    rationale: list[RationaleEntry] = Field(default_factory=list)
    warnings: list[str] = Field(
        default_factory=list, description="What needs the caller's attention: constraints, contradictory input."
    )
    memory: MemoryEstimate | None = Field(default=None, description="Memory of the chosen optimizer; null if unknown.")
    search_space: dict[str, list[JsonFloat]] = Field(
        default_factory=dict, description="Priority-ordered tuning ranges (004 §6.3)."
    )
    tuning: list[TuningHint] = Field(default_factory=list)
    phases: list[Phase] = Field(default_factory=list)
    ema: EMA | None = None
    notes: list[str] = Field(default_factory=list)
    profile: dict[str, Any] = Field(
        default_factory=dict, description="The validated profile this answers, as understood."
    )
    rulebook: RulebookInfo | None = Field(default=None, description="The rulebook that made it; null if hand-written.")
    recipe: RecipeInfo | None = Field(default=None, description="The published recipe it is based on, if any.")
