"""The ``optirec`` command line, run in-process (``main(argv)``) with captured output.

Good input prints JSON (or a table) on stdout and exits 0; bad input exits 2 with exactly one line on
stderr that names the field, and the valid values where there is a list of them.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from optirec.rules import default_rulebook, recommend
from optirec.service.cli import main


class _Terminal(io.StringIO):
    """stdin as an interactive terminal: nothing is piped in, so the CLI must not read it."""

    def isatty(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        raise AssertionError("the CLI read stdin although it is a terminal")


@pytest.fixture
def tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", _Terminal())


@pytest.fixture
def pipe(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Call with text to pipe it into stdin."""

    def feed(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))

    return feed


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _ok_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    code, out, err = _run(capsys, argv)
    assert code == 0, err
    assert err == ""
    return json.loads(out)


def _one_error_line(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code, out, err = _run(capsys, argv)
    assert code == 2, (out, err)
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("optirec: error: "), lines[0]
    assert "Traceback" not in err
    return lines[0]


# ---------------------------------------------------------------------------------------- recommend: flags
FLAG_CASES = [
    pytest.param(["--architecture", "resnet"], {"architecture": "resnet"}, "sgd_momentum", id="resnet"),
    pytest.param(
        ["--architecture", "ResNet50", "--batch-size", "1024"],
        {"architecture": "resnet", "batch_size": 1024},
        "sgd_momentum",
        id="resnet50-batch",
    ),
    pytest.param(
        ["--domain", "nlp", "--goal", "fine-tuning"], {"domain": "nlp", "goal": "fine_tuning"}, None, id="nlp"
    ),
    pytest.param(
        ["--domain", "llm", "--memory-limited"], {"domain": "llm", "memory_limited": True}, None, id="llm-mem"
    ),
    pytest.param(
        ["--architecture", "vit", "--on-device", "--mixed-precision"],
        {"architecture": "vit", "on_device": True, "mixed_precision": True},
        None,
        id="switches",
    ),
    pytest.param(
        ["--architecture", "gpt", "--num-parameters", "7000000000", "--device-memory-gb", "80"],
        {"architecture": "gpt", "num_parameters": 7_000_000_000, "device_memory_gb": 80.0},
        None,
        id="gpt-7b",
    ),
    pytest.param(
        ["--architecture", "bert", "--total-steps", "1000"],
        {"architecture": "bert", "total_steps": 1000},
        "adamw",
        id="bert-steps",
    ),
    pytest.param(
        ["--architecture", "bert", "--epochs", "3", "--steps-per-epoch", "10", "--dataset-size", "100"],
        {"architecture": "bert", "epochs": 3, "steps_per_epoch": 10, "dataset_size": 100},
        "adamw",
        id="bert-epochs",
    ),
    pytest.param(
        ["--domain", "rl", "--rl-method", "value"],
        {"domain": "reinforcement_learning", "rl_method": "value_based"},
        None,
        id="rl-method",
    ),
    pytest.param(["--data", "noisy,sparse"], {"data": ["noisy", "sparse_features"]}, None, id="data-comma"),
    pytest.param(
        ["--data", "noisy", "--data", "imbalanced"], {"data": ["noisy", "imbalanced"]}, None, id="data-repeated"
    ),
    pytest.param(
        ["--data", "noisy, sparse", "--data", "imbalanced,noisy"],
        {"data": ["noisy", "sparse_features", "imbalanced"]},
        None,
        id="data-mixed-dedup",
    ),
]


@pytest.mark.parametrize(("flags", "profile", "optimizer"), FLAG_CASES)
def test_recommend_from_flags(
    capsys: pytest.CaptureFixture[str], tty: None, flags: list[str], profile: dict[str, Any], optimizer: str | None
) -> None:
    payload = _ok_json(capsys, ["recommend", *flags])
    expected = recommend(profile).model_dump(mode="json")
    assert payload == expected
    if optimizer is not None:
        assert payload["optimizer"]["name"] == optimizer
    assert payload["optimizer"]["name"] in default_rulebook().optimizers
    for field, value in profile.items():
        assert payload["profile"][field] == value


def test_recommend_conflict_from_flags(capsys: pytest.CaptureFixture[str], tty: None) -> None:
    payload = _ok_json(capsys, ["recommend", "--architecture", "bert", "--data", "large_batch"])
    assert payload["optimizer"]["name"] not in {"adam", "adamw"}
    assert any("architecture.bert" in w for w in payload["warnings"])


def test_recommend_compact_is_one_line(capsys: pytest.CaptureFixture[str], tty: None) -> None:
    code, out, _ = _run(capsys, ["recommend", "--architecture", "resnet", "--compact"])
    assert code == 0
    assert len(out.splitlines()) == 1
    assert json.loads(out)["optimizer"]["name"] == "sgd_momentum"
    code, pretty, _ = _run(capsys, ["recommend", "--architecture", "resnet"])
    assert json.loads(pretty) == json.loads(out)
    assert len(pretty.splitlines()) > 1


def test_recommend_without_anything_on_a_terminal(capsys: pytest.CaptureFixture[str], tty: None) -> None:
    payload = _ok_json(capsys, ["recommend"])
    assert payload == recommend({}).model_dump(mode="json")


# ---------------------------------------------------------------------------------------- recommend: JSON input
STDIN_CASES = [
    pytest.param('{"domain": "nlp", "goal": "fine_tuning"}', {"domain": "nlp", "goal": "fine_tuning"}, id="nlp"),
    pytest.param(
        '{"architecture": "resnet", "batch_size": 1024}\n',
        {"architecture": "resnet", "batch_size": 1024},
        id="resnet-newline",
    ),
    pytest.param(
        '{"data": "sparse", "memory_limited": true}',
        {"data": ["sparse_features"], "memory_limited": True},
        id="data-string",
    ),
    pytest.param("", {}, id="empty"),
    pytest.param("   \n", {}, id="blank"),
    pytest.param("{}", {}, id="empty-object"),
]


@pytest.mark.parametrize(("text", "profile"), STDIN_CASES)
def test_recommend_from_stdin(
    capsys: pytest.CaptureFixture[str], pipe: Any, text: str, profile: dict[str, Any]
) -> None:
    pipe(text)
    assert _ok_json(capsys, ["recommend"]) == recommend(profile).model_dump(mode="json")


def test_recommend_json_dash_reads_stdin(capsys: pytest.CaptureFixture[str], pipe: Any) -> None:
    pipe('{"architecture": "vit"}')
    assert _ok_json(capsys, ["recommend", "--json", "-"]) == recommend({"architecture": "vit"}).model_dump(mode="json")


def test_recommend_json_file(capsys: pytest.CaptureFixture[str], tty: None, tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps({"architecture": "bert", "total_steps": 1000}), encoding="utf-8")
    payload = _ok_json(capsys, ["recommend", "--json", str(path)])
    assert payload == recommend({"architecture": "bert", "total_steps": 1000}).model_dump(mode="json")
    assert payload["schedule"]["warmup_steps"] == 100


def test_recommend_flags_override_the_json_file(capsys: pytest.CaptureFixture[str], tty: None, tmp_path: Path) -> None:
    path = tmp_path / "profile.json"
    path.write_text('{"data": "noisy", "batch_size": 64}', encoding="utf-8")
    payload = _ok_json(capsys, ["recommend", "--json", str(path), "--batch-size", "128"])
    assert payload == recommend({"data": ["noisy"], "batch_size": 128}).model_dump(mode="json")


def test_flags_win_over_piped_stdin(capsys: pytest.CaptureFixture[str], pipe: Any) -> None:
    """With flags, stdin is not read (a piped, unrelated stdin must not leak into the profile)."""
    pipe('{"architecture": "vit"}')
    payload = _ok_json(capsys, ["recommend", "--architecture", "resnet"])
    assert payload["optimizer"]["name"] == "sgd_momentum"
    assert payload["profile"] == {"architecture": "resnet"}


# ---------------------------------------------------------------------------------------- recommend: bad input
# (argv after "recommend", stdin text or None for a terminal, fragments the one error line must contain)
_ARCHS = ", ".join(default_rulebook().valid("architecture"))
BAD_RECOMMEND = [
    pytest.param(
        ["--architecture", "resnett"],
        None,
        ["architecture", "did you mean 'resnet'", f"valid values: {_ARCHS}"],
        id="misspelt-architecture",
    ),
    pytest.param(
        ["--domain", "visoin"],
        None,
        ["domain", "did you mean 'computer_vision'", "valid values: "],
        id="misspelt-domain",
    ),
    pytest.param(
        ["--data", "noisy,sprase"],
        None,
        ["data", "did you mean 'sparse_features'", "valid values: "],
        id="misspelt-data",
    ),
    pytest.param(["--goal", "sota2"], None, ["goal", "valid values: best_accuracy"], id="unknown-goal"),
    pytest.param(["--batch-size", "abc"], None, ["batch_size", "'abc'", "integer"], id="batch-size-abc"),
    pytest.param(["--batch-size", "0"], None, ["batch_size", "greater than or equal to 1"], id="batch-size-0"),
    pytest.param(["--batch-size", "7.5"], None, ["batch_size", "'7.5'", "integer"], id="batch-size-float"),
    pytest.param(["--device-memory-gb", "lots"], None, ["device_memory_gb", "'lots'", "number"], id="memory-text"),
    pytest.param(["--device-memory-gb", "nan"], None, ["device_memory_gb", "finite"], id="memory-nan"),
    pytest.param(["--device-memory-gb", "-1"], None, ["device_memory_gb", "greater than 0"], id="memory-negative"),
    pytest.param(["--colour", "red"], None, ["--colour"], id="unknown-flag"),
    pytest.param(
        [],
        '{"batchsize": 3}',
        ["batchsize", "unknown field", "did you mean 'batch_size'", "valid values: "],
        id="stdin-unknown-field",
    ),
    pytest.param(
        [],
        '{"architecture": "resnett"}',
        ["architecture", "did you mean 'resnet'", "valid values: "],
        id="stdin-misspelt",
    ),
    pytest.param([], '{"memory_limited": "yes"}', ["memory_limited", "'yes'"], id="stdin-string-bool"),
    pytest.param([], "{bad json", ["profile", "not valid JSON", "line 1 column 2"], id="invalid-json"),
    pytest.param([], '{"architecture": "resnet",}', ["profile", "not valid JSON"], id="trailing-comma"),
    pytest.param([], '[{"architecture": "resnet"}]', ["profile", "JSON object"], id="json-list"),
    pytest.param([], '"resnet"', ["profile", "JSON object"], id="json-string"),
    pytest.param([], "42", ["profile", "JSON object"], id="json-number"),
    pytest.param([], "null", ["profile", "JSON object"], id="json-null"),
    pytest.param([], '{"device_memory_gb": NaN}', ["profile", "NaN", "not a valid JSON number"], id="nan-literal"),
    pytest.param([], '{"device_memory_gb": Infinity}', ["profile", "Infinity"], id="infinity-literal"),
    pytest.param([], '{"device_memory_gb": -Infinity}', ["profile", "-Infinity"], id="minus-infinity-literal"),
    pytest.param([], '{"device_memory_gb": 1e400}', ["device_memory_gb", "finite"], id="overflowing-number"),
    pytest.param([], '{"domain": "x", "goal": "y"}', ["domain", "(and 1 more problem(s))"], id="two-problems"),
    pytest.param([], "[" * 100_000, ["profile"], id="deeply-nested-json"),
]


@pytest.mark.parametrize(("argv", "stdin", "fragments"), BAD_RECOMMEND)
def test_recommend_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: str | None,
    fragments: list[str],
) -> None:
    monkeypatch.setattr(sys, "stdin", _Terminal() if stdin is None else io.StringIO(stdin))
    line = _one_error_line(capsys, ["recommend", *argv])
    for fragment in fragments:
        assert fragment in line, line


def test_recommend_missing_json_file(capsys: pytest.CaptureFixture[str], tty: None, tmp_path: Path) -> None:
    line = _one_error_line(capsys, ["recommend", "--json", str(tmp_path / "missing.json")])
    assert "json" in line and "missing.json" in line


def test_recommend_json_file_that_is_not_utf8(capsys: pytest.CaptureFixture[str], tty: None, tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes(b'{"architecture": "r\xe9snet"}')
    line = _one_error_line(capsys, ["recommend", "--json", str(path)])
    assert "latin1.json" in line


def test_recommend_bad_json_file_names_the_file(capsys: pytest.CaptureFixture[str], tty: None, tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{nope", encoding="utf-8")
    line = _one_error_line(capsys, ["recommend", "--json", str(path)])
    assert "profile" in line and "broken.json" in line and "not valid JSON" in line


# ---------------------------------------------------------------------------------------- usage errors
@pytest.mark.parametrize(
    ("argv", "fragments"),
    [
        pytest.param(["frobnicate"], ["frobnicate", "recommend", "rules", "optimizers"], id="unknown-subcommand"),
        pytest.param(["recomend"], ["recomend", "recommend"], id="misspelt-subcommand"),
        pytest.param(
            ["rules", "--level", "archi"], ["level", "valid values: ", "architecture", "default"], id="rules-level"
        ),
        pytest.param(
            ["rules", "--optimizer", "lamm"],
            ["optimizer", "did you mean 'lamb'", "valid values: "],
            id="rules-optimizer",
        ),
        pytest.param(
            ["optimizers", "--family", "quantum"],
            ["family", "valid values: adaptive, second_order, sgd, wrapper"],
            id="optimizers-family",
        ),
        pytest.param(["rules", "--bogus"], ["--bogus"], id="rules-unknown-flag"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tty: None, argv: list[str], fragments: list[str]
) -> None:
    line = _one_error_line(capsys, argv)
    for fragment in fragments:
        assert fragment in line, line


def test_no_command_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str], tty: None) -> None:
    code, out, _ = _run(capsys, [])
    assert code == 2
    assert "recommend" in out and "rules" in out and "optimizers" in out


# ---------------------------------------------------------------------------------------- rules
def _table_rule_ids(out: str) -> list[str]:
    lines = out.splitlines()
    assert lines and "rule(s); rulebook" in lines[-1]
    return [line.split()[0] for line in lines[:-1]]


@pytest.mark.parametrize(
    ("argv", "expected_ids"),
    [
        pytest.param(
            ["--level", "data"], sorted(r for r in default_rulebook().rules if r.startswith("data.")), id="level-data"
        ),
        pytest.param(["--id", "architecture.resnet"], ["architecture.resnet"], id="id-exact"),
        pytest.param(
            ["--id", "data."], sorted(r for r in default_rulebook().rules if r.startswith("data.")), id="id-prefix"
        ),
        pytest.param(["--level", "default"], ["default.adam"], id="level-default"),
        pytest.param(["--id", "nothing.here"], [], id="no-match"),
    ],
)
def test_rules_filters(capsys: pytest.CaptureFixture[str], tty: None, argv: list[str], expected_ids: list[str]) -> None:
    code, out, err = _run(capsys, ["rules", *argv])
    assert code == 0 and err == ""
    ids = _table_rule_ids(out)
    assert sorted(ids) == expected_ids
    assert out.splitlines()[-1].startswith(f"{len(expected_ids)} rule(s); rulebook ")


def test_rules_level_data_lists_eight(capsys: pytest.CaptureFixture[str], tty: None) -> None:
    code, out, _ = _run(capsys, ["rules", "--level", "data"])
    assert code == 0
    assert len(_table_rule_ids(out)) == 8
    assert out.splitlines()[-1].startswith("8 rule(s)")


def test_rules_by_id_lists_one(capsys: pytest.CaptureFixture[str], tty: None) -> None:
    code, out, _ = _run(capsys, ["rules", "--id", "architecture.resnet"])
    assert code == 0
    assert _table_rule_ids(out) == ["architecture.resnet"]
    assert "sgd_momentum" in out and "004 §2.3 ResNet" in out


@pytest.mark.parametrize("name", ["lamb", "LAMB", "adamw"])
def test_rules_by_optimizer(capsys: pytest.CaptureFixture[str], tty: None, name: str) -> None:
    book = default_rulebook()
    canonical = book.optimizer(name).name
    code, out, _ = _run(capsys, ["rules", "--optimizer", name])
    assert code == 0
    ids = _table_rule_ids(out)
    expected = [r.id for r in book.rules.values() if canonical in r.prefer or canonical in r.avoid]
    assert ids == expected
    assert ids, f"some rule mentions {canonical}"
    if canonical == "lamb":
        assert "data.large_batch" in ids


def test_rules_by_source(capsys: pytest.CaptureFixture[str], tty: None) -> None:
    code, out, _ = _run(capsys, ["rules", "--source", "§2.4"])
    assert code == 0
    ids = _table_rule_ids(out)
    assert ids == [r.id for r in default_rulebook().rules.values() if "§2.4" in r.source]
    assert "data.noisy" in ids


def test_rules_json(capsys: pytest.CaptureFixture[str], tty: None) -> None:
    book = default_rulebook()
    payload = _ok_json(capsys, ["rules", "--json"])
    assert payload["rulebook"] == {"version": book.version, "hash": book.hash}
    assert [r["id"] for r in payload["rules"]] == list(book.rules)
    for entry in payload["rules"]:
        assert entry["file"] == book.rule_files[entry["id"]]
        assert entry["source"] == book.rules[entry["id"]].source


def test_rules_json_with_filters(capsys: pytest.CaptureFixture[str], tty: None) -> None:
    payload = _ok_json(capsys, ["rules", "--json", "--level", "data", "--optimizer", "lamb"])
    assert [r["id"] for r in payload["rules"]] == ["data.large_batch"]
    assert len(payload["rulebook"]["hash"]) == 64


# ---------------------------------------------------------------------------------------- optimizers
def test_optimizers_lists_the_catalog(capsys: pytest.CaptureFixture[str], tty: None) -> None:
    book = default_rulebook()
    code, out, err = _run(capsys, ["optimizers"])
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[-1] == f"{len(book.optimizers)} optimizer(s)"
    assert sorted(line.split()[0] for line in lines[:-1]) == sorted(book.optimizers)


def test_optimizers_json(capsys: pytest.CaptureFixture[str], tty: None) -> None:
    book = default_rulebook()
    payload = _ok_json(capsys, ["optimizers", "--json"])
    assert sorted(o["name"] for o in payload) == sorted(book.optimizers)
    for entry in payload:
        assert entry["class_path"] == book.optimizers[entry["name"]].class_path


@pytest.mark.parametrize("family", ["sgd", "adaptive", "second_order", "wrapper"])
def test_optimizers_by_family(capsys: pytest.CaptureFixture[str], tty: None, family: str) -> None:
    book = default_rulebook()
    expected = sorted(n for n, o in book.optimizers.items() if o.family == family)
    assert expected
    code, out, _ = _run(capsys, ["optimizers", "--family", family])
    assert code == 0
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[:-1]] == expected
    assert all(line.split()[1] == family for line in lines[:-1])
    payload = _ok_json(capsys, ["optimizers", "--family", family, "--json"])
    assert [o["name"] for o in payload] == expected


def test_optimizers_second_order(capsys: pytest.CaptureFixture[str], tty: None) -> None:
    code, out, _ = _run(capsys, ["optimizers", "--family", "second_order"])
    assert code == 0
    names = {line.split()[0] for line in out.splitlines()[:-1]}
    assert {"lbfgs", "newton", "kfac"} <= names
    assert "adam" not in names


# ---------------------------------------------------------------------------------------- a real process
def test_python_dash_m_optirec(run_python: Any) -> None:
    result = run_python("-m", "optirec", "recommend", "--architecture", "resnet", "--compact")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    payload = json.loads(result.stdout)
    assert payload["optimizer"]["name"] == "sgd_momentum"
    assert payload == recommend({"architecture": "resnet"}).model_dump(mode="json")


def test_python_dash_m_optirec_bad_input(run_python: Any) -> None:
    result = run_python("-m", "optirec", "recommend", "--architecture", "resnett")
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "did you mean 'resnet'" in result.stderr


def test_python_dash_m_optirec_reads_piped_stdin(run_python: Any) -> None:
    result = run_python("-m", "optirec", "recommend", stdin='{"domain": "nlp"}')
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == recommend({"domain": "nlp"}).model_dump(mode="json")
