"""Carrying a recipe to the caller's job: batch, warmup, phase, lifted avoid entries, the envelope; and the
vocabulary's readings of phase and goal."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from optirec.rules import default_rulebook, load_rulebook, recommend
from optirec.rules.loader import DATA_DIR

_BOOK = default_rulebook()


def _job(rid: str, **changes: Any) -> dict[str, Any]:
    return {**_BOOK.recipes[rid].recipe.job.profile(), **changes}


def test_an_adaptive_recipes_lr_is_kept_at_another_batch_and_says_why() -> None:
    rid = "convnext.tiny.imagenet1k"
    assert _BOOK.recipes[rid].recipe.config.lr_scaling is None  # the paper states no batch rule of its own
    rec = recommend(_job(rid, batch_size=1024))
    assert rec.recipe is not None and rec.recipe.id == rid
    assert rec.optimizer.hyperparameters["lr"] == pytest.approx(_BOOK.recipes[rid].recipe.config.lr)
    assert "Li et al. 2024" in rec.lr_scaling.reason
    carried = next(a for a in rec.recipe.adapted if a.field == "batch_size")
    assert (carried.from_, carried.to) == (4096, 1024)


def test_a_recipe_that_states_its_own_batch_rule_follows_it() -> None:
    stated = [e for e in _BOOK.recipes.values() if e.recipe.config.lr_scaling == "linear" and e.recipe.job.batch_size]
    entry = next(e for e in stated if e.optimizer_family == "adaptive")
    batch = entry.recipe.job.batch_size
    assert batch is not None
    rec = recommend(_job(entry.id, batch_size=batch // 2))
    assert rec.recipe is not None
    assert rec.optimizer.hyperparameters["lr"] == pytest.approx(entry.recipe.config.lr / 2, rel=1e-4)
    assert "the recipe's own linear rule" in rec.lr_scaling.reason


def test_an_sgd_recipe_is_carried_by_the_linear_rule() -> None:
    rid = "resnet.50.imagenet1k.batch8k"  # Goyal et al.: 0.1 x batch / 256
    rec = recommend(_job(rid, batch_size=4096))
    assert rec.recipe is not None and rec.recipe.id == rid
    assert rec.lr_scaling.rule == "linear"
    assert rec.optimizer.hyperparameters["lr"] == pytest.approx(_BOOK.recipes[rid].recipe.config.lr / 2)


def test_a_longer_run_keeps_the_recipes_warmup_steps_and_a_shorter_one_its_fraction() -> None:
    rid = "llama.7b.pretraining"
    entry = _BOOK.recipes[rid]
    assert entry.steps and entry.warmup_ratio
    warmup = round(entry.warmup_ratio * entry.steps)
    longer = recommend(_job(rid, total_steps=entry.steps * 4, total_tokens=None))
    shorter = recommend(_job(rid, total_steps=entry.steps // 4, total_tokens=None))
    assert longer.recipe is not None and shorter.recipe is not None
    assert longer.recipe.id == rid
    assert longer.schedule.warmup_steps == warmup
    # a quarter of the run may match a shorter sibling recipe: its own warmup fraction then applies
    near = _BOOK.recipes[shorter.recipe.id]
    assert near.steps and near.warmup_ratio
    assert shorter.schedule.warmup_steps == min(
        round(near.warmup_ratio * near.steps), round(near.warmup_ratio * (entry.steps // 4))
    )
    assert shorter.schedule.warmup_steps < warmup


def test_a_data_row_does_not_rule_out_what_the_recipe_trained_under_that_trait() -> None:
    """CLIP trained AdamW at batch 32K, where 004 §2.4's large-batch row rules Adam-style updates out."""
    rec = recommend(_job("clip.vit_l14.pretrain"))
    assert rec.optimizer.name == "adamw"
    assert "adamw" not in {a.name for a in rec.avoid}
    assert any("rules out adamw" in n and "kept" in n for n in rec.notes)
    # the same batch without the recipe: the row's verdict stands
    plain = recommend({"architecture": "vit", "batch_size": 32768})
    assert plain.optimizer.name != "adamw" and "adamw" in {a.name for a in plain.avoid}


def test_a_memory_limit_still_overrules_a_recipe() -> None:
    rec = recommend(_job("llama.7b.pretraining", device_memory_gb=40))
    assert rec.optimizer.name != "adamw"
    assert rec.recipe is not None
    changed = {a.field: a for a in rec.recipe.adapted}
    assert changed["optimizer"].from_ == "adamw" and changed["optimizer"].to == rec.optimizer.name


def test_a_large_model_row_that_only_orders_the_alternatives_does_not_make_the_table_nearer() -> None:
    # OPT-6.7B's job, GPT-3 6.7B at hand (Brown et al. 2020 Table 2.1: lr 1.2e-4). Without device memory the
    # memory rows only order the alternatives, so their large-model condition says nothing about the table's
    # job: the GPT row (6e-4 for 125M, carried by the size law to 2.7e-4) may not beat the recipe at this size.
    rec = recommend(_job("opt.6_7b.pretraining"), exclude_recipes=frozenset({"opt.6_7b.pretraining"}))
    assert rec.recipe is not None and rec.recipe.id == "gpt3.6_7b.pretraining", rec.recipe
    assert rec.optimizer.hyperparameters["lr"] == pytest.approx(1.2e-4, rel=0.05)
    assert "constraint.memory.large_model" in {r.rule for r in rec.rationale}  # it matched, and did not decide
    # with a device that cannot hold AdamW's state, the memory rows decide, and the recipe still names the job
    limited = recommend(
        _job("opt.6_7b.pretraining", device_memory_gb=40), exclude_recipes=frozenset({"opt.6_7b.pretraining"})
    )
    assert limited.optimizer.name != "adamw"


@pytest.mark.parametrize(
    ("profile", "phase"),
    [
        ({"architecture": "vit", "goal": "transfer_learning"}, "fine_tuning"),
        ({"architecture": "bert", "goal": "fine_tuning"}, "fine_tuning"),
        ({"domain": "nlp", "goal": "zero_shot"}, "pretraining"),
    ],
)
def test_a_goal_implies_a_phase_and_says_so(profile: dict[str, Any], phase: str) -> None:
    rec = recommend(profile)
    assert any(f"implies phase {phase}" in n for n in rec.notes), rec.notes


def test_goal_pretraining_is_read_as_the_phase_with_a_note() -> None:
    rec = recommend({"architecture": "llama", "goal": "pretraining", "num_parameters": 7e9})
    assert rec.profile.get("phase") == "pretraining" and "goal" not in rec.profile
    assert any("goal 'pretraining' is a training phase" in n for n in rec.notes)
    assert rec.recipe is not None and _BOOK.recipes[rec.recipe.id].recipe.job.phase == "pretraining"


def test_vit_fine_tuning_gets_a_fine_tuning_recipe_not_pretraining_values() -> None:
    rec = recommend({"architecture": "vit", "phase": "fine_tuning", "num_parameters": 86e6, "batch_size": 512})
    assert rec.recipe is not None and _BOOK.recipes[rec.recipe.id].recipe.job.phase == "fine_tuning"


def test_t5_fine_tuning_keeps_adafactors_lr() -> None:
    """004 §2.5's fine-tuning range (1e-5 to 5e-5) is AdamW's: Adafactor keeps its own lr."""
    rec = recommend({"architecture": "t5", "goal": "fine_tuning", "batch_size": 128})
    assert rec.optimizer.name == "adafactor"
    assert rec.optimizer.hyperparameters["lr"] == pytest.approx(1e-3)


def test_ppo_keeps_its_lr_however_long_its_rollout() -> None:
    """The issue's case: a rollout of 2048 steps is not a gradient batch; the lr is not scaled down."""
    rec = recommend({"architecture": "ppo", "domain": "reinforcement_learning", "batch_size": 64})
    assert rec.optimizer.name == "adam"
    assert 1e-4 <= rec.optimizer.hyperparameters["lr"] <= 1e-3


# ---------------------------------------------------------------------------------------------- the envelope
_ENVELOPE_SOURCE = """
[[source]]
id = "test_envelope"
kind = "paper"
title = "Two recipes that make an envelope"
authors = "Test"
year = 2020
url = "https://example.org/envelope"
cite_as = ["Test et al. 2020"]
"""

_RECIPE = """
[[recipe]]
id = "vit.test.{name}"
title = "A test ViT recipe {name}"
source = "test_envelope"
where = "Table 1"
job = {{ architecture = "vit", domain = "computer_vision", phase = "fine_tuning", num_parameters = 86e6, \
  batch_size = 512 }}
config = {{ optimizer = "adamw", lr = {lr} }}
cite = {{ num_parameters = "Table 1", batch_size = "Table 1", lr = "Table 1" }}
"""


@pytest.fixture
def envelope_book(tmp_path: Path) -> Any:
    root = tmp_path / "data"
    shutil.copytree(DATA_DIR, root)
    for path in (root / "recipes").glob("*.toml"):
        path.unlink()
    (root / "sources.toml").write_text((root / "sources.toml").read_text() + _ENVELOPE_SOURCE)
    (root / "recipes" / "test.toml").write_text(_RECIPE.format(name="a", lr=1e-4) + _RECIPE.format(name="b", lr=2e-4))
    return load_rulebook(root)


def test_the_size_term_may_not_carry_a_rows_lr_beyond_the_recipes_envelope(envelope_book: Any) -> None:
    """A tiny ViT from scratch: the row's 1e-3 taken up by the size term beyond both recipes (carried to the same
    size) and beyond the row's own value is clamped, with a warning."""
    rec = recommend({"architecture": "vit", "batch_size": 512, "num_parameters": 20_000}, rulebook=envelope_book)
    assert rec.recipe is None  # fine-tuning recipes: not for a profile that does not say so
    lr = rec.optimizer.hyperparameters["lr"]
    row = 1e-3 * 30  # the size term, bounded at 30x
    assert lr < row
    assert any("published adamw recipes for transformer models span" in w for w in rec.warnings), rec.warnings
    assert "kept inside the published recipes' range" in rec.lr_scaling.reason


@pytest.mark.parametrize(
    ("rid", "batch"),
    [("lstm.awd.ptb", 80), ("dlrm.criteo_terabyte", 512)],
    ids=["awd-lstm", "dlrm"],
)
def test_an_sgd_recipe_outside_the_linear_rules_measurements_keeps_its_lr(rid: str, batch: int) -> None:
    """Goyal et al. measured the linear rule on CNNs: an LSTM's lr 30 or DLRM's embedding lr stays as published
    at another batch (AWD-LSTM trains PTB at batch 20 and WikiText-2 at 80, both at lr 30)."""
    entry = _BOOK.recipes[rid]
    assert entry.optimizer_family == "sgd" and entry.recipe.config.lr_scaling is None
    assert entry.recipe.job.batch_size != batch
    rec = recommend(_job(rid, batch_size=batch))
    assert rec.recipe is not None and rec.recipe.id == rid
    assert rec.lr_scaling.rule == "none" and "measured on cnn architectures" in rec.lr_scaling.reason
    assert rec.optimizer.hyperparameters["lr"] == pytest.approx(entry.recipe.config.lr)
