"""Engine benchmark: microseconds per in-process recommendation, and CLI cold start.

    .venv/bin/python bench/engine.py [--profiles 10000] [--cold-runs 15]

Prints figures; the targets (median <= 50 us, CLI cold start <= 300 ms) are reported, not asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from typing import Any

TARGET_MEDIAN_US = 50.0
TARGET_COLD_MS = 300.0


def varied_profiles(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Random profiles over the live vocabulary and realistic numbers (seeded)."""
    from optirec.rules import profile_field_options

    options = profile_field_options()
    rng = random.Random(seed)
    profiles: list[dict[str, Any]] = []
    for _ in range(count):
        p: dict[str, Any] = {}
        for field in ("domain", "architecture", "goal", "rl_method"):
            if rng.random() < 0.6:
                p[field] = rng.choice(options[field])
        if rng.random() < 0.5:
            p["data"] = rng.sample(options["data"], rng.randint(1, 3))
        if rng.random() < 0.5:
            p["batch_size"] = 2 ** rng.randint(3, 15)
        if rng.random() < 0.5:
            p["total_steps"] = rng.randint(100, 500_000)
        if rng.random() < 0.4:
            p["num_parameters"] = int(10 ** rng.uniform(4, 10.5))
        if rng.random() < 0.2:
            p["device_memory_gb"] = rng.choice([8, 16, 24, 40, 80])
        if rng.random() < 0.1:
            p["memory_limited"] = True
        if rng.random() < 0.05:
            p["on_device"] = True
        if rng.random() < 0.2:
            p["dataset_size"] = int(10 ** rng.uniform(2, 7))
        profiles.append(p)
    return profiles


def job_profiles(count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Profiles shaped like real jobs: an architecture with its usual domain, a few data traits, a goal."""
    from optirec.rules import default_rulebook, profile_field_options

    book = default_rulebook()
    options = profile_field_options()
    family_domain = {
        "cnn": "computer_vision",
        "transformer": "nlp",
        "rnn": "time_series",
        "embedding": "recommender",
        "mlp": "tabular",
        "gan": "computer_vision",
        "value_network": "reinforcement_learning",
        "policy_network": "reinforcement_learning",
    }
    rng = random.Random(seed)
    profiles: list[dict[str, Any]] = []
    for _ in range(count):
        p: dict[str, Any] = {}
        if rng.random() < 0.85:
            arch = book.terms["architecture"][rng.choice(options["architecture"])]
            p["architecture"] = arch.name
            if rng.random() < 0.6 and (arch.domain or arch.family in family_domain):
                p["domain"] = arch.domain or family_domain[arch.family]
        elif rng.random() < 0.7:
            p["domain"] = rng.choice(options["domain"])
        if rng.random() < 0.4:
            p["data"] = rng.sample(options["data"], rng.randint(1, 2))
        if rng.random() < 0.4:
            p["goal"] = rng.choice(options["goal"])
        if rng.random() < 0.7:
            p["batch_size"] = 2 ** rng.randint(3, 13)
        if rng.random() < 0.6:
            p["total_steps"] = rng.randint(1_000, 300_000)
        if rng.random() < 0.4:
            p["num_parameters"] = int(10 ** rng.uniform(5, 10.5))
        if rng.random() < 0.15:
            p["device_memory_gb"] = rng.choice([16, 24, 40, 80])
        if rng.random() < 0.05:
            p["memory_limited"] = True
        profiles.append(p)
    return profiles


def bench_engine(count: int, generator: Any = varied_profiles) -> dict[str, float]:
    from optirec.rules import default_rulebook, recommend

    default_rulebook().cache.clear()
    profiles = generator(count)
    for p in profiles[:200]:  # warm-up
        recommend(p)
    times: list[float] = []
    clock = time.perf_counter_ns
    for p in profiles:
        t0 = clock()
        recommend(p)
        times.append((clock() - t0) / 1000.0)
    times.sort()
    return {
        "n": float(len(times)),
        "median_us": statistics.median(times),
        "p90_us": times[int(0.90 * len(times)) - 1],
        "p99_us": times[int(0.99 * len(times)) - 1],
        "mean_us": statistics.fmean(times),
        "max_us": times[-1],
    }


def bench_cold_start(runs: int) -> dict[str, float]:
    exe = shutil.which("optirec", path=os.path.dirname(sys.executable)) or shutil.which("optirec")
    cmd = [exe] if exe else [sys.executable, "-m", "optirec"]
    cmd += ["recommend", "--architecture", "resnet", "--batch-size", "1024", "--compact"]
    subprocess.run(cmd, check=True, capture_output=True)  # warm the OS file cache
    walls: list[float] = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        walls.append((time.perf_counter() - t0) * 1000.0)
    walls.sort()
    return {"runs": float(runs), "median_ms": statistics.median(walls), "min_ms": walls[0], "max_ms": walls[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=10_000, help="profiles per generator (default 10000)")
    parser.add_argument("--cold-runs", type=int, default=15, help="CLI cold starts to time (default 15)")
    args = parser.parse_args()
    for flag, value in (("--profiles", args.profiles), ("--cold-runs", args.cold_runs)):
        if value < 1:
            parser.error(f"{flag}: must be at least 1, got {value}")

    for label, generator in (
        ("uniformly random fields (every enum field drawn independently)", varied_profiles),
        ("job-shaped profiles (architecture with its usual domain, some data traits, a goal)", job_profiles),
    ):
        eng = bench_engine(args.profiles, generator)
        ok = "met" if eng["median_us"] <= TARGET_MEDIAN_US else "MISSED"
        print(f"engine: {int(eng['n'])} {label}, in-process recommend() incl. validation")
        print(
            f"  median {eng['median_us']:.1f} us   p90 {eng['p90_us']:.1f} us   p99 {eng['p99_us']:.1f} us   "
            f"mean {eng['mean_us']:.1f} us   max {eng['max_us']:.0f} us"
        )
        print(f"  target median <= {TARGET_MEDIAN_US:.0f} us: {ok}")

    cold = bench_cold_start(args.cold_runs)
    ok = "met" if cold["median_ms"] <= TARGET_COLD_MS else "MISSED"
    print(f"cli cold start: `optirec recommend --architecture resnet --batch-size 1024`, {int(cold['runs'])} runs")
    print(f"  median {cold['median_ms']:.0f} ms   min {cold['min_ms']:.0f} ms   max {cold['max_ms']:.0f} ms")
    print(f"  target <= {TARGET_COLD_MS:.0f} ms: {ok}")


if __name__ == "__main__":
    main()
