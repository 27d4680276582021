"""Fault: large answers against the /recommend answer cache (issue 22, item 6).

The cache was bounded by entries only; a raw entry's key holds the request body, so 1,024 distinct near-1 MB
bodies pinned about 1 GB. It is now bounded in bytes as well (``OPTIREC_RECOMMEND_CACHE_BYTES``, least
recently used evicted first; service/answers.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from optirec.service.answers import AnswerCache, entry_bytes
from optirec.service.app import create_app
from optirec.service.settings import Settings

BUDGET = 4 * 1024 * 1024
PAD = 600_000  # bytes of JSON whitespace per request body (the body limit is 1 MB)


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings(trial_store=":memory:", recommend_cache_bytes=BUDGET)
    with TestClient(create_app(settings)) as c:
        yield c


def _body(i: int) -> str:
    return json.dumps({"architecture": "resnet", "batch_size": 8 + i}) + " " * PAD


def test_large_answers_fill_the_cache_to_its_byte_bound_and_no_further(client: TestClient) -> None:
    cache: AnswerCache = client.app.state.answers  # type: ignore[attr-defined]
    sent = 20  # 12 MB of bodies against a 4 MiB budget
    for i in range(sent):
        r = client.post("/recommend", content=_body(i), headers={"content-type": "application/json"})
        assert r.status_code == 200, r.text[:200]
        assert cache.bytes <= BUDGET, f"{cache.bytes} bytes held after {i + 1} answers"
    held = sum(entry_bytes(k, v) for k, v in cache._entries.items())
    assert held == cache.bytes  # the running count is the real one
    assert cache.bytes > BUDGET - (PAD + 20_000), "the cache should be nearly full"
    assert cache.stats().size < 2 * sent  # every answer kept two entries (raw + canonical) before eviction
    # least recently used first: the last answer is served from the cache, the first was evicted
    hits = cache.hits
    last = client.post("/recommend", content=_body(sent - 1), headers={"content-type": "application/json"})
    assert last.status_code == 200 and cache.hits == hits + 1
    first = client.post("/recommend", content=_body(0), headers={"content-type": "application/json"})
    assert first.status_code == 200 and cache.hits == hits + 1
    print(f"{sent} answers of {PAD} B bodies: {cache.stats().size} entries, {cache.bytes} of {BUDGET} bytes")


@pytest.mark.parametrize(
    ("capacity", "max_bytes", "sizes", "kept"),
    [
        (10, 100, [40, 40, 40], ["k1", "k2"]),  # the byte bound evicts the oldest
        (2, 10_000, [40, 40, 40], ["k1", "k2"]),  # the entry bound still holds
        (10, 100, [150], []),  # an answer larger than the whole budget is not kept
        (10, 100, [30, 150, 30], ["k0", "k2"]),  # ... and evicts nothing
        (10, 0, [10], []),  # 0 bytes: off
        (0, 100, [10], []),  # 0 entries: off
    ],
    ids=["bytes", "entries", "too-large", "too-large-evicts-nothing", "bytes-off", "entries-off"],
)
def test_the_lru_bounds(capacity: int, max_bytes: int, sizes: list[int], kept: list[str]) -> None:
    cache = AnswerCache(capacity, max_bytes=max_bytes)
    for i, size in enumerate(sizes):
        key = (f"k{i}",)
        cache.store(key, b"x" * (size - len(key[0])))
    assert [k[0] for k in cache._entries] == kept
    assert cache.bytes == sum(sizes[int(k[1:])] for k in kept) <= max(max_bytes, 0)
    assert cache.enabled == (capacity > 0 and max_bytes > 0)


def test_replacing_an_entry_counts_its_bytes_once() -> None:
    cache = AnswerCache(10, max_bytes=1000)
    cache.store(("a",), b"x" * 99)
    cache.store(("a",), b"x" * 49)
    assert cache.bytes == 50 and len(cache._entries) == 1
