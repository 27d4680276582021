"""Where each parameter sits in a model's depth, and which parameters a model's own lists exempt from weight decay.

The functions here use nothing but ``fnmatch``, ``math``, ``re``, ``typing.Any`` and ``torch.nn``, on purpose:
the torch export (``exporters/torch_code.py``) copies them by their source into the snippet it writes, so that
the snippet and ``build()`` group a model identically.

**Depth** (transfer learning: layer-wise lr decay and freezing). Layer ids run from 0 (the input end) to
``num_layers - 1`` (the head); layer ``i`` gets ``lr * decay ** (num_layers - 1 - i)``, as timm's
``param_groups_layer_decay`` (timm/optim/_param_groups.py: ``layer_scales = decay ** (layer_max - i)``). The
layers are found, in this order of preference:

1. Under single-child wrappers: the search starts at the module reached by descending while a module has no
   parameters of its own and exactly one child holding parameters (a LightningModule around the network).
2. ``group_matcher``: a model that defines timm's ``group_matcher(coarse=False)`` is grouped by it, as timm's
   ``param_groups_layer_decay`` does through ``timm/models/_manipulate.py group_with_matcher`` (re-implemented
   here, so timm need not be installed: regexes matched from the name's start, numeric groups sorted, the
   ``(99999,)`` suffix joining the previous group, unmatched names after everything).
3. Repeated blocks (``kind == "blocks"``): the longest run of consecutive children of one class, each a module
   with parameter-holding submodules, inside an ``nn.ModuleList``/``nn.Sequential`` (HF ``encoder.layer.N``,
   timm ``blocks.N``); consecutive siblings that each hold such a run of one block class are stages and chain
   (torchvision ResNet ``layer1.0 .. layer4.N``, Swin ``layers.S.blocks.N``). With ``L`` blocks: what comes
   before block 0 in parameter order (embeddings, stem, class/position tokens) is layer 0, block ``i`` is
   layer ``i + 1``, what comes after the last block (final norm, pooler, head) is layer ``L + 1``, a parameter
   between two blocks (a stage's downsampling) goes with the block after it. So embeddings get
   ``decay ** (L + 1)``, block ``i`` ``decay ** (L - i)`` and the head the full lr: BEiT's ``get_num_layer_for_vit``
   (microsoft/unilm beit/optim_factory.py) and timm's ViT grouping, and the ELECTRA/DeBERTa-style layer-wise
   recipes (embeddings below layer 0, the task head at the full lr).
4. Otherwise (an MLP, a stack of leaf layers): each top-level child holding parameters is one layer, the
   module's own parameters go with the first.

**Freezing** (:func:`frozen_layer_count`): with blocks (kinds 2 and 3, where group 0 is the stem and the last
group the head) the stem and the first ``ceil(L * fraction)`` blocks, never the head (nor the last block of a
model without one); with top-level children the first ``ceil(n * fraction)`` of the ``n`` children, never the
last.

**No weight decay** (:func:`no_decay_ids`): the names a model's ``no_weight_decay()`` returns, matched with
fnmatch against the full parameter name as timm does (timm/optim/_param_groups.py ``_matches_pattern``; timm
takes the list from ``model.no_weight_decay()`` in timm/optim/_optim_factory.py ``create_optimizer``), and every
name containing one of ``no_weight_decay_keywords()`` (Swin-Transformer's optimizer.py ``set_weight_decay`` /
``check_keywords_in_name``, microsoft/Swin-Transformer). timm asks only the model it is given; here every
submodule is asked, with names relative to it, so that a wrapped model (a LightningModule, a two-tower model)
keeps its lists.
"""

import fnmatch
import math
import re
from typing import Any

from torch import nn

__all__ = ["FREEZE_FRACTION", "frozen_layer_count", "model_layers", "no_decay_ids", "unwrap_model"]

#: Transfer learning freezes this fraction of the blocks (of the top-level children for a model without blocks).
FREEZE_FRACTION = 0.5

#: timm/models/_manipulate.py MATCH_PREV_GROUP: a group_matcher suffix that joins the group before
_MATCH_PREV_GROUP = 99999


def _holds_params(module: nn.Module) -> bool:
    return any(True for _ in module.parameters())


def unwrap_model(model: nn.Module) -> tuple[str, nn.Module]:
    """(name prefix, module) under single-child wrappers: descend while a module has no parameters of its own
    and exactly one child holding parameters."""
    prefix, module = "", model
    while not any(True for _ in module.parameters(recurse=False)):
        holders = [(name, child) for name, child in module.named_children() if _holds_params(child)]
        if len(holders) != 1:
            break
        prefix, module = f"{prefix}{holders[0][0]}.", holders[0][1]
    return prefix, module


def _listed(module: nn.Module, method: str) -> list[str]:
    """What ``module.<method>()`` returns (no_weight_decay, no_weight_decay_keywords), [] where it has none."""
    fn = getattr(module, method, None)
    if not callable(fn):
        return []
    items = list(fn())
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{type(module).__name__}.{method}() must return parameter names, got {item!r}")
    return items


def no_decay_ids(model: nn.Module) -> set[int]:
    """ids of the parameters that the model's (or a submodule's) ``no_weight_decay()`` names or whose name
    contains one of its ``no_weight_decay_keywords()``."""
    out: set[int] = set()
    for _, module in model.named_modules():
        names, keywords = _listed(module, "no_weight_decay"), _listed(module, "no_weight_decay_keywords")
        if not names and not keywords:
            continue
        for name, p in module.named_parameters():
            if any(fnmatch.fnmatchcase(name, pattern) for pattern in names) or any(k in name for k in keywords):
                out.add(id(p))
    return out


def _timm_groups(module: nn.Module, matcher: Any) -> dict[str, int]:
    """Parameter name -> group id from what the module's ``group_matcher(coarse=False)`` returned, as timm's
    group_with_matcher(named_parameters, matcher, reverse=True) computes it."""
    compiled: list[tuple[re.Pattern[str], tuple[int, ...], tuple[int, ...] | None]] = []
    if isinstance(matcher, dict):
        for ordinal, spec in enumerate(matcher.values()):
            if spec is None:
                continue
            if isinstance(spec, (tuple, list)):  # several (regex, suffix) pairs
                compiled += [(re.compile(sub[0]), (ordinal,), sub[1]) for sub in spec]
            else:
                compiled.append((re.compile(spec), (ordinal,), None))

    def ordinal_of(name: str) -> tuple[float, ...]:
        if not isinstance(matcher, dict):  # a callable matcher returns the ordinal itself
            value = matcher(name)
            return tuple(value) if hasattr(value, "__iter__") else (value,)
        for pattern, prefix, suffix in compiled:
            found = pattern.match(name)
            if found:
                return tuple(float(x) for part in (prefix, found.groups(), suffix) if part for x in part)
        return (math.inf,)  # unmatched (neck, head): after everything

    ordinals = {name: ordinal_of(name) for name, _ in module.named_parameters()}
    group_of: dict[tuple[float, ...], int] = {}
    group = -1
    for key in sorted(set(ordinals.values())):
        if group < 0 or key[-1] != _MATCH_PREV_GROUP:
            group += 1
        group_of[key] = group
    return {name: group_of[key] for name, key in ordinals.items()}


def _repeated_blocks(root: nn.Module) -> list[str]:
    """Paths (relative to root) of the longest run of repeated blocks, [] when there is no run of two."""
    best: list[str] = []

    def longest(runs: list[list[str]]) -> list[str]:
        return max(runs, key=len, default=[])

    def consecutive(items: list[tuple[type | None, list[str]]]) -> list[list[str]]:
        """Concatenated paths of each maximal run of consecutive items with one (non-None) key."""
        runs: list[list[str]] = []
        last: type | None = None
        for key, paths in items:
            if key is not None and key == last:
                runs[-1] += paths
            elif key is not None:
                runs.append(list(paths))
            last = key
        return runs

    def visit(path: str, module: nn.Module) -> tuple[type | None, list[str]]:
        """The longest plain run in this subtree, with its block class."""
        nonlocal best
        children = [(f"{path}{name}", child) for name, child in module.named_children() if _holds_params(child)]
        inner = [visit(f"{child_path}.", child) for child_path, child in children]
        own: tuple[type | None, list[str]] = (None, [])
        if isinstance(module, (nn.ModuleList, nn.Sequential)):
            composite: list[tuple[type | None, list[str]]] = [
                (type(child) if any(_holds_params(c) for c in child.children()) else None, [child_path])
                for child_path, child in children
            ]
            run = longest(consecutive(composite))
            if run:
                own = (type(module.get_submodule(run[0][len(path) :])), run)
        stages = longest(consecutive(inner))  # consecutive children each holding blocks of one class
        for candidate in (own[1], stages):
            if len(candidate) > len(best):
                best = candidate
        return max([own, *inner], key=lambda item: len(item[1]))

    visit("", root)
    return best if len(best) >= 2 else []


def model_layers(model: nn.Module) -> tuple[str, dict[int, int], int, list[str]]:
    """(kind, layer id per parameter id, number of layers, the modules counted) for every parameter of model.

    kind is "group_matcher", "blocks" or "children"; the modules counted are the repeated blocks or the
    top-level children (full names), [] for a group_matcher.
    """
    prefix, root = unwrap_model(model)
    named = list(root.named_parameters())
    group_matcher = getattr(root, "group_matcher", None)
    if callable(group_matcher):
        by_name = _timm_groups(root, group_matcher(coarse=False))
        groups = {id(p): by_name[name] for name, p in named}
        return "group_matcher", groups, max(groups.values(), default=0) + 1, []
    blocks = _repeated_blocks(root)
    if blocks:
        block_of = {id(p): i + 1 for i, path in enumerate(blocks) for p in root.get_submodule(path).parameters()}
        at = [i for i, (_, p) in enumerate(named) if id(p) in block_of]
        layer_of: dict[int, int] = {}
        upcoming = len(blocks) + 1
        for i in reversed(range(len(named))):  # backwards, so that the block after a parameter is known
            p = named[i][1]
            if id(p) in block_of:
                upcoming = layer_of[id(p)] = block_of[id(p)]
            elif i < at[0]:
                layer_of[id(p)] = 0
            else:
                layer_of[id(p)] = upcoming  # after the last block: the head; between blocks: the next one
        return "blocks", layer_of, len(blocks) + 2, [prefix + path for path in blocks]
    children = [name for name, child in root.named_children() if _holds_params(child)]
    index = {name: i for i, name in enumerate(children)}
    layer_of = {id(p): index.get(name.split(".", 1)[0], 0) for name, p in named}
    return "children", layer_of, max(len(children), 1), [prefix + name for name in children]


def frozen_layer_count(kind: str, layer_of: dict[int, int], num_layers: int, fraction: float) -> int:
    """How many layers, from the input end, transfer learning freezes (layers 0 .. count - 1)."""
    if kind == "children":
        return min(num_layers - 1, math.ceil(num_layers * fraction)) if num_layers > 1 else 0
    n_blocks = num_layers - 2
    if n_blocks < 1:
        return 0
    count = min(n_blocks, math.ceil(n_blocks * fraction))
    if count == n_blocks and num_layers - 1 not in layer_of.values():
        count -= 1  # no head: the last block stays trainable
    return count + 1 if count > 0 else 0
