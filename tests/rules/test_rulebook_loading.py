"""Loading the knowledge base: the bundled files load, a copy loads the same, and every malformed file is
refused with a ``RulebookError`` that names the file, the rule and the field.

Each malformed case copies ``rules/data`` (the ``data_copy`` fixture) and edits one place of one file by
exact text replacement, so that the case documents the very line it breaks.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from optirec import RulebookError
from optirec.rules import DATA_DIR, Rulebook, default_rulebook, load_rulebook, recommend
from optirec.rules.loader import LEVEL_WEIGHTS

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DATA_FILES = sorted(p.name for p in DATA_DIR.glob("*.toml"))

# Anchors: the exact text of a few rules of the bundled files.
RESNET = (
    'id = "architecture.resnet"\n'
    'source = "004 §2.3 ResNet"\n'
    'level = "architecture"\n'
    'when = { architecture = "resnet" }\n'
    'prefer = ["sgd_momentum"]\n'
    "set = { lr = 0.1, momentum = 0.9, nesterov = false, weight_decay = 0.0001 }\n"
    "base_batch_size = 256\n"
    'train = { batch_size = 256, schedule = "cosine" }\n'
)
SPARSE = (
    'id = "data.sparse_features"\n'
    'source = "004 §2.4 sparse features"\n'
    'level = "data"\n'
    'when = { data = "sparse_features" }\n'
    'prefer = ["adagrad", "adam"]\n'
    'avoid = ["sgd"]\n'
    'avoid_reason = "one global step size cannot handle features that are updated unevenly; '
    'rare features need larger steps"\n'
)
SGD = 'name = "sgd"\ndisplay_name = "SGD"\n'
SGD_CLASS = 'class_path = "torch.optim.SGD"\ndefaults = { lr = 0.01, momentum = 0.0, weight_decay = 0.0 }\n'


def _edit(directory: Path, file: str, old: str, new: str) -> None:
    """Replace the single occurrence of ``old`` in ``directory/file`` by ``new``."""
    path = directory / file
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"anchor not unique in {file}: {old!r}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def _resnet(**replace: str) -> tuple[str, str]:
    """The ResNet rule with some of its lines replaced, keyed by the line's start (``key = ...``)."""
    lines = RESNET.splitlines(keepends=True)
    out = []
    for line in lines:
        key = line.split(" = ", 1)[0]
        if key in replace:
            if replace[key]:
                out.append(replace[key] + "\n")
        else:
            out.append(line)
    return RESNET, "".join(out)


# ---------------------------------------------------------------------------------------- the bundled files
def test_bundled_rulebook_loads() -> None:
    book = load_rulebook()
    assert isinstance(book, Rulebook)
    assert book.directory == DATA_DIR
    assert _HEX64.match(book.hash)
    assert book.version and book.version != "0"
    assert len(book.optimizers) >= 20
    assert "architecture.resnet" in book.rules
    assert {r.level for r in book.rules.values()} <= set(LEVEL_WEIGHTS)
    assert any(r.level == "default" for r in book.rules.values())
    assert book.rule_files["architecture.resnet"] == "architectures.rules.toml"
    for kind in ("domain", "architecture", "data", "goal", "rl_method"):
        assert book.valid(kind)


def test_default_rulebook_is_cached_and_matches_a_fresh_load() -> None:
    assert default_rulebook() is default_rulebook()
    assert default_rulebook().hash == load_rulebook(DATA_DIR).hash == load_rulebook(str(DATA_DIR)).hash


def test_a_copy_loads_with_the_same_hash(data_copy: Path) -> None:
    copy = load_rulebook(data_copy)
    original = default_rulebook()
    assert copy.directory == data_copy
    assert copy.hash == original.hash
    assert copy.version == original.version
    assert list(copy.rules) == list(original.rules)
    assert list(copy.optimizers) == list(original.optimizers)
    assert copy.rules == original.rules


def test_a_copied_rulebook_gives_the_same_recommendation(data_copy: Path) -> None:
    profile = {"architecture": "bert", "data": ["large_batch"], "total_steps": 1000}
    assert recommend(profile, rulebook=load_rulebook(data_copy)).model_dump() == recommend(profile).model_dump()


@pytest.mark.parametrize("file", _DATA_FILES)
def test_changing_one_byte_changes_the_hash(data_copy: Path, file: str) -> None:
    path = data_copy / file
    raw = bytearray(path.read_bytes())
    # flip one letter of the first comment line, which keeps the file valid
    start = raw.index(b"#")
    pos = next(i for i in range(start, len(raw)) if chr(raw[i]).isascii() and chr(raw[i]).isalpha())
    raw[pos] = ord("X") if raw[pos] != ord("X") else ord("Y")
    path.write_bytes(bytes(raw))
    changed = load_rulebook(data_copy)
    assert changed.hash != default_rulebook().hash
    assert _HEX64.match(changed.hash)


def test_renaming_a_file_or_adding_one_changes_the_hash(data_copy: Path) -> None:
    (data_copy / "notes.toml").write_text("# nothing\n", encoding="utf-8")
    assert load_rulebook(data_copy).hash != default_rulebook().hash


def test_files_that_are_not_toml_do_not_count(data_copy: Path) -> None:
    (data_copy / "README.txt").write_text("not part of the rulebook\n", encoding="utf-8")
    assert load_rulebook(data_copy).hash == default_rulebook().hash


# ---------------------------------------------------------------------------------------- malformed files
# (file, old text, new text, expected .file, .rule, .field, text the message must contain)
#: the EfficientNet row's reference batch and its own batch rule (Tan & Le 2019's official script)
EFFICIENTNET_BATCH = (
    'base_batch_size = 256\ntrain = { batch_size = 256, schedule = "exponential", ema_decay = 0.9999 }\n'
    'batch_rule = { kind = "linear"'
)

MALFORMED = [
    pytest.param(
        "architectures.rules.toml",
        *_resnet(prefer='prefer = ["sgd_momentun"]'),
        "architectures.rules.toml",
        "architecture.resnet",
        "prefer",
        "did you mean 'sgd_momentum'",
        id="unknown-optimizer-in-prefer",
    ),
    pytest.param(
        "data.rules.toml",
        SPARSE,
        SPARSE.replace('avoid = ["sgd"]', 'avoid = ["sgdd"]'),
        "data.rules.toml",
        "data.sparse_features",
        "avoid",
        "unknown optimizer 'sgdd'",
        id="unknown-optimizer-in-avoid",
    ),
    pytest.param(
        "data.rules.toml",
        'avoid_measured_on = { families = ["cnn", "transformer"]',
        'avoid_measured_on = { families = ["cnn", "transformerr"]',
        "data.rules.toml",
        "data.large_batch",
        "avoid_measured_on.families",
        "did you mean 'transformer'",
        id="avoid-measured-on-an-unknown-family",
    ),
    pytest.param(
        "architectures.rules.toml",
        EFFICIENTNET_BATCH,
        EFFICIENTNET_BATCH.replace("base_batch_size = 256\n", ""),
        "architectures.rules.toml",
        "architecture.efficientnet",
        "batch_rule",
        "needs the row's base_batch_size",
        id="batch-rule-without-a-reference-batch",
    ),
    pytest.param(
        "architectures.rules.toml",
        EFFICIENTNET_BATCH,
        EFFICIENTNET_BATCH.replace('kind = "linear"', 'kind = "cubic"'),
        "architectures.rules.toml",
        "architecture.efficientnet",
        "batch_rule.kind",
        "'linear' or 'sqrt'",
        id="batch-rule-of-unknown-kind",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(source=""),
        "architectures.rules.toml",
        "architecture.resnet",
        "source",
        "required",
        id="rule-without-source",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(source='source = "blog post"'),
        "architectures.rules.toml",
        "architecture.resnet",
        "source",
        "blog post",
        id="source-cites-no-seed",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(source='source = "005 §1 ResNet"'),
        "architectures.rules.toml",
        "architecture.resnet",
        "source",
        "005 §1 ResNet",
        id="source-cites-unknown-seed",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(source='source = "external:"'),
        "architectures.rules.toml",
        "architecture.resnet",
        "source",
        "external:",
        id="external-source-without-reference",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(level='level = "archtecture"'),
        "architectures.rules.toml",
        "architecture.resnet",
        "level",
        "architecture",
        id="unknown-level",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(set="set = { lrr = 0.1, momentum = 0.9, nesterov = false, weight_decay = 0.0001 }"),
        "architectures.rules.toml",
        "architecture.resnet",
        "set.lrr",
        "Extra inputs are not permitted",
        id="unknown-key-in-set",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(set="set = { lr = -0.1, momentum = 0.9, nesterov = false, weight_decay = 0.0001 }"),
        "architectures.rules.toml",
        "architecture.resnet",
        "set.lr",
        "greater than 0",
        id="negative-lr",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(set="set = { lr = 0.1, momentum = 1.5, nesterov = false, weight_decay = 0.0001 }"),
        "architectures.rules.toml",
        "architecture.resnet",
        "set.momentum",
        "less than 1",
        id="momentum-out-of-range",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(set="set = { lr = 0.1, momentum = 0.9, nesterov = false, weight_decay = 0.0001, beta1 = 1.0 }"),
        "architectures.rules.toml",
        "architecture.resnet",
        "set.beta1",
        "less than 1",
        id="beta1-out-of-range",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(train='train = { batch_size = 256, schedule = "cosin" }'),
        "architectures.rules.toml",
        "architecture.resnet",
        "train.schedule",
        "cosine",
        id="unknown-schedule",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(train='train = { batch_size = 256, schedul = "cosine" }'),
        "architectures.rules.toml",
        "architecture.resnet",
        "train.schedul",
        "Extra inputs are not permitted",
        id="unknown-key-in-train",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(prefer='prefers = ["sgd_momentum"]'),
        "architectures.rules.toml",
        "architecture.resnet",
        "prefers",
        "Extra inputs are not permitted",
        id="unknown-rule-key",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(when='when = { architecture = "resnett" }'),
        "architectures.rules.toml",
        "architecture.resnet",
        "when.architecture",
        "did you mean 'resnet'",
        id="unknown-architecture-in-when",
    ),
    pytest.param(
        "data.rules.toml",
        SPARSE,
        SPARSE.replace('when = { data = "sparse_features" }', 'when = { data = "sparse" }'),
        "data.rules.toml",
        "data.sparse_features",
        "when.data",
        "unknown data 'sparse'",
        id="alias-instead-of-name-in-when",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(when='when = { colour = "red" }'),
        "architectures.rules.toml",
        "architecture.resnet",
        "when.colour",
        "Extra inputs are not permitted",
        id="unknown-condition-key",
    ),
    pytest.param(
        "data.rules.toml",
        SPARSE,
        SPARSE.replace(SPARSE.splitlines(keepends=True)[-1], ""),
        "data.rules.toml",
        "data.sparse_features",
        "avoid_reason",
        "must say why",
        id="avoid-without-avoid_reason",
    ),
    pytest.param(
        "architectures.rules.toml",
        'id = "architecture.efficientnet"\n',
        'id = "architecture.resnet"\n',
        "architectures.rules.toml",
        "architecture.resnet",
        "id",
        "duplicate rule id",
        id="duplicate-rule-id-same-file",
    ),
    pytest.param(
        "data.rules.toml",
        'id = "data.sparse_features"\n',
        'id = "architecture.resnet"\n',
        "data.rules.toml",
        "architecture.resnet",
        "id",
        "first defined in architectures.rules.toml",
        id="duplicate-rule-id-across-files",
    ),
    pytest.param(
        "architectures.rules.toml",
        *_resnet(id='id = "Architecture.ResNet"'),
        "architectures.rules.toml",
        "Architecture.ResNet",
        "id",
        "pattern",
        id="rule-id-not-lower-snake",
    ),
    pytest.param(
        "optimizers.toml",
        SGD_CLASS,
        SGD_CLASS.replace("torch.optim.SGD", "torch.optim SGD"),
        "optimizers.toml",
        "sgd",
        "class_path",
        "pattern",
        id="bad-class-path-space",
    ),
    pytest.param(
        "optimizers.toml",
        SGD_CLASS,
        SGD_CLASS.replace("torch.optim.SGD", "SGD"),
        "optimizers.toml",
        "sgd",
        "class_path",
        "pattern",
        id="bad-class-path-no-module",
    ),
    pytest.param(
        "optimizers.toml",
        SGD_CLASS,
        SGD_CLASS.replace("lr = 0.01", "lr = -1"),
        "optimizers.toml",
        "sgd",
        "defaults.lr",
        "greater than 0",
        id="optimizer-negative-default-lr",
    ),
    pytest.param(
        "optimizers.toml",
        SGD_CLASS,
        SGD_CLASS.replace("lr = 0.01", "lr = 0.01, beta1 = 0.5"),
        "optimizers.toml",
        "sgd",
        "defaults",
        "a catalog default gives betas",
        id="optimizer-default-beta1",
    ),
    pytest.param(
        "optimizers.toml",
        SGD_CLASS,
        SGD_CLASS.replace("lr = 0.01", "lr = 0.01, betas = [0.9, 1.0]"),
        "optimizers.toml",
        "sgd",
        "defaults.betas",
        "must each be in [0, 1)",
        id="optimizer-betas-out-of-range",
    ),
    pytest.param(
        "optimizers.toml",
        'defaults = { k = 5, lookahead_alpha = 0.5, base = "adam" }',
        'defaults = { k = 5, lookahead_alpha = 0.5, base = "adamm" }',
        "optimizers.toml",
        "lookahead",
        "defaults.base",
        "unknown base optimizer 'adamm'",
        id="wrapper-unknown-base",
    ),
    pytest.param(
        "optimizers.toml",
        'name = "sgd_momentum"\n',
        'name = "sgd"\n',
        "optimizers.toml",
        "sgd",
        "name",
        "duplicate optimizer name",
        id="duplicate-optimizer",
    ),
    pytest.param(
        "vocabulary.toml",
        'name = "efficientnet"\n',
        'name = "resnet"\n',
        "vocabulary.toml",
        "resnet",
        "name",
        "duplicate architecture name",
        id="duplicate-vocabulary-name",
    ),
    pytest.param(
        "vocabulary.toml",
        'source = "004 §2.3 ResNet"\n',
        'source = "wikipedia"\n',
        "vocabulary.toml",
        "resnet",
        "source",
        "wikipedia",
        id="vocabulary-term-without-seed",
    ),
    pytest.param(
        "principles.toml",
        'default_optimizer = "adam"',
        'default_optimizer = "adamm"',
        "principles.toml",
        "principles",
        "default_optimizer",
        "unknown optimizer 'adamm'",
        id="unknown-default-optimizer",
    ),
    pytest.param(
        "principles.toml",
        "default_warmup_ratio = 0.1 ",
        "default_warmup_ratio = 1.5 ",
        "principles.toml",
        "principles #1",
        "default_warmup_ratio",
        "less than 1",
        id="warmup-ratio-out-of-range",
    ),
]


@pytest.mark.parametrize(("file", "old", "new", "err_file", "err_rule", "err_field", "text"), MALFORMED)
def test_malformed_file_is_refused(
    data_copy: Path,
    file: str,
    old: str,
    new: str,
    err_file: str,
    err_rule: str | None,
    err_field: str | None,
    text: str,
) -> None:
    _edit(data_copy, file, old, new)
    with pytest.raises(RulebookError) as info:
        load_rulebook(data_copy)
    err = info.value
    assert (err.file, err.rule, err.field) == (err_file, err_rule, err_field)
    message = str(err)
    assert message.startswith(f"{err_file}: rule {err_rule!r}: field {err_field!r}: "), message
    assert text in message, message


# (file, old text or None to append, new text) -> the file is named, rule and field are None
SYNTAX = [
    pytest.param(
        "architectures.rules.toml",
        "set = { lr = 0.1, momentum = 0.9, nesterov = false, weight_decay = 0.0001 }\n",
        "set = { lr = 0.1, momentum = 0.9,\n",
        id="rules-unclosed-inline-table",
    ),
    pytest.param("optimizers.toml", SGD, 'name = "sgd\ndisplay_name = "SGD"\n', id="optimizers-unclosed-string"),
    pytest.param("vocabulary.toml", '[[domain]]\nname = "nlp"', '[[domain]\nname = "nlp"', id="vocabulary-bad-header"),
    pytest.param("principles.toml", "[principles]\n", "[principles]\n[principles]\n", id="principles-duplicate-table"),
    pytest.param("symptoms.toml", None, "this is = not toml = at all\n", id="symptoms-garbage"),
    pytest.param("facts.toml", None, "[[fact]\n", id="facts-bad-header"),
]


@pytest.mark.parametrize(("file", "old", "new"), SYNTAX)
def test_invalid_toml_names_the_file(data_copy: Path, file: str, old: str | None, new: str) -> None:
    path = data_copy / file
    if old is None:
        path.write_text(path.read_text(encoding="utf-8") + "\n" + new, encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
        assert old in text
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(RulebookError) as info:
        load_rulebook(data_copy)
    err = info.value
    assert (err.file, err.rule, err.field) == (file, None, None)
    assert str(err).startswith(f"{file}: not valid TOML"), str(err)


@pytest.mark.parametrize(
    "file", ["architectures.rules.toml", "optimizers.toml", "vocabulary.toml", "principles.toml", "symptoms.toml"]
)
def test_file_that_is_not_utf8_names_the_file(data_copy: Path, file: str) -> None:
    """TOML is UTF-8: a stray Latin-1 byte must be a RulebookError naming the file, not a UnicodeDecodeError."""
    path = data_copy / file
    path.write_bytes(path.read_bytes() + b"\n# caf\xe9\n")
    with pytest.raises(RulebookError) as info:
        load_rulebook(data_copy)
    assert (info.value.file, info.value.rule, info.value.field) == (file, None, None)
    assert str(info.value).startswith(f"{file}: ")


@pytest.mark.parametrize(
    ("missing", "field"),
    [
        pytest.param("optimizers.toml", None, id="optimizers"),
        pytest.param("vocabulary.toml", None, id="vocabulary"),
        pytest.param("principles.toml", None, id="principles"),
    ],
)
def test_missing_required_file(data_copy: Path, missing: str, field: str | None) -> None:
    (data_copy / missing).unlink()
    with pytest.raises(RulebookError) as info:
        load_rulebook(data_copy)
    err = info.value
    assert (err.file, err.rule, err.field) == (missing, None, field)
    assert str(err).startswith(f"{missing}: ")
    assert "missing" in str(err)


@pytest.mark.parametrize("optional", ["symptoms.toml", "facts.toml"])
def test_optional_files_may_be_absent(data_copy: Path, optional: str) -> None:
    (data_copy / optional).unlink()
    book = load_rulebook(data_copy)
    assert book.hash != default_rulebook().hash
    assert list(book.rules) == list(default_rulebook().rules)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RulebookError) as info:
        load_rulebook(tmp_path / "nowhere")
    assert info.value.file == str(tmp_path / "nowhere")
    assert "not found" in str(info.value)


def test_no_default_rule(data_copy: Path) -> None:
    _edit(data_copy, "guides.rules.toml", 'level = "default"', 'level = "guide"')
    with pytest.raises(RulebookError) as info:
        load_rulebook(data_copy)
    assert info.value.field == "level"
    assert "default" in str(info.value)


def test_empty_vocabulary_kind(data_copy: Path) -> None:
    path = data_copy / "vocabulary.toml"
    text = path.read_text(encoding="utf-8")
    start = text.index("[[rl_method]]")
    path.write_text(text[:start], encoding="utf-8")
    with pytest.raises(RulebookError) as info:
        load_rulebook(data_copy)
    assert (info.value.file, info.value.rule, info.value.field) == ("vocabulary.toml", None, "rl_method")


def test_rules_dir_environment_variable(data_copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``$OPTIREC_RULES_DIR`` points default_rulebook() elsewhere; a broken one fails loudly."""
    _edit(data_copy, "architectures.rules.toml", *_resnet(prefer='prefer = ["sgd_momentun"]'))
    monkeypatch.setenv("OPTIREC_RULES_DIR", str(data_copy))
    default_rulebook.cache_clear()
    try:
        with pytest.raises(RulebookError) as info:
            default_rulebook()
        assert info.value.rule == "architecture.resnet"
    finally:
        monkeypatch.delenv("OPTIREC_RULES_DIR")
        default_rulebook.cache_clear()
    assert default_rulebook().directory == DATA_DIR
