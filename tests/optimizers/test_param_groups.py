"""Parameter groups ``build`` makes: no decay on biases and norms, layer-wise lr decay, freezing, bare params."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from optirec.optimizers import BuildError, build
from optirec.rules import default_rulebook, recommend

BOOK = default_rulebook()


class Net(nn.Module):
    """Top-level blocks: embed, conv (Conv + BatchNorm), body (Linear + LayerNorm), head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 6)
        self.conv = nn.Sequential(nn.Conv1d(6, 6, 3, padding=1), nn.BatchNorm1d(6))
        self.body = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.ReLU())
        self.head = nn.Linear(8, 3)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.conv(self.embed(ids).transpose(1, 2)).mean(dim=2)
        return self.head(self.body(x))


class ViTish(nn.Module):
    """A ViT-like stack: patch embedding, four encoder blocks, a norm, a head (7 top-level blocks)."""

    def __init__(self, dim: int = 8, depth: int = 4) -> None:
        super().__init__()
        self.patch_embed = nn.Linear(12, dim)
        for i in range(depth):
            self.add_module(f"block{i}", nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU()))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for name, child in self.named_children():
            if name.startswith("block"):
                x = child(x)
        return self.head(self.norm(x))


def _forced(name: str, profile: dict[str, Any] | None = None, **hp: Any) -> dict[str, Any]:
    rec = recommend(profile or {}).model_dump()
    rec["optimizer"] = {"name": name, "hyperparameters": dict(BOOK.defaults[name]) | hp}
    return rec


def _group_of(optimizer: torch.optim.Optimizer) -> dict[int, dict[str, Any]]:
    """param id -> the group holding it (each parameter in exactly one group)."""
    out: dict[int, dict[str, Any]] = {}
    for g in optimizer.param_groups:
        for p in g["params"]:
            assert id(p) not in out, "a parameter sits in two groups"
            out[id(p)] = g
    return out


NORM_TYPES = (nn.BatchNorm1d, nn.LayerNorm)


def _no_decay_names(model: nn.Module) -> set[str]:
    names = {n for n, p in model.named_parameters() if n.endswith("bias")}
    for mod_name, module in model.named_modules():
        if isinstance(module, NORM_TYPES):
            names |= {f"{mod_name}.{n}" for n, _ in module.named_parameters(recurse=False)}
    return names


# -------------------------------------------------------------------------------------- weight decay


@pytest.mark.parametrize(
    ("label", "rec"),
    [
        ("adamw_forced", _forced("adamw", weight_decay=0.05)),
        ("sgd_momentum_forced", _forced("sgd_momentum", weight_decay=5e-4)),
        ("bert_recommendation", recommend({"architecture": "bert"}).model_dump()),
        ("resnet_recommendation", recommend({"architecture": "resnet"}).model_dump()),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_no_weight_decay_on_biases_and_norm_weights(label: str, rec: dict[str, Any]) -> None:
    decay = rec["optimizer"]["hyperparameters"]["weight_decay"]
    assert decay > 0, label
    model = Net()
    optimizer = build(model, rec, scheduler=False).optimizer
    groups = _group_of(optimizer)
    no_decay = _no_decay_names(model)
    assert {"conv.1.weight", "body.1.weight", "head.bias", "conv.0.bias"} <= no_decay
    for name, p in model.named_parameters():
        expected = 0.0 if name in no_decay else decay
        assert groups[id(p)]["weight_decay"] == expected, f"{label}: {name}"
    # weights keep their decay: the embedding table, the conv kernel, the linear weights
    for name in ("embed.weight", "conv.0.weight", "body.0.weight", "head.weight"):
        assert groups[id(dict(model.named_parameters())[name])]["weight_decay"] == decay


ALL = sorted(BOOK.optimizers)


@pytest.mark.parametrize("name", ALL)
def test_every_decaying_optimizer_spares_biases_and_norms(name: str) -> None:
    """Whatever the optimizer (wrappers, hybrids and hand-written ones included), when it is given weight_decay
    > 0, the group that actually steps a bias or a norm weight has weight_decay 0 and a weight's group keeps it."""
    model = Net()
    try:
        optimizer = build(model, _forced(name, weight_decay=0.05), scheduler=False).optimizer
    except BuildError as exc:
        if exc.field == "optimizer.hyperparameters.weight_decay":
            pytest.skip(f"{name} takes no weight_decay")
        raise
    no_decay = _no_decay_names(model)
    if name == "kfac":  # K-FAC keeps a layer's weight and bias in one group: check what a step does instead
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        (model(torch.randint(0, 20, (4, 5))) * 0.0).sum().backward()  # zero gradients: only decay moves
        optimizer.step()
        for pname, p in model.named_parameters():
            moved = not torch.equal(before[pname], p.detach())
            assert moved is (pname not in no_decay), f"kfac: {pname} {'moved' if moved else 'did not move'}"
        return
    inner = getattr(optimizer, "optimizers", {name: optimizer})
    named = dict(model.named_parameters())
    for opt_name, opt in inner.items():
        opt = getattr(opt, "base_optimizer", opt)  # SAM steps its base optimizer's groups
        for g in opt.param_groups:
            for p in g["params"]:
                pname = next(n for n, q in named.items() if q is p)
                wd = g.get("weight_decay", 0.0)
                if pname in no_decay:
                    assert wd == 0.0, f"{name}/{opt_name}: {pname} is decayed ({wd})"
                elif opt_name == name:
                    assert wd == 0.05, f"{name}: {pname} lost its decay ({wd})"


@pytest.mark.parametrize("name", ["adam", "sgd_momentum", "adagrad"])
def test_no_extra_group_without_weight_decay(name: str) -> None:
    rec = _forced(name, weight_decay=0.0)
    optimizer = build(Net(), rec, scheduler=False).optimizer
    assert len(optimizer.param_groups) == 1
    assert optimizer.param_groups[0]["weight_decay"] == 0.0


def test_bare_parameters_split_no_decay_by_ndim() -> None:
    model = Net()
    params = list(model.parameters())
    optimizer = build(params, _forced("adamw", weight_decay=0.1), scheduler=False).optimizer
    groups = _group_of(optimizer)
    assert set(groups) == {id(p) for p in params}
    for p in params:
        assert groups[id(p)]["weight_decay"] == (0.0 if p.ndim <= 1 else 0.1), tuple(p.shape)
    assert len(optimizer.param_groups) == 2


def test_bare_parameters_from_a_generator_and_groups() -> None:
    model = Net()
    optimizer = build(model.parameters(), _forced("adamw", weight_decay=0.1), scheduler=False).optimizer
    assert sum(len(g["params"]) for g in optimizer.param_groups) == len(list(model.parameters()))
    # param-group dicts are accepted too
    groups = [{"params": list(model.head.parameters())}, {"params": list(model.body.parameters())}]
    optimizer = build(groups, _forced("adamw", weight_decay=0.1), scheduler=False).optimizer
    decayed = {id(p) for g in optimizer.param_groups if g["weight_decay"] for p in g["params"]}
    assert decayed == {id(model.head.weight), id(model.body[0].weight)}


def test_param_group_options_are_kept() -> None:
    """torch's convention: options in a param-group dict override the optimizer's for that group. A user's
    ``[{"params": backbone, "lr": 1e-5}, {"params": head}]`` must keep the backbone's own lr."""
    model = Net()
    groups = [{"params": list(model.body.parameters()), "lr": 1e-5}, {"params": list(model.head.parameters())}]
    rec = _forced("adamw", lr=1e-3, weight_decay=0.1)
    optimizer = build(groups, rec, scheduler=False).optimizer
    by_param = _group_of(optimizer)
    for p in model.body.parameters():
        assert by_param[id(p)]["lr"] == 1e-5
    for p in model.head.parameters():
        assert by_param[id(p)]["lr"] == 1e-3


def test_no_trainable_parameters_raises() -> None:
    model = Net().requires_grad_(False)
    with pytest.raises(BuildError, match="requires_grad"):
        build(model, _forced("adam"), scheduler=False)


# ------------------------------------------------------------------------------- transfer learning

# a transformer fine-tuned with AdamW (weight decay on): a ViT now gets its published SGD fine-tuning recipe (no decay)
TRANSFER = {"goal": "transfer_learning", "architecture": "bert", "total_steps": 50}


def _transfer_rec() -> dict[str, Any]:
    rec = recommend(TRANSFER).model_dump()
    names = {g["name"] for g in rec["param_groups"]}
    assert {"frozen", "layerwise"} <= names, names
    return rec


def _layer_decay(rec: dict[str, Any]) -> float:
    (layerwise,) = [g for g in rec["param_groups"] if g["name"] == "layerwise"]
    decay = layerwise["layerwise_lr_decay"]
    assert 0 < decay < 1
    return float(decay)


def test_layerwise_lr_decay_per_top_level_block() -> None:
    rec = _transfer_rec()
    decay, lr = _layer_decay(rec), rec["optimizer"]["hyperparameters"]["lr"]
    model = ViTish()
    blocks = [name for name, _ in model.named_children()]
    n = len(blocks)
    # nothing frozen, so that every block's lr can be checked
    optimizer = build(model, rec, freeze_fraction=0.0, scheduler=False).optimizer
    groups = _group_of(optimizer)
    for name, p in model.named_parameters():
        depth = n - 1 - blocks.index(name.split(".")[0])  # the head is depth 0
        assert groups[id(p)]["lr"] == pytest.approx(lr * decay**depth), name
    assert groups[id(model.head.weight)]["lr"] == pytest.approx(lr)
    assert groups[id(model.patch_embed.weight)]["lr"] == pytest.approx(lr * decay ** (n - 1))
    # decay and no-decay still split within each block
    wd = rec["optimizer"]["hyperparameters"]["weight_decay"]
    assert wd > 0
    assert groups[id(model.block2[1].weight)]["weight_decay"] == wd
    assert groups[id(model.block2[1].bias)]["weight_decay"] == 0.0
    assert groups[id(model.block2[0].weight)]["weight_decay"] == 0.0
    assert groups[id(model.block2[1].bias)]["lr"] == groups[id(model.block2[1].weight)]["lr"]


def test_layerwise_lr_survives_the_scheduler() -> None:
    """The scheduler scales each group from its own base lr (so the layer ratios hold at every step)."""
    rec = _transfer_rec()
    model = ViTish()
    result = build(model, rec, freeze_fraction=0.0)
    assert result.scheduler is not None
    optimizer = result.optimizer
    head, embed = _group_of(optimizer)[id(model.head.weight)], _group_of(optimizer)[id(model.patch_embed.weight)]
    ratio = embed["lr"] / head["lr"]
    for _ in range(10):
        optimizer.step()
        result.scheduler.step()
        assert embed["lr"] / head["lr"] == pytest.approx(ratio)


@pytest.mark.parametrize("model_factory", [ViTish, Net], ids=["vit_7_blocks", "net_4_blocks"])
def test_freezing_first_half_of_blocks(model_factory: Any) -> None:
    rec = _transfer_rec()
    model = model_factory()
    blocks = [name for name, _ in model.named_children()]
    n = len(blocks)
    cutoff = math.ceil(n / 2)  # the first half, rounded up, never the last (the head)
    result = build(model, rec)
    frozen_blocks = set(blocks[:cutoff])
    expected_frozen = [name for name, _ in model.named_parameters() if name.split(".")[0] in frozen_blocks]
    assert list(result.frozen) == expected_frozen
    in_optimizer = {id(p) for g in result.optimizer.param_groups for p in g["params"]}
    for name, p in model.named_parameters():
        is_frozen = name in expected_frozen
        assert p.requires_grad is not is_frozen, name
        assert (id(p) in in_optimizer) is not is_frozen, name
    assert not any(name.startswith("head.") for name in result.frozen)
    assert model.head.weight.requires_grad


@pytest.mark.parametrize("fraction", [0.99, 1.0])
def test_head_is_never_frozen(fraction: float) -> None:
    model = ViTish()
    result = build(model, _transfer_rec(), freeze_fraction=fraction)
    assert all(not name.startswith("head.") for name in result.frozen)
    assert {id(p) for g in result.optimizer.param_groups for p in g["params"]} == {
        id(p) for p in model.head.parameters()
    }


def test_two_block_model_freezes_only_the_first() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    result = build(model, _transfer_rec())
    assert result.frozen == ("0.weight", "0.bias")
    assert model[1].weight.requires_grad


def test_parameterless_children_are_not_blocks() -> None:
    """nn.Sequential(Linear, ReLU, Linear, ReLU, Linear): the activations hold no parameters, so they are no layer
    of the layer-wise decay: the three Linear layers are depths 2, 1, 0 (lr * decay**2, lr * decay, lr)."""
    rec = _transfer_rec()
    decay, lr = _layer_decay(rec), rec["optimizer"]["hyperparameters"]["lr"]
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))
    groups = _group_of(build(model, rec, freeze_fraction=0.0, scheduler=False).optimizer)
    lrs = [groups[id(model[i].weight)]["lr"] for i in (0, 2, 4)]
    assert lrs == pytest.approx([lr * decay**2, lr * decay, lr])


def test_single_module_is_not_frozen() -> None:
    model = nn.Linear(4, 2)  # one block: it is the head
    result = build(model, _transfer_rec())
    assert result.frozen == ()
    assert all(p.requires_grad for p in model.parameters())


def test_no_freezing_without_transfer_learning() -> None:
    model = ViTish()
    result = build(model, recommend({"architecture": "vit", "total_steps": 50}))
    assert result.frozen == ()
    assert len({g["lr"] for g in result.optimizer.param_groups}) == 1


# ------------------------------------------------------------------- the model's own structure and lists
# Hand-built stand-ins with the module layout of the real libraries (timm and torchvision are not installable
# here): timm's VisionTransformer (timm/models/vision_transformer.py: patch_embed, cls_token, pos_embed,
# blocks = nn.Sequential of Block, norm, head; no_weight_decay() and group_matcher() as timm defines them), Swin
# (microsoft/Swin-Transformer models/swin_transformer.py: layers = stages of blocks, absolute_pos_embed,
# relative_position_bias_table) and torchvision's ResNet (conv1, bn1, layer1..layer4 of BasicBlock, fc).


class TimmBlock(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.ModuleDict({"qkv": nn.Linear(dim, 3 * dim), "proj": nn.Linear(dim, dim)})
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))


class TimmViT(nn.Module):
    """timm's VisionTransformer layout, 12 blocks; ``nwd`` is what its no_weight_decay() returns."""

    def __init__(self, dim: int = 8, depth: int = 12, nwd: tuple[str, ...] = ("pos_embed", "cls_token")) -> None:
        super().__init__()
        self.nwd = set(nwd)
        self.patch_embed = nn.Sequential(nn.Conv2d(3, dim, 4, stride=4))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, dim))
        self.blocks = nn.Sequential(*(TimmBlock(dim) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def no_weight_decay(self) -> set[str]:
        return self.nwd


class MatcherViT(TimmViT):
    """The same with timm's own VisionTransformer.group_matcher (vision_transformer.py): norm joins the last
    block ((99999,) suffix), the head is unmatched (after everything)."""

    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return {
            "stem": r"^cls_token|reg_token|pos_embed|patch_embed",
            "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))],
        }


class SwinBlock(nn.Module):
    def __init__(self, dim: int, window: int = 2, heads: int = 2) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.ModuleDict({"qkv": nn.Linear(dim, 3 * dim), "proj": nn.Linear(dim, dim)})
        self.attn.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))


class SwinStage(nn.Module):
    """Swin-Transformer's BasicLayer: blocks, then (except the last stage) PatchMerging."""

    def __init__(self, dim: int, depth: int, downsample: bool) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(SwinBlock(dim) for _ in range(depth))
        merge = nn.Sequential(nn.LayerNorm(4 * dim), nn.Linear(4 * dim, dim, bias=False))
        self.downsample = merge if downsample else None


class SwinLike(nn.Module):
    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.patch_embed = nn.Sequential(nn.Conv2d(3, dim, 4, stride=4), nn.LayerNorm(dim))
        self.absolute_pos_embed = nn.Parameter(torch.zeros(1, 4, dim))
        self.layers = nn.Sequential(SwinStage(dim, 2, True), SwinStage(dim, 2, False))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 3)

    def no_weight_decay(self) -> set[str]:
        return {"absolute_pos_embed"}

    def no_weight_decay_keywords(self) -> set[str]:
        return {"relative_position_bias_table"}


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout)) if cin != cout else None
        )


class TorchvisionResNet(nn.Module):
    """torchvision resnet18's layout (models/resnet.py): two BasicBlocks per stage."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False), nn.BatchNorm2d(width)
        self.relu, self.maxpool = nn.ReLU(), nn.MaxPool2d(3, stride=2, padding=1)
        widths = [width, width, 2 * width, 2 * width, 4 * width]
        for stage in range(1, 5):
            cin, cout = widths[stage - 1], widths[stage]
            self.add_module(f"layer{stage}", nn.Sequential(BasicBlock(cin, cout), BasicBlock(cout, cout)))
        self.avgpool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(4 * width, 3)


def _bert() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=100, hidden_size=16, num_hidden_layers=4, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=32, num_labels=2,
    )  # fmt: skip
    return transformers.BertForSequenceClassification(config)


def _lightning_vit() -> nn.Module:
    lightning = pytest.importorskip("lightning")

    module: nn.Module = lightning.LightningModule()  # as a LightningModule subclass holds its network
    module.model, module.loss = TimmViT(), nn.CrossEntropyLoss()
    return module


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2))


def _vit_depth(prefix: str = "", norm_with_last_block: bool = False) -> Any:
    """decay exponent per name for the 12-block ViT: stem 13, blocks.i 12 - i, norm and head 0 (timm's matcher:
    norm with block 11, 1)."""

    def exponent(name: str) -> int:
        name = name.removeprefix(prefix)
        if name.startswith(("cls_token", "pos_embed", "patch_embed")):
            return 13
        if name.startswith("blocks."):
            return 12 - int(name.split(".")[1])
        return 1 if norm_with_last_block and name.startswith("norm.") else 0

    return exponent


def _bert_depth(name: str) -> int:
    if name.startswith("bert.embeddings."):
        return 5
    if name.startswith("bert.encoder.layer."):
        return 4 - int(name.split(".")[3])
    return 0  # pooler, classifier


def _resnet_depth(name: str) -> int:
    if name.startswith(("conv1.", "bn1.")):
        return 9
    if name.startswith("layer"):
        stage, block = int(name[5]), int(name.split(".")[1])
        return 8 - (2 * (stage - 1) + block)
    return 0  # fc


def _swin_depth(name: str) -> int:
    if name.startswith(("patch_embed.", "absolute_pos_embed")):
        return 5
    if name.startswith("layers.0.downsample."):
        return 2  # between the stages: with the block after it (layers.1.blocks.0)
    if name.startswith("layers."):
        return 4 - (2 * int(name.split(".")[1]) + int(name.split(".")[3]))
    return 0


def _mlp_depth(name: str) -> int:
    return {"0": 2, "2": 1, "4": 0}[name.split(".")[0]]  # the three Linear layers: top-level children


SWIN_BLOCKS = [(0, 0), (0, 1), (1, 0), (1, 1)]  # (stage, block) of SwinLike
VIT_FROZEN = ("cls_token", "pos_embed", "patch_embed.", *(f"blocks.{i}." for i in range(6)))  # stem, blocks 0-5

#: id -> (model factory, kind, decay exponent per parameter name, extra names exempt from decay (beyond 1-D and
#: biases), names frozen by transfer learning (a prefix tuple: the stem and the first half of the blocks))
STRUCTURES: dict[str, tuple[Any, str, Any, set[str], tuple[str, ...]]] = {
    "timm_vit": (TimmViT, "blocks", _vit_depth(), {"cls_token", "pos_embed"}, VIT_FROZEN),
    # the tokens are 3-D: only the model's list exempts them
    "timm_vit_without_no_weight_decay": (lambda: TimmViT(nwd=()), "blocks", _vit_depth(), set(), VIT_FROZEN),
    "timm_vit_group_matcher": (
        MatcherViT, "group_matcher", _vit_depth(norm_with_last_block=True), {"cls_token", "pos_embed"}, VIT_FROZEN,
    ),
    "swin_keywords": (
        SwinLike, "blocks", _swin_depth,
        {"absolute_pos_embed", *(f"layers.{s}.blocks.{b}.attn.relative_position_bias_table" for s, b in SWIN_BLOCKS)},
        ("patch_embed.", "absolute_pos_embed", "layers.0.blocks."),
    ),
    "hf_bert": (_bert, "blocks", _bert_depth, set(), ("bert.embeddings.", *(f"bert.encoder.layer.{i}." for i in "01"))),
    "torchvision_resnet": (TorchvisionResNet, "blocks", _resnet_depth, set(), ("conv1.", "bn1.", "layer1.", "layer2.")),
    "lightning_vit": (
        _lightning_vit, "blocks", _vit_depth("model."), {"model.cls_token", "model.pos_embed"},
        tuple(f"model.{p}" for p in VIT_FROZEN),
    ),
    "mlp_top_level_children": (_mlp, "children", _mlp_depth, set(), ("0.", "2.")),
}  # fmt: skip


def _bert_transfer() -> tuple[dict[str, Any], float, float, float]:
    rec = recommend({"architecture": "bert", "goal": "transfer_learning", "total_steps": 50}).model_dump()
    hp = rec["optimizer"]["hyperparameters"]
    assert hp["weight_decay"] > 0
    return rec, hp["lr"], hp["weight_decay"], _layer_decay(rec)


@pytest.mark.parametrize("case", list(STRUCTURES), ids=list(STRUCTURES))
def test_decay_follows_the_models_own_lists(case: str) -> None:
    factory, _, _, listed, _ = STRUCTURES[case]
    rec, _, wd, _ = _bert_transfer()
    model = factory()
    groups = _group_of(build(model, rec, freeze_fraction=0.0, scheduler=False).optimizer)
    named = dict(model.named_parameters())
    assert listed <= set(named), "a listed name that the model does not have"
    exempt = {n for n, p in named.items() if p.ndim <= 1 or n.endswith(".bias")} | listed
    decayed = {n for n, p in named.items() if groups[id(p)]["weight_decay"] == wd}
    not_decayed = {n for n, p in named.items() if groups[id(p)]["weight_decay"] == 0.0}
    assert not_decayed == exempt
    assert decayed == set(named) - exempt


@pytest.mark.parametrize("case", list(STRUCTURES), ids=list(STRUCTURES))
def test_layerwise_lr_follows_the_real_blocks(case: str) -> None:
    factory, kind, exponent, _, _ = STRUCTURES[case]
    rec, lr, _, decay = _bert_transfer()
    model = factory()
    result = build(model, rec, freeze_fraction=0.0, scheduler=False)
    assert result.depth.kind == kind, result.depth.describe()
    groups = _group_of(result.optimizer)
    named = dict(model.named_parameters())
    for name, p in named.items():
        assert groups[id(p)]["lr"] == pytest.approx(lr * decay ** exponent(name)), name
    expected = {exponent(n) for n in named}
    assert len({g["lr"] for g in result.optimizer.param_groups}) == len(expected)
    assert expected == set(range(max(expected) + 1)), "a layer without parameters"


@pytest.mark.parametrize("case", list(STRUCTURES), ids=list(STRUCTURES))
def test_freezing_counts_the_real_blocks(case: str) -> None:
    factory, _, exponent, _, frozen_prefixes = STRUCTURES[case]
    rec, lr, _, decay = _bert_transfer()
    model = factory()
    named = dict(model.named_parameters())
    result = build(model, rec, scheduler=False)
    expected_frozen = [n for n in named if n.startswith(frozen_prefixes)]
    assert list(result.frozen) == expected_frozen
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == sum(p.numel() for n, p in named.items() if n not in expected_frozen) > 0
    assert {id(p) for g in result.optimizer.param_groups for p in g["params"]} == {
        id(p) for n, p in named.items() if n not in expected_frozen
    }
    # the trainable layers keep their own lrs
    lrs = {round(g["lr"] / lr, 12) for g in result.optimizer.param_groups}
    assert lrs == {round(decay ** exponent(n), 12) for n in named if n not in expected_frozen}


def test_no_weight_decay_must_return_names() -> None:
    model = TimmViT(depth=2, nwd=(0,))  # type: ignore[arg-type]  # not a name
    with pytest.raises(BuildError, match=r"TimmViT.no_weight_decay\(\) must return parameter names, got 0"):
        build(model, _forced("adamw", weight_decay=0.1), scheduler=False)


def test_a_wildcard_in_no_weight_decay_matches_as_in_timm() -> None:
    """timm matches the names with fnmatch (timm/optim/_param_groups.py _matches_pattern): "blocks.*.attn.qkv.weight"
    covers every block, a bare "qkv.weight" names nothing (no prefix or substring matching)."""
    rec = _forced("adamw", weight_decay=0.1)
    model = TimmViT(depth=3, nwd=("blocks.*.attn.qkv.weight", "qkv.weight"))
    groups = _group_of(build(model, rec, scheduler=False).optimizer)
    for name, p in model.named_parameters():
        expected = 0.0 if p.ndim <= 1 or name.endswith(".bias") or name.endswith("attn.qkv.weight") else 0.1
        assert groups[id(p)]["weight_decay"] == expected, name


@pytest.mark.parametrize("case", list(STRUCTURES), ids=list(STRUCTURES))
def test_the_torch_export_groups_each_model_as_build_does(case: str) -> None:
    """The torch snippet carries optimizers/depth.py's functions: on every model of the table it freezes the same
    parameters and gives each the same lr and weight decay as build()."""
    from optirec.optimizers.exporters import to_torch_code

    factory = STRUCTURES[case][0]
    rec, *_ = _bert_transfer()
    torch.manual_seed(0)
    model = factory()
    namespace: dict[str, Any] = {"model": model}
    exec(compile(to_torch_code(rec), "<torch export>", "exec"), namespace)
    reference = factory()
    built = build(reference, rec, scheduler=False)
    snippet_groups, built_groups = _group_of(namespace["optimizer"]), _group_of(built.optimizer)
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == list(built.frozen)
    built_params = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        if p.requires_grad:
            mine, theirs = snippet_groups[id(p)], built_groups[id(built_params[name])]
            assert (mine["initial_lr"], mine["weight_decay"]) == (theirs["lr"], theirs["weight_decay"]), name
        else:
            assert id(p) not in snippet_groups, name
