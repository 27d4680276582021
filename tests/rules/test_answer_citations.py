"""Every source an answer cites resolves to the bibliography (sources.toml): over each recipe's own job, each
architecture and domain of the vocabulary, bench/engine.py's benchmark profiles, and seeded random profiles over
every field a caller may state (phase, sharding, precision and devices too)."""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from optirec.rules import default_rulebook, profile_field_options, recommend
from optirec.rules.recommendation import Recommendation

_BOOK = default_rulebook()
_OPTIONS = profile_field_options()


def _random_profiles(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for _ in range(count):
        p: dict[str, Any] = {}
        for field in ("domain", "architecture", "goal", "phase", "rl_method", "sharding", "precision"):
            if field in _OPTIONS and rng.random() < 0.5:
                p[field] = rng.choice(_OPTIONS[field])
        if rng.random() < 0.5:
            p["data"] = rng.sample(_OPTIONS["data"], rng.randint(1, 3))
        for field, draw in (
            ("batch_size", lambda: 2 ** rng.randint(2, 16)),
            ("total_steps", lambda: rng.randint(100, 1_000_000)),
            ("num_parameters", lambda: int(10 ** rng.uniform(3, 11))),
            ("dataset_size", lambda: int(10 ** rng.uniform(2, 9))),
            ("device_memory_gb", lambda: rng.choice([8, 24, 80])),
            ("num_devices", lambda: rng.choice([1, 8, 256])),
        ):
            if rng.random() < 0.4:
                p[field] = draw()
        out.append(p)
    return out


def _bench_profiles(count: int) -> list[dict[str, Any]]:
    """bench/engine.py's two generators (the profiles its figures are measured on)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "engine.py"
    spec = importlib.util.spec_from_file_location("bench_engine", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [*module.varied_profiles(count), *module.job_profiles(count)]


def _profiles() -> Iterator[Any]:
    for rid, entry in sorted(_BOOK.recipes.items()):
        yield pytest.param(entry.recipe.job.profile(), id=f"recipe-{rid}")
    for arch in _OPTIONS["architecture"]:
        yield pytest.param({"architecture": arch}, id=f"architecture-{arch}")
    for domain in _OPTIONS["domain"]:
        yield pytest.param({"domain": domain}, id=f"domain-{domain}")
    for i, p in enumerate(_random_profiles(300, seed=19)):
        yield pytest.param(p, id=f"random-{i}")
    for i, p in enumerate(_bench_profiles(200)):
        yield pytest.param(p, id=f"bench-{i}")


def _cited(rec: Recommendation) -> Iterator[tuple[str, str]]:
    for r in rec.rationale:
        yield f"rationale {r.rule}", r.source
    for a in rec.avoid:
        yield f"avoid {a.name}", a.source
    for t in rec.tuning:
        yield f"tuning {t.name}", t.source
    if rec.recipe is not None:
        yield f"recipe {rec.recipe.id}", rec.recipe.source


@pytest.mark.parametrize("profile", list(_profiles()))
def test_every_source_in_the_answer_resolves(profile: dict[str, Any]) -> None:
    try:
        rec = recommend(profile)
    except ValueError:  # a random combination the vocabulary refuses (tested with the invalid-input tables)
        pytest.skip("profile refused")
    unresolved = [(where, src) for where, src in _cited(rec) if _BOOK.bibliography.resolve(src) is None]
    assert not unresolved, unresolved
    if rec.recipe is not None:
        assert _BOOK.recipes[rec.recipe.id].recipe.source in _BOOK.bibliography.entries
