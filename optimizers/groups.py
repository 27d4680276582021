"""Parameter groups: who gets which optimizer, weight decay and learning rate.

- No weight decay on biases and normalisation weights (every 0-/1-D parameter and every ``.bias``, as timm's
  param_groups_weight_decay in timm/optim/_param_groups.py and Hugging Face do), nor on what the model's own
  ``no_weight_decay()`` / ``no_weight_decay_keywords()`` name (timm ViTs: ``cls_token``, ``pos_embed``; Swin:
  ``relative_position_bias_table``): see optimizers/depth.py.
- Recommender hybrid (004 §5.6.1): embedding tables to one optimizer, dense layers to another.
- Muon: 2-D hidden weight matrices to Muon, everything else (embeddings, head, biases, norms) to AdamW.
- Transfer learning (004 §2.5): freeze the early blocks, and give each block below the head a
  geometrically smaller learning rate; the blocks are the model's real ones (optimizers/depth.py: timm's
  ``group_matcher``, the repeated blocks of a ModuleList/Sequential, else the top-level children).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from optirec.rules import Recommendation

from .depth import FREEZE_FRACTION, frozen_layer_count, model_layers, no_decay_ids
from .errors import BuildError

__all__ = ["FREEZE_FRACTION", "Depth", "GroupPlan", "ParamInfo", "describe_model", "describe_parameters", "plan_groups"]

_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.RMSNorm)
_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)


@dataclass
class ParamInfo:
    name: str
    param: nn.Parameter | torch.Tensor
    block: int  # layer id: 0 at the input end .. Depth.layers - 1 at the head (0 for a bare parameter list)
    embedding: bool = False
    norm: bool = False
    head: bool = False
    listed: bool = False  # named by the model's no_weight_decay() / no_weight_decay_keywords()
    options: dict[str, Any] = field(default_factory=dict)  # the caller's own param-group options

    @property
    def no_decay(self) -> bool:
        return self.param.ndim <= 1 or self.norm or self.listed or self.name.endswith(".bias")


@dataclass(frozen=True)
class Depth:
    """How a model's depth was read (optimizers/depth.py): ``kind`` is "group_matcher", "blocks", "children"
    or "parameters" (a bare parameter list), ``layers`` the number of layer ids, ``units`` the repeated blocks
    or top-level children counted."""

    kind: str
    layers: int
    units: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.kind == "blocks":
            return f"{len(self.units)} repeated blocks ({self.units[0]} .. {self.units[-1]}), stem before, head after"
        if self.kind == "group_matcher":
            return f"{self.layers} groups from the model's group_matcher()"
        if self.kind == "children":
            return f"{self.layers} top-level children ({', '.join(self.units) or 'the module itself'})"
        return "a parameter list (no depth)"


@dataclass
class GroupPlan:
    """Torch param groups per optimizer name, plus what was frozen and how the depth was read."""

    groups: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    frozen: list[str] = field(default_factory=list)
    depth: Depth = field(default_factory=lambda: Depth("parameters", 1))

    def add(self, optimizer: str, params: list[ParamInfo], **options: Any) -> None:
        """One group per distinct set of caller options; the caller's options win (torch's convention)."""
        by_options: dict[str, list[ParamInfo]] = {}
        for info in params:
            by_options.setdefault(repr(sorted(info.options.items())), []).append(info)
        for members in by_options.values():
            group = {"params": [p.param for p in members], **options, **members[0].options}
            self.groups.setdefault(optimizer, []).append(group)


def describe_parameters(model_or_params: nn.Module | Iterable[Any]) -> list[ParamInfo]:
    """Every trainable parameter with where it sits in the model."""
    return describe_model(model_or_params)[0]


def describe_model(model_or_params: nn.Module | Iterable[Any]) -> tuple[list[ParamInfo], Depth, dict[int, int]]:
    """Every trainable parameter with where it sits, how the depth was read, and the layer id of every
    parameter (trainable or not) by ``id``."""
    if not isinstance(model_or_params, nn.Module):
        out: list[ParamInfo] = []
        for i, item in enumerate(model_or_params):
            params = item["params"] if isinstance(item, dict) else [item]
            options = {k: v for k, v in item.items() if k != "params"} if isinstance(item, dict) else {}
            for j, p in enumerate([params] if isinstance(params, torch.Tensor) else params):
                if p.requires_grad:
                    out.append(ParamInfo(name=f"param{i}.{j}", param=p, block=0, options=options))
        return out, Depth("parameters", 1), {}
    model = model_or_params
    try:
        listed = no_decay_ids(model)
    except TypeError as exc:
        raise BuildError("model", str(exc)) from None
    kind, layer_of, n_layers, units = model_layers(model)
    owner: dict[int, nn.Module] = {}
    for module in model.modules():
        for p in module.parameters(recurse=False):
            owner[id(p)] = module
    last_linear = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            last_linear = module
    infos: list[ParamInfo] = []
    for full_name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        module = owner.get(id(p), model)
        infos.append(
            ParamInfo(
                name=full_name,
                param=p,
                block=layer_of.get(id(p), 0),
                embedding=isinstance(module, _EMBEDDINGS),
                norm=isinstance(module, _NORMS),
                head=module is last_linear,
                listed=id(p) in listed,
            )
        )
    return infos, Depth(kind, n_layers, tuple(units)), layer_of


def plan_groups(
    model_or_params: nn.Module | Iterable[Any],
    rec: Recommendation,
    freeze_fraction: float = FREEZE_FRACTION,
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> GroupPlan:
    """Split the parameters into optimizer -> param groups as the recommendation says.

    ``defaults`` (catalog defaults per optimizer) supply the settings of an optimizer the
    recommendation does not spell out, such as Muon's AdamW companion.
    """
    infos, depth, layer_of = describe_model(model_or_params)
    plan = GroupPlan(depth=depth)
    if not infos:
        return plan
    by_name = {g.name: g for g in rec.param_groups}
    n_layers = depth.layers

    if "frozen" in by_name and depth.kind != "parameters":
        cutoff = frozen_layer_count(depth.kind, layer_of, n_layers, freeze_fraction)
        kept = []
        for info in infos:
            if info.block < cutoff:
                info.param.requires_grad_(False)
                plan.frozen.append(info.name)
            else:
                kept.append(info)
        infos = kept

    chosen = rec.optimizer.name
    buckets: dict[str, list[ParamInfo]] = {}
    options: dict[str, dict[str, Any]] = {}
    if "embeddings" in by_name and "dense" in by_name:
        emb, dense = by_name["embeddings"], by_name["dense"]
        assert emb.optimizer and dense.optimizer
        for info in infos:
            target = emb.optimizer if info.embedding else dense.optimizer
            buckets.setdefault(target, []).append(info)
        options = {emb.optimizer: dict(emb.hyperparameters), dense.optimizer: dict(dense.hyperparameters)}
    elif chosen == "muon":
        for info in infos:
            hidden = info.param.ndim == 2 and not info.embedding and not info.head  # Muon orthogonalises matrices
            buckets.setdefault("muon" if hidden else "adamw", []).append(info)
        options = {"muon": dict(rec.optimizer.hyperparameters), "adamw": dict((defaults or {}).get("adamw", {}))}
    else:
        buckets[chosen] = infos
        options[chosen] = dict(rec.optimizer.hyperparameters)

    layer_decay = by_name["layerwise"].layerwise_lr_decay if "layerwise" in by_name else None
    for optimizer, members in buckets.items():
        opts = options.get(optimizer, {})
        decays = bool(opts.get("weight_decay"))
        base_lr = opts.get("lr")
        for block in sorted({m.block for m in members}) if layer_decay else [None]:
            in_block = [m for m in members if block is None or m.block == block]
            extra: dict[str, Any] = {}
            if layer_decay and base_lr is not None and block is not None:
                extra["lr"] = base_lr * layer_decay ** (n_layers - 1 - block)
            if decays:
                plan.add(optimizer, [m for m in in_block if not m.no_decay], **extra)
                plan.add(optimizer, [m for m in in_block if m.no_decay], weight_decay=0.0, **extra)
            else:
                plan.add(optimizer, in_block, **extra)
    return plan
