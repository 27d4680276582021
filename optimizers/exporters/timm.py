"""timm: keyword arguments for ``timm.optim.create_optimizer_v2(model, **kwargs)``."""

from __future__ import annotations

from typing import Any, Final

from optirec.rules import Recommendation

from .common import (
    Unsupported,
    advice_notes,
    describe_schedule,
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
        return {"opt": "lamb", **pop_only(hp, ("betas", "eps"))}
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


def timm_args(rec: Recommendation, notes: list[str]) -> dict[str, Any]:
    name = rec.optimizer.name
    hp = dict(rec.optimizer.hyperparameters)
    out = _timm_opt(name, hp, notes)
    refuse_split(rec)
    kwargs: dict[str, Any] = {
        "opt": out.pop("opt"),
        "lr": hp.pop("lr", None),
        "weight_decay": hp.pop("weight_decay", 0.0),
    }
    refuse_leftovers(hp, LABELS["timm"])
    kwargs.update(out)
    for g in rec.param_groups:
        if g.layerwise_lr_decay is not None:
            kwargs["layer_decay"] = g.layerwise_lr_decay
    notes.append(
        "create_optimizer_v2 builds the optimizer only: take the schedule "
        f"({describe_schedule(rec.schedule)}) and "
        + (
            f"gradient clipping (max_norm {rec.gradient_clipping.max_norm}) "
            if rec.gradient_clipping is not None
            else "the (absent) clipping "
        )
        + "from the recommendation (timm.scheduler.create_scheduler_v2, your training loop)."
    )
    advice_notes(rec, "timm", notes)
    return kwargs
