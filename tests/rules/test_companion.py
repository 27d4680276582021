"""Details the deciding rules leave unsaid, filled from the recipes of the same job (rules/companion.py)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from optirec import recommend
from optirec.rules import default_rulebook
from optirec.rules.companion import agreed_details, typical_warmup


def _bert_finetune_recipes() -> frozenset[str]:
    book = default_rulebook()
    return frozenset(
        e.id
        for e in book.recipes.values()
        if e.recipe.job.architecture == "bert" and e.recipe.job.phase == "fine_tuning"
    )


@pytest.mark.parametrize(
    ("profile", "clip"),
    [
        # 004's BERT row decides (AdamW 5e-5) and is silent on clipping; every BERT fine-tuning recipe clips at 1.0
        ({"architecture": "bert", "phase": "fine_tuning", "total_steps": 1000}, 1.0),
        ({"architecture": "bert", "goal": "transfer_learning"}, 1.0),
        # a rule that states clipping keeps its own value (LSTM: 004 clips recurrent nets)
        ({"architecture": "lstm"}, 1.0),
        # no phase: no job to take recipes from
        ({"architecture": "bert"}, None),
        # ResNet recipes do not state clipping: nothing is filled
        ({"architecture": "resnet", "phase": "from_scratch"}, None),
    ],
    ids=["bert-finetune", "bert-transfer", "lstm-own-rule", "bert-no-phase", "resnet"],
)
def test_clipping_from_agreeing_recipes(profile: dict[str, object], clip: float | None) -> None:
    rec = recommend(profile)
    assert (rec.gradient_clipping.max_norm if rec.gradient_clipping else None) == clip


def test_the_fill_is_cited_and_explained() -> None:
    rec = recommend({"architecture": "bert", "phase": "fine_tuning"})
    entry = next(e for e in rec.rationale if e.detail and "rules/companion.py" in e.detail)
    assert entry.level == "recipe" and entry.status == "applied"
    assert "optimization.py" in entry.source  # google-research/bert's clip_by_global_norm
    assert any(n.startswith("The deciding rules are silent") and "clip_norm 1" in n for n in rec.notes)


def test_held_out_recipes_are_not_consulted() -> None:
    """Leave-one-out benchmarks exclude recipes: those must not fill anything either."""
    rec = recommend({"architecture": "bert", "phase": "fine_tuning"}, exclude_recipes=_bert_finetune_recipes())
    assert rec.gradient_clipping is None


def test_disagreeing_recipes_fill_nothing() -> None:
    book = default_rulebook()
    entries = [e for e in book.recipes.values() if e.id in _bert_finetune_recipes()]
    agreed = {a.key: a.value for a in agreed_details(entries, "bert", "fine_tuning", "adaptive")}
    assert agreed == {"clip_norm": 1.0, "schedule": "linear"}
    # a copy of one recipe that states other values breaks the agreement
    first = entries[0]
    other_cfg = first.recipe.config.model_copy(update={"clip_norm": 5.0, "schedule": "cosine"})
    other = type(first)(
        **{
            **{f: getattr(first, f) for f in first.__dataclass_fields__},
            "recipe": first.recipe.model_copy(update={"config": other_cfg}),
        }
    )
    assert agreed_details([*entries, other], "bert", "fine_tuning", "adaptive") == ()
    # another optimizer family or phase: none of these recipes counts
    assert agreed_details(entries, "bert", "fine_tuning", "sgd") == ()
    assert agreed_details(entries, "bert", "pretraining", "adaptive") == ()


@pytest.mark.parametrize(
    ("profile", "schedule"),
    [
        # SAC recipes that state a schedule all keep the lr constant; the catalog's default for Adam decays it
        ({"architecture": "sac", "phase": "from_scratch"}, "constant"),
        ({"architecture": "td3", "phase": "from_scratch"}, "constant"),
        # BERT fine-tuning recipes all decay linearly (004's row names no shape)
        ({"architecture": "bert", "phase": "fine_tuning"}, "linear"),
        # GPT pre-training recipes disagree (cosine, linear): the row's own choice stands
        ({"architecture": "gpt", "phase": "pretraining"}, "cosine"),
    ],
    ids=["sac", "td3", "bert-finetune", "gpt-disagree"],
)
def test_the_schedule_shape_from_agreeing_recipes(profile: dict[str, object], schedule: str) -> None:
    assert recommend(profile).schedule.name == schedule


def test_a_schedule_that_needs_more_than_its_shape_is_not_filled() -> None:
    """A step or poly schedule needs milestones or a power, which belong to the recipe that states them."""
    book = default_rulebook()
    entries = [e for e in book.recipes.values() if e.id in _bert_finetune_recipes()]
    stepped = [
        type(e)(
            **{
                **{f: getattr(e, f) for f in e.__dataclass_fields__},
                "recipe": e.recipe.model_copy(
                    update={"config": e.recipe.config.model_copy(update={"schedule": "step"})}
                ),
            }
        )
        for e in entries
    ]
    assert "schedule" not in {a.key for a in agreed_details(stepped, "bert", "fine_tuning", "adaptive")}


def test_a_goal_implied_phase_is_noted_once_and_answers_repeat() -> None:
    profile = {"architecture": "bert", "goal": "fine_tuning", "batch_size": 32}
    first, second = recommend(profile), recommend(profile)  # the second is answered from the engine's caches
    assert first == second
    assert sum(n.startswith("goal fine_tuning implies phase") for n in first.notes) == 1


def _warmups(architecture: str, phase: str, family: str) -> list[float]:
    book = default_rulebook()
    return [
        e.warmup_ratio
        for e in book.recipes.values()
        if e.recipe.job.architecture == architecture
        and e.recipe.job.phase == phase
        and e.optimizer_family == family
        and e.warmup_ratio is not None
    ]


def test_the_warmup_length_is_the_median_of_the_jobs_recipes() -> None:
    """004 gives 10% of the steps for every job; GPT-style pre-training recipes warm up for 0.1-1% of the run."""
    ratios = sorted(_warmups("gpt", "pretraining", "adaptive"))
    assert len(ratios) >= 2 and min(ratios) > 0
    rec = recommend({"architecture": "gpt", "phase": "pretraining", "total_steps": 100_000})
    assert rec.recipe is None  # the seed row decides; it names no warmup length of its own
    median = (
        ratios[len(ratios) // 2] if len(ratios) % 2 else (ratios[len(ratios) // 2 - 1] + ratios[len(ratios) // 2]) / 2
    )
    assert rec.schedule.warmup_ratio == pytest.approx(median, rel=1e-4)
    assert rec.schedule.warmup_steps == round(median * 100_000)
    assert any("median warmup" in n for n in rec.notes)
    entry = next(e for e in rec.rationale if e.detail and "rules/companion.py" in e.detail)
    assert "Brown" in entry.source or "gpt" in entry.detail


def test_recipes_that_disagree_on_warming_up_fill_no_warmup() -> None:
    """ResNet recipes warm up for 0-5% of the run, some not at all: 004's own choice stands."""
    assert 0 in _warmups("resnet", "from_scratch", "sgd")
    book = default_rulebook()
    assert typical_warmup(book.recipes.values(), "resnet", "from_scratch", "sgd") is None
    rec = recommend({"architecture": "resnet", "phase": "from_scratch"})
    assert not any("median warmup" in n for n in rec.notes)


def test_one_recipe_is_no_typical_warmup() -> None:
    book = default_rulebook()
    gpt = [e for e in book.recipes.values() if e.recipe.job.architecture == "gpt" and e.warmup_ratio]
    assert typical_warmup(gpt[:1], "gpt", "pretraining", "adaptive") is None
    two = typical_warmup(gpt[:2], "gpt", "pretraining", "adaptive")
    assert two is not None and two.key == "warmup_ratio" and len(two.recipes) == 2
    # another phase or optimizer family: none of them counts
    assert typical_warmup(gpt, "gpt", "fine_tuning", "adaptive") is None
    assert typical_warmup(gpt, "gpt", "pretraining", "sgd") is None


def test_recipes_that_agree_on_no_warmup_turn_the_default_warmup_off() -> None:
    book = default_rulebook()
    ppo = [e for e in book.recipes.values() if e.recipe.job.architecture == "ppo"][:3]
    assert len(ppo) == 3
    cold = [replace(e, warmup_ratio=0.0) for e in ppo]
    agreed = typical_warmup(cold, "ppo", "from_scratch", "adaptive")
    assert agreed is not None and agreed.key == "warmup" and agreed.value is False and len(agreed.recipes) == 3
    # one of them warming up: they disagree on whether to warm up, nothing is filled
    mixed = [*cold[:2], replace(ppo[2], warmup_ratio=0.05)]
    assert typical_warmup(mixed, "ppo", "from_scratch", "adaptive") is None
    # one recipe alone is no agreement
    assert typical_warmup(cold[:1], "ppo", "from_scratch", "adaptive") is None


def _others_of_the_same_job(rid: str) -> frozenset[str]:
    """The other recipes whose job is this one's word for word (left out, so that this one decides)."""
    book = default_rulebook()
    own = book.recipes[rid].recipe.job.profile()
    return frozenset(e.id for e in book.recipes.values() if e.id != rid and e.recipe.job.profile() == own)


def _silent_on_warmup_among_cold_peers() -> list[str]:
    """Recipes that state no warmup while at least two others of their job state one and none warms up."""
    book = default_rulebook()
    out = []
    for e in book.recipes.values():
        job = (e.recipe.job.architecture, e.recipe.job.phase, e.optimizer_family)
        own = e.recipe.job.profile()  # recipes of the very same job are left out when it is asked (below)
        peers = [
            o
            for o in book.recipes_by_job.get(job, [])
            if o.id != e.id and o.warmup_ratio is not None and o.recipe.job.profile() != own
        ]
        if e.warmup_ratio is None and len(peers) >= 2 and all(o.warmup_ratio == 0 for o in peers):
            out.append(e.id)
    return sorted(out)


@pytest.mark.parametrize("rid", _silent_on_warmup_among_cold_peers())
def test_a_deciding_recipe_silent_on_warmup_takes_its_peers_no_warmup(rid: str) -> None:
    book = default_rulebook()
    entry = book.recipes[rid]
    rec = recommend(entry.recipe.job.profile(), exclude_recipes=_others_of_the_same_job(rid))
    assert rec.recipe is not None and rec.recipe.id == rid
    assert rec.schedule.warmup_ratio == 0, rec.schedule
    if book.optimizers[rec.optimizer.name].warmup:  # the catalog's default would warm up: the peers turned it off
        assert any("none of them warms up" in n for n in rec.notes)


def test_there_are_recipes_silent_on_warmup_among_cold_peers() -> None:
    assert _silent_on_warmup_among_cold_peers()  # the table above is not empty


@pytest.mark.parametrize("rid", ["dqn.atari.dopamine", "yolo.v3_darknet53.coco"])
def test_a_deciding_recipe_silent_on_clipping_takes_what_the_jobs_other_recipes_agree_on(rid: str) -> None:
    book = default_rulebook()
    entry = book.recipes[rid]
    assert entry.recipe.config.clip_norm is None  # the source does not say
    stated = {
        e.recipe.config.clip_norm
        for e in book.recipes.values()
        if e.recipe.job.architecture == entry.recipe.job.architecture
        and e.recipe.job.phase == entry.recipe.job.phase
        and e.optimizer_family == entry.optimizer_family
        and e.recipe.config.clip_norm is not None
    }
    assert len(stated) == 1
    # another recipe of the very same job (Dopamine's TF and JAX DQN) is left out: this one must decide
    rec = recommend(entry.recipe.job.profile(), exclude_recipes=_others_of_the_same_job(rid))
    assert rec.recipe is not None and rec.recipe.id == rid
    assert rec.gradient_clipping is not None and rec.gradient_clipping.max_norm == stated.pop()


def test_a_recipe_that_states_no_clipping_keeps_it_off() -> None:
    book = default_rulebook()
    entry = next(e for e in book.recipes.values() if e.recipe.config.clip_norm == 0)
    rec = recommend(entry.recipe.job.profile())
    assert rec.recipe is not None and rec.recipe.id == entry.id
    assert rec.gradient_clipping is None
