"""Two occ source trees side by side, their requests alternating in short batches: a before/after figure
that holds on a noisy machine.

On this 2-core VM the same run moves by 15-30% from one minute to the next, more than most changes to the
request path are worth. Here both trees serve at once (``occ serve`` from each tree's PYTHONPATH, one fake
upstream), and the client sends a batch to one, then to the other, in ABBA order, many times. Each batch's
CPU is read from that server's /proc around the batch, so a slow minute costs both trees alike, and the
figure is the median of the paired differences (each B batch against the A batch beside it). CPU is the
threads' time on a CPU from /proc/PID/task/*/schedstat, in ns.

Two processes of the same tree differ by up to ±5% in CPU per request, for the process's life (measured
with this script, A against A: hash seeds, memory layout, which core). So each ``--rounds`` starts both
servers afresh (in alternating order), and the figure is the median over the rounds of each round's
median paired difference.

Prints, per round, the paired difference; then per tree the median CPU per request (per stream with
``--stream``) and the time to first content, and the difference over all rounds with its range.

usage: python benchmarks/ab.py A_TREE B_TREE [--stream] [--concurrency C] [--batch N] [--pairs P] [--rounds R]
                               [--delay MS] [--claude-code-headers]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import trio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run import free_port, occ_config, stop, wait_http  # noqa: E402


def cpu_ns(pid: int) -> int:
    """Time on a CPU of every thread of ``pid``, in ns (/proc/PID/task/*/schedstat: finer than CPU ticks)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:  # a thread that ended meanwhile
            pass
    return total


def start(tree: str, fake_url: str, label: str, temp_files: list[str]) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix="occ-ab-", delete=False) as f:
        json.dump(occ_config(port, fake_url, ledger=f"ab-{label}"), f)
    temp_files.append(f.name)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from occ.cli.main import main; sys.exit(main())", "serve",
         "--config", f.name, "--port", str(port)],
        stdout=subprocess.DEVNULL, env=dict(os.environ, PYTHONPATH=os.path.abspath(tree)),
        cwd=tempfile.gettempdir())
    wait_http(f"http://127.0.0.1:{port}/health", proc)
    return proc, port


class Client:
    """Keep-alive HTTP/1.1 connections to one server; a connection the server closes (keep-alive's request
    limit) is opened again."""

    def __init__(self, port: int, request: bytes, concurrency: int) -> None:
        self.port, self.request, self.concurrency = port, request, concurrency
        self.streams: list[trio.SocketStream | None] = [None] * concurrency
        self.first_content: list[float] = []

    async def exchange(self, slot: int) -> None:
        stream = self.streams[slot]
        if stream is None:
            stream = self.streams[slot] = await trio.open_tcp_stream("127.0.0.1", self.port)
        started = time.perf_counter()
        await stream.send_all(self.request)
        data = b""
        with trio.fail_after(30):
            while b"\r\n\r\n" not in data:
                part = await stream.receive_some(65536)
                if not part:
                    raise RuntimeError("the server closed the connection mid-response")
                data += part
            head, _, tail = data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
            lowered = head.lower()
            seen = False
            if b"transfer-encoding: chunked" in lowered:
                while not tail.endswith(b"\r\n0\r\n\r\n"):
                    if not seen and b"content_block_delta" in tail:
                        seen = True
                        self.first_content.append(time.perf_counter() - started)
                    part = await stream.receive_some(65536)
                    if not part:
                        raise RuntimeError("the server closed the connection mid-stream")
                    tail = tail[-64:] + part
            else:
                length = int(lowered.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
                while len(tail) < length:
                    part = await stream.receive_some(65536)
                    if not part:
                        raise RuntimeError("the server closed the connection mid-body")
                    tail += part
        if b"connection: close" in lowered:
            await stream.aclose()
            self.streams[slot] = None

    async def batch(self, requests: int) -> None:
        left = requests

        async def worker(slot: int) -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await self.exchange(slot)

        async with trio.open_nursery() as nursery:
            for slot in range(self.concurrency):
                nursery.start_soon(worker, slot)

    async def close(self) -> None:
        for stream in self.streams:
            if stream is not None:
                await stream.aclose()


def quartiles(values: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else values * 3
    return q[0], statistics.median(values), q[2]


#: the request head of a plain client, and the one the real Claude Code CLI sends (../shared/claude-code-client.md,
#: section 2: 2.1.331's headers, secrets and ids replaced by placeholders of their length)
MINIMAL_HEAD = (b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                b"anthropic-version: 2023-06-01\r\n")
CLAUDE_CODE_HEAD = (
    b"POST /v1/messages?beta=true HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
    b"Content-Type: application/json\r\nUser-Agent: claude-cli/2.1.331 (external, sdk-cli)\r\nx-app: cli\r\n"
    b"X-Claude-Code-Session-Id: 00000000-0000-4000-8000-000000000000\r\nanthropic-version: 2023-06-01\r\n"
    b"anthropic-beta: claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27\r\n"
    b"anthropic-dangerous-direct-browser-access: true\r\nx-api-key: sk-ant-bench-0000000000000000000000000000\r\n"
    b"X-Stainless-Lang: js\r\nX-Stainless-Runtime: node\r\nX-Stainless-Runtime-Version: v26.0.0\r\n"
    b"X-Stainless-OS: Linux\r\nX-Stainless-Arch: x64\r\nX-Stainless-Package-Version: 0.128.0\r\n"
    b"X-Stainless-Retry-Count: 0\r\nX-Stainless-Timeout: 600\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Connection: keep-alive\r\n")


async def measure(args: argparse.Namespace, pids: dict[str, int], ports: dict[str, int],
                  totals: dict[str, list[float]]) -> float:
    """One round: warm both servers up, then ``--pairs`` ABBA pairs of batches; the round's median paired
    difference (B - A) in us. CPU per request and first-content times go into ``totals``."""
    marker = f"bench:deltas=50,delay={args.delay},agentic=0"
    body = json.dumps({"model": "bench-model", "stream": args.stream, "max_tokens": 100,
                       "messages": [{"role": "user", "content": marker + " " + "x" * 160}]}).encode()
    head = CLAUDE_CODE_HEAD if args.claude_code_headers else MINIMAL_HEAD
    request = head + b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    clients = {label: Client(port, request, args.concurrency) for label, port in ports.items()}
    for client in clients.values():  # warm-up: connections, caches, the pool
        await client.batch(max(args.batch // 2, args.concurrency))
        client.first_content.clear()
    per: dict[str, list[float]] = {"A": [], "B": []}
    for pair in range(args.pairs):
        for label in ("A", "B") if pair % 2 == 0 else ("B", "A"):
            before = cpu_ns(pids[label])
            await clients[label].batch(args.batch)
            per[label].append((cpu_ns(pids[label]) - before) / args.batch / 1e3)
    for label, client in clients.items():
        await client.close()
        totals[label].extend(per[label])
        totals[label + " first"].extend(client.first_content)
    return statistics.median(b - a for a, b in zip(per["A"], per["B"], strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("a", help="source tree A (the before), e.g. a `git archive` of the old commit")
    parser.add_argument("b", help="source tree B (the after)")
    parser.add_argument("--stream", action="store_true", help="50-delta streams instead of one JSON answer")
    parser.add_argument("--delay", type=int, default=0, help="ms between streamed deltas (default 0)")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--batch", type=int, default=300, help="requests per batch")
    parser.add_argument("--pairs", type=int, default=12, help="ABBA pairs of batches a round")
    parser.add_argument("--rounds", type=int, default=4, help="fresh server processes each round")
    parser.add_argument("--claude-code-headers", action="store_true",
                        help="send the 20 headers the real Claude Code CLI sends (default: 4)")
    args = parser.parse_args()
    temp_files: list[str] = []
    fake = subprocess.Popen(["node", os.path.join(HERE, "fake_upstream.js"), "0"], stdout=subprocess.PIPE,
                            text=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        assert fake.stdout is not None
        fake_url = f"http://127.0.0.1:{int(fake.stdout.readline())}"
        totals: dict[str, list[float]] = {"A": [], "B": [], "A first": [], "B first": []}
        rounds: list[float] = []
        what = "stream" if args.stream else "request"
        print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
        for index in range(args.rounds):
            ports: dict[str, int] = {}
            for label in ("A", "B") if index % 2 == 0 else ("B", "A"):
                procs[label], ports[label] = start(args.a if label == "A" else args.b, fake_url, label, temp_files)
            rounds.append(trio.run(measure, args, {label: proc.pid for label, proc in procs.items()}, ports, totals))
            for label in ("A", "B"):
                stop(procs.pop(label))
            print(f"round {index}: B - A {rounds[-1]:+,.0f} us per {what}", flush=True)
        print(f"load average {os.getloadavg()[0]:.2f}")
        for label, tree in (("A", args.a), ("B", args.b)):
            line = (f"{label} {tree}: CPU/{what} median {statistics.median(totals[label]):,.0f} us, mean "
                    f"{statistics.fmean(totals[label]):,.0f} us (a cost made once in a while, such as the ledger's "
                    f"flush, is in the mean only)")
            if totals[label + " first"]:
                low, mid, high = quartiles([f * 1e3 for f in totals[label + " first"]])
                line += f", time to first content p25/p50/p75 {low:.2f}/{mid:.2f}/{high:.2f} ms"
            print(line)
        mid = statistics.median(rounds)
        print(f"B - A per {what}: median of {args.rounds} rounds {mid:+,.0f} us "
              f"({mid / statistics.median(totals['A']) * 100:+.1f}%), rounds from {min(rounds):+,.0f} to "
              f"{max(rounds):+,.0f}; {args.pairs} pairs of {args.batch} a round, c={args.concurrency}")
    finally:
        for proc in procs.values():
            stop(proc)
        stop(fake)
        for name in temp_files:
            os.unlink(name)
        for label in ("A", "B"):
            for suffix in ("", "-wal", "-shm"):
                path = os.path.join(tempfile.gettempdir(), f"occ-bench-{os.getpid()}-ab-{label}.sqlite{suffix}")
                if os.path.exists(path):
                    os.unlink(path)


if __name__ == "__main__":
    main()
