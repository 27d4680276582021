"""The bibliography: every source an answer can cite (``rules/data/sources.toml``).

A citation in the knowledge base is a string that starts with a seed id and a section
(``"004 §2.3 ResNet"``) or with ``"external: "`` and the way the reference is cited
(``"external: He et al. 2016 (ResNet-50 ...)"``). :class:`Bibliography` resolves such a string to
its entries: a seed by its id, an external reference by the longest of its ``cite_as`` spellings
that the citation starts with. A citation may name several references separated by ``;``
(outside brackets); each part must resolve.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import Field, model_validator

from .schema import SEED_IDS, _Strict

__all__ = ["Bibliography", "SourceEntry", "split_citation"]

_ID_RE = r"^[a-z0-9][a-z0-9_]*$"
_EXTERNAL = "external: "


class SourceEntry(_Strict):
    """One reference: a seed document, a paper, an official training config, a library's docs, or policy."""

    id: Annotated[str, Field(pattern=_ID_RE, max_length=60)]
    kind: Literal["seed", "paper", "config", "docs", "book", "policy"]
    title: str = Field(min_length=3, max_length=300)
    authors: str | None = Field(default=None, max_length=400)
    year: int | None = Field(default=None, ge=1600, le=2100)
    date: str | None = Field(default=None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    venue: str | None = None
    arxiv: str | None = Field(default=None, pattern=r"^\d{4}\.\d{4,5}$")
    doi: str | None = None
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    repository: str | None = Field(default=None, pattern=r"^[\w.-]+/[\w.-]+$")
    path: str | None = None
    #: how the knowledge base cites it after "external: " ("He et al. 2016"); seeds are cited by their id
    cite_as: list[str] = Field(default_factory=list)
    note: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> SourceEntry:
        if self.kind == "seed":
            if self.id not in SEED_IDS:
                raise ValueError(f"a seed's id is one of {', '.join(SEED_IDS)}, got {self.id!r}")
        elif self.kind != "policy":
            if not self.authors or self.year is None:
                raise ValueError(f"a {self.kind} reference names its authors and year")
            if not (self.arxiv or self.doi or self.url or self.repository):
                raise ValueError(f"a {self.kind} reference gives an arxiv id, doi, url or repository to find it by")
            if not self.cite_as:
                raise ValueError("cite_as: give the spelling the knowledge base cites it by, e.g. 'He et al. 2016'")
        if self.path is not None and self.repository is None:
            raise ValueError("path is a file of `repository`: give the repository too")
        return self

    @property
    def link(self) -> str | None:
        """Where a reader finds it: the arXiv abstract, the DOI, the URL or the repository file."""
        if self.arxiv:
            return f"https://arxiv.org/abs/{self.arxiv}"
        if self.url:
            return self.url
        if self.doi:
            return f"https://doi.org/{self.doi}"
        if self.repository:
            tail = f"/blob/HEAD/{self.path}" if self.path else ""
            return f"https://github.com/{self.repository}{tail}"
        return None

    def reference(self) -> str:
        """The full reference in one line: authors (year). Title. Where."""
        who = self.authors or "optirec"
        when = self.date or (str(self.year) if self.year else "")
        parts = [f"{who} ({when})." if when else f"{who}.", f"{self.title}."]
        if self.venue:
            parts.append(f"{self.venue}.")
        if self.arxiv:
            parts.append(f"arXiv:{self.arxiv}.")
        if self.repository:
            parts.append(f"{self.repository}{'/' + self.path if self.path else ''}.")
        elif self.url and not self.arxiv:
            parts.append(self.url)
        return " ".join(parts)


def split_citation(citation: str) -> list[str]:
    """The parts of a citation separated by ``;`` outside brackets, each stripped."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(citation):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        elif ch == ";" and depth == 0:
            parts.append(citation[start:i].strip())
            start = i + 1
    parts.append(citation[start:].strip())
    return [p for p in parts if p]


_SEED_RE = re.compile(r"^(000|001|002|003|004)(?:\s|$)")


class Bibliography:
    """The validated ``sources.toml``: look-up by id and resolution of citation strings."""

    def __init__(self, entries: Iterable[SourceEntry]) -> None:
        self.entries: dict[str, SourceEntry] = {}
        for e in entries:
            self.entries[e.id] = e
        # cite_as spellings, longest first, so that "Liu et al. 2019" never shadows "Liu et al. 2019b"
        self._spellings: list[tuple[str, str]] = sorted(
            ((spelling, e.id) for e in self.entries.values() for spelling in e.cite_as),
            key=lambda item: -len(item[0]),
        )
        self._memo: dict[str, tuple[str, ...] | None] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def _part(self, part: str) -> str | None:
        m = _SEED_RE.match(part)
        if m:
            return m.group(1) if m.group(1) in self.entries else None
        text = part[len(_EXTERNAL) :] if part.startswith(_EXTERNAL) else part
        for spelling, sid in self._spellings:
            if text.startswith(spelling) and (len(text) == len(spelling) or not text[len(spelling)].isalnum()):
                return sid
        return None

    def resolve(self, citation: str) -> tuple[str, ...] | None:
        """The ids of the entries a citation names (in order, without repeats), or None if any part is unknown."""
        if citation in self._memo:
            return self._memo[citation]
        ids: list[str] = []
        for part in split_citation(citation):
            sid = self._part(part)
            if sid is None:
                self._memo[citation] = None
                return None
            if sid not in ids:
                ids.append(sid)
        out = tuple(ids) if ids else None
        self._memo[citation] = out
        return out

    def unresolved_part(self, citation: str) -> str | None:
        """The first part of ``citation`` that names no entry (None when all resolve)."""
        for part in split_citation(citation):
            if self._part(part) is None:
                return part
        return None
