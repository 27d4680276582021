"""validate()'s search on Ray: the candidates of each rung train side by side in Ray actors.

A validate job sent with ``"fan_out": {...resources}`` (ray_bridge.py does so for every validate trial) runs its
search in the trial's own task (the range test, the plan, the promotions and the report), and hands each rung's
candidates to ``k`` actors, each a ``jobs.search_replica(job)``: a copy of the search built from the job's JSON
text (the same model, batches, candidates and seeds for a seed), holding the state of the candidates it trains
(candidate ``i`` always on actor ``i % k``). ``k`` is the number of candidates, at most as many as the cluster
has CPUs for actors of the trial's resources. The report equals the one-process search
(tests/optimizers/test_validate.py, tests/ray). Progress is reported per rung; a cancel stops the search between
rungs' polls (every POLL seconds) and kills the actors; a lost actor fails the trial with the reason.

Only JSON text, candidate indexes and step counts cross to the actors; scores come back as floats. This module
imports neither Ray nor torch at import time.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["ActorRungs", "SearchActor", "SearchOnRay"]

#: Seconds between looks at the cancel flag while a rung trains.
POLL = 0.1


class SearchActor:
    """One replica of a validate job's search, built from the job as JSON text (a Ray actor)."""

    def __init__(self, payload: str) -> None:
        if not isinstance(payload, str):
            raise TypeError(f"a search's job is JSON text, not {type(payload).__name__}")
        from .jobs import search_replica

        self.replica = search_replica(json.loads(payload))

    def train(self, indices: list[int], length: int) -> list[tuple[float | None, int]]:
        return [(score, int(done)) for score, done in self.replica.train([int(i) for i in indices], int(length))]


class ActorRungs:
    """validate()'s rung trainer: each rung's candidates on the actors, side by side."""

    def __init__(self, name: str, job: Mapping[str, Any], resources: Mapping[str, Any], stop: Callable[[], bool]):
        self.name = name
        self.payload = json.dumps(job)
        self.resources = resources
        self.stop = stop
        self.actors: list[Any] = []

    def _start(self, candidates: int) -> None:
        import ray

        cpus = float(self.resources.get("num_cpus", 1)) or 1.0
        cluster = ray.cluster_resources()  # type: ignore[no-untyped-call]
        k = max(1, min(candidates, int(float(cluster.get("CPU", 1)) // cpus)))
        options: dict[str, Any] = {
            "num_cpus": cpus,
            "num_gpus": float(self.resources.get("num_gpus", 0)),
            "max_restarts": 0,  # a lost actor fails the trial: its candidates' state is gone with it
            "max_task_retries": 0,
        }
        if self.resources.get("memory"):
            options["memory"] = int(self.resources["memory"])
        actor = ray.remote(SearchActor)
        self.actors = [actor.options(name=f"{self.name}-{r}", **options).remote(self.payload) for r in range(k)]

    def __call__(self, indices: list[int], length: int) -> list[tuple[float | None, int]]:
        import ray

        from optirec.optimizers.errors import BuildError

        from .ray_errors import lost_reason

        if not self.actors:
            self._start(len(indices))
        k = len(self.actors)
        parts = [([i for i in indices if i % k == r], actor) for r, actor in enumerate(self.actors)]
        calls = [(mine, actor.train.remote(mine, length)) for mine, actor in parts if mine]
        pending = [ref for _, ref in calls]
        while pending:
            if self.stop():
                self.close()
                raise BuildError("cancel", "the search was cancelled")
            _, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL)
        out: dict[int, tuple[float | None, int]] = {}
        try:
            for mine, ref in calls:
                out.update(zip(mine, ray.get(ref), strict=True))
        except Exception as exc:  # an actor, its worker or its node was lost
            self.close()
            raise BuildError("validate", f"a search candidate failed: {lost_reason(exc)}") from None
        return [out[i] for i in indices]

    def close(self) -> None:
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.actors = []


class SearchOnRay:
    """jobs.execute's ``rungs`` for one trial: makes its ActorRungs and kills their actors at the end."""

    def __init__(self, trial_id: str, resources: Mapping[str, Any]) -> None:
        self.name = f"optirec-search-{trial_id}"
        self.resources = resources
        self.made: list[ActorRungs] = []

    def rungs(self, job: Mapping[str, Any], stop: Callable[[], bool]) -> ActorRungs:
        made = ActorRungs(f"{self.name}-{len(self.made)}", job, self.resources, stop)
        self.made.append(made)
        return made

    def close(self) -> None:
        for made in self.made:
            made.close()
