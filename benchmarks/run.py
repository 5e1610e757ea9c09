"""Run the benchmark matrix against occ and against the floor, in one run, and print a table.

    python benchmarks/run.py [--quick] [--occ PATH_TO_OCC]

Starts the Node fake upstream (``fake_upstream.js``), starts ``occ serve`` pointed at its
chat-completions endpoint with full translation, routing, heartbeat and deadlines on, then runs
``load.js`` for each scenario twice: against occ, and against the fake's own Anthropic endpoint (the
floor: the same request answered directly). CPU time and RSS are read from occ's /proc entries.
Everything listens on 127.0.0.1 and is stopped at the end. Needs ``node``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))

#: (name, concurrency, requests, stream, x-bench, prompt bytes, tools, target)
SCENARIOS = [
    ("non-stream c=1", 1, 300, False, "deltas=50;delay=0", 20, 0, "added p50 <= 0.8 ms"),
    ("non-stream c=32", 32, 3000, False, "deltas=50;delay=0", 20, 0, ">= 1600 req/s"),
    ("stream 50x5ms c=1", 1, 20, True, "deltas=50;delay=5", 20, 0, "added TTFC <= 1.5 ms"),
    ("stream 50x5ms c=32", 32, 192, True, "deltas=50;delay=5", 20, 0, "gap p99 within 1 ms"),
    ("stream 50x5ms c=256", 256, 512, True, "deltas=50;delay=5", 20, 0, "added p50 <= 100 ms, 0 errors"),
    ("burst 50x0ms c=32", 32, 640, True, "deltas=50;delay=0", 20, 0, "-"),
    ("agentic c=32", 32, 192, True, "deltas=50;delay=5;agentic=1", 20000, 20, "-"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds user+sys, RSS MB) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
    return cpu, rss


def load(url: str, conc: int, total: int, stream: bool, xbench: str, prompt: int, tools: int) -> dict:
    out = subprocess.run(["node", os.path.join(HERE, "load.js"), url, str(conc), str(total), "1" if stream else "0",
                          xbench, str(prompt), str(tools)], capture_output=True, text=True, timeout=600, check=True)
    return json.loads(out.stdout)


def wait_http(url: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the requests")
    parser.add_argument("--occ", default=shutil.which("occ") or os.path.join(os.path.dirname(sys.executable), "occ"))
    args = parser.parse_args()
    if shutil.which("node") is None:
        raise SystemExit("benchmarks need node (the fake upstream and the load client are Node programs)")

    fake = subprocess.Popen(["node", os.path.join(HERE, "fake_upstream.js"), "0"], stdout=subprocess.PIPE, text=True)
    fake_port = int(fake.stdout.readline())
    fake_url = f"http://127.0.0.1:{fake_port}"
    port = free_port()
    config = {
        "port": port, "enable_streaming_scenario_routing": True, "heartbeat_interval_ms": 5000,
        "providers": {"bench": {"base_url": f"{fake_url}/v1/chat/completions", "api_key": "dummy",
                                "protocol": "openai", "stream_timeout_ms": 60000, "streaming_timeout_ms": 600000}},
        "models": {"default": {"provider": "bench", "model_id": "bench-model"}},
        "logging": {"level": "warning"},
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    occ = subprocess.Popen([args.occ, "serve", "--config", f.name], stdout=subprocess.DEVNULL)
    rows = []
    try:
        occ_url = f"http://127.0.0.1:{port}"
        wait_http(f"{occ_url}/health")
        cpu0, rss_idle = proc_stats(occ.pid)
        rss_peak = rss_idle
        for name, conc, total, stream, xbench, prompt, tools, target in SCENARIOS:
            total = max(conc, total // 10) if args.quick else total
            floor = load(fake_url, conc, total, stream, xbench, prompt, tools)
            cpu_before, _ = proc_stats(occ.pid)
            result = load(occ_url, conc, total, stream, xbench, prompt, tools)
            cpu_after, rss = proc_stats(occ.pid)
            rss_peak = max(rss_peak, rss)
            rows.append((name, floor, result, (cpu_after - cpu_before) * 1000 / max(1, result["requests"]), target))
        cpu_total, _ = proc_stats(occ.pid)
    finally:
        occ.terminate()
        fake.terminate()
        occ.wait(timeout=20)
        fake.wait(timeout=5)
        os.unlink(f.name)

    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:.2f}"

    print("| scenario | req/s floor | req/s occ | p50 floor | p50 occ | added p50 (ms) | TTFC floor | TTFC occ "
          "| gap p99 floor | gap p99 occ | errors | occ CPU/req (ms) | target |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, floor, result, cpu, target in rows:
        print(f"| {name} | {floor['rps']:.0f} | {result['rps']:.0f} | {ms(floor['p50'])} | {ms(result['p50'])} | "
              f"{ms(result['p50'] - floor['p50'])} | {ms(floor['ttfc50'])} | {ms(result['ttfc50'])} | "
              f"{ms(floor['gap99'])} | {ms(result['gap99'])} | {result['errors']} | {cpu:.2f} | {target} |")
    print(f"\nocc memory: idle {rss_idle:.0f} MB, peak {rss_peak:.0f} MB; occ CPU total {cpu_total - cpu0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
