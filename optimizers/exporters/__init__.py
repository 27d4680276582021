"""Export a Recommendation to the formats training code already speaks.

    from optirec.optimizers.exporters import export, to_hf
    args = TrainingArguments(output_dir="out", **to_hf(rec))
    print(export(rec, "torch"))

=========  ===========================================================================================
format     what comes out
=========  ===========================================================================================
json       the Recommendation itself (``model_dump(mode="json")``)
hf         keyword arguments for ``transformers.TrainingArguments``
lightning  LightningModule methods (``configure_optimizers``, clipping, callbacks) in plain torch; optirec's build()
           only where plain torch cannot express the answer (``to_lightning(rec, standalone=False)`` always)
timm       kwargs of ``create_optimizer_v2`` / ``create_scheduler_v2`` and train.py's ``train_args``
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
  huggingface/transformers#44203 (first in 5.3.0); ``warmup_steps`` takes a float ratio since transformers
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

from collections.abc import Callable
from typing import Any, Final

from optirec.rules import Recommendation

from ..errors import ExportError
from .common import RecommendationLike, Unsupported, coerce
from .formats import FORMATS, LABELS
from .hf import hf_args, target_version
from .lightning import lightning_source
from .lightning import to_lightning as _lightning_methods
from .optuna import optuna_space
from .timm import timm_args
from .torch_code import torch_source

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


def _json(rec: Recommendation, notes: list[str]) -> dict[str, Any]:
    return rec.model_dump(mode="json")


_EXPORTERS: Final[dict[str, Callable[[Recommendation, list[str]], Any]]] = {
    "json": _json,
    "hf": hf_args,
    "lightning": lightning_source,
    "timm": timm_args,
    "torch": torch_source,
    "optuna": optuna_space,
}


def _expressing(rec: Recommendation) -> list[str]:
    ok = []
    for fmt in FORMATS:
        try:
            _EXPORTERS[fmt](rec, [])
        except Unsupported:
            continue
        ok.append(fmt)
    return ok


def _run(
    rec: RecommendationLike,
    fmt: str,
    notes: list[str] | None,
    exporter: Callable[[Recommendation, list[str]], Any] | None = None,
) -> Any:
    if fmt not in _EXPORTERS:
        raise ExportError("format", f"unknown format {fmt!r}; valid values: {', '.join(FORMATS)}")
    r = coerce(rec)
    found: list[str] = []
    try:
        result = (exporter or _EXPORTERS[fmt])(r, found)
    except Unsupported as exc:
        others = [f for f in _expressing(r) if f != fmt]
        raise ExportError(
            "format",
            f"{fmt} ({LABELS[fmt]}) cannot express {exc.what}: {exc.why}; "
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


def to_hf(rec: RecommendationLike, *, version: str | None = None) -> dict[str, Any]:
    """Keyword arguments for ``transformers.TrainingArguments`` (add ``output_dir`` and the rest yourself), written
    for transformers ``version`` ("4.57", "5.24", ...; default: the installed release). Before 5.3 ``optim_args``
    are refused (those Trainers drop them); on 4.x a warmup ratio is ``warmup_ratio``."""
    if version is not None:
        target_version(version)  # a string that is no release number: ExportError (field version)
    result: dict[str, Any] = _run(rec, "hf", None, lambda r, notes: hf_args(r, notes, version))
    return result


def to_lightning(rec: RecommendationLike, *, standalone: bool | None = None) -> str:
    """Source of LightningModule methods for the recommendation: plain torch where it can express it
    (``standalone=None``, the default, and ``True``, which refuses otherwise); ``False``: the form that calls
    optirec's build() (see :func:`optirec.optimizers.exporters.lightning.to_lightning`)."""
    return _lightning_methods(rec, standalone=standalone)


def to_timm(rec: RecommendationLike) -> dict[str, Any]:
    """The arguments of each timm call, keyed by the call (optimizers/exporters/timm.py):
    ``create_optimizer_v2(model, **kw["create_optimizer_v2"])``, ``create_scheduler_v2(optimizer,
    **kw["create_scheduler_v2"])`` (then ``lr_scheduler.step_update(num_updates)`` after every optimizer step)
    and ``kw["train_args"]``, timm train.py's names for clipping, EMA, batch size and AMP."""
    result: dict[str, Any] = _run(rec, "timm", None)
    return result


def to_torch_code(rec: RecommendationLike) -> str:
    """A plain PyTorch snippet (``model`` in scope): optimizer, scheduler, clipping and ``training_step``."""
    result: str = _run(rec, "torch", None)
    return result


def to_optuna(rec: RecommendationLike) -> dict[str, Any]:
    """The search space (``params``; ``distributions``: Optuna's distribution JSON), the recommended values
    (``first_trial``, for ``study.enqueue_trial``) and the same space for Ray Tune (``ray_tune``: JSON objects
    such as ``{"type": "loguniform", "lower": .., "upper": ..}``; ``exporters.optuna.ray_tune_space`` makes them
    ``ray.tune`` samplers)."""
    result: dict[str, Any] = _run(rec, "optuna", None)
    return result
