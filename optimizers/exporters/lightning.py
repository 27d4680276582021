"""Lightning: the LightningModule methods that train as the answer says (checked against Lightning 2.6).

The export is Python source: a header comment and methods to paste into your ``LightningModule`` (every
top-level ``def`` is one; helpers are nested inside them). Two forms:

- **standalone** (the default wherever plain torch expresses the answer): ``configure_optimizers`` builds the
  optimizer from ``torch.optim`` / ``pytorch_optimizer`` and the schedule from ``torch.optim.lr_scheduler`` with
  the same code the torch export writes (optimizers/exporters/torch_code.py: the no-decay split, freezing and
  layer-wise lr as ``build()`` makes them, depth.py's functions copied by source). It needs torch only.
- **build()**: ``configure_optimizers`` embeds the answer as JSON and calls ``optirec.optimizers.build``; it needs
  optirec at training time. It is the default where plain torch cannot express the answer: a parameter split
  with its own optimizer per group or Muon (one ``HybridOptimizer``: Lightning's automatic optimization steps a
  single optimizer), optirec's own optimizers (K-FAC, Newton), and SAM / Sophia, whose step needs more than
  Lightning's closure (a note says so).

``export(rec, "lightning")`` and ``to_lightning(rec)`` of the package choose the form; :func:`to_lightning` here
takes ``standalone=True`` (refuse with :class:`ExportError` what needs build()) or ``standalone=False`` (always
the build() form).

Around ``configure_optimizers`` (Lightning 2.6 names, lightning/pytorch/core/module.py unless said):

- The schedule is stepped every optimizer step (``"interval": "step"``). Without ``total_steps`` in the answer its
  length is ``self.trainer.estimated_stepping_batches`` (trainer/trainer.py: ``max_steps``, or epochs x batches /
  ``accumulate_grad_batches``; ``inf`` for an endless run, which the method refuses).
- Clipping is a ``configure_gradient_clipping`` override calling ``self.clip_gradients(optimizer,
  gradient_clip_val=<max_norm>, gradient_clip_algorithm="norm")``: Lightning calls it before every optimizer step
  in automatic optimization (plugins/precision/precision.py ``_clip_gradients``; after AMP's unscale_,
  plugins/precision/amp.py), and ``clip_gradients`` raises if ``Trainer(gradient_clip_val=...)`` says another
  value, so the two cannot silently disagree. Under DeepSpeed (a ZeRO ``sharding`` in the profile) the override
  would not clip (strategies/deepspeed.py), so clipping goes to the Trainer arguments instead.
- EMA of the weights is a ``configure_callbacks`` returning ``EMAWeightAveraging(decay=...)``
  (callbacks/weight_averaging.py, added in Lightning 2.6.0 per its CHANGELOG): it updates after every optimizer
  step, swaps the averaged weights in for validation and copies them into the module when fit ends.
- Schedule-Free optimizers get the hooks that switch ``optimizer.train()`` / ``optimizer.eval()``.
- What only the Trainer sets is in the header and the notes: ``max_steps`` (the answer's ``total_steps``),
  ``devices`` (``num_devices``), ``precision`` (``"bf16-mixed"`` / ``"16-mixed"``, fabric/plugins/precision/
  precision.py ``_PRECISION_INPUT_STR``), ``strategy`` for sharding (``"deepspeed_stage_1..3"``, ``"fsdp"``,
  strategies/deepspeed.py / fsdp.py ``register_strategies``) and the per-device batch. The answer never implies
  ``accumulate_grad_batches`` (it gives a global batch, not a memory split), so none is written.
"""

from __future__ import annotations

import json
from typing import Final

from optirec.rules import Recommendation

from ..errors import ExportError
from .common import (
    WARMUP_START_FACTOR,
    RecommendationLike,
    Unsupported,
    coerce,
    describe_schedule,
    has_warmup,
    made_by,
    py_literal,
    rulebook,
    split_groups,
)
from .torch_code import (
    _DECAY_IMPORTS,
    _DECAY_NAMES,
    _DEPTH_IMPORTS,
    _DEPTH_NAMES,
    _depth_helpers,
    _param_groups_helper,
    _TorchCode,
)

__all__ = ["lightning_source", "standalone_refusal", "to_lightning"]

#: catalog optimizers whose step() Lightning's automatic optimization cannot drive with its closure (it passes a
#: closure that runs training_step and backward, loops/optimization/automatic.py): SAM needs the gradient before
#: step() (pytorch_optimizer sam.py: "Compute the initial gradients before calling this method"), Sophia a
#: create_graph backward, Newton a loss without backward
_MANUAL_STEP: Final = ("sam", "sophia", "newton")

#: Lightning precision strings (fabric/plugins/precision/precision.py _PRECISION_INPUT_STR) for the profile's
#: precision in mixed-precision training (optirec's memory model counts bf16/fp16 with fp32 master weights,
#: rules/memory.py)
_PRECISION: Final = {"bf16": "bf16-mixed", "fp16": "16-mixed"}
#: profile sharding -> Lightning strategy name (strategies/deepspeed.py and fsdp.py register_strategies)
_STRATEGY: Final = {
    "zero1": "deepspeed_stage_1",
    "zero2": "deepspeed_stage_2",
    "zero3": "deepspeed_stage_3",
    "fsdp": "fsdp",
}


def _json_literal(text: str) -> str:
    """A Python string literal holding ``text`` exactly, as readable as possible."""
    if "'''" not in text and not text.endswith(("'", "\\")):
        return "r'''" + text + "'''"
    return repr(text)


def _indent(lines: list[str], by: str = "    ") -> list[str]:
    return [by + line if line else "" for line in lines]


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


# ------------------------------------------------------------------------------------------ which form
def standalone_refusal(rec: Recommendation) -> Unsupported | None:
    """Why plain torch cannot express ``rec`` inside a LightningModule (the build() form is needed), or None."""
    book = rulebook()
    groups = split_groups(rec)
    if groups:
        split = ", ".join(f"{g.name} -> {g.optimizer}" for g in groups)
        return Unsupported(
            f"the parameter split ({split})",
            "Lightning's automatic optimization steps one optimizer; optirec's build() joins the groups' "
            "optimizers in one HybridOptimizer",
        )
    name = rec.optimizer.name
    spec = book.optimizers.get(name)
    if spec is None:
        return Unsupported(f"the optimizer {name!r}", "it is not in the optimizer catalog")
    if name == "muon":
        return Unsupported(
            "Muon",
            "it steps the 2-D weight matrices and AdamW the rest: two optimizers, which optirec's build() "
            "joins in one HybridOptimizer for Lightning's automatic optimization",
        )
    if spec.class_path.startswith("optirec."):
        return Unsupported(f"the optimizer {name!r} ({spec.display_name})", f"it is optirec's own ({spec.class_path})")
    if name in _MANUAL_STEP:
        return Unsupported(
            f"the optimizer {name!r} ({spec.display_name})",
            "its step() needs more than the closure Lightning's automatic optimization passes; it takes manual "
            "optimization around optirec's build()",
        )
    return None


def _form(rec: Recommendation, standalone: bool | None) -> bool:
    refusal = standalone_refusal(rec)
    if standalone and refusal is not None:
        raise refusal
    return refusal is None if standalone is None else standalone


# ------------------------------------------------------------------------------------------ the Trainer
class _Trainer:
    """The Trainer arguments the answer implies (a LightningModule method cannot set them), with notes."""

    def __init__(self, rec: Recommendation) -> None:
        self.kwargs: list[str] = []
        self.comments: list[str] = []
        self.notes: list[str] = []
        profile = rec.profile
        if rec.schedule.total_steps is not None:
            self.kwargs.append(f"max_steps={rec.schedule.total_steps}")
        devices = int(profile.get("num_devices") or 1)
        if devices > 1:
            self.kwargs.append(f"devices={devices}")
        precision = profile.get("precision")
        mixed = precision in _PRECISION or (precision is None and bool(profile.get("mixed_precision")))
        if mixed:
            value = _PRECISION.get(str(precision), "bf16-mixed")
            self.kwargs.append(f'precision="{value}"')
            other = ' ("16-mixed" where the GPU has no bfloat16)' if precision is None else ""
            self.notes.append(
                f"precision: {precision or 'mixed'} mixed precision is the Trainer's: "
                f'lightning.Trainer(precision="{value}"){other}, as the header says.'
            )
        sharding = profile.get("sharding")
        strategy = _STRATEGY.get(str(sharding))
        self.deepspeed = strategy is not None and strategy.startswith("deepspeed")
        if strategy is not None:
            self.kwargs.append(f'strategy="{strategy}"')
            what = f'lightning.Trainer(strategy="{strategy}")'
            if self.deepspeed and rec.gradient_clipping is not None:
                clip = py_literal(rec.gradient_clipping.max_norm)
                self.kwargs += [f"gradient_clip_val={clip}", 'gradient_clip_algorithm="norm"']
                what += f' with gradient_clip_val={clip}, gradient_clip_algorithm="norm" (DeepSpeed clips itself)'
            elif strategy == "fsdp" and rec.gradient_clipping is not None:
                what += (
                    "; Lightning 2.6 refuses norm clipping under FSDP (plugins/precision/fsdp.py "
                    "clip_grad_by_norm raises), so configure_gradient_clipping must clip through the FSDP module"
                )
            self.notes.append(f"sharding: {sharding} is the Trainer's: {what}, as the header says.")
        on_devices = f"; lightning.Trainer(devices={devices})" if devices > 1 else ""
        if rec.batch_size is not None:
            if devices > 1 and rec.batch_size % devices == 0:
                per = f"DataLoader(batch_size={rec.batch_size // devices}) on each of the {devices} devices"
            elif devices > 1:
                per = f"{rec.batch_size} samples over {devices} devices (it does not divide: choose the split)"
            else:
                per = f"DataLoader(batch_size={rec.batch_size})"
            self.comments.append(f"the lr is for a batch of {rec.batch_size} per optimizer step: {per}")
            self.notes.append(
                f"batch_size: the lr is for {rec.batch_size} samples per optimizer step: {per}{on_devices} (the "
                "data loader is yours)."
            )
        elif devices > 1:
            self.notes.append(f"num_devices: the answer is for {devices} devices{on_devices}.")

    def header(self) -> list[str]:
        if not (self.kwargs or self.comments):
            return []
        lines = ["# Trainer arguments this answer implies (LightningModule methods cannot set them):"]
        if self.kwargs:
            lines.append(f"#   lightning.Trainer({', '.join(self.kwargs)})")
        return lines + [f"#   {c}" for c in self.comments]


# ------------------------------------------------------------------------------------------ the methods
def _schedule(rec: Recommendation, code: _TorchCode) -> list[str]:
    """``scheduler = ...`` as optimizers/schedulers.py build_scheduler composes it: the main schedule (written by
    the torch export's code, over ``max(1, total_steps - warmup_steps)`` steps), then, when there are warmup steps,
    a LinearLR warmup in front of it with SequentialLR (one-cycle warms up itself)."""
    s = rec.schedule
    bare = rec.model_copy(update={"schedule": s.model_copy(update={"warmup_steps": 0, "warmup_ratio": 0.0})})
    main = _TorchCode(bare, [])
    main.schedule("optimizer", "scheduler")
    for line in main.imports:
        code._import(line)
    lines = list(main.body)
    if s.name == "one_cycle" or not has_warmup(s):
        return lines
    t = "torch.optim.lr_scheduler"
    warmup = [
        f"scheduler = {t}.SequentialLR(",
        "    optimizer,",
        f"    schedulers=[{t}.LinearLR(optimizer, start_factor={WARMUP_START_FACTOR}, total_iters=warmup_steps), "
        "scheduler],",
        "    milestones=[warmup_steps],",
        ")",
    ]
    if s.total_steps is not None and s.warmup_steps is not None:
        return [*lines, "# a linear warmup in front", *warmup]
    return [*lines, "if warmup_steps > 0:  # a linear warmup in front", *_indent(warmup)]


def _standalone_optimizers(rec: Recommendation, notes: list[str]) -> list[str]:
    """``configure_optimizers`` in plain torch: optimizer and schedule as the torch export builds them."""
    code = _TorchCode(rec, notes)
    spec = code._spec(rec.optimizer.name)
    freezing: list[str] = []
    if code.freezes:
        code.needs_depth = True
        freezing = [
            "# transfer learning, as optirec's build(): freeze the stem and the first half of the model's blocks",
            "# (model_layers: its group_matcher(), repeated blocks or top-level children), never the head",
            "_kind, _layer_of, _num_layers, _ = model_layers(model)",
            "_frozen_layers = frozen_layer_count(_kind, _layer_of, _num_layers, FREEZE_FRACTION)",
            "for _p in model.parameters():",
            "    if _layer_of[id(_p)] < _frozen_layers:",
            "        _p.requires_grad_(False)",
            "",
        ]
    code.construct("optimizer", rec.optimizer.name, rec.optimizer.hyperparameters, "model.parameters()")
    built = len(code.body)
    schedule_lines = _schedule(rec, code)
    s = rec.schedule
    length: list[str] = []
    if s.total_steps is not None:
        length.append(f"total_steps = {s.total_steps}  # lightning.Trainer(max_steps={s.total_steps})")
    elif any("total_steps" in line for line in schedule_lines) or s.warmup_ratio > 0:
        length += [
            "# the answer has no total_steps: the run's length as the Trainer estimates it",
            "total_steps = self.trainer.estimated_stepping_batches",
            'if not 0 < total_steps < float("inf"):',
            '    raise ValueError("the lr schedule needs the length of the run: give the Trainer max_steps")',
            "total_steps = int(total_steps)",
        ]
    if s.total_steps is not None and s.warmup_steps is not None:
        length.append(f"warmup_steps = {s.warmup_steps}")
    elif s.warmup_ratio > 0:  # as build_scheduler: a ratio of the run's length
        length.append(f"warmup_steps = round(total_steps * {py_literal(s.warmup_ratio)})")
    else:
        length.append("warmup_steps = 0")

    helpers: list[str] = []
    if code.needs_groups_helper or code.needs_depth:
        for line in _DECAY_IMPORTS + (_DEPTH_IMPORTS if code.needs_depth else ()):
            code._import(line)
        names = _DECAY_NAMES + (_DEPTH_NAMES if code.needs_depth else ())
        helpers = ["", "# parameter groups as optirec's build() makes them (copied from optirec's optimizers/depth.py)"]
        helpers += _depth_helpers(names)
        if code.needs_groups_helper:
            helpers += ["", *_param_groups_helper(code.layer_decay_applied)]
        helpers = [line for i, line in enumerate(helpers) if line or i == 0 or helpers[i - 1]]  # single blank lines
        helpers.append("")
    imports = sorted(code.imports, key=lambda i: (i != "import torch", i.startswith("from "), i))
    body = [
        *imports,
        "",
        "model = self",
        *helpers,
        *freezing,
        *code.body[:built],
        *length,
        *schedule_lines,
        'return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}',
    ]
    for g in rec.param_groups:
        if g.layerwise_lr_decay is not None and not code.layer_decay_applied:
            notes.append(
                f"param_groups.{g.name}: layer-wise lr decay {g.layerwise_lr_decay} is not coded: the optimizer "
                f"{rec.optimizer.name} takes no lr per parameter group here (lr-free, second-order or built from "
                "the model)."
            )
    if rec.phases:
        plan = " -> ".join(p.optimizer.name for p in rec.phases)
        notes.append(
            f"phases: configure_optimizers builds the first phase; the plan is {plan}, switching when "
            f"{rec.phases[0].trigger}: switch optimizers yourself (optirec's build() does not switch either)."
        )
    doc = f'"""{spec.display_name} with a {describe_schedule(s)} schedule, as optirec recommends."""'
    return ["def configure_optimizers(self):", *_indent([doc, *body])]


def _build_optimizers(rec: Recommendation, notes: list[str]) -> list[str]:
    """``configure_optimizers`` that calls optirec's build() on the embedded answer."""
    book = rulebook()
    spec = book.optimizers.get(rec.optimizer.name)
    what = spec.display_name if spec is not None else rec.optimizer.name
    payload = json.dumps(rec.model_dump(mode="json"), ensure_ascii=True, indent=1)
    lines = [
        "def configure_optimizers(self):",
        f'    """{what} with a {rec.schedule.name} schedule, as optirec recommends ({made_by(rec)})."""',
        "    from optirec import Recommendation",
        "    from optirec.optimizers import build",
        "",
        "    RECOMMENDATION_JSON = " + _json_literal(payload),
        "    recommendation = Recommendation.model_validate_json(RECOMMENDATION_JSON)",
    ]
    names = [rec.optimizer.name, *(g.optimizer for g in split_groups(rec) if g.optimizer)]
    if any(n in _MANUAL_STEP for n in names):
        lines += [
            "    # this optimizer's step() needs more than Lightning's closure: use manual optimization",
            "    # (self.automatic_optimization = False) and call self.clip_gradients(...) yourself after the backward",
        ]
        notes.append(
            f"manual optimization: {', '.join(n for n in names if n in _MANUAL_STEP)} needs a training_step with "
            "self.automatic_optimization = False (SAM: two forward/backward passes; Sophia: a create_graph "
            "backward; Newton: the loss without backward); Lightning then calls no configure_gradient_clipping."
        )
    total = ""
    if rec.schedule.total_steps is None and rec.schedule.name != "constant":
        lines.append("    # the answer has no total_steps: the run's length as the Trainer estimates it")
        total = ", total_steps=int(self.trainer.estimated_stepping_batches)"
    lines += [
        f"    optimizer, scheduler, _clipping = build(self, recommendation{total})",
        "    if scheduler is None:",
        '        return {"optimizer": optimizer}',
        '    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}',
    ]
    if rec.phases:
        notes.append("phases: build() runs the first phase; switch optimizers yourself.")
    return lines


def _clipping(rec: Recommendation, trainer: _Trainer) -> list[str]:
    if rec.gradient_clipping is None or trainer.deepspeed:
        return []
    max_norm = py_literal(rec.gradient_clipping.max_norm)
    return [
        "",
        "",
        "def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):",
        f'    """Clip the gradient norm at {max_norm} before every optimizer step, as optirec recommends. Lightning',
        '    calls this in automatic optimization; clip_gradients raises if Trainer(gradient_clip_val=...) differs."""',
        f'    self.clip_gradients(optimizer, gradient_clip_val={max_norm}, gradient_clip_algorithm="norm")',
    ]


def _callbacks(rec: Recommendation) -> list[str]:
    if rec.ema is None:
        return []
    decay = py_literal(rec.ema.decay)
    return [
        "",
        "",
        "def configure_callbacks(self):",
        f'    """Weight EMA (decay {decay}), as optirec recommends: validation runs on the averaged weights, which',
        '    are copied into the module when fit ends."""',
        "    try:",
        "        from lightning.pytorch.callbacks import EMAWeightAveraging",
        "    except ImportError as exc:  # pytorch_lightning users: from pytorch_lightning.callbacks import ...",
        '        raise ImportError("weight EMA needs Lightning >= 2.6.0 (EMAWeightAveraging)") from exc',
        f"    return [EMAWeightAveraging(decay={decay})]",
    ]


def _header(rec: Recommendation, standalone: bool, trainer: _Trainer) -> list[str]:
    spec = rulebook().optimizers.get(rec.optimizer.name)
    what = spec.display_name if spec is not None else rec.optimizer.name
    details = [f"schedule {describe_schedule(rec.schedule)}"]
    if rec.gradient_clipping is not None:
        details.append(f"gradient norm clipped at {rec.gradient_clipping.max_norm}")
    if rec.ema is not None:
        details.append(f"weight EMA {rec.ema.decay}")
    needs = "torch only" if standalone else "optirec (it calls optirec's build())"
    lines = [
        f"# optirec: {what} ({rec.optimizer.name}), {', '.join(details)}",
        f"# {made_by(rec)}. Paste every method below into your",
        f"# LightningModule; they need {needs}.",
        *trainer.header(),
    ]
    lines += [f"# warning: {w}" for w in rec.warnings]
    lines += [
        f"# {g.name} ({', '.join(g.match)}): {g.why}"
        for g in rec.param_groups
        if standalone and (g.frozen or g.layerwise_lr_decay is not None)
    ]
    return lines


def _source(rec: Recommendation, notes: list[str], standalone: bool | None) -> str:
    alone = _form(rec, standalone)
    refusal = standalone_refusal(rec)
    if not alone and standalone is None and refusal is not None:
        notes.append(
            f"standalone: not possible for {refusal.what}: {refusal.why}. The method calls optirec's build(), so "
            "optirec must be installed where it trains."
        )
    trainer = _Trainer(rec)
    method = _standalone_optimizers(rec, notes) if alone else _build_optimizers(rec, notes)
    lines = [*_header(rec, alone, trainer), *method, *_clipping(rec, trainer), *_callbacks(rec)]
    book = rulebook()
    if any(book.optimizers[n].needs_eval_mode for n in [rec.optimizer.name] if n in book.optimizers):
        lines += _LIGHTNING_SCHEDULE_FREE_HOOKS
        notes.append(
            "Schedule-Free: the source adds LightningModule hooks (paste them next to configure_optimizers) that call "
            "optimizer.train() before each training batch and optimizer.eval() for validation, testing, prediction "
            "and at the end of each training epoch, so evaluation and checkpoints see the averaged weights; with "
            "BatchNorm, recompute its running statistics at those weights before evaluating."
        )
    if rec.schedule.total_steps is None and rec.schedule.name != "constant":
        notes.append(
            "total_steps is unknown: the schedule's length is self.trainer.estimated_stepping_batches (the "
            "Trainer's max_steps, or epochs x batches / accumulate_grad_batches)."
        )
    notes += trainer.notes
    return "\n".join(lines) + "\n"


def lightning_source(rec: Recommendation, notes: list[str]) -> str:
    """The ``lightning`` format: the standalone form where plain torch expresses the answer, else build()'s."""
    return _source(rec, notes, None)


def to_lightning(rec: RecommendationLike, *, standalone: bool | None = None, notes: list[str] | None = None) -> str:
    """The LightningModule methods for ``rec``. ``standalone=None`` chooses as ``export(rec, "lightning")``;
    ``True`` refuses (:class:`ExportError`, field ``format``) what needs optirec's build(); ``False`` writes the
    build() form. Pass a list as ``notes`` to receive what the source leaves to the Trainer or to you."""
    r = coerce(rec)
    found: list[str] = []
    try:
        source = _source(r, found, standalone)
    except Unsupported as exc:
        raise ExportError(
            "format",
            f"lightning (standalone) cannot express {exc.what}: {exc.why}; to_lightning(rec, standalone=False) "
            "writes the form that calls optirec's build()",
        ) from None
    if notes is not None:
        notes.extend(found)
    return source
