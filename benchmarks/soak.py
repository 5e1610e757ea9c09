"""Soak: many concurrent streams for a long time, with the upstream and the clients misbehaving on purpose.

    python benchmarks/soak.py [--duration 600] [--concurrency 256] [--seed 1] [--json FILE]

Starts a fake upstream (this file, ``--serve-fake``, in its own process: raw HTTP/1.1 on trio, chat
completions) and ``occ serve`` with a two-model chain (``model-a``, fallback ``model-b``), then keeps
``--concurrency`` streaming requests in flight for ``--duration`` seconds. Each request draws a kind:

* ``ok``: 30 text deltas, 100 ms apart;
* ``disconnect``: the same, and the client hangs up at a random moment;
* ``5xx``, ``stall``, ``comments``: the request's *first* upstream attempt answers 503, or sends its head
  and then nothing (``stream_timeout_ms`` is 3 s), or sends only SSE comments (``payload_timeout_ms`` is
  4 s); its next attempt, on whichever model, is healthy. So an upstream is always healthy for every
  request, breakers open and close all the time on both models, and panic mode is exercised.

It checks, and prints (``--json`` writes them too):

* every stream that was not hung up on follows the Anthropic grammar (``tests/support/anthropic_checker``)
  and says exactly the text its healthy attempt sent: **invalid streams** must be 0;
* **failed requests** (a non-200 or an ``error`` event, not counting client hang-ups), and among them those
  that failed **without an upstream attempt** (the fake never saw their body): must be 0;
* the fake's own count of request bodies against occ's count of requests written whole
  (``/status`` ``upstream_connections.sent``): must be equal (no silent resend, no attempt lost). occ's
  ``occ_upstream_attempts_total`` (attempts started) is printed too: it may exceed both by the attempts a
  client's hang-up cancelled before their request went out;
* occ's RSS and open file descriptors idle, after the warm-up and at the end (load stopped and drained).

Everything listens on 127.0.0.1; every wait is bounded; both child processes are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from functools import partial
from typing import Any

import trio

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from support.anthropic_checker import check_stream  # noqa: E402  (the tests' strict grammar checker)

DELTAS, DELAY_S = 30, 0.1
KINDS = [("ok", 55), ("disconnect", 10), ("5xx", 15), ("stall", 10), ("comments", 10)]


# -- the fake upstream (its own process) -----------------------------------------------------------


class Fake:
    def __init__(self) -> None:
        self.bodies = 0
        self.attempts: Counter[str] = Counter()

    async def handle(self, stream: trio.SocketStream) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                if head.startswith(b"GET /stats"):
                    body = json.dumps({"bodies": self.bodies, "attempts": self.attempts}).encode()
                    await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                                          b"content-length: %d\r\n\r\n%s" % (len(body), body))
                    continue
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                while len(buf) < length:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    buf += data
                body, buf = buf[:length], buf[length:]
                self.bodies += 1
                if not await self.answer(stream, json.loads(body)):
                    return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return

    async def answer(self, stream: trio.SocketStream, request: dict[str, Any]) -> bool:
        """Answer one request; False when the connection is done for."""
        prompt = request["messages"][-1]["content"]
        if isinstance(prompt, list):
            prompt = "".join(b.get("text", "") for b in prompt if isinstance(b, dict))
        marker = dict(part.split("=", 1) for part in prompt.split("soak:", 1)[1].split()[0].split(","))
        uid, kind = marker["uid"], marker["kind"]
        self.attempts[uid] += 1
        first = self.attempts[uid] == 1
        if first and kind == "5xx":
            body = b'{"error": {"message": "soak: upstream 503", "type": "server_error"}}'
            await stream.send_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                                  b"content-length: %d\r\n\r\n%s" % (len(body), body))
            return True
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                              b"transfer-encoding: chunked\r\n\r\n")

        async def event(data: str) -> None:
            frame = f"data: {data}\n\n".encode() if not data.startswith(":") else f"{data}\n\n".encode()
            await stream.send_all(b"%x\r\n%s\r\n" % (len(frame), frame))

        def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
            return json.dumps({"id": uid, "object": "chat.completion.chunk", "model": request["model"],
                               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        if first and kind == "stall":
            await event(chunk({"role": "assistant"}))
            await trio.sleep(60)  # occ's stall guard gives up long before; the write then fails
            return False
        if first and kind == "comments":
            for _ in range(300):
                await event(": keep-alive")
                await trio.sleep(0.2)
            return False
        start = trio.current_time()
        await event(chunk({"role": "assistant"}))
        for i in range(DELTAS):
            await trio.sleep_until(start + (i + 1) * DELAY_S)
            await event(chunk({"content": f"{uid}:{i} "}))
        await event(chunk({}, "stop"))
        await event(json.dumps({"id": uid, "choices": [], "usage": {"prompt_tokens": 50,
                                                                     "completion_tokens": DELTAS}}))
        await event("[DONE]")
        await stream.send_all(b"0\r\n\r\n")
        return True


async def serve_fake(port_file: str) -> None:
    fake = Fake()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, fake.handle, 0, host="127.0.0.1"))
        with open(port_file, "w") as f:
            f.write(str(listeners[0].socket.getsockname()[1]))


# -- the load --------------------------------------------------------------------------------------


class Tally:
    def __init__(self) -> None:
        self.kinds: Counter[str] = Counter()
        self.valid = 0
        self.invalid: list[str] = []
        self.failed: list[tuple[str, str]] = []  # (uid, why)
        self.hung_up = 0


def complete(raw: bytes) -> bool:
    """A whole HTTP/1.1 response (hypercorn may keep the connection open after it)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    lowered = head.lower()
    if b"transfer-encoding: chunked" in lowered:
        return rest.endswith(b"0\r\n\r\n")
    if b"content-length:" in lowered:
        return len(rest) >= int(lowered.split(b"content-length:")[1].split(b"\r\n")[0])
    return False


def parse_response(raw: bytes) -> tuple[int, bytes]:
    head, _, rest = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" not in head.lower():
        return status, rest
    body = b""
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            break
        body += rest[:size]
        rest = rest[size + 2:]
    return status, body


async def one(url: tuple[str, int], uid: str, kind: str, hang_up_s: float | None, tally: Tally) -> None:
    payload = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 200, "stream": True,
                          "messages": [{"role": "user", "content": f"soak:uid={uid},kind={kind} say it"}]}).encode()
    head = (f"POST /v1/messages HTTP/1.1\r\nhost: {url[0]}:{url[1]}\r\ncontent-type: application/json\r\n"
            f"connection: close\r\ncontent-length: {len(payload)}\r\n\r\n").encode()
    raw = b""
    try:
        stream = await trio.open_tcp_stream(*url)
    except OSError as exc:
        tally.failed.append((uid, f"connect: {exc}"))
        return
    async with stream:
        with trio.move_on_after(hang_up_s if hang_up_s is not None else 60) as scope:
            try:
                await stream.send_all(head + payload)
                while not complete(raw) and (data := await stream.receive_some(65536)):
                    raw += data
            except (trio.BrokenResourceError, OSError) as exc:
                tally.failed.append((uid, f"connection broke: {exc!r}"))
                return
    if hang_up_s is not None and scope.cancelled_caught:
        tally.hung_up += 1
        return
    if scope.cancelled_caught:
        tally.failed.append((uid, "no complete answer within 60 s"))
        return
    status, body = parse_response(raw)
    if status != 200:
        tally.failed.append((uid, f"HTTP {status}: {body[:200]!r}"))
        return
    if b"event: error" in body:
        tally.failed.append((uid, f"error event: {body[body.find(b'event: error'):][:200]!r}"))
        return
    try:
        message = check_stream(body)
        text = "".join(b.get("text", "") for b in message["content"] if b.get("type") == "text")
        expected = "".join(f"{uid}:{i} " for i in range(DELTAS))
        assert text == expected, f"text differs: {text[:80]!r}"
    except (AssertionError, ValueError, KeyError) as exc:
        tally.invalid.append(f"{uid}: {exc}"[:300])
        return
    tally.valid += 1


async def user(index: int, url: tuple[str, int], end: float, rng: random.Random, tally: Tally) -> None:
    n = 0
    names = [k for k, _ in KINDS]
    weights = [w for _, w in KINDS]
    while trio.current_time() < end:
        kind = rng.choices(names, weights)[0]
        tally.kinds[kind] += 1
        hang_up = rng.uniform(0.05, DELTAS * DELAY_S) if kind == "disconnect" else None
        await one(url, f"u{index}n{n}", kind, hang_up, tally)
        n += 1


# -- occ, measured from outside ---------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def http_get(url: tuple[str, int], path: str) -> bytes:
    def get() -> bytes:
        with urllib.request.urlopen(f"http://{url[0]}:{url[1]}{path}", timeout=10) as response:
            return response.read()

    return await trio.to_thread.run_sync(get)


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") or line.startswith(name + " "))


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    work = tempfile.mkdtemp(prefix="occ-soak-")
    port_file = os.path.join(work, "fake.port")
    fake = subprocess.Popen([sys.executable, __file__, "--serve-fake", port_file])
    occ_proc: subprocess.Popen[bytes] | None = None
    try:
        with trio.fail_after(20):
            while not os.path.exists(port_file) or not open(port_file).read():
                await trio.sleep(0.05)
        fake_url = ("127.0.0.1", int(open(port_file).read()))
        config = {
            "host": "127.0.0.1", "port": 0, "enable_streaming_scenario_routing": True,
            "logging": {"level": args.log_level}, "heartbeat_interval_ms": 5000,
            "providers": {"soak": {"base_url": f"http://127.0.0.1:{fake_url[1]}/v1/chat/completions",
                                   "api_key": "sk-soak-dummy", "protocol": "openai",
                                   "stream_timeout_ms": 3000, "payload_timeout_ms": 4000}},
            "models": {"default": {"provider": "soak", "model_id": "model-a"}},
            "fallbacks": {"default": [{"provider": "soak", "model_id": "model-b"}]},
        }
        with open(os.path.join(work, "occ.json"), "w") as f:
            json.dump(config, f)
        log = open(os.path.join(work, "occ.log"), "wb")
        occ_proc = subprocess.Popen([sys.executable, "-m", "occ.cli.main", "serve", "--config",
                                     os.path.join(work, "occ.json")], stdout=subprocess.PIPE, stderr=log,
                                    cwd=ROOT, env={**os.environ, "HOME": work})
        line = await trio.to_thread.run_sync(occ_proc.stdout.readline)
        port = int(line.decode().split("listening on ")[1].split()[0].rsplit(":", 1)[1])
        url = ("127.0.0.1", port)
        pid = occ_proc.pid
        figures: dict[str, Any] = {"duration_s": args.duration, "concurrency": args.concurrency,
                                   "seed": args.seed, "rss_kb": {}, "fds": {}, "work_dir": work}
        figures["rss_kb"]["idle"], figures["fds"]["idle"] = rss_kb(pid), fds(pid)
        tally = Tally()
        rng = random.Random(args.seed)
        started = time.monotonic()
        end = trio.current_time() + args.duration
        warm = min(15.0, args.duration / 4)
        async with trio.open_nursery() as nursery:
            for i in range(args.concurrency):
                nursery.start_soon(user, i, url, end, random.Random(rng.random()), tally)
            await trio.sleep(warm)
            figures["rss_kb"]["start"], figures["fds"]["start"] = rss_kb(pid), fds(pid)
            while trio.current_time() < end:
                await trio.sleep(min(10.0, max(0.0, end - trio.current_time())))
                print(f"  {time.monotonic() - started:5.0f}s  valid {tally.valid}  invalid {len(tally.invalid)}  "
                      f"failed {len(tally.failed)}  hung up {tally.hung_up}  rss {rss_kb(pid) // 1024} MiB  "
                      f"fds {fds(pid)}", flush=True)
        figures["load_s"] = round(time.monotonic() - started, 1)
        with trio.move_on_after(30):  # occ drains what the load left (stalled attempts time out in 4 s)
            while json.loads(await http_get(url, "/status"))["in_flight"]:
                await trio.sleep(0.5)
        await trio.sleep(6)  # past the pool's 4 s idle expiry, so its sweep has run
        figures["rss_kb"]["end"], figures["fds"]["end"] = rss_kb(pid), fds(pid)
        metrics = (await http_get(url, "/metrics")).decode()
        status = json.loads(await http_get(url, "/status"))
        stats = json.loads(await http_get(fake_url, "/stats"))
        seen = stats["attempts"]
        figures.update({
            "requests": sum(tally.kinds.values()), "kinds": dict(tally.kinds), "valid_streams": tally.valid,
            "invalid_streams": len(tally.invalid), "invalid_examples": tally.invalid[:5],
            "hung_up": tally.hung_up, "failed": len(tally.failed), "failed_examples": tally.failed[:5],
            "failed_without_upstream_attempt": sum(1 for uid, _ in tally.failed if not seen.get(uid)),
            "upstream_bodies": stats["bodies"], "occ_requests_sent": status["upstream_connections"]["sent"],
            "occ_attempts_started": int(metric(metrics, "occ_upstream_attempts_total")),
            "breaker_opened": int(sum(float(x.rsplit(" ", 1)[1]) for x in metrics.splitlines()
                                      if x.startswith("occ_breaker_transitions_total") and 'to="opened"' in x)),
            "panic_routed": int(metric(metrics, "occ_panic_routed_total")),
        })
        return figures
    finally:
        for proc in (occ_proc, fake):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load (default 600)")
    parser.add_argument("--concurrency", type=int, default=256, help="streams in flight (default 256)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--log-level", default="warning", help="occ's log level (its log is in the work dir)")
    parser.add_argument("--serve-fake", metavar="PORT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        trio.run(serve_fake, args.serve_fake)
        return 0
    figures = trio.run(soak, args)
    print(json.dumps(figures, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    ok = (figures["invalid_streams"] == 0 and figures["failed_without_upstream_attempt"] == 0
          and figures["failed"] == 0 and figures["upstream_bodies"] == figures["occ_requests_sent"])
    print("PASS" if ok else "FAIL", "(invalid streams 0, failed 0 and none without an upstream attempt, "
          "upstream bodies == occ requests sent)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
