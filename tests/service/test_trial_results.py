"""TrialStatus.result is typed: a TrialResult, a RaceOutcome or a ValidationOutcome (optirec.optimizers.results),
chosen by its keys, torch-free, and a stored row from another version still reads (its result left out, saying why).
"""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from optirec.optimizers import results
from optirec.optimizers.results import RaceOutcome, TrialResult, ValidationOutcome, result_kind
from optirec.service.routers.trials import to_status
from optirec.service.trials.models import TrialStatus
from optirec.service.trials.store import TrialRecord

RUN: dict[str, Any] = {
    "status": "succeeded",
    "optimizer": "adamw",
    "workload": {"name": "mlp"},
    "device": "cpu",
    "mixed_precision": False,
    "seed": 0,
    "steps_requested": 4,
    "steps_done": 4,
    "train_loss": [1.0, 0.9, None, 0.7],
    "heldout": [{"step": 4, "loss": 0.8, "metric": 0.5}],
    "final_loss": 0.8,
    "final_metric": 0.5,
    "metric_name": "accuracy",
    "higher_is_better": True,
    "diverged": False,
    "diverged_at": None,
    "divergence_reason": None,
    "steps_per_second": 100.0,
    "wall_seconds": 0.04,
    "peak_memory_bytes": 1,
    "parameters": 10,
    "warnings": [],
}
ENTRY = {"rank": 1, "optimizer": "adamw", "hyperparameters": {"lr": 1e-3}, "mean_final_loss": 0.8, "diverged_runs": 0}
RACE = {"ranked": [{**ENTRY, "results": [RUN]}], "warnings": ["w"]}
CANCELLED_SEARCH = {"validation": None, "workload": {"name": "mlp"}, "warnings": ["the search was cancelled"]}

VALID = [
    ("run", RUN, TrialResult, "trial"),
    ("race", RACE, RaceOutcome, "race"),
    ("cancelled-search", CANCELLED_SEARCH, ValidationOutcome, "validation"),
]
INVALID = [
    ("run-bad-status", {**RUN, "status": "exploded"}, "status"),
    ("run-missing-field", {k: v for k, v in RUN.items() if k != "final_loss"}, "final_loss"),
    ("race-bad-rank", {"ranked": [{**ENTRY, "rank": "first", "results": []}]}, "rank"),
    ("search-bad-report", {"validation": {"winner": "x"}}, "validation"),
]


def _status(result: Any) -> dict[str, Any]:
    return {
        "id": "t",
        "status": "succeeded",
        "progress": {"steps_done": 4, "steps_total": 4},
        "request": {},
        "result": result,
        "created_at": "2026-12-02T00:00:00Z",
    }


@pytest.mark.parametrize(("result", "model", "kind"), [v[1:] for v in VALID], ids=[v[0] for v in VALID])
def test_each_result_shape_reads_as_its_model(result: dict[str, Any], model: type[BaseModel], kind: str) -> None:
    status = TrialStatus.model_validate(_status(copy.deepcopy(result)))
    assert isinstance(status.result, model) and result_kind(result) == kind == result_kind(status.result)
    assert status.model_dump(mode="json")["result"] == {**result, **status.result.model_dump(mode="json")}
    assert TrialStatus.model_validate_json(status.model_dump_json()) == status  # the client reads what we write


@pytest.mark.parametrize(("result", "field"), [v[1:] for v in INVALID], ids=[v[0] for v in INVALID])
def test_a_result_that_fits_no_shape_is_refused_naming_the_field(result: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        TrialStatus.model_validate(_status(result))
    locs = [".".join(map(str, e["loc"])) for e in info.value.errors()]
    assert all(loc.startswith("result.") for loc in locs) and any(field in loc for loc in locs), locs


def _record(result: dict[str, Any] | None, error: str | None = None) -> TrialRecord:
    return TrialRecord(
        id="t",
        status="succeeded" if error is None else "failed",
        request={},
        job={},
        result=result,
        error=error,
        steps_done=4,
        steps_total=4,
        loss=None,
        worker_pid=None,
        created_at="2026-12-02T00:00:00Z",
        started_at=None,
        finished_at=None,
    )


def test_a_stored_row_reads_as_typed_status() -> None:
    status = to_status(_record(copy.deepcopy(RACE)))
    assert isinstance(status.result, RaceOutcome) and status.result.ranked[0].results[0].steps_done == 4
    assert status.error is None


@pytest.mark.parametrize("error", [None, "worker exited"], ids=["no-error", "with-error"])
def test_a_row_from_another_version_still_reads_saying_why_its_result_is_left_out(error: str | None) -> None:
    stored = {**RUN, "status": "exploded"}
    record = _record(stored, error)
    status = to_status(record)
    assert status.result is None and status.error is not None
    assert "stored result does not fit" in status.error and "status" in status.error
    assert status.error.startswith(error or "the stored result")
    assert record.result == stored  # the row itself is untouched


def test_the_result_models_are_one_set_re_exported_where_they_were() -> None:
    from optirec import optimizers
    from optirec.optimizers import lr_finder, racing, trial, validation

    assert trial.TrialResult is results.TrialResult is optimizers.TrialResult
    assert racing.RaceEntry is results.RaceEntry is optimizers.RaceEntry
    assert validation.ValidationReport is results.ValidationReport is optimizers.ValidationReport
    assert validation.Candidate is results.Candidate and lr_finder.LRRangeTest is results.LRRangeTest


def test_the_result_models_and_the_client_import_no_torch(
    run_python: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    code = "import sys, optirec.optimizers.results, optirec.service.client; print('torch' in sys.modules)"
    out = run_python("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
