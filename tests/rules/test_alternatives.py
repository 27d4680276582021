"""The alternatives of an answer (rules/alternatives.py; issue 23): each with its own hyperparameters and one
line on why it ranks where it does; an optimizer only a far weaker rule names (score 0) is not presented as a
candidate: it comes last, marked "not recommended", as a baseline to race against."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from optirec.optimizers import build
from optirec.optimizers.racing import with_optimizer
from optirec.rules import default_rulebook, recommend

_BOOK = default_rulebook()

# (id, profile, chosen, [(alternative, its why)])
NAMED: list[tuple[str, dict[str, Any], str, list[tuple[str, str]]]] = [
    (
        "resnet-one-row-ranks-all",
        {"domain": "computer_vision", "architecture": "resnet"},
        "sgd_momentum",
        [
            (
                "adamw",
                "2nd choice of domain.computer_vision.cnn (004 §2.2 computer vision (CNN)), also named by 2 more "
                "matched rules; that rule puts sgd_momentum first",
            ),
            (
                "nag",
                "3rd choice of domain.computer_vision.cnn (004 §2.2 computer vision (CNN)), also named by 1 more "
                "matched rule; that rule puts sgd_momentum first",
            ),
            ("adam", ""),
        ],
    ),
    (
        "dlrm-a-recipe-outranks-the-family",
        {"architecture": "dlrm"},
        "sgd",
        [
            (
                "adagrad",
                "1st choice of family.embedding (004 §5.5.2); sgd is ahead as the 1st choice of "
                "recipe.dlrm.criteo_terabyte (recipe level)",
            ),
            (
                "adam",
                "2nd choice of family.embedding (004 §5.5.2), also named by 1 more matched rule; sgd is ahead as the "
                "1st choice of recipe.dlrm.criteo_terabyte (recipe level)",
            ),
            ("adamw", ""),
        ],
    ),
    (
        "gpt-7b-lower-memory-first",
        {"architecture": "gpt", "num_parameters": 7_000_000_000},
        "adamw",
        [
            (
                "adafactor",
                "1st choice of constraint.memory.large_model (004 §6.5.1 Adafactor); adamw is ahead as the 1st choice "
                "of recipe.gpt3.6_7b.pretraining (recipe level); listed early for memory: optimizer state 0.05x the "
                "parameters (adamw: 2x)",
            ),
            (
                "sgd",
                "1st choice of constraint.memory_limited (004 §2.2 memory-constrained environment); adamw is ahead as "
                "the 1st choice of recipe.gpt3.6_7b.pretraining (recipe level); listed early for memory: no optimizer "
                "state (adamw: 2x)",
            ),
            (
                "lion",
                "2nd choice of constraint.memory.large_model (004 §6.5.1 Adafactor); adamw is ahead as the 1st choice "
                "of recipe.gpt3.6_7b.pretraining (recipe level); listed early for memory: optimizer state 1x the "
                "parameters (adamw: 2x)",
            ),
        ],
    ),
    # only default.adam names adam here: it was listed with score 0 and the default rule's whole paragraph
    (
        "convnext-score-0-marked",
        {"architecture": "convnext"},
        "adamw",
        [
            ("sgd_momentum", ""),
            ("nag", "3rd choice of family.cnn (004 §6.1 decision tree (CNN branch)); that rule ranks adamw above it"),
            (
                "adam",
                "not recommended for this job (score 0): only default.adam (004 §6.2 basic choice) names it, as its "
                "1st choice, far below recipe.convnext.isotropic_base.imagenet1k (recipe level) for adamw; listed as a "
                "baseline to race against",
            ),
        ],
    ),
    (
        "mlp-nothing-else-supported",
        {"architecture": "mlp", "domain": "tabular"},
        "adamw",
        [
            (
                "adam",
                "not recommended for this job (score 0): only default.adam (004 §6.2 basic choice) names it, as its "
                "1st choice, far below recipe.mlp.rtdl_tuned.california_housing (recipe level) for adamw; "
                "listed as a baseline to race against",
            )
        ],
    ),
]


@pytest.mark.parametrize(("profile", "chosen", "expected"), [n[1:] for n in NAMED], ids=[n[0] for n in NAMED])
def test_named_alternatives_and_their_reasons(
    profile: dict[str, Any], chosen: str, expected: list[tuple[str, str]]
) -> None:
    rec = recommend(profile)
    assert rec.optimizer.name == chosen
    assert [a.name for a in rec.alternatives] == [name for name, _ in expected]
    for alt, (_, why) in zip(rec.alternatives, expected, strict=True):
        if why:
            assert alt.why == why


def _profiles() -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = [("empty", {})]
    out += [(f"architecture={a}", {"architecture": a}) for a in _BOOK.valid("architecture")]
    out += [(f"domain={d}", {"domain": d}) for d in _BOOK.valid("domain")]
    out += [(f"goal={g}", {"goal": g}) for g in _BOOK.valid("goal")]
    out += [(f"{a}+memory_limited", {"architecture": a, "memory_limited": True}) for a in ("resnet", "bert", "gpt")]
    out += [("llm-175b", {"domain": "llm", "num_parameters": 175_000_000_000})]
    return out


PROFILES = _profiles()


@pytest.mark.parametrize("profile", [p for _, p in PROFILES], ids=[i for i, _ in PROFILES])
def test_each_alternative_is_a_candidate_with_its_own_line(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    whys = [a.why for a in rec.alternatives]
    assert len(set(whys)) == len(whys), f"alternatives repeat a reason: {whys}"
    marked = [a.why.startswith("not recommended for this job (score 0)") for a in rec.alternatives]
    assert marked == [a.score == 0 for a in rec.alternatives], "score 0, and only score 0, is marked"
    assert marked == sorted(marked), "no score-0 alternative comes before a candidate"
    for alt in rec.alternatives:
        assert "\n" not in alt.why and len(alt.why) <= 300, alt.why
        assert alt.rule is not None and f"{alt.rule} (" in alt.why, alt.why
        voter = _BOOK.rules[alt.rule]
        assert voter.effect not in alt.why, "the rule's paragraph belongs to the rationale, not to each alternative"
        assert set(alt.hyperparameters) <= set(_BOOK.defaults[alt.name]), f"{alt.name}: not its own hyperparameters"
    scores = [a.score for a in rec.alternatives]
    # best score first; under memory pressure the lower-memory ones first, each part best score first
    early = [a.score for a in rec.alternatives if "listed early for memory" in a.why]
    rest = [a.score for a in rec.alternatives if "listed early for memory" not in a.why]
    assert scores == sorted(early, reverse=True) + sorted(rest, reverse=True)


@pytest.mark.parametrize(
    "profile",
    [{"architecture": "resnet"}, {"architecture": "bert", "total_steps": 1000}, {"architecture": "dlrm"}],
    ids=["resnet", "bert", "dlrm"],
)
def test_each_alternative_builds_with_its_own_hyperparameters(profile: dict[str, Any]) -> None:
    rec = recommend(profile)
    assert rec.alternatives
    model = nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(8, 2))
    for alt in rec.alternatives:
        built = build(model, with_optimizer(rec, alt.name, alt.hyperparameters), total_steps=100)
        assert isinstance(built.optimizer, torch.optim.Optimizer)
        assert built.recommendation.optimizer.name == alt.name
        assert built.recommendation.optimizer.hyperparameters == alt.hyperparameters
