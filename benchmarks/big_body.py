"""Memory of one large request: occ's peak RSS while it takes a ~30 MB body and sends it upstream.

Starts a fake chat-completions upstream (a stdlib HTTP server in a thread of this process, which reads
and discards what occ sends) and ``occ serve`` in a subprocess, warms occ up with a small request, then
sends one Claude Code-shaped body (many turns of large tool results) and samples occ's RSS every 10 ms
(``/proc/PID/status``; VmHWM too, the kernel's own peak). Prints RSS before, peak, while the upstream
takes its time to answer (what a request holds for the length of a model's answer) and after, in MB,
and the peak's multiple of the body.

Also checks the limit: a body announced (``Content-Length``) above ``max_body_bytes`` must be refused
before it is read, so it reports how many bytes the client got to send before the 413 arrived.

    /work/venv/bin/python benchmarks/big_body.py [--mb 30] [--rounds 3]

Standard library only; everything listens on 127.0.0.1 and is stopped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import free_port, stop, wait_http

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ANSWER = json.dumps({
    "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}).encode()


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: occ's pid, and its RSS (MB) sampled while it waits for this answer: what a request holds for
    #: as long as the model takes
    occ_pid: int | None = None
    held_mb: float = 0.0

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        while length:
            length -= len(self.rfile.read(min(length, 1 << 20)))
        if Upstream.occ_pid is not None:
            time.sleep(0.3)
            Upstream.held_mb = status_kb(Upstream.occ_pid, "VmRSS") / 1024
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(ANSWER)))
        self.end_headers()
        self.wfile.write(ANSWER)

    def log_message(self, *args: Any) -> None:
        pass


def status_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def big_request(total_bytes: int, result_bytes: int) -> bytes:
    """A Claude Code-like history: user/assistant turns, each tool result ``result_bytes`` of source-like
    text (large results: few, big strings; small ones: many dicts, the parse's overhead shows)."""
    line = "    def handler(self, request):  # a line of code as a tool would read it\n"
    chunk = (line * (result_bytes // len(line) + 1))[:result_bytes]
    def turn(i: int) -> list[dict[str, Any]]:
        call = {"type": "tool_use", "id": f"toolu_{i:06d}", "name": "Read", "input": {"file_path": f"/src/f{i}.py"}}
        result = {"type": "tool_result", "tool_use_id": f"toolu_{i:06d}", "content": chunk}
        return [{"role": "assistant", "content": [call]}, {"role": "user", "content": [result]}]

    per_turn = len(json.dumps(turn(0))) + 2
    messages: list[dict[str, Any]] = [{"role": "user", "content": "read the files"}]
    for i in range(total_bytes // per_turn):
        messages += turn(i)
    messages.append({"role": "user", "content": "now summarise"})
    return json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": messages}).encode()


def post(port: int, body: bytes) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", "/v1/messages", body=body, headers={"content-type": "application/json"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def announced_too_large(port: int, announced: int) -> tuple[int | None, int]:
    """Announce ``announced`` bytes and send zeros until occ answers: (status, bytes sent by then)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST /v1/messages HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                 b"content-length: %d\r\n\r\n" % announced)
    sock.setblocking(False)
    sent, block, reply = 0, b"0" * 65536, b""
    deadline = time.monotonic() + 30
    while sent < announced and time.monotonic() < deadline:
        try:
            reply += sock.recv(65536)
            if reply:
                break
        except BlockingIOError:
            pass
        try:
            sent += sock.send(block[: announced - sent])
        except BlockingIOError:
            time.sleep(0.001)
        except OSError:
            break
    sock.setblocking(True)
    try:
        while b"\r\n" not in reply:
            more = sock.recv(65536)
            if not more:
                break
            reply += more
    except OSError:
        pass
    sock.close()
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/") else None
    return status, sent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=30, help="size of the large request (default 30 MB)")
    parser.add_argument("--rounds", type=int, default=3, help="large requests to send (default 3)")
    parser.add_argument("--result-kb", type=float, default=100,
                        help="size of each tool result in the history (default 100 KB; try 2 for many small)")
    args = parser.parse_args()

    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    fake = f"http://127.0.0.1:{upstream.server_address[1]}"
    port = free_port()
    config = {"host": "127.0.0.1", "port": port,  # max_body_bytes: the default, 32 MiB
              "providers": {"bench": {"base_url": f"{fake}/v1/chat/completions", "api_key": "bench-key-0000",
                                      "protocol": "openai"}},
              "models": {"default": {"provider": "bench", "model_id": "m"}},
              "logging": {"level": "warning"}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.Popen([sys.executable, "-m", "occ.cli.main", "serve", "--config", f.name],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    Upstream.occ_pid = proc.pid
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        small = json.dumps({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
        for _ in range(3):
            assert post(port, small.encode()) == 200
        body = big_request(int(args.mb * 1_000_000), int(args.result_kb * 1000))
        size_mb = len(body) / 1e6
        print(f"body: {size_mb:.1f} MB, {body.count(b'tool_result')} tool results")
        for n in range(args.rounds):
            before = status_kb(proc.pid, "VmRSS") / 1024
            peak, done = before, threading.Event()

            def sample(done: threading.Event = done) -> None:
                nonlocal peak
                while not done.wait(0.01):
                    peak = max(peak, status_kb(proc.pid, "VmRSS") / 1024)

            sampler = threading.Thread(target=sample)
            sampler.start()
            started = time.monotonic()
            status = post(port, body)
            took = time.monotonic() - started
            done.set()
            sampler.join()
            time.sleep(0.5)
            after = status_kb(proc.pid, "VmRSS") / 1024
            hwm = status_kb(proc.pid, "VmHWM") / 1024
            print(f"round {n + 1}: HTTP {status} in {took:.2f}s; RSS before {before:.0f} MB, peak {peak:.0f} MB "
                  f"(+{peak - before:.0f} MB = {(peak - before) / size_mb:.1f}x the body), while the upstream answers "
                  f"{Upstream.held_mb:.0f} MB, after {after:.0f} MB; "
                  f"VmHWM {hwm:.0f} MB")
        status, sent = announced_too_large(port, 50 * 1024 * 1024)
        print(f"50 MB announced (limit 32 MiB): HTTP {status} after {sent / 1e6:.1f} MB sent")
    finally:
        stop(proc)
        upstream.shutdown()
        os.unlink(f.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
