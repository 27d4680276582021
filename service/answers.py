"""The /recommend answer cache: rendered JSON bytes of recent answers, keyed by the validated Profile.

The engine is a pure function of (rulebook, profile), and pipelines ask about the same few jobs again and again, so
a bounded LRU (at most ``OPTIREC_RECOMMEND_CACHE_SIZE`` entries and ``OPTIREC_RECOMMEND_CACHE_BYTES`` bytes; 0 in
either turns it off) of the *rendered* answer lets a repeated request skip the rules and the serialisation. The key
is the profile after validation and canonicalisation (aliases resolved, data characteristics de-duplicated), so two
spellings of one job share an entry. The cache holds the rulebook it answers from (loaded once per process, never
changed under a running app); its hash is part of the key only as a guard. Errors (a 422 from an exporter) are not
cached.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, NamedTuple

from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from optirec.optimizers.exporters.formats import ExportFormat
from optirec.rules import Profile, Recommendation, Rulebook, default_rulebook, recommend

__all__ = [
    "DEFAULT_MAX_BYTES",
    "AnswerCache",
    "AnswerCacheMiddleware",
    "CacheStats",
    "Export",
    "entry_bytes",
    "render_answer",
]


class Export(BaseModel):
    """A recommendation rendered for a framework (``?format=`` other than json)."""

    format: ExportFormat
    export: dict[str, Any] | str
    notes: list[str]
    recommendation: Recommendation


class CacheStats(NamedTuple):
    hits: int
    misses: int
    size: int
    capacity: int


def render_answer(profile: Profile, book: Rulebook, format: str) -> bytes:
    """The /recommend body for ``profile``: the Recommendation's JSON, or with a framework ``format``, the
    Export object. Raises ProfileError (field ``format``) when the exporter refuses the recommendation."""
    rec = recommend(profile, rulebook=book)
    if format == "json":
        return rec.model_dump_json().encode()
    from optirec.optimizers.errors import ExportError
    from optirec.optimizers.exporters import export

    notes: list[str] = []
    try:
        rendered = export(rec, format, notes)
    except ExportError as exc:
        from optirec.rules.errors import FieldIssue, ProfileError

        raise ProfileError([FieldIssue(field="format", message=exc.message, value=format)]) from None
    return Export(format=format, export=rendered, notes=notes, recommendation=rec).model_dump_json().encode()


#: The default byte bound: about 5,000 typical answers (6 KB), or 32 of the largest (a 1 MB body keys its entry).
DEFAULT_MAX_BYTES = 32 * 1024 * 1024

Key = tuple[str | bytes, ...]


def entry_bytes(key: Key, body: bytes) -> int:
    """What an entry pins, as the cache counts it: the answer's bytes and its key's (a raw entry's key holds the
    request body, up to the body limit). Python's object headers (some 100 bytes an entry) are not counted."""
    return len(body) + sum(len(part) for part in key)


class AnswerCache:
    """A bounded LRU in front of :func:`render_answer`: at most ``capacity`` entries and ``max_bytes`` bytes
    (:func:`entry_bytes`), the least recently used evicted first; an answer larger than ``max_bytes`` alone is
    served but not kept. ``capacity`` or ``max_bytes`` 0: every request is rendered afresh.

    Used from the event loop only (one handler runs at a time between awaits), so it needs no lock.
    """

    def __init__(self, capacity: int, book: Rulebook | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.book = book if book is not None else default_rulebook()
        self._entries: OrderedDict[Key, bytes] = OrderedDict()
        self.bytes = 0  # entry_bytes() of everything held
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.capacity > 0 and self.max_bytes > 0

    def get(self, profile: Profile, format: str) -> bytes:
        """The rendered answer, from the cache when the same (canonical) profile was answered before."""
        book = self.book
        if not self.enabled:
            return render_answer(profile, book, format)
        key = (book.hash, profile.model_dump_json(), format)
        body = self.lookup(key)
        if body is None:
            self.misses += 1
            body = render_answer(profile, book, format)
            self.store(key, body)
        return body

    def lookup(self, key: Key) -> bytes | None:
        """The answer stored under ``key`` (a hit is counted), or None. A miss counts only when the rules
        then run (in :meth:`get`), so hits + misses is the number of answers served."""
        body = self._entries.get(key)
        if body is None:
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        return body

    def store(self, key: Key, body: bytes) -> None:
        size = entry_bytes(key, body)
        if not self.enabled or size > self.max_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= entry_bytes(key, old)
        self._entries[key] = body
        self.bytes += size
        while len(self._entries) > self.capacity or self.bytes > self.max_bytes:
            evicted, answer = self._entries.popitem(last=False)
            self.bytes -= entry_bytes(evicted, answer)

    def stats(self) -> CacheStats:
        return CacheStats(self.hits, self.misses, len(self._entries), self.capacity)


class _Route(NamedTuple):
    """What the metrics middleware reads from ``scope["route"]`` for an answer served before routing."""

    path: str


class AnswerCacheMiddleware:
    """Serve a repeated ``POST /recommend`` from the cache before routing, validation and the rules run.

    The key is the exact request: query string, Content-Type and body bytes. Only a 200 that the full path
    produced for those same bytes is ever replayed, so every check (415, 422, the body limit, which sits
    outside this middleware) still ran once on them; any other request passes through untouched. Its entries
    share the LRU with the canonical-profile ones of :class:`AnswerCache`: a job asked once holds two.
    """

    def __init__(self, app: ASGIApp, cache: AnswerCache, path: str = "/recommend") -> None:
        self.app = app
        self.cache = cache
        self.path = path
        self.route = _Route(path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        mine = scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == self.path
        if not mine or not self.cache.enabled:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                await self.app(scope, _replay([], receive, first=message), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
        key = (b"raw", scope.get("query_string", b""), content_type, body)
        answer = self.cache.lookup(key)
        if answer is not None:
            scope["route"] = self.route
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(answer))],
                }
            )
            await send({"type": "http.response.body", "body": answer})
            return
        status = 0
        parts: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
                if not message.get("more_body", False) and status == 200:
                    self.cache.store(key, b"".join(parts))
            await send(message)

        await self.app(scope, _replay([body], receive), keep)


def _replay(chunks: list[bytes], receive: Receive, first: Message | None = None) -> Receive:
    """A receive() that hands the app the body already read (or ``first``), then the server's own receive."""
    pending: list[Message] = [{"type": "http.request", "body": chunk, "more_body": False} for chunk in chunks]
    if first is not None:
        pending.append(first)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
