"""Run the benchmark matrix against occ and against the floor, in one run, and print the tables.

    python benchmarks/run.py [--quick | --time-scale F] [--only NAME] [--workers N] [--shared-state] [--json FILE]
                             [--profile DIR] [--ccr PATH/cli.js] [--baseline SRC_DIR]

Starts the Node fake upstream (``fake_upstream.js``), measures its own capacity, starts ``occ serve`` with a
generated config that points every scenario at the fake's chat-completions endpoint (full translation,
routing, heartbeat and deadlines on), then runs ``load.js`` for each scenario twice: against the **floor**
(the fake's own Anthropic endpoint answering the same request directly) and against occ. CPU time and RSS are
read from /proc for occ (and its workers), for the fake, and reported by the load client for itself, so each
table says who was busy. Everything listens on 127.0.0.1, every run is bounded, everything started is stopped.
Needs ``node`` (v18+) on PATH; uses no Python package beyond the standard library.

``--ccr`` also measures claude-code-router (its built ``dist/cli.js``, e.g. from ``npm install
@musistudio/claude-code-router@2.0.0``), configured for the same fake chat endpoint, and ``--baseline`` a second
occ served from another source tree (a ``git worktree`` of an older commit), both in the same run, each scenario
interleaved floor / occ / baseline / CCR, so the ratios of the issue's table come from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
TICKS = os.sysconf("SC_CLK_TCK")

#: name, concurrency, requests measured in a full run (after ``warmup`` ones, default one per connection),
#: the answer's shape (deltas, delay in ms, agentic) and the request's (prompt bytes, tool definitions).
SCENARIOS: list[dict[str, Any]] = [
    {"name": "non-stream c=1", "concurrency": 1, "requests": 2000, "stream": False, "deltas": 50, "delay": 0,
     "warmup": 200},
    {"name": "non-stream c=32", "concurrency": 32, "requests": 6000, "stream": False, "deltas": 50, "delay": 0,
     "warmup": 320},
    {"name": "stream 50x5ms c=1", "concurrency": 1, "requests": 30, "stream": True, "deltas": 50, "delay": 5},
    {"name": "stream 50x5ms c=32", "concurrency": 32, "requests": 320, "stream": True, "deltas": 50, "delay": 5},
    {"name": "stream 50x5ms c=256", "concurrency": 256, "requests": 1024, "stream": True, "deltas": 50, "delay": 5},
    {"name": "burst 50x0ms c=32", "concurrency": 32, "requests": 1600, "stream": True, "deltas": 50, "delay": 0,
     "warmup": 160},
    {"name": "agentic c=32", "concurrency": 32, "requests": 320, "stream": True, "deltas": 50, "delay": 5,
     "agentic": True, "promptBytes": 20000, "tools": 20},
]

#: The fake's own capacity, on the chat endpoint occ talks to (no proxy in between).
FAKE_CAPACITY: list[dict[str, Any]] = [
    {"name": "chat non-stream c=32", "concurrency": 32, "requests": 6000, "stream": False, "deltas": 50, "delay": 0,
     "warmup": 320},
    {"name": "chat burst 50x0ms c=32", "concurrency": 32, "requests": 1600, "stream": True, "deltas": 50, "delay": 0},
    {"name": "chat stream 50x5ms c=256", "concurrency": 256, "requests": 1024, "stream": True, "deltas": 50,
     "delay": 5},
]


# --- processes -------------------------------------------------------------------------------------------

def tree(pid: int) -> list[int]:
    """The process and its descendants (``occ serve --workers N`` forks workers)."""
    pids, i = [pid], 0
    while i < len(pids):
        try:
            for task in os.listdir(f"/proc/{pids[i]}/task"):
                with open(f"/proc/{pids[i]}/task/{task}/children") as f:
                    pids.extend(int(c) for c in f.read().split())
        except OSError:
            pass
        i += 1
    return pids


def averaged(a: Any, b: Any) -> Any:
    """Two runs' results as one: numbers averaged (errors added up), everything else from the first."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: (v + b[k] if k == "errors" else averaged(v, b[k])) if k in b else v for k, v in a.items()}
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return (a + b) / 2
    return a


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process tree, from /proc/PID/stat (fields 14 and 15)."""
    return sum(cpu_split(pid))


def cpu_split(pid: int) -> tuple[float, float]:
    """User and system CPU of a process tree, apart (the kernel's share is the sockets and epoll)."""
    user = system = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            user += int(fields[11])
            system += int(fields[12])
        except OSError:
            pass
    return user / TICKS, system / TICKS


def rss_mb(pid: int) -> float:
    """Resident memory of a process tree, from /proc/PID/status."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (OSError, StopIteration):
            pass
    return total / 1024


class PeakRss:
    """Samples a process tree's RSS every 20 ms while running (VmHWM alone misses forked workers)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the process serving {url} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up in 30 s")


def wait_shared(url: str, processes: int) -> None:
    """Until ``/status`` reports the shared state connected with every process in the fleet (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/status", timeout=5) as response:
            status = json.loads(response.read())
        if status.get("shared_state") == "connected" and len(status["fleet"]["processes"]) >= processes:
            return
        time.sleep(0.1)
    raise SystemExit("occ did not report its shared state connected within 30 s")


def stop(proc: subprocess.Popen[Any] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def profiled(pid: int, out: str | None) -> Iterator[None]:
    """py-spy record of ``pid`` (and workers) for the duration of the block, as collapsed stacks in ``out``."""
    if out is None:
        yield
        return
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--subprocesses", "--rate", "250", "--format", "raw",
                             "--output", out, "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- load ------------------------------------------------------------------------------------------------

def measured(url: str, scenario: dict[str, Any], pids: dict[str, int], **extra: Any) -> dict[str, Any]:
    """One run of load.js, with the CPU each watched process spent while it measured (after its warm-up)."""
    spec = {k: v for k, v in scenario.items() if k != "name"}
    spec.update(url=url, **extra)
    proc = subprocess.Popen(["node", os.path.join(HERE, "load.js"), json.dumps(spec)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    try:
        proc.stdout.readline()  # {"phase": "measure"}: warm-up done
        before = {name: cpu_split(pid) for name, pid in pids.items()}
        line = proc.stdout.readline()
        after = {name: cpu_split(pid) for name, pid in pids.items()}
        proc.wait(timeout=60)
    finally:
        stop(proc)
    if proc.returncode != 0 or not line:
        raise SystemExit(f"load.js failed on {url} ({scenario['name']})")
    result = json.loads(line)
    for name in pids:
        user, system = (a - b for a, b in zip(after[name], before[name], strict=True))
        spent = user + system
        result[f"{name}CpuShare"] = spent / result["seconds"]
        result[f"{name}CpuPerRequestMs"] = spent * 1000 / max(1, result["requests"])
        result[f"{name}SysCpuPerRequestMs"] = system * 1000 / max(1, result["requests"])
    return result


def occ_config(port: int, fake_url: str, redis_url: str | None = None, ledger: str = "occ") -> dict[str, Any]:
    model = {"provider": "bench", "model_id": "bench-model", "wire_format": "openai"}
    shared = {"shared_state": {"url": redis_url, "key_prefix": f"bench-{os.getpid()}"}} if redis_url else {}
    return {
        **shared,
        "port": port,
        "enable_streaming_scenario_routing": True,
        "heartbeat_interval_ms": 5000,
        "providers": {"bench": {"base_url": f"{fake_url}/v1/chat/completions", "api_key": "dummy",
                                "protocol": "openai", "stream_timeout_ms": 60000, "streaming_timeout_ms": 600000}},
        "models": {name: dict(model) for name in ("default", "background", "fast", "think", "complex",
                                                   "long_context")},
        "logging": {"level": "warning"},
        # a ledger of its own, removed with the run: never the machine's real one (whose schema another
        # occ may have moved on, which would cost a warning and a retry every second)
        "usage": {"path": os.path.join(tempfile.gettempdir(), f"occ-bench-{os.getpid()}-{ledger}.sqlite")},
    }


def ccr_config(port: int, fake_url: str) -> dict[str, Any]:
    """claude-code-router 2.0 pointed at the same fake chat endpoint as occ, logging off (as occ's is at warning)."""
    return {"PORT": port, "HOST": "127.0.0.1", "LOG": False, "API_TIMEOUT_MS": 600000,
            "Providers": [{"name": "bench", "api_base_url": f"{fake_url}/v1/chat/completions", "api_key": "dummy",
                           "models": ["bench-model"]}],
            "Router": {name: "bench,bench-model" for name in ("default", "background", "think", "longContext")}}


# --- report ----------------------------------------------------------------------------------------------

def num(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def target_rows(results: dict[str, tuple[dict[str, Any], dict[str, Any]]], idle: float, peak: float) -> list[str]:
    """measure | floor | occ | added | target | met: the issue's targets, against this run's floor."""
    rows: list[tuple[str, float | None, float | None, str, str, bool | None, int]] = []

    def add(measure: str, scenario: str, get: Any, target: str, ok: Any, digits: int = 2) -> None:
        if scenario not in results:
            return
        floor, occ = (get(r) for r in results[scenario])
        added = None if floor is None or occ is None else occ - floor
        shown = f"{occ / floor:.0%} of floor" if "requests/s" in measure and floor else num(added, digits)
        rows.append((measure, floor, occ, shown, target, ok(floor, occ, added), digits))

    add("non-streaming p50 latency at c=1 (ms)", "non-stream c=1", lambda r: r["latency"]["p50"],
        "added <= 0.8 ms", lambda f, o, a: a is not None and a <= 0.8)
    add("non-streaming requests/s at c=32", "non-stream c=32", lambda r: r["rps"],
        ">= 1,600", lambda f, o, a: o >= 1600, 0)
    add("streaming 50x5ms time to first content p50 at c=1 (ms)", "stream 50x5ms c=1", lambda r: r["ttfc"]["p50"],
        "added <= 1.5 ms", lambda f, o, a: a is not None and a <= 1.5)
    add("streaming 50x5ms inter-event gap p99 at c=32 (ms)", "stream 50x5ms c=32", lambda r: r["gap"]["p99"],
        "added <= 1 ms", lambda f, o, a: a is not None and a <= 1)
    add("256 concurrent 50x5ms streams: p50 latency (ms)", "stream 50x5ms c=256", lambda r: r["latency"]["p50"],
        "added <= 100 ms", lambda f, o, a: a is not None and a <= 100)
    add("256 concurrent 50x5ms streams: errors", "stream 50x5ms c=256", lambda r: r["errors"],
        "0", lambda f, o, a: o == 0, 0)
    add("CPU per 50-delta stream at c=32 (ms)", "stream 50x5ms c=32", lambda r: r.get("occCpuPerRequestMs"),
        "<= 3 ms", lambda f, o, a: o <= 3)
    add("CPU per agentic stream at c=32 (ms)", "agentic c=32", lambda r: r.get("occCpuPerRequestMs"),
        "-", lambda f, o, a: None)
    add("agentic: time to first tool-input byte p50 at c=32 (ms)", "agentic c=32",
        lambda r: (r.get("ttfti") or {}).get("p50"), "-", lambda f, o, a: None)
    errors = sum(occ["errors"] for _, occ in results.values())
    rows.append(("errors, all scenarios", sum(f["errors"] for f, _ in results.values()), errors, "-", "0",
                 errors == 0, 0))
    rows.append(("occ memory idle (MB)", None, idle, "-", "<= 60", idle <= 60, 0))
    rows.append(("occ memory peak (MB)", None, peak, "-", "<= 100 (at 256 streams)", peak <= 100, 0))
    out = ["| measure | floor | occ | added | target | met |", "|---|---|---|---|---|---|"]
    for measure, floor, occ, added, target, ok, digits in rows:
        met = "-" if ok is None else ("yes" if ok else "**no**")
        out.append(f"| {measure} | {num(floor, digits)} | {num(occ, digits)} | {added} | {target} | {met} |")
    return out


def detail_rows(results: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    out = ["| scenario | run | req/s | p50 | p95 | p99 | TTFC p50 | gap p50 | gap p99 | errors "
           "| occ CPU/req ms | CPU share occ / fake / client |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, pair in results.items():
        for label, r in zip(("floor", "occ"), pair, strict=True):
            lat, ttfc, gap = r["latency"], r["ttfc"], r["gap"]
            share = f"{num(r.get('occCpuShare'))} / {num(r['fakeCpuShare'])} / {num(r['clientCpuShare'])}"
            out.append(f"| {name} | {label} | {num(r['rps'], 0)} | {num(lat['p50'])} | {num(lat['p95'])} "
                       f"| {num(lat['p99'])} | {num(ttfc['p50'])} | {num(gap['p50'])} | {num(gap['p99'])} "
                       f"| {r['errors']} | {num(r.get('occCpuPerRequestMs'))} | {share} |")
    return out


def stack_rows(stack: dict[str, dict[str, Any]],
               results: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    """The stack floor beside occ: what hypercorn + trio cost with no proxy logic."""
    out = ["| scenario | stack req/s | occ req/s | stack p50 | occ p50 | stack TTFC p50 | occ TTFC p50 "
           "| stack CPU/req ms | occ CPU/req ms | stack errors |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in stack.items():
        o = results[name][1]
        out.append(f"| {name} | {num(r['rps'], 0)} | {num(o['rps'], 0)} | {num(r['latency']['p50'])} "
                   f"| {num(o['latency']['p50'])} | {num(r['ttfc']['p50'])} | {num(o['ttfc']['p50'])} "
                   f"| {num(r.get('stackCpuPerRequestMs'))} | {num(o.get('occCpuPerRequestMs'))} | {r['errors']} |")
    return out


def ratio_rows(results: dict[str, tuple[dict[str, Any], dict[str, Any]]],
               others: dict[str, dict[str, dict[str, Any]]], mem: tuple[float, float],
               other_mem: dict[str, list[float]]) -> list[str]:
    """The issue's rows: each proxy's figure and occ's (and the baseline's) ratio to CCR's, from this run."""
    names = [n for n in ("baseline", "ccr") if n in others]

    def get(label: str, scenario: str, pick: Any) -> float | None:
        if scenario not in results:
            return None
        floor, occ = results[scenario]
        r = occ if label == "occ" else others[label].get(scenario)
        return None if r is None else pick(r, floor)

    rows = [
        ("CPU per 50-delta stream at c=32 (ms)", "stream 50x5ms c=32", lambda r, f: r.get("occCpuPerRequestMs"), True),
        ("  of which the kernel's (ms)", "stream 50x5ms c=32", lambda r, f: r.get("occSysCpuPerRequestMs"), True),
        ("256 streams 50x5ms: added p50 (ms)", "stream 50x5ms c=256",
         lambda r, f: r["latency"]["p50"] - f["latency"]["p50"], True),
        ("256 streams 50x5ms: TTFC p50 (ms)", "stream 50x5ms c=256", lambda r, f: r["ttfc"]["p50"], True),
        ("256 streams 50x5ms: errors", "stream 50x5ms c=256", lambda r, f: r["errors"], None),
        ("non-stream req/s at c=32", "non-stream c=32", lambda r, f: r["rps"], False),
        ("non-stream added p50 at c=1 (ms)", "non-stream c=1", lambda r, f: r["latency"]["p50"] - f["latency"]["p50"],
         True),
        ("stream TTFC p50 at c=1 (ms)", "stream 50x5ms c=1", lambda r, f: r["ttfc"]["p50"], True),
        ("CPU per agentic stream at c=32 (ms)", "agentic c=32", lambda r, f: r.get("occCpuPerRequestMs"), True),
        ("burst 50x0ms c=32 streams/s", "burst 50x0ms c=32", lambda r, f: r["rps"], False),
    ]
    head = "| row | occ | " + " | ".join(names) + " | occ / ccr |" + (" baseline / ccr |" if len(names) == 2 else "")
    out = [head, "|" + "---|" * (head.count("|") - 1)]
    for title, scenario, pick, _lower_better in rows:
        values = {label: get(label, scenario, pick) for label in ("occ", *names)}
        if values["occ"] is None:
            continue
        line = f"| {title} | " + " | ".join(num(values[label]) for label in ("occ", *names))
        ccr = values.get("ccr")
        for label in ("occ", "baseline") if len(names) == 2 else ("occ",):
            v = values.get(label)
            line += f" | {num(v / ccr) if v is not None and ccr else '-'}"
        out.append(line + " |")
    tail = " | - |" + (" - |" if len(names) == 2 else "")
    mem_line = f"| RSS idle -> peak (MB) | {mem[0]:.0f} -> {mem[1]:.0f} | " + " | ".join(
        f"{other_mem[n][0]:.0f} -> {other_mem[n][1]:.0f}" for n in names) + tail
    out.append(mem_line)
    return out


def others_detail_rows(others: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    out = ["| scenario | run | req/s | p50 | p99 | TTFC p50 | gap p99 | errors | CPU/req ms | CPU share |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for label, per in others.items():
        for name, r in per.items():
            lat = r["latency"]
            out.append(f"| {name} | {label} | {num(r['rps'], 0)} | {num(lat['p50'])} | {num(lat['p99'])} "
                       f"| {num(r['ttfc']['p50'])} | {num(r['gap']['p99'])} | {r['errors']} "
                       f"| {num(r.get('occCpuPerRequestMs'))} | {num(r.get('occCpuShare'))} |")
    return out


def capacity_rows(capacity: dict[str, dict[str, Any]]) -> list[str]:
    out = ["| fake upstream alone | req/s | p50 | CPU share fake / client | errors |", "|---|---|---|---|---|"]
    for name, r in capacity.items():
        out.append(f"| {name} | {num(r['rps'], 0)} | {num(r['latency']['p50'])} "
                   f"| {num(r['fakeCpuShare'])} / {num(r['clientCpuShare'])} | {r['errors']} |")
    return out


def error_notes(results: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    notes = []
    for name, pair in results.items():
        for label, r in zip(("floor", "occ"), pair, strict=True):
            for reason, count in r["reasons"]:
                notes.append(f"- {name} / {label}: {count} x {reason}")
    return notes


# --- main ------------------------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the requests (a smoke run, noisy)")
    parser.add_argument("--only", action="append", default=[], help="run only scenarios whose name contains this")
    parser.add_argument("--workers", type=int, default=1, help="occ serve --workers")
    parser.add_argument("--claude-code-headers", action="store_true",
                        help="the load client sends the 20 headers the real Claude Code CLI sends (default: 5)")
    parser.add_argument("--occ", default=os.path.join(os.path.dirname(sys.executable), "occ"),
                        help="the occ executable (default: next to this Python)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--profile", metavar="DIR", help="py-spy record occ during each scenario into DIR")
    parser.add_argument("--no-capacity", action="store_true", help="skip measuring the fake upstream alone")
    parser.add_argument("--shared-state", action="store_true",
                        help="start a redis-server on a free port and give occ shared_state on it")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="scale every scenario's request count by this (0.5: half the requests)")
    parser.add_argument("--ccr", metavar="CLI_JS", help="also measure claude-code-router from this dist/cli.js")
    parser.add_argument("--baseline", metavar="SRC_DIR",
                        help="also measure occ served from this source tree (PYTHONPATH), e.g. an older commit")
    parser.add_argument("--abba", action="store_true",
                        help="with --ccr/--baseline: each scenario in the order occ, others, others reversed, occ, "
                             "each proxy's two runs averaged (the order a scenario measures them in moves figures)")
    parser.add_argument("--stack", action="store_true",
                        help="also measure the stack floor (stack_floor.py: hypercorn + trio relaying bytes)")
    args = parser.parse_args()
    if shutil.which("node") is None:
        raise SystemExit("benchmarks need node (the fake upstream and the load client are Node programs)")
    scale = 0.1 if args.quick else args.time_scale
    scenarios = [dict(s, requests=max(s["concurrency"], int(s["requests"] * scale))) for s in SCENARIOS
                 if not args.only or any(o in s["name"] for o in args.only)]
    if args.claude_code_headers:
        scenarios = [dict(s, claude_code_headers=True) for s in scenarios]
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    load_before = os.getloadavg()

    fake = occ = stack = redis = None
    others: dict[str, subprocess.Popen[Any]] = {}  # "baseline", "ccr": measured beside occ
    other_urls: dict[str, str] = {}
    other_results: dict[str, dict[str, dict[str, Any]]] = {}
    other_mem: dict[str, list[float]] = {}
    temp_dirs: list[tempfile.TemporaryDirectory[str]] = []
    temp_files: list[str] = []
    config_file = None
    results: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    stack_results: dict[str, dict[str, Any]] = {}
    capacity: dict[str, dict[str, Any]] = {}
    try:
        fake = subprocess.Popen(["node", os.path.join(HERE, "fake_upstream.js"), "0"], stdout=subprocess.PIPE,
                                text=True)
        assert fake.stdout is not None
        fake_url = f"http://127.0.0.1:{int(fake.stdout.readline())}"
        if not args.no_capacity:
            for s in FAKE_CAPACITY:
                s = dict(s, requests=max(s["concurrency"], int(s["requests"] * scale)))
                capacity[s["name"]] = measured(fake_url, s, {"fake": fake.pid}, chat=True)

        redis_url = None
        if args.shared_state:
            binary = shutil.which("redis-server") or shutil.which("valkey-server")
            if binary is None:
                raise SystemExit("--shared-state needs redis-server (or valkey-server) on PATH")
            redis_port = free_port()
            redis = subprocess.Popen([binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
        port = free_port()
        with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="occ-bench-", delete=False) as f:
            json.dump(occ_config(port, fake_url, redis_url), f)
            config_file = f.name
        occ = subprocess.Popen([args.occ, "serve", "--config", config_file, "--port", str(port),
                                "--workers", str(args.workers)], stdout=subprocess.DEVNULL)
        occ_url = f"http://127.0.0.1:{port}"
        wait_http(f"{occ_url}/health", occ)
        if redis_url:
            wait_shared(occ_url, args.workers)
        if args.stack:
            stack_port = free_port()
            stack = subprocess.Popen([sys.executable, os.path.join(HERE, "stack_floor.py"), str(stack_port),
                                      fake_url.rsplit(":", 1)[1]], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
            stack_url = f"http://127.0.0.1:{stack_port}"
            wait_http(f"{stack_url}/health", stack)
        if args.baseline:
            base_port = free_port()
            env = dict(os.environ, PYTHONPATH=os.path.abspath(args.baseline))
            with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="occ-bench-", delete=False) as f:
                json.dump(occ_config(base_port, fake_url, redis_url, ledger="baseline"), f)
                base_config = f.name
            temp_files.append(base_config)
            others["baseline"] = subprocess.Popen(
                [sys.executable, "-c", "import sys; from occ.cli.main import main; sys.exit(main())", "serve",
                 "--config", base_config, "--port", str(base_port), "--workers", str(args.workers)],
                stdout=subprocess.DEVNULL, env=env, cwd=tempfile.gettempdir())
            other_urls["baseline"] = f"http://127.0.0.1:{base_port}"
            wait_http(f"{other_urls['baseline']}/health", others["baseline"])
        if args.ccr:
            ccr_port = free_port()
            home = tempfile.TemporaryDirectory(prefix="occ-bench-ccr-")
            temp_dirs.append(home)
            os.makedirs(os.path.join(home.name, ".claude-code-router"))
            with open(os.path.join(home.name, ".claude-code-router", "config.json"), "w") as f:
                json.dump(ccr_config(ccr_port, fake_url), f)
            others["ccr"] = subprocess.Popen(["node", os.path.abspath(args.ccr), "start"], stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, env=dict(os.environ, HOME=home.name),
                                             cwd=home.name)
            other_urls["ccr"] = f"http://127.0.0.1:{ccr_port}"
            wait_http(f"{other_urls['ccr']}/health", others["ccr"])
        time.sleep(1.0)
        idle = rss_mb(occ.pid)
        peak = idle
        for name, proc in others.items():
            other_mem[name] = [rss_mb(proc.pid), rss_mb(proc.pid)]
            other_results[name] = {}
        for s in scenarios:
            floor = measured(fake_url, s, {"fake": fake.pid})
            out = os.path.join(args.profile, s["name"].replace(" ", "_") + ".txt") if args.profile else None
            with PeakRss(occ.pid) as sampler, profiled(occ.pid, out):
                result = measured(occ_url, s, {"fake": fake.pid, "occ": occ.pid})
            peak = max(peak, sampler.peak)
            results[s["name"]] = (floor, result)
            if stack is not None:
                stack_results[s["name"]] = measured(stack_url, s, {"fake": fake.pid, "stack": stack.pid})
            for name, proc in others.items():
                with PeakRss(proc.pid) as sampler:
                    other_results[name][s["name"]] = measured(other_urls[name], s, {"fake": fake.pid, "occ": proc.pid})
                other_mem[name][1] = max(other_mem[name][1], sampler.peak)
            if args.abba and others:
                # the same again in the reverse order (... ccr, baseline, occ), and the two runs averaged:
                # the position in a scenario's sequence moves the figures (at c=256 the proxy measured first
                # showed ~3x the time to first content of the one measured after it, whichever it was)
                for name, proc in reversed(others.items()):
                    with PeakRss(proc.pid) as sampler:
                        again = measured(other_urls[name], s, {"fake": fake.pid, "occ": proc.pid})
                    other_mem[name][1] = max(other_mem[name][1], sampler.peak)
                    other_results[name][s["name"]] = averaged(other_results[name][s["name"]], again)
                with PeakRss(occ.pid) as sampler:
                    again = measured(occ_url, s, {"fake": fake.pid, "occ": occ.pid})
                peak = max(peak, sampler.peak)
                results[s["name"]] = (floor, averaged(result, again))
            print(f"{s['name']}: floor {floor['rps']:.0f} req/s, occ {result['rps']:.0f} req/s, "
                  f"errors {floor['errors']}/{result['errors']}", file=sys.stderr)
    finally:
        stop(occ)
        stop(stack)
        stop(fake)
        stop(redis)
        for proc in others.values():
            stop(proc)
        for home in temp_dirs:
            home.cleanup()
        for name in temp_files:
            os.unlink(name)
        if config_file:
            os.unlink(config_file)
        for name in os.listdir(tempfile.gettempdir()):
            if name.startswith(f"occ-bench-{os.getpid()}-"):
                os.unlink(os.path.join(tempfile.gettempdir(), name))

    commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--", "../occ"], capture_output=True,
                           text=True)
    print(f"commit {commit.stdout.strip()}{' (+ uncommitted occ changes)' if dirty.stdout.strip() else ''}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, {'--quick' if args.quick else 'full run'}, "
          f"occ workers {args.workers}{', shared_state on a local redis-server' if args.shared_state else ''}, "
          f"load average before/after {load_before[0]:.2f} / {os.getloadavg()[0]:.2f}\n")
    print("\n".join(target_rows(results, idle, peak)))
    print()
    print("\n".join(detail_rows(results)))
    if stack_results:
        print()
        print("\n".join(stack_rows(stack_results, results)))
    if capacity:
        print()
        print("\n".join(capacity_rows(capacity)))
    if others:
        print()
        print("\n".join(ratio_rows(results, other_results, (idle, peak), other_mem)))
        print()
        print("\n".join(others_detail_rows(other_results)))
    notes = error_notes(results)
    for label, per in other_results.items():
        notes += [f"- {name} / {label}: {count} x {reason}"
                  for name, r in per.items() for reason, count in r["reasons"]]
    if notes:
        print("\nErrors seen:\n" + "\n".join(notes))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "stack": stack_results, "capacity": capacity, "idle_mb": idle,
                       "peak_mb": peak, "others": other_results, "others_mb": other_mem,
                       "loadavg": os.getloadavg()}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
