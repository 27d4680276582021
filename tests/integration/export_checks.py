"""Checks shared by the integration tests that run optirec's own torch code (the torch snippet, the Lightning
methods): which optimizer steps each parameter, with which hyperparameters, against build() of the same answer."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any, Final

import pytest
import torch
from torch import nn

from optirec import Recommendation
from optirec.rules import default_rulebook

__all__ = ["COMPARED", "assert_groups_as_built", "by_param", "grad_norm", "hp_of", "resolve"]

BOOK: Final = default_rulebook()
#: the hyperparameters compared group by group (where the answer states them)
COMPARED: Final = ("betas", "eps", "momentum", "alpha", "nesterov", "centered", "dampening")


def resolve(path: str) -> Any:
    module, _, attr = path.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def grad_norm(model: Any) -> float:
    norms = [p.grad.float().norm() for p in model.parameters() if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms)))


def by_param(model: Any, optimizers: Sequence[Any]) -> dict[str, tuple[type, dict[str, Any]]]:
    """parameter name -> (optimizer class, group) for every parameter some optimizer steps (each in one group).
    build()'s HybridOptimizer: its own groups (the scheduler's), each naming the inner optimizer that steps it."""
    names = {id(p): n for n, p in model.named_parameters()}
    out: dict[str, tuple[type, dict[str, Any]]] = {}
    for opt in optimizers:
        inner = getattr(opt, "optimizers", None)
        for g in opt.param_groups:
            cls = type(inner[g["optimizer"]]) if inner is not None else type(opt)
            for p in g["params"]:
                assert names[id(p)] not in out, f"{names[id(p)]} in two groups"
                out[names[id(p)]] = (cls, g)
    return out


def hp_of(rec: Recommendation, param: str, model: Any) -> tuple[str, dict[str, Any]]:
    """The catalog optimizer and hyperparameters the answer gives one parameter."""
    split = {g.name: g for g in rec.param_groups if g.optimizer}
    if split:
        owner = model.get_submodule(param.rsplit(".", 1)[0]) if "." in param else model
        group = split["embeddings"] if isinstance(owner, nn.Embedding) else split["dense"]
        assert group.optimizer is not None
        return group.optimizer, dict(group.hyperparameters)
    return rec.optimizer.name, dict(rec.optimizer.hyperparameters)


def assert_groups_as_built(
    rec: Recommendation,
    model: Any,
    optimizers: Sequence[Any],
    reference: Any,
    built: Any,
    frozen: list[str],
    exponent: Callable[[str], int],
) -> None:
    """Every trainable parameter of ``model`` in one group of the right optimizer, with the answer's lr (times
    the layer-wise decay ** ``exponent(name)``) and hyperparameters, and the same as build() gives ``reference``;
    decayed exactly where the answer decays (matrices, not ``pos_embed``, which the model lists)."""
    names = [n for n, _ in model.named_parameters()]
    groups, built_groups = by_param(model, optimizers), by_param(reference, [built.optimizer])
    assert set(groups) == set(built_groups) == set(names) - set(frozen)
    layer_decay = next((g.layerwise_lr_decay for g in rec.param_groups if g.layerwise_lr_decay), None)
    splits_decay = any(g.name == "no_decay" for g in rec.param_groups)
    for name, (cls, group) in groups.items():
        opt_name, hp = hp_of(rec, name, model)
        assert cls is resolve(BOOK.optimizers[opt_name].class_path) is built_groups[name][0], (name, cls)
        lr = hp["lr"] * (layer_decay ** exponent(name) if layer_decay else 1.0)
        assert group["initial_lr"] == pytest.approx(lr, rel=1e-12), name
        assert group["initial_lr"] == pytest.approx(built_groups[name][1]["initial_lr"], rel=1e-12), name
        for key in COMPARED:
            if key in hp:
                want = tuple(hp[key]) if key == "betas" else hp[key]
                assert group[key] == want == built_groups[name][1][key], (name, key)
        assert group["weight_decay"] == built_groups[name][1]["weight_decay"], name
    decayed = {n for n, (_, g) in groups.items() if g["weight_decay"] > 0}
    wd = rec.optimizer.hyperparameters.get("weight_decay", 0.0)
    two_d = {n for n, p in model.named_parameters() if p.ndim > 1 and n != "pos_embed"}  # pos_embed: listed
    assert decayed == ((two_d - set(frozen)) if wd and splits_decay else set())
    if wd:
        assert {g["weight_decay"] for _, g in groups.values()} <= {0.0, wd}
