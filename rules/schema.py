"""Pydantic models for the knowledge-base data files under ``rules/data/``.

Every file is TOML (parsed with the stdlib ``tomllib``) and validated once, at load time,
by the models below.  A malformed file fails with :class:`~optirec.rules.errors.RulebookError`
naming the file, the rule (its ``id`` or ``name``) and the field.

File kinds
----------
``optimizers.toml``   ``[[optimizer]]`` -> :class:`OptimizerSpec` (004 §2.1, §3, §4, §6.5, seeds 000-003)
``vocabulary.toml``   ``[[domain]]``, ``[[architecture]]``, ``[[data]]``, ``[[goal]]`` -> :class:`Term`
``*.rules.toml``      ``[[rule]]`` -> :class:`Rule` (one file per seed table / guide)
``principles.toml``   ``[principles]`` -> :class:`Principles` (004 §6.2-§6.4 numbers)
``symptoms.toml``     ``[[symptom]]`` -> :class:`Symptom` (004 §6.4.1, §6.4.2),
                      ``[[context]]`` -> :class:`SymptomContext`
``principles.toml``   ``[diagnosis]`` -> :class:`DiagnosisSettings` (thresholds of ``optirec.diagnose``)
``facts.toml``        ``[[fact]]`` -> :class:`Fact` (knowledge that informs people, not the ranking)
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

SEED_IDS = ("000", "001", "002", "003", "004")
_SOURCE_RE = re.compile(r"^(?:(?:000|001|002|003|004) \S.*|external: \S.*)$")
_NAME_RE = r"^[a-z][a-z0-9_]*$"
_TERM_RE = r"^[a-z0-9][a-z0-9_]*$"  # vocabulary values may start with a digit ("8bit")
_RULE_ID_RE = r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$"

Name = Annotated[str, Field(pattern=_NAME_RE, max_length=40)]
Level = Literal["recipe", "constraint", "architecture", "domain", "family", "data", "goal", "guide", "default"]
Schedule = Literal[
    "constant", "step", "cosine", "linear", "exponential", "one_cycle", "cosine_restarts", "inverse_sqrt", "poly"
]
Scaling = Literal["linear", "sqrt", "none"]
Rating = Literal["very_low", "low", "medium", "high"]
Speed = Literal["slow", "medium", "fast", "very_fast"]
Generalization = Literal["fair", "excellent"]
MemoryOverhead = Literal["none", "1x", "2x", "3x", "4x", "O(n^2)", "moderate", "factored"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _check_source(value: str) -> str:
    if not _SOURCE_RE.match(value):
        raise ValueError(
            f"source {value!r} must start with a seed id ({', '.join(SEED_IDS)}) and a section, "
            "e.g. '004 §2.3 ResNet', or with 'external: ' and a reference"
        )
    return value


Source = Annotated[str, AfterValidator(_check_source)]


def _check_betas(value: tuple[float, float]) -> tuple[float, float]:
    if not all(0 <= b < 1 for b in value):
        raise ValueError(f"betas {list(value)} must each be in [0, 1)")
    return value


#: Adam-style (beta1, beta2), each in [0, 1)
Betas = Annotated[tuple[float, float], AfterValidator(_check_betas)]


class HyperParams(_Strict):
    """Optimizer hyperparameters a rule may set (names follow ``torch.optim``)."""

    lr: float | None = Field(default=None, gt=0, le=100)
    momentum: float | None = Field(default=None, ge=0, lt=1)
    dampening: float | None = Field(default=None, ge=0, lt=1)
    nesterov: bool | None = None
    betas: Betas | None = None
    #: the first beta alone (the gradient's moving-average coefficient), keeping the second beta that the
    #: catalog or other rules give; applies only to optimizers that take ``betas``
    beta1: float | None = Field(default=None, ge=0, lt=1)
    alpha: float | None = Field(default=None, gt=0, lt=1)
    eps: float | None = Field(default=None, gt=0, le=1)
    weight_decay: float | None = Field(default=None, ge=0, le=1)
    lr_decay: float | None = Field(default=None, ge=0)
    initial_accumulator_value: float | None = Field(default=None, ge=0)
    centered: bool | None = None
    amsgrad: bool | None = None
    final_lr: float | None = Field(default=None, gt=0)
    gamma: float | None = Field(default=None, gt=0)
    history_size: int | None = Field(default=None, ge=1, le=1000)
    max_iter: int | None = Field(default=None, ge=1)
    rho: float | None = Field(default=None, gt=0)
    k: int | None = Field(default=None, ge=1)
    lookahead_alpha: float | None = Field(default=None, gt=0, le=1)
    beta2_decay: float | None = Field(default=None, lt=0)
    damping: float | None = Field(default=None, gt=0)
    update_freq: int | None = Field(default=None, ge=1)
    base: str | None = Field(default=None, pattern=_NAME_RE)


class TrainSettings(_Strict):
    """Training settings a rule may set, whichever optimizer ends up chosen."""

    batch_size: int | None = Field(default=None, ge=1)
    batch_size_max: int | None = Field(default=None, ge=1)
    schedule: Schedule | None = None
    warmup: bool | None = None
    warmup_ratio: float | None = Field(default=None, ge=0, lt=1)
    #: the warmup's length in steps (a recipe's): a longer run keeps it, a shorter one keeps ``warmup_ratio``
    warmup_steps: int | None = Field(default=None, ge=1)
    short_warmup: bool | None = None
    lr_range: tuple[float, float] | None = None
    #: the optimizers ``lr_range`` was stated for (default: any)
    lr_range_optimizers: tuple[Name, ...] | None = None
    #: max gradient norm; 0 says the job trains without clipping (a recipe that states so)
    clip_norm: float | None = Field(default=None, ge=0)
    ema_decay: float | None = Field(default=None, gt=0, lt=1)
    freeze_backbone: bool | None = None
    layerwise_lr_decay: float | None = Field(default=None, gt=0, le=1)
    step_milestones: tuple[float, ...] | None = None
    step_gamma: float | None = Field(default=None, gt=0, lt=1)
    hybrid: bool | None = None
    long_schedule: bool | None = None
    truncate_bptt: bool | None = None
    separate_lr: bool | None = None
    #: the schedule ends at this fraction of the peak lr (cosine / linear / poly decay to it)
    final_lr_fraction: float | None = Field(default=None, ge=0, le=1)
    poly_power: float | None = Field(default=None, gt=0, le=10)
    #: parameters exempt from weight decay beyond biases and norm weights (a recipe that states so)
    weight_decay_excludes: tuple[str, ...] | None = None

    @field_validator("step_milestones")
    @classmethod
    def _fractions(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None and not all(0 < f < 1 for f in value):
            raise ValueError(f"step_milestones {list(value)} must be fractions of training in (0, 1)")
        return value


Cond = str | bool | list[str]


class Condition(_Strict):
    """What a profile must show for a rule to fire.  A list means any of its values."""

    domain: str | list[str] | None = None
    architecture: str | list[str] | None = None
    family: str | list[str] | None = None
    rl_method: str | list[str] | None = None
    data: str | None = None
    goal: str | list[str] | None = None
    memory_constrained: bool | None = None
    on_device: bool | None = None
    small_data: bool | None = None
    small_model: bool | None = None
    large_model: bool | None = None

    def items(self) -> list[tuple[str, Cond]]:
        return [(k, v) for k, v in self.__dict__.items() if v is not None]


class ReferenceModel(_Strict):
    """The model a rule's lr was tuned on: the engine scales the lr to the caller's model size from it."""

    name: str = Field(min_length=1, max_length=80)
    parameters: int | None = Field(default=None, ge=1000, le=10**13)
    steps: int | None = Field(
        default=None,
        ge=100,
        le=10**9,
        description="Optimizer steps of the reference run the lr was tuned for (the source must cite them): "
        "the engine carries the lr to the caller's total_steps from it.",
    )
    #: the training phase of the reference run (cited by ``source``): recipe matching compares it
    phase: Literal["pretraining", "fine_tuning", "from_scratch"] | None = None
    source: Source


class BatchRule(_Strict):
    """How the row's own source carried its lr to other batch sizes: it replaces the optimizer's catalog rule
    (004 §6.4.3) for the lr this row sets, as a recipe's stated ``lr_scaling`` does for a recipe."""

    kind: Literal["linear", "sqrt"]
    source: Source


class MeasuredOn(_Strict):
    """The architecture families a finding was measured on (cited): outside them it is not applied."""

    families: list[str] = Field(min_length=1)
    source: Source


class Rule(_Strict):
    """One cited piece of selection knowledge (a table row, a guide line, a principle)."""

    id: Annotated[str, Field(pattern=_RULE_ID_RE, max_length=80)]
    source: Source
    level: Level
    when: Condition = Condition()
    fallback: bool = False
    prefer: list[Name] = []
    avoid: list[Name] = []
    avoid_reason: str | None = None
    #: the families the ``avoid`` was measured on: a job of another known family is not ruled out by it
    avoid_measured_on: MeasuredOn | None = None
    apply_to: list[Name] | None = None
    set: HyperParams = HyperParams()
    train: TrainSettings = TrainSettings()
    #: ``set`` and ``train`` win over more specific rules' values: for a data property that makes a
    #: setting wrong whatever the model (a drifting stream cannot take an lr annealed to zero)
    overrides: bool = False
    base_batch_size: int | None = Field(default=None, ge=1)
    #: the batch rule the row's source states for its lr (needs ``base_batch_size`` and an lr in ``set``)
    batch_rule: BatchRule | None = None
    reference_model: ReferenceModel | None = None
    effect: str = Field(min_length=10)
    row: dict[str, str] = {}

    @field_validator("batch_rule")
    @classmethod
    def _batch_rule_has_a_batch(cls, value: BatchRule | None, info: ValidationInfo) -> BatchRule | None:
        hp = info.data.get("set")
        if value is not None and (info.data.get("base_batch_size") is None or hp is None or hp.lr is None):
            raise ValueError("a batch rule needs the row's base_batch_size and an lr in its set (the lr it carries)")
        return value

    @property
    def hyper_targets(self) -> list[str]:
        """Optimizers whose hyperparameters ``set`` describes (default: the first preference)."""
        if self.apply_to is not None:
            return self.apply_to
        return self.prefer[:1]


class ConvergenceProfile(_Strict):
    early: float
    mid: float
    final: float
    total_time_pct: int
    source: Source


class MeasuredBatches(_Strict):
    """The smallest global batch an optimizer's own paper measured it at: a recipe's choice of it is not carried
    to a job of a smaller batch (rules/engine.py), the way a law applies only where it was measured."""

    min: int = Field(ge=1)
    source: Source


class OptimizerSpec(_Strict):
    """One optimizer of the catalog: the 004 §2.1 row plus what it takes to build it."""

    name: Name
    display_name: str
    aliases: list[str] = []
    order: Literal["first", "second"]
    family: Literal["sgd", "adaptive", "second_order", "wrapper"]
    memory_overhead: MemoryOverhead
    state_multiplier: float = Field(ge=0)
    sensitivity: Rating
    convergence: Speed
    generalization: Generalization
    class_path: str = Field(pattern=r"^[A-Za-z_][\w.]*\.[A-Za-z_]\w*$")
    needs_closure: bool = False
    #: trains at one point and is evaluated at another (Schedule-Free's average): ``optimizer.eval()`` before
    #: evaluating or saving a checkpoint, ``optimizer.train()`` before the next training step
    needs_eval_mode: bool = False
    has_momentum: bool = False
    has_betas: bool = False
    defaults: HyperParams
    #: where each default comes from (every key of ``defaults``)
    defaults_sources: dict[str, Source]
    lr_scaling: Scaling
    schedule: Schedule
    warmup: bool
    description: str = Field(min_length=20)
    formula: str = ""
    torch_call: str = ""
    use_cases: list[str] = []
    strengths: list[str] = []
    weaknesses: list[str] = []
    sources: list[Source] = Field(min_length=1)
    convergence_relative: ConvergenceProfile | None = None
    measured_batches: MeasuredBatches | None = None

    @field_validator("defaults")
    @classmethod
    def _defaults_are_torch_arguments(cls, value: HyperParams) -> HyperParams:
        if value.beta1 is not None:
            raise ValueError("beta1 is for rules that change only the first beta; a catalog default gives betas")
        return value

    @model_validator(mode="after")
    def _every_default_cited(self) -> OptimizerSpec:
        given = set(self.defaults.model_dump(exclude_none=True))
        missing = sorted(given - set(self.defaults_sources))
        if missing:
            raise ValueError(f"defaults_sources: cite where each default comes from; missing {', '.join(missing)}")
        stray = sorted(set(self.defaults_sources) - given)
        if stray:
            raise ValueError(f"defaults_sources cites keys the defaults do not give: {', '.join(stray)}")
        return self


class Term(_Strict):
    """A valid value of a Profile field, with its aliases."""

    name: Annotated[str, Field(pattern=_TERM_RE, max_length=40)]
    label: str
    aliases: list[str] = []
    family: Name | None = None
    #: the domain an architecture is usually trained in (recipe matching reads it; the rules do not)
    domain: Name | None = None
    #: the architecture this one was derived from (its paper builds on it): a nearer relative than a sibling
    parent: Name | None = None
    #: domains whose recipes are near relatives of this domain's (nlp and llm)
    related: list[Name] = []
    rl_method: Literal["value_based", "policy_based"] | None = None
    #: a method that trains whatever encoder it is given (self-supervised MoCo, DINO, ...): a profile's or recipe's
    #: ``backbone`` then sets the architecture family the rules, laws and matching read
    backbone_sets_family: bool = False
    description: str = ""
    source: Source

    def family_with(self, encoder: Term | None) -> str | None:
        """The family a job of this architecture trains as: the encoder's, for a method whose family is the
        backbone it is given (``backbone_sets_family``); else its own."""
        return encoder.family if encoder is not None and self.backbone_sets_family else self.family


class TuningParam(_Strict):
    name: Name
    priority: int = Field(ge=1)
    why: str


class MatchingCosts(_Strict):
    """How far a recipe's job is from the caller's, facet by facet (principles.toml ``[matching]``)."""

    architecture_generic: float = Field(ge=0)
    architecture_parent: float = Field(ge=0)
    architecture_sibling: float = Field(ge=0)
    architecture_unknown: float = Field(ge=0)
    domain_mismatch: float = Field(ge=0)
    domain_related: float = Field(ge=0)
    domain_unknown: float = Field(ge=0)
    phase_mismatch: float = Field(ge=0)
    phase_near: float = Field(ge=0)
    phase_unknown: float = Field(ge=0)
    phase_unstated_fine_tuning: float = Field(ge=0)
    adapter_mismatch: float = Field(ge=0)
    parameters_decade: float = Field(ge=0)
    parameters_unknown: float = Field(ge=0)
    dataset_decade: float = Field(ge=0)
    dataset_unknown: float = Field(ge=0)
    data_unknown: float = Field(ge=0)
    steps_decade: float = Field(ge=0)
    steps_unknown: float = Field(ge=0)
    batch_decade: float = Field(ge=0)
    batch_unknown: float = Field(ge=0)
    imputed: float = Field(ge=0)
    max_distance: float = Field(gt=0)
    margin: float = Field(ge=0)
    tie: float = Field(ge=0)
    source: Source


class Principles(_Strict):
    """Numbers of 004 §6.2-§6.4 and the engine's stated thresholds."""

    default_optimizer: Name
    default_warmup_ratio: float = Field(gt=0, lt=1)
    short_warmup_ratio: float = Field(gt=0, lt=1)
    #: the warmup, in epochs, of an SGD lr raised linearly with the batch (Goyal et al. 2017 §2.2)
    scaled_lr_warmup_epochs: float = Field(gt=0)
    sqrt_scaling_above: int = Field(ge=1)
    large_batch_above: int = Field(ge=1)
    small_data_max: int = Field(ge=1)
    small_model_max: int = Field(ge=1)
    large_model_min: int = Field(ge=1)
    reference_device_memory_gb: float = Field(gt=0)
    bytes_per_state_value: int = Field(ge=2)
    bytes_8bit_state: int = Field(ge=1)
    newton_max_parameters: int = Field(ge=1)
    default_clip_norm: float = Field(gt=0)
    step_milestones: tuple[float, ...]
    step_gamma: float = Field(gt=0, lt=1)
    lr_search_decades: float = Field(gt=0)
    adaptive_weight_decay_range: tuple[float, float]
    sgd_weight_decay_range: tuple[float, float]
    momentum_range: tuple[float, float]
    global_lr_range: tuple[float, float]
    size_scaling_exponent: float = Field(ge=0, le=1)
    size_scaling_max_factor: float = Field(ge=1)
    horizon_scaling_exponent: float = Field(ge=0, le=1)
    #: the optimizers and architecture families each law was measured on (it applies to those only)
    size_scaling_optimizers: tuple[Name, ...]
    size_scaling_architectures: tuple[Name, ...]
    horizon_scaling_optimizers: tuple[Name, ...]
    horizon_scaling_architectures: tuple[Name, ...]
    #: the architecture families a recipe's SGD lr is carried to another batch on by the linear rule
    recipe_linear_scaling_architectures: tuple[Name, ...]
    switch_fraction: float = Field(gt=0, lt=1)
    tuning: list[TuningParam]
    sources: dict[str, Source]


Action = Literal[
    "lr_divide_10",
    "add_clipping",
    "add_warmup",
    "cosine_annealing",
    "raise_weight_decay",
    "lower_momentum",
    "switch_to_sgd",
]


class Symptom(_Strict):
    """004 §6.4.1 / §6.4.2: a training symptom, its likely cause, the fix and the changes it makes."""

    id: Annotated[str, Field(pattern=_RULE_ID_RE, max_length=80)]
    name: Name
    aliases: list[str] = []
    label: str
    cause: str
    fix: str
    detects: str = ""
    #: the changes made to the recommendation; empty: the symptom is reported and nothing is changed
    actions: list[Action] = []
    fallback: Action | None = None
    fallback_why: str | None = None
    requires_optimizer: list[Name] | None = None
    requires_goal: list[Name] | None = None
    #: the seed's cause (and its actions) hold only under these schedules; otherwise_cause / otherwise_fix
    #: are reported instead when the run's schedule is known to be another one
    requires_schedule: list[Schedule] | None = None
    otherwise_cause: str | None = None
    otherwise_fix: str | None = None
    #: False when no seed states a cause for the symptom: ``cause`` says so and ``fix`` says what to check
    seed_cause: bool = True
    source: Source


class SymptomContext(_Strict):
    """An extra change when a symptom shows up in a given setting (e.g. clipping for recurrent nets)."""

    id: Annotated[str, Field(pattern=_RULE_ID_RE, max_length=80)]
    when_family: list[Name] = Field(min_length=1)
    when_symptoms: list[Name] = Field(min_length=1)
    actions: list[Action] = Field(min_length=1)
    why: str = Field(min_length=10)
    source: Source


class DiagnosisSettings(_Strict):
    """Thresholds of the loss-curve detectors and sizes of the fixes (principles.toml ``[diagnosis]``)."""

    max_points: int = Field(ge=10, le=10_000_000)
    divergence_factor: float = Field(gt=1)
    reference_points: int = Field(ge=1)
    spike_window: int = Field(ge=3)
    spike_min_history: int = Field(ge=2)
    spike_z: float = Field(gt=0)
    spike_ratio: float = Field(gt=1)
    early_fraction: float = Field(gt=0, lt=0.5)
    early_min_points: int = Field(ge=10)
    early_rise: float = Field(gt=1)
    early_noise_ratio: float = Field(gt=1)
    early_min_noise: float = Field(gt=0)
    early_noise_min_points: int = Field(ge=3)
    plateau_fraction: float = Field(gt=0, lt=1)
    plateau_min_points: int = Field(ge=8)
    plateau_noise_ratio: float = Field(gt=0)
    plateau_rel_drop: float = Field(gt=0, lt=1)
    plateau_min_progress: float = Field(ge=0, lt=1)
    oscillation_window: int = Field(ge=10)
    oscillation_alternation: float = Field(gt=2 / 3, le=1)
    oscillation_autocorrelation: float = Field(ge=-1, lt=0)
    oscillation_min_amplitude: float = Field(gt=0)
    oscillation_max_trend: float = Field(gt=0)
    val_min_points: int = Field(ge=3)
    val_smooth_fraction: float = Field(gt=0, lt=1)
    overfit_val_rise: float = Field(gt=0)
    overfit_noise_z: float = Field(gt=0)
    overfit_min_fraction: float = Field(gt=0, lt=1)
    overfit_train_fall: float = Field(ge=0, lt=1)
    val_plateau_fraction: float = Field(gt=0, lt=1)
    val_plateau_min_points: int = Field(ge=2)
    val_plateau_rel_drop: float = Field(gt=0, lt=1)
    val_plateau_train_fall: float = Field(gt=0, lt=1)
    lr_divisor: float = Field(gt=1)
    warmup_ratio: float = Field(gt=0, lt=1)
    weight_decay_factor: float = Field(gt=1)
    momentum_horizon_divisor: float = Field(gt=1)
    min_momentum: float = Field(ge=0, lt=1)
    no_improvement_min_points: int = Field(ge=10)
    no_improvement_window: float = Field(gt=0, le=0.25)
    no_improvement_min_window: int = Field(ge=2)
    no_improvement_rel_drop: float = Field(gt=0, lt=1)
    no_improvement_z: float = Field(gt=0)
    rise_rel: float = Field(gt=0)
    sources: dict[str, Source]


class Fact(_Strict):
    """Knowledge that informs a reader (comparisons, benchmarks, history) without voting."""

    id: Annotated[str, Field(pattern=_RULE_ID_RE, max_length=80)]
    source: Source
    topic: str
    text: str = Field(min_length=10)
    data: dict[str, str | float | int] = {}
