"""bench/quality.py still runs end to end (tiny budget); the benches refuse bad arguments with exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _bench(repo_root: Path, script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(repo_root / "bench" / script), *args],
        cwd=repo_root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
def test_a_tiny_run_prints_every_task_and_the_summary(repo_root: Path) -> None:
    done = _bench(
        repo_root,
        "quality.py",
        "--steps",
        "4",
        "--seeds",
        "2",
        "--trials",
        "2",
        "--tasks",
        "diabetes-mlp,diabetes-rare-outcome",
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for task in ("diabetes-mlp", "diabetes-rare-outcome"):
        # its run line, its gap row and its share-captured row
        assert sum(line.startswith(task + " ") for line in lines) == 3, done.stdout
    assert "rec within 5% of best-of-2: " in done.stdout and "/2 (target >= 2)" in done.stdout
    assert "validated within 2% of best-of-2: " in done.stdout
    assert "validate's cost: at most " in done.stdout and "validated not worse than rec" in done.stdout
    assert "prodigy" in done.stdout and "sf_adamw" in done.stdout and "mean share captured" in done.stdout
    assert "rec not worse than Adam(1e-3) by more than 5%: " in done.stdout


@pytest.mark.parametrize(
    ("args", "field", "shown"),
    [
        (["--tasks", "digits-cnnn"], "--tasks", "valid values: digits-cnn, digits-vit"),
        (["--tasks", ","], "--tasks", "valid values: digits-cnn"),
        (["--steps", "0"], "--steps", "must be at least 1, got 0"),
        (["--seeds", "-1"], "--seeds", "must be at least 1, got -1"),
        (["--trials", "0"], "--trials", "must be at least 1, got 0"),
        (["--steps", "many"], "--steps", "invalid int value"),
        (["--profiles", "0"], "--profiles", "must be at least 1, got 0"),
        (["--cold-runs", "-3"], "--cold-runs", "must be at least 1, got -3"),
    ],
    ids=[
        *("quality-" + case for case in ("unknown-task", "no-task", "zero-steps", "negative-seeds", "zero-trials")),
        "quality-steps-not-a-number",
        "engine-zero-profiles",
        "engine-negative-cold-runs",
    ],
)
def test_bad_arguments_exit_2_naming_the_flag(repo_root: Path, args: list[str], field: str, shown: str) -> None:
    script = "engine.py" if args[0] in ("--profiles", "--cold-runs") else "quality.py"
    done = _bench(repo_root, script, *args)
    assert done.returncode == 2
    assert field in done.stderr and shown in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize(
    ("value", "reference", "shown"),
    [
        (1.05, 1.0, "+5.0%"),
        (0.9, 1.0, "-10.0%"),
        (float("inf"), 1.0, "diverged"),
        (float("nan"), 1.0, "diverged"),
        (1.0, float("inf"), "ref diverged"),
        (float("inf"), float("inf"), "diverged"),
    ],
    ids=["worse", "better", "row-diverged", "row-nan", "reference-diverged", "both-diverged"],
)
def test_the_gap_table_says_diverged_in_words(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch, value: float, reference: float, shown: str
) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_quality", repo_root / "bench" / "quality.py")
    assert spec is not None and spec.loader is not None
    quality = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, quality)  # its dataclasses look their module up there
    spec.loader.exec_module(quality)
    assert quality._shown_gap(value, reference, 14) == f"{shown:>14}"


def test_the_export_table_lists_every_profile_and_format(repo_root: Path) -> None:
    done = _bench(repo_root, "exports.py", "--no-run", "--formats", "hf,torch")
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines()[1:] if line.strip()]
    table = {(r[0], r[1]): r[2] for r in rows if len(r) >= 3 and r[1] in ("hf", "torch")}
    assert table[("wrn-step", "hf")] == "refused"  # the Trainer has no multi-step schedule
    assert table[("resnet-b1024", "torch")] == "works"
    assert len({pid for pid, _ in table}) >= 12
    assert "cells (" in done.stdout and " refused with the reason" in done.stdout


def test_the_export_table_refuses_an_unknown_format(repo_root: Path) -> None:
    done = _bench(repo_root, "exports.py", "--formats", "hf,keras")
    assert done.returncode == 2
    assert "--formats" in done.stderr and "keras" in done.stderr and "valid values: hf, lightning" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_the_quality_help_names_the_tasks_that_exist(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_quality_help", repo_root / "bench" / "quality.py")
    assert spec is not None and spec.loader is not None
    quality = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, quality)
    spec.loader.exec_module(quality)
    names = [t.name for t in quality.TASKS]
    out = subprocess.run(
        [sys.executable, str(repo_root / "bench" / "quality.py"), "--help"], capture_output=True, text=True, check=True
    ).stdout
    text = " ".join(out.split()).replace("- ", "-")  # argparse wraps long lines, also at hyphens
    assert f"of the {len(names)} tasks: {', '.join(names)}" in text
    usage = next(line for line in out.splitlines() if "--tasks " in line and "quality.py [" in line)
    for example in filter(None, usage.split("--tasks ", 1)[1].rstrip("]").rstrip(".").split(",")):
        assert example in names, example  # the usage example names real tasks


def test_fuzz_counts_a_documented_pair_only_for_its_own_answer(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_fuzz", repo_root / "bench" / "fuzz.py")
    assert spec is not None and spec.loader is not None
    fuzz = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, fuzz)
    spec.loader.exec_module(fuzz)
    diagnose = ("positive_data_acceptance", "POST /diagnose")
    cancel = ("use_after_free", "DELETE /trials/{trial_id}")
    trials = ("positive_data_acceptance", "POST /trials")
    memory = '{"message": "size: the trial would need about 59,941 MiB for transformer_lm at size 8 ..."}'
    cuda = '{"message": "device: trial workers have no CUDA device"}'
    failures = {
        diagnose: ['{"message": "val_steps: has 0 step(s) for 1 point(s): give one step per point"}', '{"other": 1}'],
        cancel: ["anything"],
        trials: [memory, cuda, '{"message": "steps: something else"}'],
        ("not_a_server_error", "POST /trials"): ["500"],
    }
    failing, documented = fuzz.split_documented(failures)
    assert failing == {
        diagnose: ['{"other": 1}'],
        trials: ['{"message": "steps: something else"}'],
        ("not_a_server_error", "POST /trials"): ["500"],
    }
    assert documented == {diagnose: [failures[diagnose][0]], cancel: ["anything"], trials: [memory, cuda]}
    assert fuzz.documented_reason(trials, memory) != fuzz.documented_reason(trials, cuda)
