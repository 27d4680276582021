"""Help and mistakes on the ``optirec`` command line: valid values in ``--help``, "did you mean" for flags.

Valid values are looked up only when help is printed or a mistake reported (the rulebook's vocabulary, the
optimizer catalog, the workloads), so the CLI still starts on the standard library alone: a flag carries a
*supplier* of its values (:func:`valid_values`), which :class:`HelpFormatter` calls while formatting, and
:func:`unknown_flag` compares a misspelt flag with the flags the command really has. Suggestions use
``optirec.rules.errors.suggest``, the same matcher the HTTP API's messages use.
"""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable, Sequence

__all__ = ["HelpFormatter", "UsageError", "one_of", "unknown_flag", "valid_values", "vocabulary"]

Supplier = Callable[[], Sequence[str]]


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


def valid_values(action: argparse.Action, supplier: Supplier) -> argparse.Action:
    """Attach the supplier of ``action``'s valid values (shown in --help, used in suggestions)."""
    action.valid_values = supplier  # type: ignore[attr-defined]
    return action


def vocabulary(field: str) -> Supplier:
    """The live vocabulary of a Profile field (rules/profile.py ENUM_FIELDS), looked up on use."""

    def values() -> Sequence[str]:
        from optirec.rules.profile import profile_field_options

        return profile_field_options()[field]

    return values


class HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, with each flag's valid values after its help (``_get_help_string`` is the hook
    argparse's own ArgumentDefaultsHelpFormatter overrides)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        supplier: Supplier | None = getattr(action, "valid_values", None)
        if supplier is not None:
            values = ", ".join(supplier()).replace("%", "%%")
            text = f"{text}; valid values: {values}" if text else f"valid values: {values}"
        return text or None


def one_of(field: str, value: str, valid: Sequence[str], what: str) -> str:
    """``value`` when it is one of ``valid``; else the one-line message of the HTTP API (with a suggestion)."""
    from optirec.rules.errors import suggest

    if value in valid:
        return value
    hint = suggest(value, valid)
    did_you_mean = f" (did you mean {hint!r}?)" if hint else ""
    raise UsageError(f"{field}: unknown {what} {value!r}{did_you_mean}; valid values: {', '.join(valid)}")


def unknown_flag(parser: argparse.ArgumentParser, extras: Sequence[str], command: str) -> str:
    """The one-line message for arguments ``parser`` (a subcommand's) does not take, with the closest flag."""
    flags = sorted({s for a in parser._actions for s in a.option_strings if s.startswith("--")})
    first = next((e for e in extras if e.startswith("-")), extras[0])
    name = first.split("=", 1)[0]
    close = difflib.get_close_matches(name, flags, n=1, cutoff=0.6) if name.startswith("-") else []
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    kind = "flag" if name.startswith("-") else "argument"
    return f"{command}: unknown {kind} {name!r}{hint}; see `{parser.prog} --help` for its flags"
