"""The command line helps a new user past their mistakes: valid values in every --help, "did you mean" for a
misspelt flag or filter value, integers written as 7e9, no traceback when stdout closes early, and a summary
line after a trial.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from typing import Any

import pytest

from optirec.rules import default_rulebook
from optirec.rules.loader import LEVEL_WEIGHTS
from optirec.rules.profile import Profile, profile_field_options
from optirec.service.cli import EXIT_BROKEN_PIPE, _build_parser, main
from optirec.service.cli_profile import PROFILE_FIELDS
from optirec.service.cli_trial import trial_summary
from optirec.service.trials.models import DEVICES, WORKLOAD_NAMES


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _flags() -> list[tuple[str, argparse.Action]]:
    return [
        (command, action)
        for command, parser in _subcommands().items()
        for action in parser._actions
        if action.option_strings and "--help" not in action.option_strings
    ]


FLAGS = _flags()


def _expected_values(command: str, flag: str) -> list[str] | None:
    """The live valid values a flag's help must list (None: a free-form flag)."""
    book = default_rulebook()
    options = profile_field_options()
    field = flag.lstrip("-").replace("-", "_")
    if command in ("recommend", "trial", "diagnose") and field in options:
        return options[field]
    table: dict[tuple[str, str], list[str]] = {
        ("rules", "--level"): list(LEVEL_WEIGHTS),
        ("rules", "--optimizer"): sorted(book.optimizers),
        ("optimizers", "--family"): sorted({o.family for o in book.optimizers.values()}),
        ("trial", "--workload"): list(WORKLOAD_NAMES),
        ("trial", "--device"): list(DEVICES),
        ("diagnose", "--symptom"): sorted(book.symptoms),
    }
    return table.get((command, flag))


def test_every_profile_field_has_a_flag() -> None:
    assert sorted(PROFILE_FIELDS) == sorted(Profile.model_fields)


@pytest.mark.parametrize(
    ("command", "action"), FLAGS, ids=[f"{c}-{a.option_strings[-1].lstrip('-')}" for c, a in FLAGS]
)
def test_every_flag_has_help_with_its_valid_values(
    capsys: pytest.CaptureFixture[str], command: str, action: argparse.Action
) -> None:
    flag = action.option_strings[-1]
    assert action.help, f"optirec {command} {flag} has no help text"
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    expected = _expected_values(command, flag)
    if expected is not None:
        assert f"valid values: {', '.join(expected)}" in text, (flag, text[:400])


MISSPELT_FLAGS = [
    (["recommend", "--archtecture", "resnet"], "recommend", "--architecture"),
    (["recommend", "--batchsize", "64"], "recommend", "--batch-size"),
    (["trial", "--stpes", "5"], "trial", "--steps"),
    (["diagnose", "--symptm", "divergence"], "diagnose", "--symptom"),
    (["rules", "--levl", "data"], "rules", "--level"),
    (["optimizers", "--famly", "sgd"], "optimizers", "--family"),
    (["recipes", "--pahse", "pretraining"], "recipes", "--phase"),
    (["sources", "--ctie", "004"], "sources", "--cite"),
]


def _one_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2 and out == "", (code, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("optirec: error: "), err
    return lines[0]


@pytest.mark.parametrize(("argv", "command", "flag"), MISSPELT_FLAGS, ids=[m[1] + m[0][1] for m in MISSPELT_FLAGS])
def test_a_misspelt_flag_suggests_the_closest_one(
    capsys: pytest.CaptureFixture[str], argv: list[str], command: str, flag: str
) -> None:
    line = _one_line(capsys, argv)
    assert f"unknown flag {argv[1]!r} (did you mean {flag!r}?)" in line and f"optirec {command} --help" in line


def test_a_stray_argument_is_named_without_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    line = _one_line(capsys, ["recommend", "resnet"])
    assert "unknown argument 'resnet'" in line and "did you mean" not in line


MISSPELT_VALUES = [
    (["rules", "--level", "dat"], "level", "data"),
    (["optimizers", "--family", "adaptve"], "family", "adaptive"),
    (["rules", "--optimizer", "adamm"], "optimizer", "adam"),
    (["recipes", "--architecture", "convnxt"], "architecture", "convnext"),
    (["recipes", "--domain", "computer_vison"], "domain", "computer_vision"),
    (["recipes", "--phase", "pretrainig"], "phase", "pretraining"),
    (["recommend", "--architecture", "resnett"], "architecture", "resnet"),
    (["recommend", "--format", "hff"], "format", "hf"),
    (["sources", "--id", "he2016x"], "id", None),
]


@pytest.mark.parametrize(("argv", "field", "hint"), MISSPELT_VALUES, ids=["-".join(m[0]) for m in MISSPELT_VALUES])
def test_a_misspelt_filter_value_suggests_the_closest_one(
    capsys: pytest.CaptureFixture[str], argv: list[str], field: str, hint: str | None
) -> None:
    line = _one_line(capsys, argv)
    assert line.startswith(f"optirec: error: {field}: ") and "valid values: " in line, line
    if hint is not None:
        assert f"did you mean {hint!r}" in line, line


INTEGERS = [
    ("7e9", 7_000_000_000),
    ("7E9", 7_000_000_000),
    ("1.5e6", 1_500_000),
    ("1_000_000", 1_000_000),
    ("124000000", 124_000_000),
    (" 42 ", 42),
]


@pytest.mark.parametrize(("text", "value"), INTEGERS, ids=[i[0].strip() for i in INTEGERS])
def test_integers_are_taken_as_people_write_them(capsys: pytest.CaptureFixture[str], text: str, value: int) -> None:
    import json

    assert main(["recommend", "--num-parameters", text, "--compact"]) == 0
    assert json.loads(capsys.readouterr().out)["profile"]["num_parameters"] == value


@pytest.mark.parametrize("text", ["7.5", "1e-3", "abc", "nan", "inf", "", "0x10"])
def test_a_flag_that_is_not_an_integer_is_refused(capsys: pytest.CaptureFixture[str], text: str) -> None:
    line = _one_line(capsys, ["recommend", "--num-parameters", text])
    assert line == f"optirec: error: num_parameters: {text!r} is not an integer (7e9 and 1_000 are)"


@pytest.mark.parametrize("argv", [["rules", "--json"], ["recipes", "--json"], ["optimizers"]])
def test_a_closed_pipe_ends_quietly(argv: list[str]) -> None:
    """`optirec rules --json | head -1`: the reader goes away after one line; no traceback, exit 141."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "optirec", *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    code = proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code in (0, EXIT_BROKEN_PIPE), (code, err)  # 0 when everything fitted in the pipe before it closed


RUN: dict[str, Any] = {
    "status": "succeeded",
    "optimizer": "adamw",
    "workload": {"name": "mlp"},
    "device": "cpu",
    "steps_requested": 20,
    "steps_done": 20,
    "final_loss": 0.6437,
    "final_metric": 0.91,
    "metric_name": "accuracy",
    "diverged_at": None,
    "steps_per_second": 377.93,
    "wall_seconds": 0.053,
}
SUMMARIES = [
    (
        "run",
        RUN,
        "optirec: trial succeeded: adamw on mlp, 20/20 steps on cpu in 0.1 s (377.9 steps/s); final loss 0.6437, "
        "accuracy 0.91",
    ),
    (
        "diverged",
        {**RUN, "status": "diverged", "diverged_at": 7, "steps_done": 7, "final_loss": None, "final_metric": None},
        "optirec: trial diverged at step 7: adamw on mlp, 7/20 steps on cpu in 0.1 s (377.9 steps/s); final loss -",
    ),
    (
        "race",
        {
            "ranked": [
                {
                    "rank": 1,
                    "optimizer": "adamw",
                    "hyperparameters": {"lr": 1e-3},
                    "mean_final_loss": 0.5,
                    "diverged_runs": 0,
                },
                {
                    "rank": 2,
                    "optimizer": "sgd",
                    "hyperparameters": {"lr": 0.1},
                    "mean_final_loss": None,
                    "diverged_runs": 1,
                },
            ]
        },
        "optirec: race: 1. adamw (lr 0.001): mean final loss 0.5; 2. sgd (lr 0.1): mean final loss -, 1 diverged",
    ),
    (
        "search-stopped",
        {"validation": None, "warnings": ["the search was cancelled"]},
        "optirec: validate: no result (the search was cancelled)",
    ),
    (
        "search",
        {
            "validation": {
                "verdict": "too_low",
                "winner": "lr x3.16",
                "validated_lr": 0.00316,
                "recommended_lr": 0.001,
                "candidates": [{}, {}, {}],
                "cost": {"spent_steps": 390, "full_runs": 3.9},
                "steps": 100,
            }
        },
        "optirec: validate: too_low: winner lr x3.16 at lr 0.00316 (recommended 0.001); 3 candidates, 390 steps = "
        "3.90 runs of 100",
    ),
]


@pytest.mark.parametrize(("result", "line"), [s[1:] for s in SUMMARIES], ids=[s[0] for s in SUMMARIES])
def test_a_trial_ends_with_one_summary_line(result: dict[str, Any], line: str) -> None:
    assert trial_summary(result) == line
