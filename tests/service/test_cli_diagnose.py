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
