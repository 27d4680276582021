"""Service benchmark: POST /recommend against GET /healthz on one real server, in one run.

    .venv/bin/python bench/service.py [--seconds 2] [--rounds 3] [--concurrency 16] [--processes 1] [--port 0]

Starts ``optirec serve`` (uvicorn, log level warning) on a free 127.0.0.1 port, then drives it from separate
load-generator processes (asyncio + one pooled ``httpx.AsyncClient`` each, keep-alive connections) through
interleaved phases: healthz, recommend, healthz, recommend, ... each ``--seconds`` long after a short warm-up.
/recommend gets a mix of job-shaped profiles (the generator of bench/engine.py). It prints requests/s, p50 and
p99 latency per endpoint, the server's CPU time per request, and the ratio recommend_rps / healthz_rps
(target >= 0.9: serving a recommendation should cost about as much as answering a health check).

The service keeps rendered answers of repeated profiles (service/answers.py), and ``--profiles`` job shapes
recur, so that phase is served mostly from the cache, as repeated pipeline jobs would be. A third phase,
"POST /recommend (cold)", sends a profile never seen before on every request (each gets its own
``total_steps``), so the rules and the serialisation run every time; its ratio is printed too.
Figures are printed, not asserted; the exit code is 0 unless the server cannot be started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

TARGET_RATIO = 0.9
HEALTHZ = ("GET", "/healthz")
RECOMMEND = ("POST", "/recommend")
WARMUP_SECONDS = 1.0
GAP_SECONDS = 0.3  # between phases: in-flight requests drain, the parent samples the server's CPU time


# ---------------------------------------------------------------------------------------------------------------
# the load generator (runs in its own process: ``bench/service.py --generate SPEC_FILE``)


class HttpxClient:
    """One pooled ``httpx.AsyncClient`` shared by all workers (keep-alive, at most ``concurrency`` connections)."""

    def __init__(self, url: str, concurrency: int) -> None:
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.client = httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0)
        self.headers = {"content-type": "application/json"}

    async def request(self, worker: int, method: str, path: str, body: bytes) -> int:
        if method == "POST":
            response = await self.client.post(path, content=body, headers=self.headers)
        else:
            response = await self.client.get(path)
        await response.aread()
        return response.status_code

    async def close(self) -> None:
        await self.client.aclose()


async def http_exchange(
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter], host: str, method: str, path: str, body: bytes
) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 keep-alive request in a single write; the response read by its Content-Length.

    Returns (status, body, whether the server closes the connection). A response without
    Content-Length raises ConnectionError.
    """
    reader, writer = streams
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if method == "POST":
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(head.encode() + b"\r\n" + body)
    response_head = await reader.readuntil(b"\r\n\r\n")
    status = int(response_head.split(b" ", 2)[1])
    match = re.search(rb"\r\ncontent-length:\s*(\d+)", response_head, re.IGNORECASE)
    if match is None:
        raise ConnectionError(f"{method} {path}: response without Content-Length")
    content = await reader.readexactly(int(match.group(1)))
    closes = re.search(rb"\r\nconnection:\s*close", response_head, re.IGNORECASE) is not None
    return status, content, closes


class RawClient:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams, one connection per worker (wrk-like, cheap).

    Each request goes out in one write; the response is read by its Content-Length.
    """

    def __init__(self, url: str, concurrency: int) -> None:
        host_port = url.split("://", 1)[1]
        self.host, _, port = host_port.partition(":")
        self.port = int(port)
        self.connections: list[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = [None] * concurrency

    async def request(self, worker: int, method: str, path: str, body: bytes) -> int:
        connection = self.connections[worker]
        if connection is None:
            connection = self.connections[worker] = await asyncio.open_connection(self.host, self.port)
        status, _, _ = await http_exchange(connection, f"{self.host}:{self.port}", method, path, body)
        return status

    async def close(self) -> None:
        for connection in self.connections:
            if connection is not None:
                connection[1].close()


async def _phase(
    client: HttpxClient | RawClient,
    endpoint: tuple[str, str],
    bodies: list[bytes],
    concurrency: int,
    start: float,
    seconds: float,
) -> dict[str, Any]:
    method, path = endpoint
    deadline = start + seconds
    latencies: list[float] = []
    errors = 0
    counter = iter(range(10**12))

    async def worker(index: int) -> None:
        nonlocal errors
        clock = time.perf_counter
        while time.time() < deadline:
            body = bodies[next(counter) % len(bodies)] if method == "POST" else b""
            t0 = clock()
            status = await client.request(index, method, path, body)
            latencies.append(clock() - t0)
            if status != 200:
                errors += 1

    delay = start - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
    t0 = time.time()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return {"endpoint": f"{method} {path}", "latencies": latencies, "errors": errors, "elapsed": time.time() - t0}


async def _generate(spec: dict[str, Any]) -> list[dict[str, Any]]:
    bodies = [json.dumps(p).encode() for p in spec["profiles"]]
    profiles, offset = spec["profiles"], spec["cold_offset"]
    cold = [
        json.dumps({**profiles[i % len(profiles)], "total_steps": offset + i}).encode()
        for i in range(spec["cold_count"])
    ]
    concurrency = spec["concurrency"]
    kind = HttpxClient if spec["client"] == "httpx" else RawClient
    client = kind(spec["url"], concurrency)
    results = []
    try:
        for phase in spec["phases"]:
            endpoint = HEALTHZ if phase["endpoint"] == "healthz" else RECOMMEND
            pool = cold if phase["endpoint"] == "cold" else bodies
            result = await _phase(client, endpoint, pool, concurrency, phase["start"], phase["seconds"])
            result["measured"] = phase["measured"]
            results.append(result)
    finally:
        await client.close()
    return results


def generate_main(spec_file: str) -> None:
    spec = json.loads(Path(spec_file).read_text())
    results = asyncio.run(_generate(spec))
    json.dump(results, sys.stdout)


# ---------------------------------------------------------------------------------------------------------------
# the parent: server, schedule, report


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_profiles(count: int) -> list[dict[str, Any]]:
    """Job-shaped profiles (bench/engine.py), each checked to be valid so every request is a 200."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from engine import job_profiles

    from optirec.rules import recommend

    profiles = job_profiles(count, seed=1)
    for p in profiles:
        recommend(p)  # raises on an invalid profile: the benchmark measures successes only
    return profiles


@contextlib.contextmanager
def running_server(
    port: int, store_dir: str, extra_env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """``optirec serve`` on 127.0.0.1:``port`` with its store in ``store_dir``; ``extra_env`` overrides settings."""
    env = dict(os.environ)
    env.update(
        {
            "OPTIREC_LOG_LEVEL": "warning",
            "OPTIREC_TRIAL_STORE": os.path.join(store_dir, "trials.sqlite3"),
            "OPTIREC_TRIAL_CONCURRENCY": "0",  # no trial worker process (it imports torch) competing for the CPU
            "PYTHONDONTWRITEBYTECODE": "1",
            **(extra_env or {}),
        }
    )
    env.pop("OPTIREC_API_KEY", None)
    cmd = [sys.executable, "-m", "optirec", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_ready(server, port, log)
            yield server
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def _wait_ready(server: subprocess.Popen[bytes], port: int, log: Any) -> None:
    import httpx

    deadline = time.time() + 60
    while time.time() < deadline:
        if server.poll() is not None:
            log.seek(0)
            sys.exit(f"bench/service.py: the server exited with code {server.returncode}:\n{log.read().decode()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    sys.exit("bench/service.py: the server did not answer /healthz within 60 s")


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc), or None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


ENDPOINTS = ("healthz", "recommend", "cold")
#: unique cold bodies per load-generator process: more than one can send in all its cold phases
COLD_BODIES_PER_SECOND = 8000


def schedule(rounds: int, seconds: float, start: float) -> list[dict[str, Any]]:
    phases = []
    t = start
    for endpoint in ("healthz", "recommend"):  # warm-up: healthz and the repeated profiles, not measured
        phases.append({"endpoint": endpoint, "start": t, "seconds": WARMUP_SECONDS / 2, "measured": False})
        t += WARMUP_SECONDS / 2 + GAP_SECONDS
    for _ in range(rounds):
        for endpoint in ENDPOINTS:
            phases.append({"endpoint": endpoint, "start": t, "seconds": seconds, "measured": True})
            t += seconds + GAP_SECONDS
    return phases


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * len(sorted_values)) - 1))
    return sorted_values[index]


def run(args: argparse.Namespace) -> dict[str, Any]:
    port = args.port or free_port()
    profiles = load_profiles(args.profiles)
    per_process = [
        args.concurrency // args.processes + (i < args.concurrency % args.processes) for i in range(args.processes)
    ]
    with tempfile.TemporaryDirectory(prefix="optirec-bench-") as tmp, running_server(port, tmp) as server:
        start = time.time() + 1.5  # every generator process is up and connected by then
        phases = schedule(args.rounds, args.seconds, start)
        generators = []
        cold_count = int(COLD_BODIES_PER_SECOND * args.seconds * args.rounds) + 1000
        for i, n in enumerate(per_process):
            spec_file = Path(tmp) / f"spec{i}.json"
            spec = {
                "url": f"http://127.0.0.1:{port}",
                "client": args.client,
                "concurrency": n,
                "profiles": profiles,
                "cold_count": cold_count,
                "cold_offset": 1_000_000 * (i + 1),  # each process's total_steps are its own: no body repeats
                "phases": phases,
            }
            spec_file.write_text(json.dumps(spec))
            generators.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--generate", str(spec_file)], stdout=subprocess.PIPE, text=True
                )
            )
        # sample the server's CPU time at every phase boundary while the generators run
        cpu: list[float | None] = []
        for phase in phases:
            for moment in (phase["start"], phase["start"] + phase["seconds"] + GAP_SECONDS * 0.8):
                delay = moment - time.time()
                if delay > 0:
                    time.sleep(delay)
                cpu.append(cpu_seconds(server.pid))
        outputs = []
        for proc in generators:
            out, _ = proc.communicate(timeout=120)
            if proc.returncode != 0:
                sys.exit(f"bench/service.py: a load generator failed with code {proc.returncode}")
            outputs.append(json.loads(out))

    summary: dict[str, Any] = {}
    for endpoint, label in (
        ("healthz", "GET /healthz"),
        ("recommend", "POST /recommend"),
        ("cold", "POST /recommend (cold)"),
    ):
        latencies: list[float] = []
        requests = errors = 0
        seconds = 0.0
        server_cpu = 0.0
        cpu_known = True
        for k, phase in enumerate(phases):
            if not phase["measured"] or phase["endpoint"] != endpoint:
                continue
            phase_results = [out[k] for out in outputs]
            for r in phase_results:
                latencies += r["latencies"]
                requests += len(r["latencies"])
                errors += r["errors"]
            seconds += max(r["elapsed"] for r in phase_results)
            before, after = cpu[2 * k], cpu[2 * k + 1]
            if before is None or after is None:
                cpu_known = False
            else:
                server_cpu += after - before
        latencies.sort()
        summary[endpoint] = {
            "label": label,
            "requests": requests,
            "errors": errors,
            "seconds": seconds,
            "rps": requests / seconds if seconds else 0.0,
            "p50_ms": percentile(latencies, 0.50) * 1000,
            "p99_ms": percentile(latencies, 0.99) * 1000,
            "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
            "server_cpu_us": server_cpu / requests * 1e6 if cpu_known and requests else None,
            "server_busy": server_cpu / seconds if cpu_known and seconds else None,
        }
    healthz_rps = summary["healthz"]["rps"]
    summary["ratio"] = summary["recommend"]["rps"] / healthz_rps if healthz_rps else 0.0
    summary["cold_ratio"] = summary["cold"]["rps"] / healthz_rps if healthz_rps else 0.0
    return summary


def report(summary: dict[str, Any], args: argparse.Namespace) -> None:
    cores = os.cpu_count() or 1
    print(
        f"optirec service benchmark: 1 uvicorn server process, {args.processes} {args.client} load-generator "
        f"process(es) with {args.concurrency} keep-alive connections in all, {args.rounds} round(s) of "
        f"healthz/recommend/cold phases of {args.seconds:g} s each, {args.profiles} job-shaped profiles"
    )
    print(
        f"{'endpoint':<23} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
        f"{'server CPU/req':>15} {'server busy':>12}"
    )
    for key in ENDPOINTS:
        s = summary[key]
        cpu = f"{s['server_cpu_us']:.0f} us" if s["server_cpu_us"] is not None else "n/a"
        busy = f"{s['server_busy']:.0%}" if s["server_busy"] is not None else "n/a"
        print(
            f"{s['label']:<23} {s['requests']:>9} {s['rps']:>9.0f} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} "
            f"{s['errors']:>7} {cpu:>15} {busy:>12}"
        )
    ratio = summary["ratio"]
    verdict = "met" if ratio >= TARGET_RATIO else "MISSED"
    print(f"ratio recommend_rps / healthz_rps = {ratio:.2f}  (target >= {TARGET_RATIO}: {verdict})")
    print(f"ratio with every profile new (cold: rules + serialisation on each request) = {summary['cold_ratio']:.2f}")
    h = summary["healthz"]["server_cpu_us"]
    for key in ("recommend", "cold"):
        r = summary[key]["server_cpu_us"]
        if h and r:
            print(f"server CPU per request: {key} / healthz = {r / h:.2f} (the ratio the server alone would allow)")
    print(
        f"note: this machine has {cores} CPU core(s); the load generator(s) and the server share them, so the "
        "absolute req/s are a lower bound and httpx's own per-request cost is part of every latency. "
        "The ratio compares both endpoints under the same conditions on the same server. "
        "'server busy' is the server's CPU time over the phase's wall time: well under 100% means the load "
        "generator (or another process) was the bottleneck, and 'server CPU/req' is then the steadier figure."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each measured phase (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="healthz+recommend phase pairs (default 3)")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent connections in all (default 16)")
    parser.add_argument("--processes", type=int, default=1, help="load-generator processes (default 1)")
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument(
        "--client",
        choices=("httpx", "raw"),
        default="httpx",
        help="load generator: httpx.AsyncClient (default) or a minimal asyncio HTTP/1.1 client that costs the "
        "generator far less CPU per request (use it when the server is not the bottleneck)",
    )
    parser.add_argument("--profiles", type=int, default=500, help="distinct /recommend profiles (default 500)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON as well")
    parser.add_argument("--generate", metavar="SPEC", help=argparse.SUPPRESS)  # internal: the load-generator mode
    args = parser.parse_args()
    if args.generate:
        generate_main(args.generate)
        return
    if not 0 < args.seconds <= 60 or not 1 <= args.rounds <= 10:
        parser.error("--seconds must be in (0, 60] and --rounds in [1, 10]")
    if not 1 <= args.processes <= args.concurrency <= 1024:
        parser.error("need 1 <= --processes <= --concurrency <= 1024")
    summary = run(args)
    report(summary, args)
    if args.json:
        print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
