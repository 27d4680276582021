"""Published training recipes as data (``rules/data/recipes/*.toml``), validated at load.

A recipe records how a named job was trained in a paper or an official training config:

* ``job``: what the job is, in the Profile's own field names, so a recipe's job can be asked as a
  profile (architecture, domain, phase, parameters, batch, steps or epochs, data traits, precision, devices);
* ``config``: the whole optimizer configuration as published (optimizer, lr, betas / momentum, eps,
  weight decay and what it excludes, schedule shape, warmup, clipping, EMA, layer-wise decay);
* ``cite``: where each value stands in the source (section, table, or file and line): every number of
  ``job`` and every key of ``config`` needs one. A value the source does not state is left out.

A cite is a location in the recipe's own ``source`` ("Table 5", "§3.2", "configs/x.yaml:14"), or
``"@<source id> <location>"`` for a value taken from another source (an official config beside the paper).

Values given in the source's own units are converted once, here: ``warmup_epochs`` / ``warmup_steps`` to a
ratio of the run, ``step_epochs`` / ``step_steps`` to fractions of it, ``min_lr`` to a final-lr fraction,
``exp_decay_rate`` per ``exp_decay_every_epochs`` to a final-lr fraction.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from .job_length import job_batch, job_steps
from .schema import _RULE_ID_RE, Betas, Name, _Strict

__all__ = ["RECIPE_SCHEDULES", "Recipe", "RecipeConfig", "RecipeJob"]

RecipeSchedule = Literal[
    "constant", "step", "cosine", "linear", "inverse_sqrt", "poly", "exponential", "plateau", "one_cycle",
    "cosine_restarts",
]  # fmt: skip
RECIPE_SCHEDULES: tuple[str, ...] = RecipeSchedule.__args__  # type: ignore[attr-defined]
Exclusion = Literal["bias", "norm", "embedding", "position_embedding", "cls_token", "gain", "one_d"]
_Whole = Annotated[int, Field(ge=1)]


def _whole(value: Any) -> Any:
    """6.7e9 written as a float is still a whole number."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class RecipeJob(_Strict):
    """What the job was: Profile field names, so that a job is also a valid profile."""

    architecture: Name
    #: the encoder a method trains (vocabulary architecture), where the source names it
    backbone: Name | None = None
    domain: Name
    phase: Literal["pretraining", "fine_tuning", "from_scratch"]
    rl_method: Literal["value_based", "policy_based"] | None = None
    data: list[Name] = Field(default_factory=list)
    goal: Name | None = None
    num_parameters: Annotated[int, Field(ge=1, le=10**13)] | None = None
    batch_size: Annotated[int, Field(ge=1, le=2**26)] | None = None
    sequence_length: _Whole | None = None
    batch_tokens: _Whole | None = None
    total_steps: _Whole | None = None
    total_tokens: _Whole | None = None
    epochs: _Whole | None = None
    steps_per_epoch: _Whole | None = None
    dataset_size: _Whole | None = None
    precision: Literal["fp32", "bf16", "fp16"] | None = None
    num_devices: _Whole | None = None
    sharding: Literal["none", "zero1", "zero2", "zero3", "fsdp"] | None = None
    #: lora: only low-rank adapters on frozen pretrained weights train (a recipe that says nothing trains them all)
    adapter: Literal["none", "lora"] | None = None
    optimizer_state_precision: Literal["fp32", "8bit"] | None = None

    @field_validator(
        "num_parameters",
        "batch_size",
        "sequence_length",
        "batch_tokens",
        "total_steps",
        "total_tokens",
        "epochs",
        "steps_per_epoch",
        "dataset_size",
        "num_devices",
        mode="before",
    )
    @classmethod
    def _whole_numbers(cls, value: Any) -> Any:
        return _whole(value)

    def profile(self) -> dict[str, Any]:
        """The job as a Profile mapping (what a user running this job would say)."""
        out = self.model_dump(exclude_none=True)
        if not out.get("data"):
            out.pop("data", None)
        return out

    def batch(self) -> int | None:
        """The batch in samples (stated, or batch tokens over the sequence length), as for a profile."""
        return job_batch(self)

    def steps(self) -> int | None:
        """Optimizer steps of the run, derived as for a profile (rules/job_length.py)."""
        return job_steps(self, job_batch(self))


class RecipeConfig(_Strict):
    """The published optimizer configuration (names follow torch.optim and the Recommendation)."""

    optimizer: Name
    lr: float = Field(gt=0, le=100)
    #: the source's own rule for carrying the lr to another batch size ("lr = 0.1 x batch / 256"): linear or sqrt
    lr_scaling: Literal["linear", "sqrt", "none"] | None = None
    momentum: float | None = Field(default=None, ge=0, lt=1)
    dampening: float | None = Field(default=None, ge=0, lt=1)
    nesterov: bool | None = None
    betas: Betas | None = None
    eps: float | None = Field(default=None, gt=0, le=10)
    alpha: float | None = Field(default=None, gt=0, lt=1)
    centered: bool | None = None
    weight_decay: float | None = Field(default=None, ge=0, le=10)
    #: the parameters the source exempts from weight decay
    weight_decay_excludes: list[Exclusion] | None = None
    schedule: RecipeSchedule | None = None
    final_lr_fraction: float | None = Field(default=None, ge=0, le=1)
    min_lr: float | None = Field(default=None, ge=0)
    step_milestones: tuple[float, ...] | None = None
    step_epochs: tuple[float, ...] | None = None
    step_steps: tuple[int, ...] | None = None
    step_gamma: float | None = Field(default=None, gt=0, lt=1)
    poly_power: float | None = Field(default=None, gt=0, le=10)
    exp_decay_rate: float | None = Field(default=None, gt=0, lt=1)
    exp_decay_every_epochs: float | None = Field(default=None, gt=0)
    warmup_steps: int | None = Field(default=None, ge=0)
    warmup_epochs: float | None = Field(default=None, ge=0)
    warmup_ratio: float | None = Field(default=None, ge=0, lt=1)
    #: max gradient norm; 0 states that the source trains without clipping
    clip_norm: float | None = Field(default=None, ge=0)
    ema_decay: float | None = Field(default=None, gt=0, lt=1)
    layer_decay: float | None = Field(default=None, gt=0, le=1)

    @field_validator("step_milestones")
    @classmethod
    def _fractions(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None and not all(0 < f < 1 for f in value):
            raise ValueError(f"step_milestones {list(value)} must be fractions of training in (0, 1)")
        return value

    @model_validator(mode="after")
    def _one_unit_each(self) -> RecipeConfig:
        given = [k for k in ("warmup_steps", "warmup_epochs", "warmup_ratio") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give the warmup once, as one of warmup_steps, warmup_epochs, warmup_ratio (got {given})")
        given = [k for k in ("step_milestones", "step_epochs", "step_steps") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give the step milestones once (got {given})")
        if given and self.schedule != "step":
            raise ValueError(f"{given[0]} is for schedule = 'step', not {self.schedule!r}")
        if self.final_lr_fraction is not None and self.min_lr is not None:
            raise ValueError("give the end of the schedule once: final_lr_fraction or min_lr")
        if (self.exp_decay_rate is None) != (self.exp_decay_every_epochs is None):
            raise ValueError("exp_decay_rate and exp_decay_every_epochs go together")
        if self.poly_power is not None and self.schedule != "poly":
            raise ValueError("poly_power is for schedule = 'poly'")
        return self


class Recipe(_Strict):
    """One published recipe: the job, the whole config, and where every value stands."""

    id: Annotated[str, Field(pattern=_RULE_ID_RE, max_length=80)]
    title: str = Field(min_length=5, max_length=120)
    #: a sources.toml id
    source: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]*$", max_length=60)]
    #: where the recipe as a whole stands in the source (section, table, appendix or file)
    where: str = Field(min_length=2, max_length=200)
    dataset: str | None = Field(default=None, max_length=80)
    job: RecipeJob
    config: RecipeConfig
    cite: dict[str, str]
    #: what a reader should know about this recipe, in our own words
    notes: str | None = Field(default=None, max_length=600)

    @model_validator(mode="after")
    def _every_value_cited(self) -> Recipe:
        job = self.job.model_dump(exclude_none=True)
        config = self.config.model_dump(exclude_none=True)
        needs = [f"job.{k}" for k in job if k not in ("architecture", "domain", "phase", "rl_method", "data", "goal")]
        needs += [f"config.{k}" for k in config if k != "optimizer"]
        have = set(self.cite)
        missing = [k for k in needs if k not in have and k.split(".", 1)[1] not in have]
        if missing:
            raise ValueError(f"cite the location of every value: no cite for {', '.join(missing)}")
        known = set(needs) | {k.split(".", 1)[1] for k in needs} | {"config.optimizer", "optimizer"}
        stray = sorted(have - known)
        if stray:
            raise ValueError(f"cite names values the recipe does not give: {', '.join(stray)}")
        for key, where in self.cite.items():
            if not where.strip():
                raise ValueError(f"cite.{key} is empty: give the section, table or file line")
        return self

    def cited(self, field: str) -> str:
        """Where ``field`` (a config or job key) stands: the location, prefixed by another source's id if given."""
        return self.cite.get(f"config.{field}") or self.cite.get(f"job.{field}") or self.cite.get(field) or self.where
