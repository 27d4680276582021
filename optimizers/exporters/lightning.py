"""Lightning: the source of a LightningModule ``configure_optimizers(self)``."""

from __future__ import annotations

import json
from typing import Final

from optirec.rules import Recommendation

from .common import rulebook, split_groups


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


def lightning_source(rec: Recommendation, notes: list[str]) -> str:
    book = rulebook()
    names = [rec.optimizer.name, *(g.optimizer for g in split_groups(rec) if g.optimizer)]
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
