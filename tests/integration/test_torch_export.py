"""The torch export run for real: every profile's snippet executed on a tiny model, three training steps taken,
and what it built compared with the answer and with optirec's own build() of the same model.

The model has what the parameter groups depend on: an embedding (the recommender split), a position embedding
that its ``no_weight_decay()`` lists (3-D: only the list spares it), biases, LayerNorms, a ModuleList of three
repeated blocks (the depth of freezing and layer-wise lr) and a head.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
from export_checks import assert_groups_as_built, grad_norm
from export_profiles import PROFILES, recommendation

from optirec.optimizers import ExportError, build, build_scheduler
from optirec.optimizers.exporters import export
from optirec.optimizers.exporters.common import PLACEHOLDER_TOTAL_STEPS
from optirec.rules import default_rulebook

pytestmark = pytest.mark.integration
torch = pytest.importorskip("torch")
nn = torch.nn

BOOK = default_rulebook()

#: profile id -> what the refusal names. Plain torch can build every answer of the table (one optimizer per
#: group, any schedule as a LambdaLR, clipping, EMA with swa_utils), so no cell is refused; a profile the
#: snippet cannot express would be listed here with the reason torch cannot.
REFUSED: dict[str, str] = {}

#: the hyperparameters compared group by group (torch.optim names)

VOCAB, SEQ, DIM, DEPTH = 11, 5, 6, 3


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(DIM)
        self.fc = nn.Linear(DIM, DIM)

    def forward(self, x: Any) -> Any:
        return x + torch.tanh(self.fc(self.norm(x)))


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, DIM)
        self.pos_embed = nn.Parameter(torch.randn(1, SEQ, DIM) * 0.1)
        self.blocks = nn.ModuleList(Block() for _ in range(DEPTH))
        self.norm = nn.LayerNorm(DIM)
        self.head = nn.Linear(DIM, 2)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed"}

    def forward(self, ids: Any) -> Any:
        x = self.embed(ids) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x).mean(dim=1))


def _exponent(name: str) -> int:
    """The layer-wise decay exponent: embeddings 4, blocks.i 3 - i, final norm and head 0."""
    if name.startswith(("embed.", "pos_embed")):
        return DEPTH + 1
    if name.startswith("blocks."):
        return DEPTH - int(name.split(".")[1])
    return 0


#: transfer learning freezes the embeddings and the first ceil(3 / 2) = 2 blocks
FROZEN_BY_TRANSFER = ("embed.", "pos_embed", "blocks.0.", "blocks.1.")


def _batch() -> tuple[Any, Any]:
    gen = torch.Generator().manual_seed(1)
    return torch.randint(0, VOCAB, (8, SEQ), generator=gen), torch.randn(8, 2, generator=gen)


def _compute_loss(model: Any) -> Any:
    ids, target = _batch()
    return ((model(ids) - target) ** 2).mean() * 1e3  # large: the gradient norm is far above any max_norm


def _lr_curve(scheduler: Any, optimizer: Any, points: list[int], at: int) -> list[list[float]]:
    """Each group's lr / its initial lr at each point (the scheduler is at step ``at`` now)."""
    out = []
    for point in points:
        while at < point:
            scheduler.step()
            at += 1
        out.append([g["lr"] / g["initial_lr"] for g in optimizer.param_groups])
    return out


@pytest.mark.parametrize("profile_id", list(PROFILES), ids=list(PROFILES))
def test_torch_export_runs_as_the_answer_says(profile_id: str) -> None:
    rec = recommendation(profile_id)
    notes: list[str] = []
    if profile_id in REFUSED:
        with pytest.raises(ExportError) as info:
            export(rec, "torch", notes=notes)
        assert REFUSED[profile_id] in str(info.value)
        return
    code = export(rec, "torch", notes=notes)
    torch.manual_seed(0)
    model = TinyNet()
    reference = copy.deepcopy(model)
    namespace: dict[str, Any] = {"model": model}
    exec(compile(code, f"<torch export of {profile_id}>", "exec"), namespace)
    optimizers = [v for k, v in namespace.items() if k.endswith("optimizer") and isinstance(v, torch.optim.Optimizer)]
    assert namespace["optimizer"] in optimizers

    # what build() makes of the same model: the reference for groups, freezing and hyperparameters
    total = rec.schedule.total_steps or PLACEHOLDER_TOTAL_STEPS
    built = build(reference, rec, total_steps=None if rec.schedule.total_steps else total)

    # freezing: the embeddings and the first half of the blocks, never the head
    transfer = any(g.frozen for g in rec.param_groups)
    names = [n for n, _ in model.named_parameters()]
    frozen = [n for n in names if n.startswith(FROZEN_BY_TRANSFER)] if transfer else []
    assert [n for n, p in model.named_parameters() if not p.requires_grad] == frozen == list(built.frozen)

    # every trainable parameter in one group of the right optimizer, with the answer's lr and hyperparameters
    assert_groups_as_built(rec, model, optimizers, reference, built, frozen, _exponent)

    # three training steps; the gradient after clipping is within max_norm (and was above it)
    step = namespace["training_step"]
    ema_trace = []
    for _ in range(3):
        model.zero_grad(set_to_none=True)
        _compute_loss(model).backward()
        raw = grad_norm(model)
        loss = step(lambda: _compute_loss(model))
        assert math.isfinite(float(loss))
        if rec.gradient_clipping is not None:
            assert raw > rec.gradient_clipping.max_norm
            assert grad_norm(model) <= rec.gradient_clipping.max_norm * (1 + 1e-5)
        else:
            assert "clip_grad_norm_" not in code
            assert grad_norm(model) == pytest.approx(raw, rel=1e-5)
        ema_trace.append(model.head.weight.detach().clone())

    # EMA: ema = decay * ema + (1 - decay) * weights, from the first step's weights
    if rec.ema is not None:
        ema_model = namespace["ema_model"]
        assert isinstance(ema_model, torch.optim.swa_utils.AveragedModel)
        d = rec.ema.decay
        expected = d * (d * ema_trace[0] + (1 - d) * ema_trace[1]) + (1 - d) * ema_trace[2]
        assert torch.allclose(ema_model.module.head.weight, expected, rtol=1e-6, atol=1e-7)
    else:
        assert "ema_model" not in namespace

    # the lr at six points of the run: each scheduler against build_scheduler's curve
    warmup = namespace["warmup_steps"]
    assert namespace["total_steps"] == total
    points = sorted({3, max(3, warmup // 2), max(3, warmup), (warmup + total) // 2, 3 * total // 4, total - 1})
    probe = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    probe_scheduler = build_scheduler(probe, rec.schedule, total_steps=None if rec.schedule.total_steps else total)
    probe.step()  # (no gradient: nothing moves) so that stepping the scheduler alone is not warned about
    expected_curve = [v[0] for v in _lr_curve(probe_scheduler, probe, points, 0)]
    schedulers = [v for k, v in namespace.items() if k.endswith("scheduler") and hasattr(v, "step")]
    assert len(schedulers) == len(optimizers)
    for sched in schedulers:
        curve = _lr_curve(sched, sched.optimizer, points, 3)
        for point, got, want in zip(points, curve, expected_curve, strict=True):
            assert got == pytest.approx([want] * len(got), rel=1e-9), (point, sched)

    # every difference from the answer is named in a note: the loop around training_step and an unknown length
    subjects = {note.split(" ", 1)[0].rstrip(":") for note in notes}
    expected_subjects = set()
    if rec.schedule.total_steps is None:
        expected_subjects.add("total_steps")  # the placeholder length
    if rec.batch_size is not None:
        expected_subjects.add("batch_size")  # the snippet builds no data loader
    elif (rec.profile.get("num_devices") or 1) > 1:
        expected_subjects.add("num_devices")
    if rec.profile.get("mixed_precision") or rec.profile.get("precision") in ("bf16", "fp16"):
        expected_subjects.add("precision")  # no autocast in training_step
    assert subjects == expected_subjects, notes
