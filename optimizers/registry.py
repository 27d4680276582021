"""From a catalog name and hyperparameters to a real optimizer instance.

The catalog (rules/data/optimizers.toml) names each optimizer's class by a dotted path *string*,
timm-style: the rules side never imports torch; the path is resolved here, only when building.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

import torch
from torch import nn

from optirec.rules import Rulebook

from .errors import BuildError

__all__ = ["accepted_kwargs", "make_optimizer", "resolve_class"]

#: our hyperparameter names -> the class's keyword (where they differ)
_RENAMED = {"lookahead_alpha": "alpha"}
#: hyperparameters that configure the wrapping, not the class
_STRUCTURAL = {"base"}


@cache
def resolve_class(path: str) -> type[Any]:
    """Import ``package.module.Class`` (cached); a BuildError names the path if it cannot."""
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        raise BuildError("class_path", f"cannot import {path!r}: {exc}") from None
    if not isinstance(cls, type):
        raise BuildError("class_path", f"{path!r} is not a class")
    return cls


_ACCEPTED: dict[type[Any], frozenset[str]] = {}


def accepted_kwargs(cls: type[Any]) -> frozenset[str]:
    """The keyword arguments ``cls(...)`` accepts (memoized)."""
    if cls not in _ACCEPTED:
        params = inspect.signature(cls.__init__).parameters
        _ACCEPTED[cls] = frozenset(n for n, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD))
    return _ACCEPTED[cls]


def _kwargs(name: str, cls: type[Any], hp: dict[str, Any]) -> dict[str, Any]:
    accepted = accepted_kwargs(cls)
    out: dict[str, Any] = {}
    for key, value in hp.items():
        if key in _STRUCTURAL:
            continue
        target = _RENAMED.get(key, key)
        if target not in accepted:
            raise BuildError(
                f"optimizer.hyperparameters.{key}",
                f"{name} ({cls.__module__}.{cls.__qualname__}) takes no {target!r}; "
                f"it accepts {', '.join(sorted(accepted - {'self', 'params'}))}",
            )
        out[target] = tuple(value) if isinstance(value, list) else value
    return out


def make_optimizer(
    book: Rulebook,
    name: str,
    groups: Iterable[dict[str, Any]] | Iterable[torch.Tensor],
    hp: dict[str, Any],
    model: nn.Module | None = None,
) -> torch.optim.Optimizer:
    """Instantiate catalog optimizer ``name`` over ``groups`` with hyperparameters ``hp``.

    Wrappers are composed: Lookahead wraps an instance of its base optimizer; SAM takes its base
    optimizer's class and keyword arguments. K-FAC needs the model itself (it hooks its layers).
    """
    spec = book.optimizer(name)
    cls = resolve_class(spec.class_path)
    groups = list[Any](groups)
    if spec.family == "wrapper" and spec.name != "ranger":
        _check_base(book, spec.name, str(hp.get("base") or spec.defaults.base))
    if spec.name == "lookahead":
        base = str(hp.get("base") or spec.defaults.base or book.principles.default_optimizer)
        base_hp = dict(book.defaults[base])
        for key in ("lr", "weight_decay", "betas", "momentum"):
            if key in hp:
                base_hp[key] = hp[key]
        inner = make_optimizer(book, base, groups, base_hp, model)
        wrapper_hp = {k: v for k, v in hp.items() if k in ("k", "lookahead_alpha")}
        return _call(cls, inner, _kwargs(name, cls, wrapper_hp), name)
    if spec.name == "sam":
        base = str(hp.get("base") or spec.defaults.base or "sgd_momentum")
        base_cls = resolve_class(book.optimizers[base].class_path)
        base_hp = {k: v for k, v in book.defaults[base].items() if k != "base"}
        for key in ("lr", "weight_decay", "momentum", "betas"):
            if key in hp:
                base_hp[key] = hp[key]
        sam_hp = {k: v for k, v in hp.items() if k == "rho"}
        kwargs = _kwargs(base, base_cls, base_hp) | _kwargs(name, cls, sam_hp)
        return _call(cls, groups, {"base_optimizer": base_cls, **kwargs}, name)
    kwargs = _kwargs(name, cls, hp)
    if spec.name == "kfac":
        if model is None:
            raise BuildError("model", "K-FAC hooks the model's layers: pass the model, not its parameters")
        return _call(cls, model, kwargs, name)
    return _call(cls, groups, kwargs, name)


def _check_base(book: Rulebook, wrapper: str, base: str) -> None:
    """A wrapper steps its base once per step with the current gradients: no closures, no nesting, and no
    base that swaps its weights between a training and an evaluation point (Schedule-Free): Lookahead's slow
    weights and SAM's perturbation would be taken at whichever point the base happens to stand, and neither
    wrapper forwards ``train()`` / ``eval()``."""
    spec = book.optimizer(base)
    if spec.needs_closure or spec.needs_eval_mode or spec.family in ("wrapper", "second_order"):
        valid = sorted(
            n
            for n, o in book.optimizers.items()
            if not o.needs_closure and not o.needs_eval_mode and o.family in ("sgd", "adaptive")
        )
        why = (
            "it keeps separate training and evaluation weights (optimizer.train() / optimizer.eval()), which the "
            "wrapper would average or perturb at the wrong point"
            if spec.needs_eval_mode
            else "it needs a closure, curvature or is a wrapper itself"
        )
        raise BuildError(
            "optimizer.hyperparameters.base",
            f"{wrapper} cannot wrap {spec.name} ({why}); valid bases: {', '.join(valid)}",
        )


def _call(factory: Callable[..., Any], first: Any, kwargs: dict[str, Any], name: str) -> torch.optim.Optimizer:
    try:
        optimizer = factory(first, **kwargs)
    except BuildError:
        raise
    except (ValueError, TypeError) as exc:
        raise BuildError("optimizer.hyperparameters", f"{name}: {exc}") from None
    if not isinstance(optimizer, torch.optim.Optimizer):  # pragma: no cover - a catalog error
        raise BuildError("class_path", f"{name} did not build a torch.optim.Optimizer")
    return optimizer
