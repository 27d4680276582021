"""The recipe library (rules/data/recipes/): every recipe is found for its own job and its cited values come back;
the library covers the domains, the 004 §2.3 rows and the families practitioners train; a malformed recipe
fails at load naming file, recipe and field; leave-one-out agreement meets its target (slow)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optirec.rules import RulebookError, default_rulebook, load_rulebook, recommend
from optirec.rules.agreement import MEAN_FIELDS, agreement
from optirec.rules.loader import DATA_DIR

_BOOK = default_rulebook()
_IDS = sorted(_BOOK.recipes)


def _same_job(rid: str) -> set[str]:
    """The recipes whose job is word for word this one's (a job description cannot tell them apart)."""
    job = _BOOK.recipes[rid].recipe.job.profile()
    return {other for other, e in _BOOK.recipes.items() if e.recipe.job.profile() == job}


# ------------------------------------------------------------------------------------------ the library
def test_the_library_has_at_least_80_recipes_from_many_sources() -> None:
    assert len(_BOOK.recipes) >= 80
    assert len({e.recipe.source for e in _BOOK.recipes.values()}) >= 50


@pytest.mark.parametrize("domain", _BOOK.valid("domain"))
def test_every_domain_has_recipes(domain: str) -> None:
    assert any(e.recipe.job.domain == domain for e in _BOOK.recipes.values()), domain


#: the 004 §2.3 rows, and the families the tables lack that practitioners train today
FAMILIES = [
    "resnet", "efficientnet", "vit", "bert", "gpt", "t5", "lstm", "gru", "gan_generator", "gan_discriminator",
    "unet", "yolo", "mask_rcnn", "dqn", "ppo",
    "convnext", "swin", "deit", "mae", "dino", "clip", "simclr", "ddpm", "latent_diffusion", "dit", "wav2vec2",
    "whisper", "conformer", "roberta", "bart", "llama", "sac", "rainbow", "dlrm", "ncf", "two_tower", "nnunet",
    "detr", "wgan_gp", "stylegan",
]  # fmt: skip


@pytest.mark.parametrize("architecture", FAMILIES)
def test_every_row_and_family_has_a_recipe(architecture: str) -> None:
    assert any(e.recipe.job.architecture == architecture for e in _BOOK.recipes.values()), architecture


@pytest.mark.parametrize("phase", ["pretraining", "fine_tuning", "from_scratch"])
def test_every_phase_has_recipes(phase: str) -> None:
    assert sum(e.recipe.job.phase == phase for e in _BOOK.recipes.values()) >= 5


# ------------------------------------------------------------------------------------------ per recipe
@pytest.mark.parametrize("rid", _IDS, ids=_IDS)
def test_a_recipe_is_found_for_its_own_job_and_its_values_come_back(rid: str) -> None:
    entry = _BOOK.recipes[rid]
    rec = recommend(entry.recipe.job.profile())
    assert rec.recipe is not None, "the recipe's own job must be answered from a recipe"
    twins = _same_job(rid)
    assert rec.recipe.id in twins
    if twins == {rid}:
        missed = {field for field, ok in agreement(rec, entry).items() if not ok}
        assert not missed, f"{rid}: {missed}; got {rec.optimizer} {rec.schedule}"
        assert rec.recipe.distance == 0.0
    # every source the answer cites is in the bibliography
    assert _BOOK.bibliography.resolve(rec.recipe.source) is not None


@pytest.mark.parametrize("rid", _IDS, ids=_IDS)
def test_every_value_of_a_recipe_cites_where_it_stands(rid: str) -> None:
    recipe = _BOOK.recipes[rid].recipe
    stated = {k for k, v in recipe.config.model_dump(exclude_none=True).items() if k != "optimizer"}
    stated |= {
        k
        for k, v in recipe.job.model_dump(exclude_none=True).items()
        if k not in ("architecture", "domain", "phase", "rl_method", "data", "goal")
    }
    cited = {k.split(".", 1)[-1] for k in recipe.cite}
    assert stated <= cited
    assert all(where.strip() for where in recipe.cite.values())
    for where in recipe.cite.values():  # a cite of another source names one the bibliography has
        for other in re.findall(r"(?:^|[\s;(,])@([a-z0-9][a-z0-9_]*)", where):
            assert other in _BOOK.bibliography.entries, where


def test_a_fine_tuning_recipe_needs_the_phase_said() -> None:
    """A profile that does not say it starts from pretrained weights is not answered with a fine-tuning recipe
    (unless the seed row itself describes fine-tuning, as BERT's does)."""
    for arch in ("vit", "convnext", "llama"):
        rec = recommend({"architecture": arch, "num_parameters": 10**8})
        assert rec.recipe is None or _BOOK.recipes[rec.recipe.id].recipe.job.phase != "fine_tuning", arch


def test_the_seed_row_wins_a_tie() -> None:
    """A profile that states only what the table row is keyed on gets the row: the tables stay the first layer."""
    for arch in ("resnet", "vit", "bert", "gpt", "t5", "lstm", "unet", "yolo", "dqn", "ppo"):
        assert recommend({"architecture": arch}).recipe is None, arch


def test_a_family_the_tables_lack_is_answered_from_its_recipes() -> None:
    rec = recommend({"architecture": "convnext"})
    assert rec.recipe is not None and rec.recipe.id.startswith("convnext.")
    assert rec.optimizer.name == "adamw"
    assert any(e.level == "recipe" and e.status == "chosen" for e in rec.rationale)


#: architectures once filed under a neighbour (BERT4Rec as SASRec, TimesNet as Informer, IMPALA as A2C, DeBERTa and
#: XLNet as BERT, WGAN as WGAN-GP, AWD-LSTM as LSTM): each is its own model, and its recipes answer for it; the
#: neighbour keeps its own.
#: (architecture, recipe id prefix, optimizer or None, phase or None): DeBERTa and XLNet publish only fine-tuning
#: recipes here, so their jobs say so
OWN_ARCHITECTURE = [
    ("bert4rec", "bert4rec.", "adamw", None),
    ("sasrec", "sasrec.", "adam", None),
    ("timesnet", "timesnet.", None, None),
    ("informer", "", None, None),
    ("impala", "impala.", "rmsprop", None),
    ("a2c", "a2c.", "rmsprop", None),
    ("deberta", "deberta", "adamw", "fine_tuning"),
    ("xlnet", "xlnet.", "adam", "fine_tuning"),
    # the weight-clipping WGAN trains with RMSprop (Arjovsky et al. 2017 §4), WGAN-GP with Adam (Gulrajani et al. 2017)
    ("wgan", "wgan.", "rmsprop", None),
    ("wgan_gp", "wgan_gp.", "adam", None),
    # AWD-LSTM trains with (averaged) SGD at lr 30, clipped at 0.25 (salesforce/awd-lstm-lm main.py), not Adam
    ("awd_lstm", "lstm.awd.", "sgd", None),
]


@pytest.mark.parametrize(
    ("architecture", "prefix", "optimizer", "phase"), OWN_ARCHITECTURE, ids=[c[0] for c in OWN_ARCHITECTURE]
)
def test_a_model_is_answered_from_its_own_recipes_not_a_neighbours(
    architecture: str, prefix: str, optimizer: str | None, phase: str | None
) -> None:
    rec = recommend({"architecture": architecture, **({"phase": phase} if phase else {})})
    assert rec.recipe is not None
    others = {a for a, *_ in OWN_ARCHITECTURE if a != architecture}
    assert _BOOK.recipes[rec.recipe.id].recipe.job.architecture == architecture, rec.recipe.id
    assert rec.recipe.id.startswith(prefix) and not any(rec.recipe.id.startswith(f"{o}.") for o in others)
    if optimizer is not None:
        assert rec.optimizer.name == optimizer


def test_a_bert_fine_tuning_job_is_not_answered_by_its_descendants_recipes() -> None:
    # MNLI-sized BERT fine-tuning: DeBERTa's 7e-6/1e-5 (He et al. 2021) are for DeBERTa; the BERT row (004 §2.3)
    # or a BERT recipe answers, inside BERT's own 2e-5..5e-5 (Devlin et al. 2019 §A.3)
    rec = recommend({"architecture": "bert", "phase": "fine_tuning", "batch_size": 32, "dataset_size": 392_702})
    assert rec.recipe is None or _BOOK.recipes[rec.recipe.id].recipe.job.architecture == "bert"
    assert 2e-5 <= rec.optimizer.hyperparameters["lr"] <= 5e-5


#: (profile, whether the answer comes from a LoRA recipe, the lr's bounds): LoRA recipes (Hu et al. 2021,
#: Dettmers et al. 2023) train adapters at 1e-4 to 5e-4; full fine-tuning of the same models at 1e-5 to 3e-5
ADAPTERS = [
    (
        "llama-7b-lora",
        {"architecture": "llama", "phase": "fine_tuning", "adapter": "lora", "num_parameters": 7 * 10**9},
        True,
        (1e-4, 5e-4),
    ),
    (
        "llama-7b-full",
        {"architecture": "llama", "phase": "fine_tuning", "num_parameters": 7 * 10**9},
        False,
        (5e-6, 5e-5),
    ),
    ("roberta-qlora", {"architecture": "roberta", "phase": "fine_tuning", "adapter": "qlora"}, True, (1e-4, 1e-3)),
    ("roberta-full", {"architecture": "roberta", "phase": "fine_tuning", "adapter": "none"}, False, (5e-6, 5e-5)),
]


@pytest.mark.parametrize(("case", "profile", "lora", "bounds"), ADAPTERS, ids=[c[0] for c in ADAPTERS])
def test_lora_adapters_are_matched_to_lora_recipes_and_full_fine_tuning_to_full_ones(
    case: str, profile: dict[str, Any], lora: bool, bounds: tuple[float, float]
) -> None:
    rec = recommend(profile)
    assert rec.recipe is not None
    assert (_BOOK.recipes[rec.recipe.id].recipe.job.adapter == "lora") is lora, rec.recipe.id
    assert bounds[0] <= rec.optimizer.hyperparameters["lr"] <= bounds[1]


#: (case, profile, the family of the recipe's job, the optimizer families the answer may have): MoCo v3 trains a ViT
#: with AdamW and a ResNet with LARS (facebookresearch/moco-v3 CONFIG.md); DINO's ViT recipes use AdamW
BACKBONES = [
    ("moco-vit", {"architecture": "moco", "backbone": "vit", "phase": "pretraining"}, "transformer", {"adaptive"}),
    ("moco-resnet", {"architecture": "moco", "backbone": "resnet", "phase": "pretraining"}, "cnn", {"sgd"}),
    ("moco-unstated", {"architecture": "moco", "phase": "pretraining"}, "cnn", {"sgd"}),
    ("dino-vit", {"architecture": "dino", "backbone": "vit", "phase": "pretraining"}, "transformer", {"adaptive"}),
]


@pytest.mark.parametrize(("case", "profile", "family", "optimizers"), BACKBONES, ids=[c[0] for c in BACKBONES])
def test_a_self_supervised_method_is_answered_for_the_backbone_it_trains(
    case: str, profile: dict[str, Any], family: str, optimizers: set[str]
) -> None:
    rec = recommend(profile)
    assert rec.recipe is not None
    entry = _BOOK.recipes[rec.recipe.id]
    assert entry.recipe.job.architecture == profile["architecture"] and entry.family == family, rec.recipe.id
    assert _BOOK.optimizers[rec.optimizer.name].family in optimizers
    stated = profile.get("backbone")
    assert stated is None or entry.recipe.job.backbone == stated


def test_a_backbone_that_sets_no_family_is_recorded_with_a_note() -> None:
    with_backbone = recommend({"architecture": "mask_rcnn", "backbone": "swin"})
    without = recommend({"architecture": "mask_rcnn"})
    assert with_backbone.optimizer == without.optimizer
    assert any("backbone swin is recorded but does not change the answer" in n for n in with_backbone.notes)
    assert with_backbone.profile["backbone"] == "swin"


#: (case, batch, whether the LAMB recipe may decide): LAMB's paper measured it from batch 512 up (You et al. 2020,
#: Table 1); a tiny transformer LM whose nearest recipe is ALBERT-base pre-training with LAMB at batch 4096
UNMEASURED = [("batch-32", 32, False), ("batch-256", 256, False), ("batch-512", 512, True), ("batch-4096", 4096, True)]


@pytest.mark.parametrize(("case", "batch", "lamb"), UNMEASURED, ids=[c[0] for c in UNMEASURED])
def test_a_recipe_is_not_carried_below_the_batches_its_optimizer_was_measured_at(
    case: str, batch: int, lamb: bool
) -> None:
    profile = {"domain": "nlp", "architecture": "transformer", "phase": "pretraining", "num_parameters": 69_000}
    rec = recommend({**profile, "batch_size": batch, "total_steps": 300})
    measured = _BOOK.optimizers["lamb"].measured_batches
    assert measured is not None and measured.min == 512
    if lamb:
        assert rec.recipe is not None and _BOOK.recipes[rec.recipe.id].recipe.config.optimizer == "lamb"
    else:
        assert rec.optimizer.name != "lamb"
        assert rec.recipe is None or _BOOK.recipes[rec.recipe.id].recipe.config.optimizer != "lamb"
        assert any("was measured at batches of 512 and more" in n for n in rec.notes), rec.notes


def test_adapted_values_say_from_to_and_why() -> None:
    rec = recommend({"architecture": "convnext", "batch_size": 256, "total_steps": 10_000})
    assert rec.recipe is not None
    fields = {a.field: a for a in rec.recipe.adapted}
    assert fields["batch_size"].to == 256 and fields["batch_size"].from_ != 256
    assert fields["total_steps"].to == 10_000
    assert all(a.why for a in rec.recipe.adapted)
    dumped = rec.model_dump()
    assert all("from" in a and "from_" not in a for a in dumped["recipe"]["adapted"])


# ------------------------------------------------------------------------------------------ malformed
@pytest.fixture
def recipe_dir(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "data"
    shutil.copytree(DATA_DIR, target)
    yield target


def _first_recipe_file(root: Path) -> Path:
    return sorted((root / "recipes").glob("*.toml"))[0]


BROKEN = [
    # (case, regex applied to the first recipe's text, replacement, the field the error must name)
    ("unknown-architecture", r'architecture = "[a-z0-9_]+"', 'architecture = "resnett"', "job.architecture"),
    (
        "unknown-backbone",
        r'architecture = "[a-z0-9_]+"(.*\n.*\n)cite = \{',
        r'architecture = "moco", backbone = "vitt"\1cite = { backbone = "Table 1", ',
        "job.backbone",
    ),
    ("unknown-optimizer", r'optimizer = "[a-z0-9_]+"', 'optimizer = "adamm"', "config.optimizer"),
    ("unknown-source", r'^source = "[a-z0-9_]+"', 'source = "nobody1999"', "source"),
    ("negative-lr", r"\blr = [0-9.e-]+", "lr = -1.0", "config.lr"),
    ("betas-out-of-range", r"optimizer = ", "betas = [0.9, 1.5], optimizer = ", "config.betas"),
    ("uncited-value", r"optimizer = ", "eps = 0.001234, optimizer = ", "cite"),
    ("unknown-phase", r'phase = "[a-z_]+"', 'phase = "pre_train"', "job.phase"),
]


@pytest.mark.parametrize(("case", "pattern", "replacement", "field"), BROKEN, ids=[b[0] for b in BROKEN])
def test_a_malformed_recipe_fails_at_load_naming_file_recipe_and_field(
    recipe_dir: Path, case: str, pattern: str, replacement: str, field: str
) -> None:
    path = _first_recipe_file(recipe_dir)
    text = path.read_text()
    first = text.index("[[recipe]]")
    second = text.find("[[recipe]]", first + 1)
    block = text[first : second if second > 0 else len(text)]
    rid = re.search(r'^id = "([^"]+)"', block, re.M)
    assert rid is not None
    broken = re.sub(pattern, replacement, block, count=1, flags=re.M)
    assert broken != block, case
    path.write_text(text.replace(block, broken, 1))
    with pytest.raises(RulebookError) as info:
        load_rulebook(recipe_dir)
    message = str(info.value)
    assert path.name in message and rid.group(1) in message and field in message, message


def test_a_recipe_file_with_a_stray_table_is_refused(recipe_dir: Path) -> None:
    path = _first_recipe_file(recipe_dir)
    path.write_text(path.read_text() + '\n[[source]]\nid = "x"\n')
    with pytest.raises(RulebookError, match="only \\[\\[recipe\\]\\] tables"):
        load_rulebook(recipe_dir)


def test_duplicate_recipe_ids_are_refused(recipe_dir: Path) -> None:
    path = _first_recipe_file(recipe_dir)
    text = path.read_text()
    first = text.index("[[recipe]]")
    second = text.find("[[recipe]]", first + 1)
    (recipe_dir / "recipes" / "zz_copy.toml").write_text(text[first : second if second > 0 else len(text)])
    with pytest.raises(RulebookError, match="duplicate recipe id"):
        load_rulebook(recipe_dir)


def test_an_unresolvable_citation_fails_at_load(recipe_dir: Path) -> None:
    path = recipe_dir / "architectures.rules.toml"
    path.write_text(path.read_text().replace('source = "004 §2.3 ResNet"', 'source = "external: Nobody 1999"', 1))
    with pytest.raises(RulebookError, match=r"names no source in sources\.toml") as info:
        load_rulebook(recipe_dir)
    assert "architecture.resnet" in str(info.value)


# ------------------------------------------------------------------------------------------ leave-one-out
TARGET_MEAN = 0.80
TARGET_LR = 0.75
#: what the library and matcher reach today (bench/recipes.py); a change that falls below it is a regression
FLOOR_MEAN = 0.81
FLOOR_LR = 0.72
FLOOR_SELF = 0.98


def _agreement(exclude_self: bool) -> tuple[float, float]:
    cells: dict[str, list[bool]] = {}
    for rid, entry in _BOOK.recipes.items():
        exclude = frozenset({rid}) if exclude_self else frozenset()
        rec = recommend(entry.recipe.job.profile(), exclude_recipes=exclude)
        for field, ok in agreement(rec, entry).items():
            cells.setdefault(field, []).append(ok)
    flat: list[Any] = [ok for field in MEAN_FIELDS for ok in cells.get(field, [])]
    return sum(flat) / len(flat), sum(cells["lr_2x"]) / len(cells["lr_2x"])


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="issue 19's leave-one-out target is half met: mean 0.82 (target 0.80), lr within 2x 74% (target 75%; "
    "bench/recipes.py); for 17 of the 353 recipes no other recipe of the same architecture, phase and optimizer "
    "family has an lr within 2x of theirs. Strict: the day the target is met this test fails and the marker must go.",
)
def test_leave_one_out_agreement_meets_its_target() -> None:
    mean, lr = _agreement(exclude_self=True)
    assert mean >= TARGET_MEAN and lr >= TARGET_LR, f"leave-one-out mean {mean:.3f}, lr within 2x {lr:.0%}"


@pytest.mark.slow
def test_leave_one_out_agreement_does_not_fall_below_todays() -> None:
    mean, lr = _agreement(exclude_self=True)
    assert mean >= FLOOR_MEAN and lr >= FLOOR_LR, f"leave-one-out mean {mean:.3f}, lr within 2x {lr:.0%}"
    own_mean, own_lr = _agreement(exclude_self=False)
    assert own_mean >= FLOOR_SELF and own_lr >= FLOOR_SELF, f"own-job mean {own_mean:.3f}, lr {own_lr:.0%}"
