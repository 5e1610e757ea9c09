"""Operational commands: ``occ status`` (a running instance as a table), ``occ reset-breakers MODEL``
(close a model's breaker in a running instance) and ``occ code`` (Claude Code pointed at occ, starting occ in
the background when none answers)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["add_ops_commands", "format_status", "run_ops_command"]

#: Variables that stop Claude Code calling home for non-essential traffic.
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_ERROR_REPORTING": "1",
}


def add_ops_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """``status``, ``reset-breakers`` and ``code``, with the ``--config``/``--debug`` options every
    subcommand shares."""
    status = sub.add_parser("status", parents=[common], help="show a running occ's models, breakers and latencies",
                            description="Fetch /status from a running occ and print it as a table.")
    status.add_argument("--url", default=None, help="occ's address (default: http://HOST:PORT from the config)")
    status.add_argument("--json", action="store_true", help="print the raw JSON")

    reset = sub.add_parser("reset-breakers", parents=[common], help="close a model's circuit breaker in a running occ",
                           description="Tell a running occ that MODEL is healthy again: its breaker closes now "
                           "instead of after the cooldown (or the upstream's Retry-After). MODEL is "
                           "provider/model_id, a model_id or a scenario name; `all` closes every breaker.")
    reset.add_argument("model", metavar="MODEL")
    reset.add_argument("--url", default=None, help="occ's address (default: http://HOST:PORT from the config)")

    code = sub.add_parser("code", parents=[common], help="start Claude Code pointed at occ",
                          description="Start Claude Code with ANTHROPIC_BASE_URL pointing at occ, starting occ "
                          "in the background first if none answers (and stopping it when Claude Code exits). "
                          "Arguments after `code` go to claude.")
    code.set_defaults(claude_args=[])


def run_ops_command(args: argparse.Namespace) -> int:
    if args.command == "status":
        return _status(args)
    if args.command == "code":
        return _code(args)
    if args.command == "reset-breakers":
        return _reset_breakers(args)
    raise SystemExit(f"occ: unknown command {args.command}")


def _default_url(config_path: str | None) -> str:
    from occ.config.parse import load_config

    config = load_config(config_path)
    return f"http://{config.host}:{config.port}"


def _fetch(url: str, timeout: float = 3.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def format_status(data: dict[str, Any], *, color: bool = False) -> str:
    def paint(state: str) -> str:
        if not color or state == "closed":
            return state
        code = "31" if state == "open" else "33"
        return f"\x1b[{code}m{state}\x1b[0m"

    def sec(value: Any) -> str:
        return "-" if value is None else f"{value:.2f}s"

    lines = [f"occ {data.get('version')}  config {data.get('config')}  uptime {data.get('uptime_s')}s  "
             f"in flight {data.get('in_flight')}"]
    lines += [f"! {notice}" for notice in data.get("notices") or ()]
    today = data.get("usage_today")
    if today and "requests" in today:
        cost = today.get("cost_usd")
        money = "-" if cost is None else (f"${cost:.4f}" if cost < 1 else f"${cost:,.2f}")
        estimated = f", {today['estimated_requests']} estimated" if today.get("estimated_requests") else ""
        lines.append(f"today: {today['requests']} requests, {today['input_tokens']:,} input / "
                     f"{today['output_tokens']:,} output tokens{estimated}, cost {money}")
    conns = data.get("upstream_connections")
    if conns:
        lines.append(f"upstream connections: {conns.get('opened')} opened, {conns.get('reused')} reused, "
                     f"{conns.get('idle')} idle, {conns.get('busy', 0)} busy")
    rows = [("model", "breaker", "requests", "errors", "p50", "p95", "ttft p50")]
    states = []
    for label, info in (data.get("models") or {}).items():
        errors = sum(n for outcome, n in (info.get("outcomes") or {}).items() if outcome != "ok")
        state = info.get("breaker", "closed")
        if info.get("reopens_in_s"):
            state = f"{state} ({info['reopens_in_s']:.0f}s)"
        states.append(info.get("breaker", "closed"))
        rows.append((label, state, str(info.get("requests", 0)), str(errors), sec(info.get("latency_p50_s")),
                     sec(info.get("latency_p95_s")), sec(info.get("ttft_p50_s"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        cells = [c.ljust(widths[i]) for i, c in enumerate(row)]
        if n > 0:
            cells[1] = paint(states[n - 1]) + cells[1][len(states[n - 1]):]
        lines.append("  ".join(cells).rstrip())
    lines += _shared_state_lines(data)
    return "\n".join(lines)


def _shared_state_lines(data: dict[str, Any]) -> list[str]:
    """The shared state's line and, while connected, the fleet: its processes and per-model totals."""
    shared = data.get("shared_state", "off")
    if shared == "off":
        return []
    where = f" ({data['shared_state_url']})" if data.get("shared_state_url") else ""
    if shared != "connected":
        return [f"shared_state: {shared}{where}: this process serves with its own state"]
    fleet = data.get("fleet") or {}
    processes = fleet.get("processes") or []
    lines = [f"shared_state: connected{where}: {len(processes)} process(es) alive, "
             f"{fleet.get('in_flight', 0)} in flight across the fleet"]
    for proc in processes:
        lines.append(f"  {proc.get('host')} pid {proc.get('pid')}  in flight {proc.get('in_flight', 0)}  "
                     f"up {proc.get('uptime_s')}s")
    rows = [("fleet model", "breaker", "requests", "errors")]
    for label, info in (fleet.get("models") or {}).items():
        errors = sum(n for outcome, n in (info.get("outcomes") or {}).items() if outcome != "ok")
        rows.append((label, str(info.get("breaker", "closed")), str(info.get("requests", 0)), str(errors)))
    if len(rows) > 1:
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines += ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in rows]
    return lines


def _status(args: argparse.Namespace) -> int:
    url = (args.url or _default_url(args.config)).rstrip("/")
    try:
        data = _fetch(f"{url}/status")
    except (urllib.error.URLError, OSError) as exc:
        print(f"occ: no occ answers at {url} ({getattr(exc, 'reason', exc)})", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(format_status(data, color=sys.stdout.isatty()))
    return 0


def _reset_breakers(args: argparse.Namespace) -> int:
    """POST /admin/reset-breakers, with the config's first client key when it has any (the endpoint sits
    behind the client key like every other but /health)."""
    from occ.config.parse import load_config

    config = load_config(args.config)
    url = (args.url or f"http://{config.host}:{config.port}").rstrip("/")
    model = "" if args.model == "all" else args.model
    headers = {"content-type": "application/json"}
    key = os.environ.get("OCC_CLIENT_KEY") or next(iter(config.client_api_keys), None)
    if key:
        headers["x-api-key"] = key
    req = urllib.request.Request(f"{url}/admin/reset-breakers", data=json.dumps({"model": model}).encode(),
                                 headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5.0) as response:
            data = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            message = json.loads(exc.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {exc.code}"
        print(f"occ: {message}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"occ: no occ answers at {url} ({getattr(exc, 'reason', exc)})", file=sys.stderr)
        return 1
    reset = data.get("reset") or []
    target = "every model" if data.get("models") == "all" else ", ".join(data.get("models") or [])
    print(f"breakers closed for {target}" + (f" (were open or failing: {', '.join(reset)})" if reset else
                                             " (none was open)"))
    return 0


def _probe(url: str) -> tuple[str, str]:
    """Who answers at ``url``: ``(kind, phrase)`` with kind ``"occ"``, ``"other"`` or ``"silent"``.
    Another proxy on occ's port (claude-code-router defaults to it too) must not silently receive
    the user's Claude Code session."""
    from occ.server.serve import probe_holder

    parts = urllib.parse.urlsplit(url)
    phrase, kind = probe_holder(parts.hostname or "127.0.0.1", parts.port or 80)
    return kind, phrase


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    return _probe(url)[0] == "occ"


def _code(args: argparse.Namespace) -> int:
    url = _default_url(args.config)
    server: subprocess.Popen[bytes] | None = None
    who, what = _probe(url)
    if who == "other":
        parts = urllib.parse.urlsplit(url)
        port = _free_port(parts.hostname or "127.0.0.1")
        print(f"occ: not starting Claude Code against {url}: {what}. Stop that process, or run occ on another "
              f"port: set \"port\": {port} in your config (or pass --config with one that does).", file=sys.stderr)
        return 1
    claude = shutil.which("claude")
    if claude is None:
        print("occ: Claude Code is not installed (no `claude` on PATH). Install it with: "
              "npm install -g @anthropic-ai/claude-code", file=sys.stderr)
        return 1
    if who == "silent":
        command = [sys.executable, "-m", "occ.cli.main", "serve"]
        if args.config:
            command += ["--config", args.config]
        server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not _answers(url):
            if server.poll() is not None or time.monotonic() > deadline:
                print(f"occ: could not start occ at {url} (run `occ serve` to see why)", file=sys.stderr)
                if server.poll() is None:
                    server.terminate()
                return 1
            time.sleep(0.1)
    env = {**os.environ, **QUIET_ENV, "ANTHROPIC_BASE_URL": url,
           "ANTHROPIC_AUTH_TOKEN": os.environ.get("ANTHROPIC_AUTH_TOKEN", "occ")}
    claude_args = args.claude_args[1:] if args.claude_args[:1] == ["--"] else args.claude_args
    try:
        return subprocess.call([claude, *claude_args], env=env)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
