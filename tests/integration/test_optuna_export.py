"""The Optuna / Ray Tune export, run by Optuna for every job of the shared table.

Each cell: every ``distributions`` entry is read back by ``optuna.distributions.json_to_distribution`` (and
written again identically), a real study with the first trial enqueued gives trial 0 equal to the answer in
every value and samples more trials inside the ranges, and the answer lies strictly inside every range where it
is not 0 (0 sits on the lower end of a linear range from 0). The Ray Tune objects are checked against the
sampler names Ray Tune documents; ``ray_tune_space`` runs where Ray is installed.
"""

from __future__ import annotations

from typing import Any, Final

import pytest
from export_profiles import PROFILES, recommendation

from optirec import Recommendation
from optirec.optimizers.errors import ExportError
from optirec.optimizers.exporters import export
from optirec.optimizers.exporters.common import split_groups
from optirec.optimizers.exporters.optuna import ray_tune_space

pytestmark = pytest.mark.integration
optuna = pytest.importorskip("optuna")

IDS = list(PROFILES)
#: Ray Tune's samplers (docs.ray.io/en/latest/tune/api/search_space.html; ray.tune.randint / lograndint pages:
#: "lower is inclusive, upper is exclusive"): name -> its arguments, and whether upper is excluded
RAY_SAMPLERS: Final[dict[str, tuple[tuple[str, ...], bool]]] = {
    "uniform": (("lower", "upper"), False),
    "loguniform": (("lower", "upper"), False),
    "randint": (("lower", "upper"), True),
    "lograndint": (("lower", "upper"), True),
    "choice": (("categories",), False),
}
#: the one kind of range edge the rules intend: under a memory budget the batch range ends at the answer
#: (rules/training_plan.py tuning_hints: hi_b = batch if budgeted)
EDGE: Final = {"llm-7b-memory": {"batch_size"}}
SAMPLED: Final = 5


def _export(pid: str) -> tuple[Recommendation, dict[str, Any], list[str]]:
    rec = recommendation(pid)
    notes: list[str] = []
    out = export(rec, "optuna", notes)
    assert isinstance(out, dict)
    return rec, out, notes


def _answer(rec: Recommendation) -> dict[str, Any]:
    """Every value the space searches, as the answer gives it (a split's other optimizers as ``<group>.lr``)."""
    out: dict[str, Any] = {}
    for name in rec.search_space:
        out[name] = rec.batch_size if name == "batch_size" else rec.optimizer.hyperparameters[name]
    for g in split_groups(rec):
        if g.optimizer != rec.optimizer.name:
            out[f"{g.name}.lr"] = g.hyperparameters["lr"]
    return out


@pytest.mark.parametrize("pid", IDS, ids=IDS)
def test_optuna_reads_the_space_and_trial_0_is_the_answer(pid: str) -> None:
    rec, out, notes = _export(pid)
    params, dists, first = out["params"], out["distributions"], out["first_trial"]
    answer = _answer(rec)
    assert list(params) == list(dists) == list(first)
    assert set(params) == set(answer)
    assert first == answer  # every value, as recommended
    read = {}
    for name, text in dists.items():
        dist = optuna.distributions.json_to_distribution(text)
        assert optuna.distributions.distribution_to_json(dist) == text  # exactly Optuna's format
        p = params[name]
        kind = optuna.distributions.IntDistribution if p["type"] == "int" else optuna.distributions.FloatDistribution
        assert dist == kind(p["low"], p["high"], log=p["log"])
        read[name] = dist
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial(first)
    trials = []
    for _ in range(1 + SAMPLED):
        trial = study.ask(fixed_distributions=read)
        trials.append(dict(trial.params))
        study.tell(trial, 0.0)
    assert trials[0] == answer
    for sampled in trials[1:]:
        assert set(sampled) == set(params)
        for name, value in sampled.items():
            assert params[name]["low"] <= value <= params[name]["high"], name
    # the answer inside every range (strictly, unless 0 or a rules' edge), each change of the rules' range noted
    for name, value in answer.items():
        low, high = params[name]["low"], params[name]["high"]
        if value == 0:
            assert low == 0 and params[name]["log"] is False
        elif name in EDGE.get(pid, ()):
            assert value == high
            assert any(n.startswith(f"{name}: the range's upper end is the answer") for n in notes)
        else:
            assert low < value < high, (name, low, value, high)
        rules = rec.search_space.get(name)
        if rules is not None and (low, high) != (float(rules[0]), float(rules[1])) and name != "batch_size":
            assert any(n.startswith(f"{name}: ") for n in notes), name
    for g in split_groups(rec):
        if g.optimizer != rec.optimizer.name:
            assert any(n.startswith(f"{g.name}.lr: ") for n in notes)


@pytest.mark.parametrize("pid", IDS, ids=IDS)
def test_ray_tune_objects_use_ray_tunes_sampler_names(pid: str) -> None:
    _, out, _ = _export(pid)
    assert list(out["ray_tune"]) == list(out["params"])
    for name, spec in out["ray_tune"].items():
        p = out["params"][name]
        assert spec["type"] in RAY_SAMPLERS
        arguments, upper_excluded = RAY_SAMPLERS[spec["type"]]
        assert set(spec) == {"type", *arguments}
        assert spec["type"].startswith("log") == p["log"]
        assert spec["type"].endswith("randint") == (p["type"] == "int")
        assert spec["lower"] == p["low"]
        assert spec["upper"] == (p["high"] + 1 if upper_excluded else p["high"])


@pytest.mark.parametrize("pid", IDS, ids=IDS)
def test_ray_tune_space_builds_ray_samplers(pid: str) -> None:
    pytest.importorskip("ray.tune", reason="Ray is not installed here (an optional dependency of this export)")
    _, out, _ = _export(pid)
    space = ray_tune_space(out)
    assert list(space) == list(out["ray_tune"])
    for name, sampler in space.items():
        spec = out["ray_tune"][name]
        assert (sampler.lower, sampler.upper) == (spec["lower"], spec["upper"])
        assert spec["lower"] <= sampler.sample() <= spec["upper"]


@pytest.mark.parametrize(
    "space",
    [{"lr": {"type": "run", "lower": 1e-4, "upper": 1e-2}}, {"lr": {"lower": 1e-4}}, {"lr": "loguniform(1e-4, 1e-2)"}],
    ids=["not-a-sampler", "no-type", "old-string-form"],
)
def test_ray_tune_space_refuses_what_is_not_a_sampler(space: dict[str, object]) -> None:
    with pytest.raises(ExportError) as err:
        ray_tune_space({"ray_tune": space})
    assert err.value.field == "ray_tune" and "lr: unknown sampler" in str(err.value)
    assert "valid values: loguniform, uniform, lograndint, randint" in str(err.value)
