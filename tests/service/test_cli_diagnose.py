"""``optirec diagnose``: losses as JSON or CSV on stdin, --symptom, --recommendation FILE, profile flags."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from optirec import recommend
from optirec.service.cli import main


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def pipe(monkeypatch: pytest.MonkeyPatch) -> Any:
    def feed(text: str | None) -> None:
        monkeypatch.setattr(sys, "stdin", _Terminal() if text is None else io.StringIO(text))

    return feed


def _ok(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("optirec: error: "), err
    return lines[0]


CURVE = [2.0 * math.exp(-t / 30) + 0.2 for t in range(100)]


def test_json_object_on_stdin(pipe: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pipe(json.dumps({"train_loss": [*CURVE[:50], None], "val_loss": [1.0, 0.9]}))
    dx = _ok(capsys, ["diagnose", "--architecture", "resnet", "--total-steps", "100"])
    assert [f["symptom"] for f in dx["findings"]] == ["divergence"]
    assert dx["based_on"] == "profile"
    lr = recommend(architecture="resnet", total_steps=100).optimizer.hyperparameters["lr"]
    assert dx["recommendation"]["optimizer"]["hyperparameters"]["lr"] == pytest.approx(lr / 10)


def test_bare_list_healthy(pipe: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pipe(json.dumps(CURVE))
    dx = _ok(capsys, ["diagnose", "--compact"])
    assert dx["healthy"] is True and dx["curves"]["train_points"] == 100


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("step,train_loss,val_loss\n0,2.0,2.1\n1,1.9,\n2,1.8,\n3,nan,\n", id="header-3-columns"),
        pytest.param("train_loss\n2.0\n1.9\n1.8\n\n", id="header-1-column"),
        pytest.param("2.0\n1.9\n1.8\n", id="single-column"),
    ],
)
def test_csv_on_stdin(pipe: Any, capsys: pytest.CaptureFixture[str], text: str) -> None:
    pipe(text)
    dx = _ok(capsys, ["diagnose", "--csv"])
    assert dx["curves"]["train_points"] in (3, 4)
    if "nan" in text:
        assert dx["findings"][0]["symptom"] == "divergence"
        assert dx["curves"]["val_points"] == 1


def test_named_symptoms_and_recommendation_file(pipe: Any, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rec_file = tmp_path / "rec.json"
    rec_file.write_text(json.dumps(recommend({"architecture": "resnet"}).model_dump(mode="json")), encoding="utf-8")
    pipe(None)
    dx = _ok(capsys, ["diagnose", "--symptom", "oscillation", "--symptom", "spikes", "--recommendation", str(rec_file)])
    assert [f["symptom"] for f in dx["findings"]] == ["oscillation", "gradient_explosion"]
    assert dx["based_on"] == "recommendation"
    assert dx["recommendation"]["optimizer"]["hyperparameters"]["momentum"] == pytest.approx(0.8)
    assert dx["recommendation"]["gradient_clipping"] == {"max_norm": 1.0}


@pytest.mark.parametrize(
    ("stdin", "argv", "field"),
    [
        pytest.param(None, [], "train_loss", id="nothing"),
        pytest.param("", [], "train_loss", id="empty-stdin"),
        pytest.param("[]", [], "train_loss", id="empty-list"),
        pytest.param("[1.0, NaN]", [], "train_loss", id="nan-literal"),
        pytest.param('[1.0, "x"]', [], "train_loss[1]", id="non-numeric"),
        pytest.param("{not json", [], "train_loss", id="malformed-json"),
        pytest.param('{"train": [1]}', [], "train", id="unknown-key"),
        pytest.param("train_loss\n1.0\nabc\n", ["--csv"], "train_loss", id="csv-non-numeric"),
        pytest.param("loss,foo\n1,2\n", ["--csv"], "foo", id="csv-unknown-column"),
        pytest.param(json.dumps([1.0] * 100_001), [], "train_loss", id="too-long"),
        pytest.param(None, ["--symptom", "overfiting"], "symptoms[0]", id="unknown-symptom"),
        pytest.param(None, ["--symptom", "nan", "--architecture", "resnett"], "profile.architecture", id="profile"),
        pytest.param(
            None, ["--symptom", "nan", "--recommendation", "/nonexistent.json"], "recommendation", id="rec-file"
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    pipe: Any, capsys: pytest.CaptureFixture[str], stdin: str | None, argv: list[str], field: str
) -> None:
    pipe(stdin)
    line = _error(capsys, ["diagnose", *argv])
    assert line.startswith(f"optirec: error: {field}"), line


# ---------------------------------------------------------------------------------------- steps
def _csv(rows: list[tuple[int, float | None, float | None]], header: str = "step,train_loss,val_loss") -> str:
    def cell(v: float | None) -> str:
        return "" if v is None else ("nan" if math.isnan(v) else f"{v:.6g}")

    return header + "\n" + "".join(f"{s},{cell(t)},{cell(v)}\n" for s, t, v in rows)


STEPS = list(range(760, 1981, 20))  # 62 rows


def test_csv_step_column_is_quoted(pipe: Any, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [(s, 2.0 * math.exp(-i / 20) + 0.2 if i < 38 else math.nan, None) for i, s in enumerate(STEPS)]
    pipe(_csv(rows))
    dx = _ok(capsys, ["diagnose", "--csv"])
    evidence = dx["findings"][0]["evidence"]
    assert (evidence["start_step"], evidence["end_step"]) == (1520, 1980), evidence
    assert "from step 1520" in evidence["summary"] and "step 38 " not in evidence["summary"]
    assert "(steps 1520-1980)" in dx["message"]


def test_csv_flat_curve_quotes_its_steps(pipe: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pipe(_csv([(s, 2.3 + 0.01 * (-1) ** i, None) for i, s in enumerate(STEPS)]))
    dx = _ok(capsys, ["diagnose", "--csv"])
    f = next(f for f in dx["findings"] if f["symptom"] == "no_improvement")
    assert (f["evidence"]["start_step"], f["evidence"]["end_step"]) == (760, 1980)
    assert "steps 760-1980" in f["evidence"]["summary"]


def test_csv_evaluation_rows_sit_at_their_steps(pipe: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """An evaluation-only row (empty train cell, as Hugging Face's log history writes it) is not a NaN loss."""
    rows: list[tuple[int, float | None, float | None]] = []
    for i, s in enumerate(STEPS):
        rows.append((s, 2.0 * math.exp(-i / 20) + 0.2, None))
        if i % 10 == 9:
            rows.append((s + 1, None, 1.0 + 0.01 * i))
    pipe(_csv(rows))
    dx = _ok(capsys, ["diagnose", "--csv"])
    assert dx["curves"]["train_points"] == len(STEPS) and dx["curves"]["train_non_finite"] == 0
    assert dx["curves"]["val_points"] == 6
    assert "divergence" not in {f["symptom"] for f in dx["findings"]}


def test_json_steps_and_val_steps(pipe: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pipe(json.dumps({"train_loss": [*CURVE[:50], None], "steps": list(range(0, 510, 10)), "val_steps": [100]}))
    line = _error(capsys, ["diagnose"])
    assert line.startswith("optirec: error: val_steps: gives the steps of val_loss"), line
    pipe(json.dumps({"train_loss": [*CURVE[:50], None], "steps": list(range(0, 510, 10))}))
    dx = _ok(capsys, ["diagnose"])
    assert dx["findings"][0]["evidence"]["start_step"] == 500


@pytest.mark.parametrize(
    ("stdin", "argv", "field"),
    [
        pytest.param('{"train_loss": [1, 2], "steps": [0]}', [], "steps", id="json-length"),
        pytest.param('{"train_loss": [1, 2], "steps": [3, 1]}', [], "steps[1]", id="json-falling"),
        pytest.param('{"train_loss": [1, 2], "steps": [0, -5]}', [], "steps[1]", id="json-negative"),
        pytest.param('{"train_loss": [1, 2], "steps": [0, 0.5]}', [], "steps[1]", id="json-fraction"),
        pytest.param('{"val_loss": [1, 2], "val_steps": [0, 0]}', [], "val_steps[1]", id="json-val-repeat"),
        pytest.param('{"train_loss": [1], "step": [0]}', [], "step: unknown field (did you mean 'steps'?)", id="typo"),
        pytest.param('{"loss": [1]}', [], "loss: unknown field (did you mean 'train_loss'?)", id="loss-alias"),
        pytest.param(
            '{"train_loss": [1], "stepz": [0]}', [], "stepz: unknown field (did you mean 'steps'?)", id="close"
        ),
        pytest.param("step,train_loss\n0,1.0\n0,0.9\n", ["--csv"], "steps[1]", id="csv-repeated-step"),
        pytest.param("step,train_loss\n5,1.0\n3,0.9\n", ["--csv"], "steps[1]", id="csv-falling-step"),
        pytest.param("step,train_loss\n0,1.0\n1.5,0.9\n", ["--csv"], "step: row 3", id="csv-fraction"),
        pytest.param("step,train_loss\n0,1.0\n-1,0.9\n", ["--csv"], "step: row 3", id="csv-negative"),
        pytest.param("step,train_loss\n0,1.0\n,0.9\n", ["--csv"], "step: row 3", id="csv-empty-step"),
        pytest.param("step,train_loss\nten,1.0\n", ["--csv"], "step: row 2", id="csv-word"),
        pytest.param("step,loss,train\n0,1.0,2.0\n", ["--csv"], "train_loss: the CSV has 2 columns", id="csv-dup"),
    ],
)
def test_bad_steps_exit_2_naming_the_field(
    pipe: Any, capsys: pytest.CaptureFixture[str], stdin: str, argv: list[str], field: str
) -> None:
    pipe(stdin)
    line = _error(capsys, ["diagnose", *argv])
    assert line.startswith(f"optirec: error: {field}"), line


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("step,loss\n0,2.0\n1,1.9\n2,nan\n", id="header"),
        pytest.param("2.0\n1.9\nnan\n", id="one-column"),
        pytest.param("  \nstep,train_loss\n0,2.0\n1,1.9\n2,inf\n", id="leading-blank-line"),
    ],
)
def test_csv_is_recognised_without_the_flag(pipe: Any, capsys: pytest.CaptureFixture[str], text: str) -> None:
    pipe(text)
    dx = _ok(capsys, ["diagnose"])
    assert [f["symptom"] for f in dx["findings"]] == ["divergence"] and dx["curves"]["train_points"] == 3


def test_json_under_the_csv_flag_says_so(pipe: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pipe("[2.0, 1.9]")
    assert _error(capsys, ["diagnose", "--csv"]).endswith("not CSV: drop --csv")
