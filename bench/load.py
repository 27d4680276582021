"""Load benchmark: /recommend mixed with trial submissions and polling, on one real server with a real trial worker.

    .venv/bin/python bench/load.py [--seconds 60] [--concurrency 64] [--trial-every 50] [--poll-every 10]
                                   [--slow 50]

Starts ``optirec serve`` on a free 127.0.0.1 port (bench/service.py's ``running_server``: temporary store,
log level warning) with one real trial worker and small limits (OPTIREC_TRIAL_MAX_STEPS=50,
OPTIREC_TRIAL_QUEUE_SIZE=8, OPTIREC_TRIAL_MAX_SIZE=1), then drives it from a separate load-generator process:
``--concurrency`` keep-alive connections (a minimal asyncio HTTP/1.1 client, one connection per worker) for
``--seconds``. Each request is, by a per-connection counter: a trial submission (1 in ``--trial-every``: a
job-shaped profile, workload mlp or auto, 10-30 steps, CPU, size 1), a poll of a submitted trial that has
not finished yet (1 in ``--poll-every``, ``GET /trials/{id}``), otherwise ``POST /recommend`` with one of
500 job-shaped profiles (bench/engine.py). After every 429 the same connection reads ``GET /metrics`` and
notes ``optirec_trials_queued``: the queue depth right after the refusal.

Prints per endpoint: requests, status-code histogram, req/s, p50/p99/max latency; the trials' outcomes;
then one PASS/FAIL line per promise: no 5xx (nor a dropped connection), 429 only on POST /trials, and every
429 met a full queue (depth >= queue size - 2 right after it: the worker may claim one or two meanwhile).
The exit code is 0 unless the server cannot be started (figures, not a test); ``--strict`` makes a FAIL exit 1.

``--slow N`` runs the load twice on the same server, in one run: once as above, then again with ``N`` slow
or stalled clients besides (a quarter each: a head sent one byte per second, a head that stops half-way, a
body that stops after its first bytes, a chunked body that never ends; each reopened when the server closes
it). Throughout both, a separate probe process reads ``GET /healthz`` every 50 ms on its own connection; the
report gives its p50/p99 in each phase, what the server did to the slow clients (status codes, and how long
it held them), and two more promises: no 5xx in either phase, and /healthz p99 with the slow clients at most
2x its p99 without them.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import importlib.util
import json
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
QUEUE_SIZE = 8
MAX_STEPS = 50
SERVER_ENV = {
    "OPTIREC_TRIAL_CONCURRENCY": "1",
    "OPTIREC_TRIAL_QUEUE_SIZE": str(QUEUE_SIZE),
    "OPTIREC_TRIAL_MAX_STEPS": str(MAX_STEPS),
    "OPTIREC_TRIAL_MAX_SIZE": "1",
    "OPTIREC_TRIAL_MAX_SECONDS": "30",
    "OPTIREC_TRIAL_RETRY_AFTER": "1",
}
RECOMMEND = "POST /recommend"
SUBMIT = "POST /trials"
POLL = "GET /trials/{id}"
METRICS = "GET /metrics (after a 429)"
ENDPOINTS = (RECOMMEND, SUBMIT, POLL, METRICS)
FINISHED = ("succeeded", "failed", "cancelled")


@functools.cache
def _bench_service() -> ModuleType:
    """bench/service.py as a module (its name would clash with the repository's ``service`` package)."""
    spec = importlib.util.spec_from_file_location("optirec_bench_service", HERE / "service.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------------------------------------------
# the load generator (its own process: ``bench/load.py --generate SPEC_FILE``)


class Connection:
    """One keep-alive HTTP/1.1 connection; a request is one write, the response is read by its Content-Length."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        """(status, body); status 0 when the connection failed (it is reopened for the next request)."""
        try:
            if self.streams is None:
                self.streams = await asyncio.open_connection(self.host, self.port)
            exchange = _bench_service().http_exchange
            status, content, closes = await exchange(self.streams, f"{self.host}:{self.port}", method, path, body)
            if closes:
                self.close()
            return status, content
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
            self.close()
            return 0, b""

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def _generate(spec: dict[str, Any]) -> dict[str, Any]:
    host, _, port = spec["url"].split("://", 1)[1].partition(":")
    profiles = [json.dumps(p).encode() for p in spec["profiles"]]
    rng = random.Random(spec["seed"])
    latencies: dict[str, list[float]] = defaultdict(list)
    statuses: dict[str, Counter[int]] = defaultdict(Counter)
    depth_after_429: list[int] = []
    refusals: Counter[str] = Counter()  # the error code of each 429 (and on which endpoint)
    pending: list[str] = []
    finished: Counter[str] = Counter()
    submitted: list[str] = []
    trial_every, poll_every = spec["trial_every"], spec["poll_every"]

    async def call(conn: Connection, label: str, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        t0 = time.perf_counter()
        status, content = await conn.request(method, path, body)
        latencies[label].append(time.perf_counter() - t0)
        statuses[label][status] += 1
        if status == 429:
            try:
                refusals[f"{label}: {json.loads(content)['error']['code']}"] += 1
            except (ValueError, KeyError, TypeError):
                refusals[f"{label}: ?"] += 1
        return status, content

    async def worker(index: int, deadline: float) -> None:
        conn = Connection(host, int(port))
        n = index  # connections start at different points of the mix
        try:
            while time.time() < deadline:
                n += 1
                if n % trial_every == 0:
                    body = {
                        "profile": json.loads(profiles[rng.randrange(len(profiles))]),
                        "workload": rng.choice(("mlp", "auto")),
                        "steps": rng.randint(10, 30),
                        "device": "cpu",
                        "size": 1,
                    }
                    status, content = await call(conn, SUBMIT, "POST", "/trials", json.dumps(body).encode())
                    if status == 202:
                        trial_id = json.loads(content)["id"]
                        pending.append(trial_id)
                        submitted.append(trial_id)
                    elif status == 429:
                        _, text = await call(conn, METRICS, "GET", "/metrics")
                        found = re.search(rb"^optirec_trials_queued (\S+)$", text, re.MULTILINE)
                        depth_after_429.append(int(float(found.group(1))) if found else -1)
                elif pending and n % poll_every == 0:
                    trial_id = rng.choice(pending)
                    status, content = await call(conn, POLL, "GET", f"/trials/{trial_id}")
                    if status == 200:
                        state = json.loads(content)["status"]
                        if state in FINISHED and trial_id in pending:
                            pending.remove(trial_id)
                            finished[state] += 1
                else:
                    await call(conn, RECOMMEND, "POST", "/recommend", profiles[rng.randrange(len(profiles))])
        finally:
            conn.close()

    delay = spec["start"] - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    t0 = time.time()
    deadline = t0 + spec["seconds"]
    await asyncio.gather(*(worker(i, deadline) for i in range(spec["concurrency"])))
    return {
        "elapsed": time.time() - t0,
        "latencies": dict(latencies),
        "statuses": {k: dict(v) for k, v in statuses.items()},
        "depth_after_429": depth_after_429,
        "refusals": dict(refusals),
        "submitted": submitted,
        "seen_finished": dict(finished),
    }


def generate_main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    json.dump(asyncio.run(_generate(spec)), sys.stdout)


SLOW_KINDS = ("trickled head", "stalled head", "stalled body", "endless chunks")
PROBE_EVERY = 0.05


async def _send_slowly(writer: asyncio.StreamWriter, kind: str, head: str, deadline: float) -> None:
    """Send a request the way a slow client of ``kind`` does, and then nothing until past ``deadline``."""
    try:
        await _send_kind(writer, kind, head, deadline)
    except (OSError, ConnectionError):
        return  # the server closed the connection: the reader side records how


async def _send_kind(writer: asyncio.StreamWriter, kind: str, head: str, deadline: float) -> None:
    if kind == "trickled head":
        for byte in head.encode():
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(1.0)
    elif kind == "stalled head":
        writer.write(head.encode()[: len(head) // 2])
    elif kind == "stalled body":
        writer.write((head + "Content-Length: 1000\r\n\r\n" + '{"architecture": ').encode())
    else:  # endless chunks
        writer.write((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
        while True:
            writer.write(b"1\r\n \r\n")
            await writer.drain()
            await asyncio.sleep(1.0)
    await writer.drain()
    await asyncio.sleep(deadline - time.time() + 1)


async def _slow_client(host: str, port: int, kind: str, deadline: float, seen: list[tuple[str, int, float]]) -> None:
    """One slow client of ``kind``, reconnecting until ``deadline``; ``seen``: (kind, status, seconds held)."""
    head = f"POST /recommend HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    while time.time() < deadline:
        t0 = time.time()
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.5)
            continue
        status = 0
        sender = asyncio.ensure_future(_send_slowly(writer, kind, head, deadline))
        try:
            line = await asyncio.wait_for(reader.readline(), timeout=max(0.1, deadline - time.time()))
            parts = line.split()
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1  # -1: closed without an answer
        except TimeoutError:
            status = -2  # still held at the end of the phase
        except (OSError, asyncio.IncompleteReadError, ConnectionError):
            status = -1
        finally:
            sender.cancel()
            writer.close()
        seen.append((kind, status, time.time() - t0))


async def _slow(spec: dict[str, Any]) -> dict[str, Any]:
    host, _, port = spec["url"].split("://", 1)[1].partition(":")
    seen: list[tuple[str, int, float]] = []
    delay = spec["start"] - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    deadline = time.time() + spec["seconds"]
    kinds = [SLOW_KINDS[i % len(SLOW_KINDS)] for i in range(spec["slow"])]
    await asyncio.gather(*(_slow_client(host, int(port), kind, deadline, seen) for kind in kinds))
    return {"seen": seen}


async def _probe(spec: dict[str, Any]) -> dict[str, Any]:
    """GET /healthz every PROBE_EVERY s on one keep-alive connection, for every phase of ``spec['phases']``."""
    host, _, port = spec["url"].split("://", 1)[1].partition(":")
    conn = Connection(host, int(port))
    out: dict[str, list[float]] = {}
    failed: Counter[str] = Counter()
    for name, start, seconds in spec["phases"]:
        delay = start - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        latencies = out.setdefault(name, [])
        while time.time() < start + seconds:
            t0 = time.perf_counter()
            status, _ = await conn.request("GET", "/healthz")
            if status == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                failed[f"{name}: {status}"] += 1
            await asyncio.sleep(PROBE_EVERY)
    conn.close()
    return {"healthz": out, "failed": dict(failed)}


def side_main(kind: str, spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    json.dump(asyncio.run(_slow(spec) if kind == "slow" else _probe(spec)), sys.stdout)


# ---------------------------------------------------------------------------------------------------------------
# the parent: server, generator, report


def _settle(url: str, ids: list[str], timeout: float) -> Counter[str]:
    """Wait (at most ``timeout`` s) for the submitted trials to finish; their statuses."""
    import httpx

    deadline = time.time() + timeout
    wanted = set(ids)
    states: Counter[str] = Counter()
    while True:
        listed = httpx.get(f"{url}/trials", params={"limit": 500}, timeout=30).json()
        states = Counter(t["status"] for t in listed if t["id"] in wanted)
        if sum(states[s] for s in FINISHED) >= len(wanted) or time.time() > deadline:
            return states
        time.sleep(0.5)


def _side(kind: str, spec: dict[str, Any], tmp: str) -> subprocess.Popen[str]:
    spec_file = Path(tmp) / f"{kind}.json"
    spec_file.write_text(json.dumps(spec))
    flag = {"generate": "--generate", "probe": "--probe", "slow": "--slow-clients"}[kind]
    return subprocess.Popen([sys.executable, __file__, flag, str(spec_file)], stdout=subprocess.PIPE, text=True)


def _phase(url: str, args: argparse.Namespace, profiles: list[Any], tmp: str, start: float) -> subprocess.Popen[str]:
    spec = {
        "url": url,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "start": start,
        "profiles": profiles,
        "trial_every": args.trial_every,
        "poll_every": args.poll_every,
        "seed": args.seed,
    }
    return _side("generate", spec, tmp)


def _collect(proc: subprocess.Popen[str], what: str, timeout: float) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        sys.exit(f"bench/load.py: the {what} failed with code {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


def run(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    bench = _bench_service()
    port = args.port or bench.free_port()
    url = f"http://127.0.0.1:{port}"
    profiles = bench.load_profiles(500)
    gap = 3.0  # seconds between the phases: the first phase's trials settle a little, the slow clients connect
    with tempfile.TemporaryDirectory(prefix="optirec-load-") as tmp, bench.running_server(port, tmp, SERVER_ENV):
        start = time.time() + 1.0
        phases = [("without slow clients", start, args.seconds)]
        if args.slow:
            phases.append((f"with {args.slow} slow clients", start + args.seconds + gap, args.seconds))
        probe = _side("probe", {"url": url, "phases": phases}, tmp)
        result = _collect(_phase(url, args, profiles, tmp, start), "load generator", args.seconds + 120)
        if args.slow:
            second_start = phases[1][1]
            slow = _side(
                "slow", {"url": url, "slow": args.slow, "seconds": args.seconds + 1, "start": second_start - 1}, tmp
            )
            second = _collect(_phase(url, args, profiles, tmp, second_start), "load generator", 2 * args.seconds + 120)
            result["slow_phase"] = second
            result["slow_clients"] = _collect(slow, "slow clients", args.seconds + 120)["seen"]
            result["submitted"] = result["submitted"] + second["submitted"]
        result["probe"] = _collect(probe, "healthz probe", 2 * args.seconds + 120)
        result["healthz_after"] = httpx.get(f"{url}/healthz", timeout=30).status_code
        result["trial_states"] = dict(_settle(url, result["submitted"], timeout=60))
    return result


def _ms(sorted_values: list[float], q: float, percentile: Any) -> str:
    return f"{percentile(sorted_values, q) * 1000:.1f}" if sorted_values else "-"


def _table(phase: dict[str, Any], percentile: Any) -> None:
    elapsed = phase["elapsed"]
    total = sum(len(v) for v in phase["latencies"].values())
    print(f"{'endpoint':<26} {'requests':>9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  status codes")
    for label in ENDPOINTS:
        values = sorted(phase["latencies"].get(label, []))
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(phase["statuses"].get(label, {}).items()))
        print(
            f"{label:<26} {len(values):>9} {len(values) / elapsed:>8.1f} {_ms(values, 0.5, percentile):>8} "
            f"{_ms(values, 0.99, percentile):>8} {_ms(values, 1.0, percentile):>8}  {codes or '-'}"
        )
    every = sorted(v for values in phase["latencies"].values() for v in values)
    print(
        f"{'all':<26} {total:>9} {total / elapsed:>8.1f} {_ms(every, 0.5, percentile):>8} "
        f"{_ms(every, 0.99, percentile):>8} {_ms(every, 1.0, percentile):>8}"
    )


def _codes(phase: dict[str, Any]) -> Counter[int]:
    by_code: Counter[int] = Counter()
    for codes in phase["statuses"].values():
        for code, count in codes.items():
            by_code[int(code)] += count
    return by_code


def _slow_report(result: dict[str, Any], percentile: Any) -> list[tuple[bool, str]]:
    """The slow-client phase: its table, the /healthz probe in both phases, what the slow clients met."""
    phase = result["slow_phase"]
    print(f"-- phase 2: the same load with {len(SLOW_KINDS)} kinds of slow clients besides")
    _table(phase, percentile)
    held: dict[str, list[float]] = defaultdict(list)
    answers: dict[str, Counter[int]] = defaultdict(Counter)
    for kind, status, seconds in result["slow_clients"]:
        held[kind].append(seconds)
        answers[kind][status] += 1
    print("slow clients (status -1: closed without an answer, -2: still held at the end of the phase):")
    for kind in SLOW_KINDS:
        values = sorted(held.get(kind, []))
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(answers.get(kind, Counter()).items()))
        median = f"{percentile(values, 0.5):.1f}" if values else "-"
        print(f"  {kind:<15} connections {len(values):>4}, median held {median:>6} s; answers: {codes or '-'}")
    probes = {name: sorted(values) for name, values in result["probe"]["healthz"].items()}
    names = list(probes)
    for name in names:
        values = probes[name]
        print(
            f"GET /healthz from a separate process, {name}: {len(values)} probes, p50 {_ms(values, 0.5, percentile)} "
            f"ms, p99 {_ms(values, 0.99, percentile)} ms, max {_ms(values, 1.0, percentile)} ms"
        )
    if result["probe"]["failed"]:
        print(f"probes not answered 200: {result['probe']['failed']}")
    base, slow = (percentile(probes[n], 0.99) if probes[n] else float("nan") for n in names[:2])
    ratio = slow / base if base else float("inf")
    server_errors = sum(v for k, v in _codes(phase).items() if k >= 500)
    return [
        (server_errors == 0, f"no 5xx with the slow clients either ({server_errors} 5xx)"),
        (ratio <= 2.0, f"/healthz p99 with the slow clients at most 2x without ({ratio:.2f}x)"),
        (
            not result["probe"]["failed"],
            f"every /healthz probe answered 200 ({sum(result['probe']['failed'].values())} not)",
        ),
    ]


def report(result: dict[str, Any], args: argparse.Namespace) -> bool:
    percentile = _bench_service().percentile
    print(
        f"optirec load benchmark: 1 uvicorn server + 1 trial worker (queue {QUEUE_SIZE}, max steps {MAX_STEPS}), "
        f"1 load-generator process with {args.concurrency} keep-alive connections for {result['elapsed']:.1f} s on "
        f"127.0.0.1; mix: 1 in {args.trial_every} a trial submission, 1 in {args.poll_every} a poll while trials are "
        "pending, the rest POST /recommend (500 job-shaped profiles)"
    )
    if args.slow:
        print("-- phase 1: no slow clients")
    _table(result, percentile)
    states = ", ".join(f"{k}: {v}" for k, v in sorted(result["trial_states"].items())) or "-"
    print(f"trials accepted: {len(result['submitted'])}; their statuses after the run: {states}")
    depths = Counter(result["depth_after_429"])
    if depths:
        shown = ", ".join(f"{k}: {v}" for k, v in sorted(depths.items()))
        print(f"queue depth right after each 429 (optirec_trials_queued -> times): {shown}")
    if result["refusals"]:
        print(f"429s by endpoint and error code: {result['refusals']}")

    by_code = _codes(result)
    server_errors = sum(v for k, v in by_code.items() if k >= 500)
    dropped = by_code.get(0, 0)
    misplaced = {
        label: codes.get("429", 0) for label, codes in result["statuses"].items() if label != SUBMIT and "429" in codes
    }
    shallow = [d for d in result["depth_after_429"] if d < QUEUE_SIZE - 2]
    checks = [
        (
            server_errors == 0 and dropped == 0,
            f"no 5xx and no dropped connection ({server_errors} 5xx, {dropped} dropped)",
        ),
        (not misplaced, f"429 only on POST /trials (elsewhere: {misplaced or 'none'})"),
        (
            not shallow,
            f"every 429 met a full queue ({len(result['depth_after_429'])} 429s; "
            f"{len(shallow)} with queue depth < {QUEUE_SIZE - 2} right after)",
        ),
        (result["healthz_after"] == 200, f"GET /healthz after the run: {result['healthz_after']}"),
    ]
    if args.slow:
        checks += _slow_report(result, percentile)
    ok = all(passed for passed, _ in checks)
    for passed, text in checks:
        print(f"  {'PASS' if passed else 'FAIL'}: {text}")
    print(f"{'PASS' if ok else 'FAIL'}: load benchmark promises ({sum(p for p, _ in checks)}/{len(checks)} held)")
    print(
        "note: the server, its trial worker and the load generator share this machine's CPU cores; req/s and "
        "latencies are figures for this machine under that contention, not a capacity limit."
    )
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the run (default 60)")
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent connections (default 64)")
    parser.add_argument("--trial-every", type=int, default=50, help="1 request in N submits a trial (default 50)")
    parser.add_argument("--poll-every", type=int, default=10, help="1 request in N polls a pending trial (default 10)")
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request mix (default 0)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a promise fails")
    parser.add_argument("--json", action="store_true", help="print the raw counts as JSON as well (no latencies)")
    parser.add_argument("--slow", type=int, default=0, help="a second phase with N slow clients (default 0: none)")
    parser.add_argument("--generate", metavar="SPEC", help=argparse.SUPPRESS)  # internal: the load-generator mode
    parser.add_argument("--probe", metavar="SPEC", help=argparse.SUPPRESS)  # internal: the /healthz probe
    parser.add_argument("--slow-clients", dest="slow_spec", metavar="SPEC", help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.generate:
        generate_main(args.generate)
        return
    if args.probe or args.slow_spec:
        side_main("probe" if args.probe else "slow", args.probe or args.slow_spec)
        return
    if not 0 <= args.slow <= 1000:
        parser.error(f"--slow must be in [0, 1000], got {args.slow}")
    if not 0 < args.seconds <= 3600 or not 1 <= args.concurrency <= 1024:
        parser.error("--seconds must be in (0, 3600] and --concurrency in [1, 1024]")
    if args.trial_every < 2 or args.poll_every < 2:
        parser.error("--trial-every and --poll-every must be at least 2")
    result = run(args)
    ok = report(result, args)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "latencies"}, indent=2))
    if args.strict and not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
