"""optirec.diagnose: loss curves and named symptoms -> findings (with evidence) and a revised Recommendation.

Synthetic curves inject each symptom at a known step (detected, with a step range near it); clean noisy curves
of several shapes and seeds must show nothing (no false alarms on ordinary minibatch noise).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from optirec import Diagnosis, diagnose, recommend
from optirec.rules import ProfileError, Recommendation, RulebookError, default_rulebook, load_rulebook

N = 1000


# ---------------------------------------------------------------------------------------- curve makers
def _noisy(values: list[float], seed: int, rel: float = 0.05) -> list[float]:
    rng = random.Random(seed)
    return [v * (1 + rel * rng.gauss(0, 1)) for v in values]


def exp_decay(n: int, seed: int, rel: float = 0.05) -> list[float]:
    return _noisy([2.0 * math.exp(-4 * t / n) + 0.2 for t in range(n)], seed, rel)


def power_law(n: int, seed: int, rel: float = 0.05) -> list[float]:
    return _noisy([3.0 * (t + 10) ** -0.5 + 0.05 for t in range(n)], seed, rel)


def step_schedule(n: int, seed: int, rel: float = 0.05) -> list[float]:
    out = []
    for t in range(n):
        v = 1.5 * math.exp(-6 * t / n) + 0.6
        if t >= n // 2:
            v -= 0.25 * (1 - math.exp(-(t - n // 2) / (n / 50)))
        if t >= 3 * n // 4:
            v -= 0.1 * (1 - math.exp(-(t - 3 * n // 4) / (n / 50)))
        out.append(v)
    return _noisy(out, seed, rel)


def cosine_annealed(n: int, seed: int, rel: float = 0.05) -> list[float]:
    out = []
    for t in range(n):
        progress = (t / n - math.sin(math.pi * t / n) / math.pi) * 0.5 + 0.5 * t / n
        out.append(2.0 * math.exp(-3.5 * (t / n + progress) / 1.5) + 0.15)
    return _noisy(out, seed, rel)


SHAPES: dict[str, Callable[[int, int], list[float]]] = {
    "exp-decay": exp_decay,
    "power-law": power_law,
    "step-schedule": step_schedule,
    "cosine-annealed": cosine_annealed,
}
#: the schedule each shape comes from, for the runs that pass the matching recommendation
SHAPE_SCHEDULE = {"exp-decay": "cosine", "power-law": "cosine", "step-schedule": "step", "cosine-annealed": "cosine"}


def _with(rec: Recommendation, **schedule: Any) -> Recommendation:
    return rec.model_copy(update={"schedule": rec.schedule.model_copy(update=schedule)})


def _rec(**profile: Any) -> Recommendation:
    return recommend({"total_steps": N, **profile})


# ---------------------------------------------------------------------------------------- symptom curves
def nan_divergence() -> dict[str, Any]:
    curve: list[float | None] = list(exp_decay(N, 1))
    curve[600:] = [None] * (N - 600)
    return {"train_loss": curve}


def blow_up() -> dict[str, Any]:
    curve = exp_decay(N, 2)[:500]
    curve += [curve[-1] * math.exp(0.1 * k) for k in range(1, 60)]
    return {"train_loss": curve}


def explosion() -> dict[str, Any]:
    curve = exp_decay(N, 3)
    for step in (400, 700):
        curve[step] *= 6
    return {"train_loss": curve, "recommendation": _rec(architecture="bert")}  # warmup present: not "early"


def early_instability() -> dict[str, Any]:
    rng = random.Random(4)
    curve = exp_decay(N, 4)
    for t in range(80):
        curve[t] = 2.2 * (1 + 0.4 * math.sin(t / 3)) * (1 + 0.3 * rng.gauss(0, 1))
    return {"train_loss": curve, "recommendation": _rec(architecture="resnet")}  # no warmup


def late_plateau() -> dict[str, Any]:
    curve = _noisy([2.0 * math.exp(-t / 60) + 0.3 for t in range(N)], 5)
    return {"train_loss": curve, "recommendation": _with(_rec(architecture="resnet"), name="constant")}


def oscillation() -> dict[str, Any]:
    curve = exp_decay(N, 6)
    for t in range(500, N):
        curve[t] = 0.45 * (1 + 0.08 * (1 if t % 2 else -1)) * (1 + 0.01 * random.Random(t).gauss(0, 1))
    return {"train_loss": curve, "recommendation": _rec(architecture="resnet")}


def overfitting() -> dict[str, Any]:
    train = exp_decay(N, 7, rel=0.03)
    val_steps = list(range(9, N, 10))
    val = [0.9 + 1.5 * math.exp(-10 * s / N) + (0.25 * (s - 400) / 600 if s > 400 else 0.0) for s in val_steps]
    return {"train_loss": train, "val_loss": _noisy(val, 8, rel=0.01), "recommendation": _rec(architecture="vit")}


def validation_plateau() -> dict[str, Any]:
    train = exp_decay(N, 9, rel=0.03)
    val_steps = list(range(9, N, 10))
    val = [0.8 + 1.4 * math.exp(-12 * s / N) for s in val_steps]
    rec = recommend({"architecture": "vit", "goal": "best_accuracy", "total_steps": N})
    return {"train_loss": train, "val_loss": _noisy(val, 10, rel=0.005), "recommendation": rec}


# (maker, symptom, expected start range, expected end range)
SYMPTOM_CASES = [
    pytest.param(nan_divergence, "divergence", (600, 600), (N - 1, N - 1), id="divergence-nan"),
    pytest.param(blow_up, "divergence", (520, 560), (558, 558), id="divergence-blow-up"),
    pytest.param(explosion, "gradient_explosion", (400, 400), (700, 700), id="gradient-explosion"),
    pytest.param(early_instability, "early_instability", (0, 0), (90, 110), id="early-instability"),
    pytest.param(late_plateau, "late_plateau", (150, 450), (N - 1, N - 1), id="late-plateau"),
    pytest.param(oscillation, "oscillation", (450, 560), (N - 1, N - 1), id="oscillation"),
    pytest.param(overfitting, "overfitting", (350, 480), (N - 1, N - 1), id="overfitting"),
    pytest.param(validation_plateau, "validation_plateau", (600, 800), (N - 1, N - 1), id="validation-plateau"),
]


@pytest.mark.parametrize(("maker", "symptom", "start", "end"), SYMPTOM_CASES)
def test_each_symptom_is_detected_with_its_evidence(
    maker: Callable[[], dict[str, Any]], symptom: str, start: tuple[int, int], end: tuple[int, int]
) -> None:
    dx = diagnose(**maker())
    found = {f.symptom: f for f in dx.findings}
    assert symptom in found, f"{symptom} not found; findings: {[(f.symptom, f.evidence.summary) for f in dx.findings]}"
    assert len(found) == 1, f"only {symptom} expected: {[(f.symptom, f.evidence.summary) for f in dx.findings]}"
    f = found[symptom]
    assert f.detected_from == "curve"
    assert start[0] <= f.evidence.start_step <= start[1], f.evidence
    assert end[0] <= f.evidence.end_step <= end[1], f.evidence
    assert f.evidence.summary and f.evidence.figures
    assert f.rule == f"symptom.{symptom}" and f.source.startswith("004 §6.4")
    assert not dx.healthy and dx.changes, "a finding revises the recommendation"
    assert dx.causes[0].cause == f.cause
    Recommendation.model_validate(dx.recommendation.model_dump(mode="json"))  # same contract


def test_overfitting_evidence_reads_like_figures() -> None:
    f = diagnose(**overfitting()).findings[0]
    assert f.evidence.summary.startswith("val loss rose ")
    assert "while train fell" in f.evidence.summary
    assert f.evidence.figures["val_rise"] > 0.05 and f.evidence.figures["train_fall"] > 0.01


# ---------------------------------------------------------------------------------------- no false alarms
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("n", [5, 40, 300, 2000])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_clean_noisy_curves_raise_no_alarm(shape: str, n: int, seed: int) -> None:
    train = SHAPES[shape](n, seed)
    val = [1.1 * v for v in _noisy([abs(x) for x in SHAPES[shape](n, seed + 100)], seed, 0.0)][9::10] or None
    for kwargs in ({}, {"recommendation": _with(_rec(architecture="resnet"), name=SHAPE_SCHEDULE[shape])}):
        dx = diagnose(train_loss=train, val_loss=val, **kwargs)
        assert dx.healthy, [(f.symptom, f.evidence.summary) for f in dx.findings]
        assert not dx.findings and not dx.changes
        assert ("too few to judge" if n < 30 else "healthy") in dx.message and "unchanged" in dx.message


def test_healthy_curve_leaves_the_recommendation_unchanged() -> None:
    rec = _rec(architecture="resnet")
    dx = diagnose(train_loss=exp_decay(500, 0), recommendation=rec)
    assert dx.healthy and dx.recommendation == rec and dx.based_on == "recommendation"


def test_divergence_with_noise_before_it_is_still_one_finding() -> None:
    dx = diagnose(train_loss=[2.3, 2.1, 9.0, None])
    assert [f.symptom for f in dx.findings] == ["divergence"]
    assert dx.findings[0].evidence.start_step == 3


# ---------------------------------------------------------------------------------------- named symptoms
@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        pytest.param("divergence", "divergence", id="name"),
        pytest.param("NaN", "divergence", id="alias"),
        pytest.param("Gradient explosion (sudden loss spikes)", "gradient_explosion", id="label"),
        pytest.param("over-fitting", "overfitting", id="spelling"),
        pytest.param("val plateau", "validation_plateau", id="alias-spaces"),
    ],
)
def test_named_symptoms_accept_names_aliases_and_labels(name: str, canonical: str) -> None:
    dx = diagnose(symptoms=[name])
    assert [f.symptom for f in dx.findings] == [canonical]
    assert dx.findings[0].detected_from == "named" and dx.findings[0].evidence.curve == "named"


def test_unknown_symptom_names_the_field_with_did_you_mean() -> None:
    with pytest.raises(ProfileError) as info:
        diagnose(symptoms=["divergence", "overfiting"])
    issue = info.value.issues[0]
    assert issue.field == "symptoms[1]"
    assert issue.suggestion == "overfitting"
    assert issue.valid is not None and "late_plateau" in issue.valid


# ---------------------------------------------------------------------------------------- actions
def _change(dx: Diagnosis, field: str) -> Any:
    hits = [c for c in dx.changes if c.field == field]
    assert hits, f"no change of {field}: {[c.field for c in dx.changes]}"
    return hits[0]


def test_divergence_divides_lr_and_search_space_by_10() -> None:
    rec = _rec(architecture="resnet")
    dx = diagnose(symptoms=["divergence"], recommendation=rec)
    lr = rec.optimizer.hyperparameters["lr"]
    assert dx.recommendation.optimizer.hyperparameters["lr"] == pytest.approx(lr / 10)
    low, high = dx.recommendation.search_space["lr"]
    assert [low, high] == pytest.approx([v / 10 for v in rec.search_space["lr"]], rel=5e-3)  # to 3 digits
    assert low <= lr / 10 <= high  # rounding never leaves the new lr outside its range
    c = _change(dx, "optimizer.hyperparameters.lr")
    assert (c.from_, c.to, c.rule) == (lr, pytest.approx(lr / 10), "symptom.divergence")
    assert c.model_dump()["from"] == lr  # serialised as "from"
    assert any(r.rule == "symptom.divergence" and r.status == "applied" for r in dx.recommendation.rationale)
    assert any(w.startswith("Revised by diagnosis") for w in dx.recommendation.warnings)


def test_explosion_adds_clipping_at_1() -> None:
    dx = diagnose(symptoms=["gradient_explosion"], recommendation=_rec(architecture="resnet"))
    assert dx.recommendation.gradient_clipping is not None
    assert dx.recommendation.gradient_clipping.max_norm == 1.0
    assert _change(dx, "gradient_clipping").source == "004 §6.4.1 gradient explosion"


def test_early_instability_adds_warmup() -> None:
    rec = _rec(architecture="resnet")
    assert rec.schedule.warmup_ratio == 0
    dx = diagnose(symptoms=["early_instability"], recommendation=rec)
    assert dx.recommendation.schedule.warmup_ratio == 0.1
    assert dx.recommendation.schedule.warmup_steps == 100


def test_late_plateau_switches_to_cosine() -> None:
    rec = _with(_rec(architecture="resnet"), name="step", milestones=[500, 750], milestone_fractions=[0.5, 0.75])
    dx = diagnose(symptoms=["late_plateau"], recommendation=rec)
    assert dx.recommendation.schedule.name == "cosine" and dx.recommendation.schedule.milestones is None


@pytest.mark.parametrize(
    ("profile", "wd_before", "wd_after"),
    [
        pytest.param({"architecture": "resnet"}, 0.0001, 0.001, id="sgd-x10"),
        pytest.param({"architecture": "vit"}, 0.05, 0.1, id="adamw-capped-at-6.3-range"),
        pytest.param({}, 0.0, 0.01, id="adam-from-zero-to-range-low"),
    ],
)
def test_overfitting_raises_weight_decay_within_the_range(profile: dict, wd_before: float, wd_after: float) -> None:
    rec = _rec(**profile)
    assert rec.optimizer.hyperparameters.get("weight_decay", 0.0) == pytest.approx(wd_before)
    dx = diagnose(symptoms=["overfitting"], recommendation=rec)
    assert dx.recommendation.optimizer.hyperparameters["weight_decay"] == pytest.approx(wd_after)


def test_oscillation_lowers_momentum_or_beta1() -> None:
    sgd = diagnose(symptoms=["oscillation"], recommendation=_rec(architecture="resnet"))
    assert sgd.recommendation.optimizer.hyperparameters["momentum"] == pytest.approx(0.8)
    adam = diagnose(symptoms=["oscillation"], recommendation=_rec())
    assert adam.recommendation.optimizer.hyperparameters["betas"][0] == pytest.approx(0.8)


def test_oscillation_without_momentum_falls_back_to_lower_lr() -> None:
    rec = _rec(architecture="resnet")
    hp = {k: v for k, v in rec.optimizer.hyperparameters.items() if k != "momentum"}
    plain = rec.model_copy(
        update={"optimizer": rec.optimizer.model_copy(update={"name": "sgd", "hyperparameters": hp})}
    )
    dx = diagnose(symptoms=["oscillation"], recommendation=plain)
    assert dx.recommendation.optimizer.hyperparameters["lr"] == pytest.approx(hp["lr"] / 10)


def test_validation_plateau_switches_adam_to_sgd_for_best_accuracy() -> None:
    rec = recommend({"architecture": "vit", "goal": "best_accuracy", "total_steps": N})
    assert rec.optimizer.name == "adamw" and rec.phases
    dx = diagnose(symptoms=["validation_plateau"], recommendation=rec)
    assert dx.recommendation.optimizer.name == "sgd_momentum"
    assert dx.recommendation.optimizer.hyperparameters == rec.phases[-1].optimizer.hyperparameters
    assert dx.recommendation.phases == []
    assert dx.recommendation.search_space["momentum"] == [0.9, 0.99]
    assert _change(dx, "optimizer").source == "004 §6.4.2"


def test_validation_plateau_without_best_accuracy_changes_nothing() -> None:
    rec = _rec(architecture="vit")
    dx = diagnose(symptoms=["validation_plateau"], recommendation=rec)
    assert dx.findings and not dx.changes and dx.recommendation == rec
    assert any("does not apply" in n for n in dx.notes)


def test_recurrent_network_gets_clipping_with_its_divergence() -> None:
    rec = _rec(architecture="gru").model_copy(update={"gradient_clipping": None})
    dx = diagnose(symptoms=["divergence"], recommendation=rec)
    assert dx.recommendation.gradient_clipping is not None and dx.recommendation.gradient_clipping.max_norm == 1.0
    assert _change(dx, "gradient_clipping").rule == "symptom.recurrent_clipping"


def test_profile_only_revises_recommend_of_the_profile() -> None:
    profile = {"architecture": "resnet", "total_steps": N}
    dx = diagnose(symptoms=["divergence"], profile=profile)
    assert dx.based_on == "profile"
    lr = recommend(profile).optimizer.hyperparameters["lr"]
    assert dx.recommendation.optimizer.hyperparameters["lr"] == pytest.approx(lr / 10)
    assert diagnose(symptoms=["divergence"]).based_on == "default"


# ---------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({}, "train_loss", id="nothing"),
        pytest.param({"train_loss": []}, "train_loss", id="empty"),
        pytest.param({"val_loss": []}, "val_loss", id="empty-val"),
        pytest.param({"train_loss": [1.0, "x", 2.0]}, "train_loss[1]", id="non-numeric"),
        pytest.param({"train_loss": [1.0, True]}, "train_loss[1]", id="boolean"),
        pytest.param({"train_loss": "1,2,3"}, "train_loss", id="string"),
        pytest.param({"train_loss": [1.0] * 100_001}, "train_loss", id="too-long"),
        pytest.param({"symptoms": [3]}, "symptoms[0]", id="symptom-not-a-string"),
        pytest.param(
            {"symptoms": ["nan"], "profile": {"architecture": "resnett"}}, "profile.architecture", id="profile"
        ),
        pytest.param({"symptoms": ["x"], "recommendation": {"optimizer": 1}}, "symptoms[0]", id="symptom-first"),
        pytest.param({"symptoms": ["nan"], "recommendation": {"optimizer": 1}}, "recommendation", id="recommendation"),
    ],
)
def test_bad_input_names_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ProfileError) as info:
        diagnose(**kwargs)
    assert info.value.issues[0].field.startswith(field), info.value.issues


def _named(name: str, **fields: Any) -> dict[str, Any]:
    return {"optimizer": {"name": "adamw", "hyperparameters": {"lr": 1e-3}}, **fields} | (
        {"optimizer": {"name": name, "hyperparameters": {"lr": 1e-3}}} if name else {}
    )


ALT = {"name": "adamm", "score": 0.5, "why": "test", "hyperparameters": {"lr": 1e-3}}
PHASE = {"name": "p", "optimizer": {"name": "sgdd", "hyperparameters": {"lr": 0.1}}, "trigger": "step 9", "why": "t"}


@pytest.mark.parametrize(
    ("rec", "field", "suggestion"),
    [
        pytest.param(_named("adamm"), "recommendation.optimizer.name", "adam", id="optimizer"),
        pytest.param(_named("", alternatives=[ALT]), "recommendation.alternatives[0].name", "adam", id="alternative"),
        pytest.param(_named("", phases=[PHASE]), "recommendation.phases[0].optimizer.name", "sgd", id="phase"),
        pytest.param(
            {"optimizer": {"name": "lookahead", "hyperparameters": {"lr": 1e-3, "base": "adamww"}}},
            "recommendation.optimizer.hyperparameters.base",
            "adamw",
            id="wrapper-base",
        ),
        pytest.param(
            {"optimizer": {"name": "adamw", "hyperparameters": {"lr": -1.0}}},
            "recommendation.optimizer.hyperparameters.lr",
            None,
            id="lr-negative",
        ),
    ],
)
@pytest.mark.parametrize("as_model", [False, True], ids=["json", "model"])
def test_a_recommendation_outside_the_catalog_is_refused_naming_the_field(
    rec: dict[str, Any], field: str, suggestion: str | None, as_model: bool
) -> None:
    """The fixes look an optimizer's family up: an unknown name is a ProfileError with a did-you-mean, never a
    KeyError (found by a POST /diagnose with a schema-valid body)."""
    given: Any = Recommendation.model_validate(rec) if as_model else rec
    with pytest.raises(ProfileError) as info:
        diagnose(symptoms=["overfitting"], recommendation=given)
    (issue,) = info.value.issues
    assert issue.field == field
    if suggestion:
        assert issue.suggestion == suggestion


def test_limit_is_stated_in_the_rulebook() -> None:
    ds = default_rulebook().diagnosis
    assert ds is not None and ds.max_points == 100_000
    assert all(key in ds.sources for key in type(ds).model_fields if key != "sources")


def test_long_curve_within_the_limit_is_fast_enough() -> None:
    dx = diagnose(train_loss=exp_decay(100_000, 0))
    assert dx.curves.train_points == 100_000


# ---------------------------------------------------------------------------------------- rulebook validation
def _edit(folder: Path, file: str, old: str, new: str) -> None:
    path = folder / file
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("file", "old", "new", "rule", "field"),
    [
        pytest.param(
            "symptoms.toml",
            'actions = ["lr_divide_10"]',
            'actions = ["lr_divide_100"]',
            "symptom.divergence",
            "actions.0",
            id="unknown-action",
        ),
        pytest.param(
            "symptoms.toml",
            'source = "004 §6.4.2"',
            'source = "a blog"',
            "symptom.validation_plateau",
            "source",
            id="uncited-symptom",
        ),
        pytest.param(
            "symptoms.toml",
            'requires_goal = ["best_accuracy"]',
            'requires_goal = ["best_acc"]',
            "symptom.validation_plateau",
            "requires_goal",
            id="unknown-goal",
        ),
        pytest.param(
            "symptoms.toml",
            'when_family = ["rnn"]',
            'when_family = ["rnnn"]',
            "symptom.recurrent_clipping",
            "when_family",
            id="unknown-family",
        ),
        pytest.param(
            "principles.toml", "spike_z = 8.0 ", "spike_z = -1 ", "diagnosis #1", "spike_z", id="negative-threshold"
        ),
        pytest.param(
            "principles.toml",
            'spike_z = "external',
            'spike_zz = "external',
            "diagnosis",
            "sources.spike_z",
            id="uncited-threshold",
        ),
        pytest.param("principles.toml", "max_points = 100000", "", "diagnosis #1", "max_points", id="missing-key"),
        pytest.param(
            "symptoms.toml",
            "otherwise_fix = ",
            "# otherwise_fix = ",
            "symptom.late_plateau",
            "otherwise_fix",
            id="schedule-gate-without-what-to-say",
        ),
        pytest.param(
            "symptoms.toml",
            'requires_schedule = ["constant", "step"]',
            'requires_schedule = ["constant", "stepp"]',
            "symptom.late_plateau",
            "requires_schedule.1",
            id="unknown-schedule",
        ),
        pytest.param(
            "principles.toml",
            "no_improvement_z = 4.0 ",
            "no_improvement_z = 0 ",
            "diagnosis #1",
            "no_improvement_z",
            id="zero-no-improvement-z",
        ),
    ],
)
def test_malformed_diagnosis_data_is_refused(
    data_copy: Path, file: str, old: str, new: str, rule: str | None, field: str
) -> None:
    _edit(data_copy, file, old, new)
    with pytest.raises(RulebookError) as info:
        load_rulebook(data_copy)
    assert (info.value.file, info.value.rule, info.value.field) == (file, rule, field), str(info.value)


def test_missing_diagnosis_table_is_refused(data_copy: Path) -> None:
    path = data_copy / "principles.toml"
    path.write_text(path.read_text(encoding="utf-8").replace("[diagnosis", "[unused"), encoding="utf-8")
    with pytest.raises(RulebookError) as info:
        load_rulebook(data_copy)
    assert (info.value.file, info.value.rule, info.value.field) == ("principles.toml", None, "diagnosis")
