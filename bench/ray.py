"""A race of 6 candidates x 2 seeds on a local Ray cluster against the same race in this process (issue 24).

    .venv/bin/python bench/ray.py [--steps 1000] [--workload mlp] [--cpus 2] [--seeds 2]

In-process: ``optirec.optimizers.racing.race`` (the candidates and seeds one after another). On Ray: every
(candidate, seed) run is one ``ray_tasks.run_job`` task, the job the trial queue's Ray backend sends (JSON
text), on a cluster started here with ``ray.init(num_cpus=--cpus)``; the runs are ranked with the same
``race_entries``. Printed: both wall clocks and their ratio (target <= 0.6 on a 2-core machine), whether the
rankings and every run's losses agree, each run's training time in both places, the per-run overhead Ray
adds (one run at a time: a task's end-to-end time beyond its training, against the same in this process), and
the wall clock that per-run time and overhead predict for more nodes of the same size.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

# this file is named ray.py: drop its folder from the path, so that ``import ray`` finds Ray, not this script
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from optirec.optimizers.racing import candidates, race, race_entries  # noqa: E402 (after the path fix)
from optirec.optimizers.results import TrialResult  # noqa: E402 (after the path fix)
from optirec.optimizers.trial import run_trial  # noqa: E402 (after the path fix)
from optirec.rules import Recommendation, default_rulebook, recommend  # noqa: E402 (after the path fix)
from optirec.rules.recommendation import Alternative  # noqa: E402 (after the path fix)
from optirec.service.trials.ray_tasks import run_job  # noqa: E402 (after the path fix)

#: Candidates of the race: the recommendation for a ResNet, its 3 alternatives, and two more optimizers.
EXTRA = ("rmsprop", "adagrad")
TIMING = {"steps_per_second", "wall_seconds", "peak_memory_bytes"}


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _recommendation(k: int) -> Recommendation:
    book = default_rulebook()
    rec = recommend({"architecture": "resnet"})
    known = {rec.optimizer.name, *(a.name for a in rec.alternatives)}
    extra = [
        Alternative(name=n, score=0.0, why="bench/ray.py", hyperparameters=dict(book.defaults[n]))
        for n in EXTRA
        if n not in known
    ]
    rec = rec.model_copy(update={"alternatives": [*rec.alternatives, *extra]})
    if len(candidates(rec, k)) < k:
        raise SystemExit(f"bench/ray.py: only {len(candidates(rec, k))} candidates; need {k}")
    return rec


def _job(cand: Recommendation, workload: str, steps: int, seed: int) -> dict[str, Any]:
    return {
        "recommendation": cand.model_dump(mode="json"),
        "workload": workload,
        "steps": steps,
        "device": "cpu",
        "seed": seed,
        "size": 1,
        "race": 0,
        "validate": False,
        "budget": {"max_steps": steps, "max_seconds": 3600, "max_parameters": 50_000_000},
    }


def _trained(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _trained(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_trained(v) for v in value]
    return value


def _spread(values: list[float]) -> str:
    return f"mean {statistics.mean(values):.2f} (min {min(values):.2f}, max {max(values):.2f})"


def _on_ray(cands: list[Recommendation], args: argparse.Namespace) -> tuple[list[list[TrialResult]], list[float]]:
    """Every (candidate, seed) as one task; the results per candidate and each task's end-to-end seconds."""
    import ray

    remote = ray.remote(run_job)
    runs = [(c, i, seed) for i, c in enumerate(cands) for seed in range(args.seeds)]
    started: dict[Any, float] = {}
    keys: dict[Any, tuple[int, int]] = {}
    for cand, index, seed in runs:
        payload = json.dumps(
            {"type": "job", "id": f"c{index}s{seed}", "job": _job(cand, args.workload, args.steps, seed)}
        )
        ref = remote.options(num_cpus=1, max_retries=0).remote(payload)
        started[ref] = time.perf_counter()
        keys[ref] = (index, seed)
    results: dict[tuple[int, int], TrialResult] = {}
    elapsed: list[float] = []
    lock = threading.Lock()

    def follow(ref: Any) -> None:
        last: dict[str, Any] = {}
        for item in ref:
            last = json.loads(ray.get(item))
        assert last.get("type") == "result", last
        with lock:
            results[keys[ref]] = TrialResult.model_validate(last["result"])
            elapsed.append(time.perf_counter() - started[ref])

    threads = [threading.Thread(target=follow, args=(ref,)) for ref in started]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    per_candidate = [[results[(i, seed)] for seed in range(args.seeds)] for i in range(len(cands))]
    return per_candidate, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=_positive, default=1000, help="steps per run (default 1000)")
    parser.add_argument("--workload", default="mlp", help="proxy workload (default mlp)")
    parser.add_argument("--cpus", type=_positive, default=2, help="CPUs of the local Ray cluster (default 2)")
    parser.add_argument("--seeds", type=_positive, default=2, help="seeds per candidate (default 2)")
    parser.add_argument("--candidates", type=_positive, default=6, help="candidates (default 6)")
    args = parser.parse_args(argv)
    rec = _recommendation(args.candidates)
    cands = candidates(rec, args.candidates)
    n_runs = len(cands) * args.seeds

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a loopback cluster of this process only
    import ray

    t0 = time.perf_counter()
    # ray/_private/worker.py init: a local cluster of --cpus CPUs, no dashboard, workers' output kept out
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, namespace="optirec-bench")
    init_s = time.perf_counter() - t0
    # warm the workers (import torch once per worker, as a long-running cluster has), then the timed race
    warmup = json.dumps({"type": "job", "id": "warm", "job": _job(cands[0], args.workload, 1, 0)})
    for gen in [ray.remote(run_job).options(num_cpus=1).remote(warmup) for _ in range(args.cpus)]:
        for item in gen:
            ray.get(item)
    serial_ray = []  # one run at a time: a task's end-to-end seconds beyond its own training
    for seed in range(3):
        payload = json.dumps({"type": "job", "id": "one", "job": _job(cands[0], args.workload, args.steps, seed)})
        t0 = time.perf_counter()
        last: dict[str, Any] = {}
        for item in ray.remote(run_job).options(num_cpus=1).remote(payload):
            last = json.loads(ray.get(item))
        serial_ray.append(time.perf_counter() - t0 - float(last["result"]["wall_seconds"]))
    t0 = time.perf_counter()
    on_ray, elapsed = _on_ray(cands, args)
    ray_s = time.perf_counter() - t0
    ranked_ray = race_entries(cands, on_ray)
    ray.shutdown()

    serial_local = []  # the same runs in this process (the workload's data loaded once, as by a warm worker)
    run_trial(cands[0], args.workload, 1, "cpu", 0)
    for seed in range(3):
        t0 = time.perf_counter()
        one = run_trial(cands[0], args.workload, args.steps, "cpu", seed)
        serial_local.append(time.perf_counter() - t0 - one.wall_seconds)
    t0 = time.perf_counter()
    ranked_local = race(
        rec, args.candidates, workload=args.workload, steps=args.steps, seeds=range(args.seeds), device="cpu"
    )
    local_s = time.perf_counter() - t0

    same = [_trained(e.model_dump(mode="json")) for e in ranked_ray] == [
        _trained(e.model_dump(mode="json")) for e in ranked_local
    ]
    local_train = [r.wall_seconds for e in ranked_local for r in e.results]
    ray_train = [r.wall_seconds for e in ranked_ray for r in e.results]
    print(
        f"race: {len(cands)} candidates x {args.seeds} seeds = {n_runs} runs of {args.steps} steps on {args.workload}"
    )
    print(f"candidates: {', '.join(c.optimizer.name for c in cands)}")
    print(f"ray.init (a local cluster of {args.cpus} CPUs): {init_s:.1f} s, then its workers warmed")
    print(f"in-process: {local_s:.2f} s   on Ray: {ray_s:.2f} s   ratio {ray_s / local_s:.2f} (target <= 0.6)")
    print(f"same ranking and losses as in-process: {same}")
    print(
        "ranking: "
        + ", ".join(
            f"{e.rank}. {e.optimizer} {e.mean_final_loss:.4g}" for e in ranked_ray if e.mean_final_loss is not None
        )
    )
    print(f"per-run training s, in-process: {_spread(local_train)}")
    print(f"per-run training s, on Ray:     {_spread(ray_train)}")
    print(f"per-run end-to-end s on Ray:    mean {statistics.mean(elapsed):.2f} (queueing included)")
    task_overhead = statistics.mean(serial_ray) - statistics.mean(serial_local)
    print(
        f"overhead per run beyond training, one at a time: on Ray {statistics.mean(serial_ray):.3f} s, in-process "
        f"{statistics.mean(serial_local):.3f} s: Ray adds {task_overhead:.3f} s per run"
    )
    for nodes in (1, 2, 4):
        cpus = nodes * args.cpus
        r = -(-n_runs // cpus)
        est = r * (statistics.mean(ray_train) + max(0.0, task_overhead))
        print(f"  {nodes} node(s) of {args.cpus} CPUs: about {est:.1f} s ({r} round(s) of {cpus} runs at once)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
