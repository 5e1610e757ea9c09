"""Start-up as a newcomer meets it, run for real: ``occ`` subprocesses, real sockets.

A start-up failure is one line on stderr that names the cause and the fix, with a non-zero exit
and no traceback (unless ``--debug``); start-up says what is missing; every subcommand takes
``--config`` the same way; ``logging.format: json`` makes every stderr line a JSON object.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from typing import Any

import httpx
import pytest
import trio
from support.fake_upstream import Reply
from support.stack import TEST_KEY, fake_provider, make_config, ok_stream

import occ
from occ.server.serve import BindFailed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHAT = "/v1/chat/completions"


def _env(home: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "HOME": home, **extra}
    for name in ("OCC_CONFIG", "OCC_API_KEY"):
        if name not in extra:
            env.pop(name, None)
    return env


async def run_occ(*args: str, home: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """``occ ARGS`` to completion, off the trio thread's back (the test may be serving meanwhile)."""
    with trio.fail_after(60):
        return await trio.run_process([sys.executable, "-m", "occ.cli.main", *args], capture_stdout=True,
                                      capture_stderr=True, check=False, env=_env(home, **env), cwd=ROOT)


def _one_line(result: subprocess.CompletedProcess[bytes]) -> str:
    err = result.stderr.decode()
    assert result.returncode == 1, (result.returncode, err)
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


async def test_port_held_by_another_occ_is_one_line_naming_it(fake, start_occ, tmp_path):
    url = await start_occ(make_config(fake))
    port = url.rsplit(":", 1)[1]
    line = _one_line(await run_occ("serve", "--port", port, home=str(tmp_path)))
    assert line.startswith(f"occ: port {port} is already in use on 127.0.0.1: another occ (version ")
    assert f"(ANTHROPIC_BASE_URL=http://127.0.0.1:{port}). Use that one, or stop it, or run occ on" in line
    assert f"occ serve --port {int(port) + 1}" in line


async def test_port_held_by_something_else_says_it_is_not_occ(fake, tmp_path):
    """claude-code-router's default port is occ's: the message must tell the two apart."""
    fake.default("/health", Reply(status=404, headers={"server": "claude-code-router"}, body={"error": "nope"}))
    port = fake.url.rsplit(":", 1)[1]
    line = _one_line(await run_occ("serve", "--port", port, home=str(tmp_path)))
    assert f"port {port} is already in use" in line
    assert "something that is not occ answers there (GET /health: HTTP 404" in line
    assert "Stop that process, or run occ on another port" in line
    assert fake.requests("/health"), "the holder was probed"


async def test_port_held_by_a_silent_process(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        line = _one_line(await run_occ("serve", "--port", str(port), home=str(tmp_path)))
    assert f"port {port} is already in use" in line and "does not answer HTTP" in line


async def test_bind_refused_is_one_line_and_debug_shows_the_traceback(tmp_path):
    args = ("serve", "--host", "192.0.2.1", "--port", "0", "--insecure-public")  # TEST-NET-1: never ours
    line = _one_line(await run_occ(*args, home=str(tmp_path), OCC_API_KEY="k" * 20))
    assert line.startswith("occ: cannot listen on 192.0.2.1:0: 192.0.2.1 is not an address of this machine")
    debug = await run_occ("--debug", *args, home=str(tmp_path), OCC_API_KEY="k" * 20)
    assert debug.returncode != 0 and b"Traceback" in debug.stderr and b"BindFailed" in debug.stderr


async def test_bad_config_is_one_line_per_problem_with_warnings_beside(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"modles": {}, "api_key": TEST_KEY, "port": "eighty",
                                  "models": {"default": {"provider": "opencode-go", "model_id": 42}}}))
    result = await run_occ("serve", "--config", str(config), home=str(tmp_path))
    err = result.stderr.decode()
    assert result.returncode == 1 and "Traceback" not in err
    assert err.splitlines() == [
        f"occ: invalid config {config}: models.default.model_id: expected a string, got a number",
        f"occ: invalid config {config}: port: expected an integer from 0 to 65535, got 'eighty'",
        f'occ: warning: {config}: unknown key "modles" (ignored)',
    ]
    assert TEST_KEY not in err


async def test_every_subcommand_takes_config_the_same_way(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"port": 4567, "models": {"default": {"provider": "opencode-go",
                                                                       "model_id": "glm-9"}}}))
    home = str(tmp_path)
    for command in ("serve", "init", "validate", "models", "route", "status", "reset-breakers", "usage", "code"):
        helped = await run_occ(command, "--help", home=home)
        assert helped.returncode == 0
        text = " ".join(helped.stdout.decode().split())
        assert "--config PATH config file (default: $OCC_CONFIG, else ~/.config/occ/config.json" in text, command
    for args, env in ((("validate", "--config", str(config)), {}), (("validate", str(config)), {}),
                      (("validate",), {"OCC_CONFIG": str(config)})):
        result = await run_occ(*args, home=home, **env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.decode().strip() == f"OK: {config}"
    for args in (("models", "--config", str(config)), ("models",)):
        result = await run_occ(*args, home=home, **({"OCC_CONFIG": str(config)} if len(args) == 1 else {}))
        assert b"glm-9" in result.stdout, result.stderr
    # status finds its default URL through the same file: port 4567, where nothing answers
    status = await run_occ("status", "--config", str(config), home=home)
    assert status.returncode == 1 and b"http://127.0.0.1:4567" in status.stderr
    written = tmp_path / "new.json"
    assert (await run_occ("init", "--config", str(written), home=home)).returncode == 0 and written.exists()


async def _start_serving(args: list[str], env: dict[str, str]) -> tuple[trio.Process, str]:
    """``occ serve`` in the background, once it listens: the process and its URL."""
    proc = await trio.lowlevel.open_process([sys.executable, "-m", "occ.cli.main", "serve", *args],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    line = b""
    with trio.fail_after(30):
        while b"\n" not in line:
            chunk = await proc.stdout.receive_some(4096)
            assert chunk, "occ serve exited before listening: " + (await proc.stderr.receive_some(65536)).decode()
            line += chunk
    return proc, line.decode().split("listening on ")[1].split()[0]


async def _stop(proc: trio.Process) -> bytes:
    """SIGINT, then everything it wrote to stderr."""
    proc.send_signal(signal.SIGINT)
    err = b""
    with trio.fail_after(20):
        while chunk := await proc.stderr.receive_some(65536):
            err += chunk
        await proc.wait()
    return err


async def test_start_up_says_what_is_missing_and_status_repeats_it(tmp_path):
    env = _env(str(tmp_path))
    proc, url = await _start_serving(["--host", "0.0.0.0", "--port", "0", "--insecure-public"], env)
    try:
        port = url.rsplit(":", 1)[1]
        status = await run_occ("status", "--url", f"http://127.0.0.1:{port}", home=str(tmp_path))
        assert status.returncode == 0, status.stderr
        shown = [line[2:] for line in status.stdout.decode().splitlines() if line.startswith("! ")]
    finally:
        err = (await _stop(proc)).decode()
    assert proc.returncode == 0
    expected = [
        "no API key for provider opencode-go (used by ",
        "no config file found ($OCC_CONFIG unset, no ~/.config/occ/config.json): using the embedded defaults",
        "listening on 0.0.0.0, reachable from other machines; no client_api_keys",
    ]
    assert len(shown) == 3
    for notice, start in zip(shown, expected, strict=True):
        assert notice.startswith(start), notice
        assert f"WARNING occ: {notice}" in err
    assert "set OCC_API_KEY" in shown[0]


async def test_a_configured_key_and_file_leave_nothing_to_say(fake, tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"providers": {"fake": fake_provider(fake)},
                                  "models": {"default": {"provider": "fake", "model_id": "m"}}}))
    proc, url = await _start_serving(["--config", str(config), "--port", "0"], _env(str(tmp_path)))
    try:
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{url}/status")).json()["notices"] == []
    finally:
        err = (await _stop(proc)).decode()
    assert "WARNING" not in err


def _json_lines(err: bytes) -> list[dict[str, Any]]:
    lines = err.decode().splitlines()
    assert lines
    return [json.loads(line) for line in lines]  # every line, or this fails


async def test_json_logging_is_one_object_per_line_for_every_record(fake, tmp_path):
    fake.default(CHAT, ok_stream("hello"))
    config = tmp_path / "c.json"
    data = {"providers": {"fake": fake_provider(fake)}, "opencode_go": {"api_key": "x" * 10},
            "models": {"default": {"provider": "fake", "model_id": "m"}}, "unknown_thing": 1,
            "logging": {"format": "json"}}
    config.write_text(json.dumps(data))
    proc, url = await _start_serving(["--config", str(config), "--port", "0"], _env(str(tmp_path)))
    try:
        async with httpx.AsyncClient() as client:
            response = await client.post(f"{url}/v1/messages", json={
                "model": "claude-x", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})
            assert response.status_code == 200
        config.write_text("{not json")  # a reload that fails is logged as an error
        proc.send_signal(signal.SIGHUP)
        await trio.sleep(0.5)
    finally:
        err = await _stop(proc)
    records = _json_lines(err)
    for record in records:
        assert {"time", "level", "logger"} <= set(record) and record["time"].endswith("Z")
    by_message = {r.get("message"): r for r in records}
    assert by_message['config: unknown key "unknown_thing" (ignored)']["level"] == "warning"
    assert any(r["message"].startswith("serving on http://127.0.0.1:") for r in records if "message" in r)
    assert any(r.get("message", "").startswith("config reload failed") and r["level"] == "error" for r in records)
    assert by_message["stopped"]["level"] == "info"
    (request,) = [r for r in records if r["logger"] == "occ.request"]
    assert request["status"] == 200 and request["outcome"] == "ok" and request["model"] == "fake/m"
    assert "message" not in request  # the fields are the line: no JSON inside a string
    assert TEST_KEY.encode() not in err


def test_json_formatter_carries_a_redacted_exception():
    """Errors keep their exceptions in JSON, and a key inside one is blanked."""
    import logging

    from occ.core.scrub import remember_secrets
    from occ.observe.logs import JsonFormatter

    remember_secrets([TEST_KEY])
    try:
        raise ValueError(f"upstream refused key {TEST_KEY}")
    except ValueError:
        record = logging.getLogger("occ.test").makeRecord("occ.test", logging.ERROR, __file__, 1,
                                                          "attempt failed with %s", (TEST_KEY,), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    assert out["level"] == "error" and out["message"] == "attempt failed with [redacted]"
    assert out["exception_type"] == "ValueError"
    assert "Traceback" in out["exception"] and "upstream refused key [redacted]" in out["exception"]
    assert TEST_KEY not in line


async def test_embedding_a_busy_port_raises_bind_failed(fake, nursery):
    """``occ.serve`` in a caller's nursery: the same one-line cause, as an exception the caller can catch."""
    config = make_config(fake)
    port = fake.url.rsplit(":", 1)[1]
    with pytest.raises(BindFailed) as info:
        await occ.serve(config, port=int(port))
    assert str(info.value).startswith(f"port {port} is already in use on 127.0.0.1: something that is not occ")
