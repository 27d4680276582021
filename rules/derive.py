"""A rule's hyperparameters for one optimizer: the catalog's defaults overridden by every matching rule written
for it, most specific last (rules marked ``overrides`` after all others), with a note for each value an
overriding rule replaced."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .loader import CompiledRule, Rulebook

__all__ = ["derive_hyperparameters", "derive_with_notes", "override_note", "shown", "train_settings"]


def derive_hyperparameters(
    book: Rulebook, name: str, matched: list[CompiledRule]
) -> tuple[dict[str, Any], CompiledRule | None]:
    """Catalog defaults of ``name`` overridden by every matching rule written for it (most specific last,
    rules marked ``overrides`` after all others).

    Returns the hyperparameters and the rule that set the lr (None when it is the catalog default).
    """
    hp, lr_rule, _ = derive_with_notes(book, name, matched)
    return hp, lr_rule


def derive_with_notes(
    book: Rulebook, name: str, matched: list[CompiledRule]
) -> tuple[dict[str, Any], CompiledRule | None, tuple[str, ...]]:
    """:func:`derive_hyperparameters`, plus a note for each value an overriding rule replaced."""
    hp = dict(book.defaults[name])
    accepts = _ACCEPTS[book.optimizers[name].family]
    lr_rule: CompiledRule | None = None
    setters = book.setters.get(name)
    if not setters:
        return hp, None, ()
    late = setters & book.overriding  # rules marked overrides go after all others (usually none)
    for cr in matched:  # ascending weight
        if cr.rank not in setters or cr.rank in late:
            continue
        values = _set_values(cr, hp)
        for k, v in values.items():
            if k in hp or k in accepts:
                hp[k] = v
        if "lr" in values:
            lr_rule = cr
    notes: list[str] = []
    if late:
        for cr in matched:
            if cr.rank not in late:
                continue
            values = _set_values(cr, hp)
            for k, v in values.items():
                if k in hp or k in accepts:
                    origin = _set_by(matched, setters - late, k)
                    if origin is not None and hp[k] != v:
                        notes.append(override_note(f"{name} {k}", v, cr.id, hp[k], origin))
                    hp[k] = v
            if "lr" in values:
                lr_rule = cr
    return hp, lr_rule, tuple(notes)


def _set_values(cr: CompiledRule, hp: Mapping[str, Any]) -> Mapping[str, Any]:
    """The rule's ``set``, its ``beta1`` (the first beta alone) merged into ``hp``'s betas."""
    values = cr.set_values
    if "beta1" not in values:
        return values
    merged = {k: v for k, v in values.items() if k != "beta1"}
    if "betas" in hp:
        merged["betas"] = [values["beta1"], hp["betas"][1]]
    return merged


def _set_by(matched: list[CompiledRule], ranks: frozenset[int], key: str) -> str | None:
    """The most specific of ``matched`` (with a rank in ``ranks``) whose ``set`` gives ``key``."""
    for cr in reversed(matched):
        if cr.rank in ranks and (key in cr.set_values or (key == "betas" and "beta1" in cr.set_values)):
            return cr.id
    return None


def override_note(setting: str, value: Any, rule_id: str, replaced: Any, origin: str) -> str:
    """The note for a value that a rule marked ``overrides`` put in place of a more specific rule's."""
    return (
        f"{setting}: {shown(value)} from {rule_id} replaces {shown(replaced)} from {origin}; that property of the "
        f"data decides it whatever the model (see {rule_id} in the rationale)"
    )


def shown(value: Any) -> str:
    return "[" + ", ".join(map(str, value)) + "]" if isinstance(value, list) else str(value)


#: Hyperparameters a family accepts even if the catalog's defaults do not list them.
_ACCEPTS: dict[str, tuple[str, ...]] = {
    "sgd": ("momentum", "nesterov", "weight_decay", "dampening"),
    "adaptive": ("weight_decay", "eps", "betas", "momentum", "alpha", "centered", "amsgrad"),
    "second_order": ("weight_decay", "damping"),
    "wrapper": ("lr", "weight_decay", "momentum", "betas"),
}


def train_settings(
    book: Rulebook, matched: list[CompiledRule]
) -> tuple[dict[str, Any], dict[str, str], tuple[str, ...]]:
    """The training settings of the matched rules: a more specific rule's win, except that a rule
    marked ``overrides`` (a data property that makes a setting wrong for any model) wins over
    all; each value it replaces is noted."""
    train: dict[str, Any] = {}
    train_by: dict[str, str] = {}
    overriding = book.overriding
    late = [cr for cr in matched if cr.rank in overriding]  # usually none
    for cr in matched:
        if cr.train_values and cr.rank not in overriding:
            for k, v in cr.train_values.items():
                train[k] = v
                train_by[k] = cr.id
    notes = []
    for cr in late:
        for k, v in cr.train_values.items():
            if k in train and train[k] != v:
                notes.append(override_note(k, v, cr.id, train[k], train_by[k]))
            train[k] = v
            train_by[k] = cr.id
    return train, train_by, tuple(notes)
