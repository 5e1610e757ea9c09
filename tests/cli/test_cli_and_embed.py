"""The command line and the embedding API, run for real (subprocesses and in-process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import httpx
import trio
from support.anthropic_checker import check_stream

import occ
from occ.config.parse import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "examples")


def run_occ(*args: str, env: dict[str, str] | None = None, input: bytes | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "HOME": os.environ.get("OCC_TEST_HOME", "/nonexistent-home"), **(env or {})}
    full_env.pop("OCC_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "occ.cli.main", *args], capture_output=True, env=full_env,
                          input=input, timeout=60, cwd=ROOT)


def test_validate_seed_config_ok():
    result = run_occ("validate", os.path.join(EXAMPLES, "seed-config.json"))
    assert result.returncode == 0, result.stderr
    assert b"OK" in result.stdout


def test_validate_reports_every_error_with_key_paths(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"port": "eighty", "models": {
        "default": {"provider": "opencode-goo", "model_id": "x"},
        "think": {"provider": "opencode-go"}}}))
    result = run_occ("validate", str(bad))
    assert result.returncode == 1
    err = result.stderr.decode()
    assert 'models.default.provider: unknown provider "opencode-goo"' in err
    assert "models.think.model_id" in err
    assert "port" in err
    assert "Traceback" not in err


def test_init_writes_a_loadable_config_and_refuses_overwrite(tmp_path):
    path = tmp_path / "occ.json"
    assert run_occ("init", str(path)).returncode == 0
    assert load_config(str(path)).models["default"].model_id
    again = run_occ("init", str(path))
    assert again.returncode == 1 and b"--force" in again.stderr
    assert run_occ("init", str(path), "--force").returncode == 0


def test_models_and_route(tmp_path):
    seed = os.path.join(EXAMPLES, "seed-config.json")
    table = run_occ("models", "--config", seed)
    assert table.returncode == 0, table.stderr
    assert b"deepseek-v4-flash" in table.stdout and b"long_context" in table.stdout
    request = {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
               "messages": [{"role": "user", "content": "hello"}]}
    routed = run_occ("route", "-", "--config", seed, input=json.dumps(request).encode())
    assert routed.returncode == 0, routed.stderr
    out = routed.stdout.decode()
    assert "fast" in out and "deepseek-v4-flash" in out


def test_errors_are_one_line_without_traceback():
    result = run_occ("validate", "/nonexistent/config.json")
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert result.stderr.strip().count(b"\n") <= 2


def test_help_for_every_command():
    for command in ("serve", "init", "validate", "models", "route"):
        result = run_occ(command, "--help")
        assert result.returncode == 0 and b"usage: occ" in result.stdout


async def test_serve_without_config_starts_and_stops_cleanly_on_sigint(tmp_path):
    env = {**os.environ, "HOME": str(tmp_path)}
    env.pop("OCC_CONFIG", None)
    env.pop("OCC_API_KEY", None)
    proc = await trio.lowlevel.open_process([sys.executable, "-m", "occ.cli.main", "serve", "--port", "0"],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        line = b""
        with trio.fail_after(30):
            while b"\n" not in line:
                line += await proc.stdout.receive_some(4096)
        text = line.decode()
        assert "ANTHROPIC_BASE_URL=" in text and "ANTHROPIC_AUTH_TOKEN=" in text
        url = text.split("listening on ")[1].split()[0]
        async with httpx.AsyncClient() as client:
            health = (await client.get(f"{url}/health")).json()
        assert "OCC_API_KEY" in json.dumps(health)
        proc.send_signal(signal.SIGINT)
        with trio.fail_after(20):
            code = await proc.wait()
        assert code == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_embed_example_runs():
    result = await trio.run_process([sys.executable, os.path.join(EXAMPLES, "embed_in_trio.py")],
                                    capture_stdout=True, capture_stderr=True,
                                    env={**os.environ, "HOME": "/nonexistent-home"}, check=False)
    assert result.returncode == 0, result.stderr
    assert b"occ is serving on http://127.0.0.1:" in result.stdout


async def test_serve_in_a_callers_nursery(fake, nursery):
    from support.stack import make_config

    config = make_config(fake)
    app = occ.create_app(config)
    binds = await nursery.start(lambda task_status: occ.serve(config, app=app, task_status=task_status))
    assert binds[0].startswith("http://127.0.0.1:")
    async with httpx.AsyncClient() as client:
        assert (await client.get(binds[0] + "/health")).status_code == 200


async def test_sigterm_lets_an_in_flight_stream_finish(fake, tmp_path):
    from support.fake_upstream import Reply, sse
    from support.shapes import chunk, usage_chunk
    from support.stack import fake_provider

    parts = [*sse(chunk({"content": "first "}), done=False), 1.0, *sse(chunk({"content": "last"}),
                                                                       chunk(finish="stop"), usage_chunk())]
    fake.default("/v1/chat/completions", Reply(chunks=parts))
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"port": 0, "providers": {"fake": fake_provider(fake)},
                                  "enable_streaming_scenario_routing": True, "shutdown_grace_ms": 5000,
                                  "models": {"default": {"provider": "fake", "model_id": "m"}}}))
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = await trio.lowlevel.open_process([sys.executable, "-m", "occ.cli.main", "serve", "--config", str(config)],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    try:
        line = b""
        with trio.fail_after(30):
            while b"\n" not in line:
                line += await proc.stdout.receive_some(4096)
        url = line.decode().split("listening on ")[1].split()[0]
        result = {}

        async def stream() -> None:
            async with httpx.AsyncClient(timeout=20) as client:
                result["response"] = await client.post(f"{url}/v1/messages", json={
                    "model": "m", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]})

        async with trio.open_nursery() as nursery:
            nursery.start_soon(stream)
            with trio.fail_after(10):
                while not fake.requests("/v1/chat/completions"):
                    await trio.sleep(0.02)
            await trio.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
        message = check_stream(result["response"].content)
        assert message["content"][0]["text"] == "first last"
        with trio.fail_after(20):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_validate_checks_the_shared_state_url_and_never_prints_its_password(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"models": {"default": {"model_id": "k"}},
                                  "shared_state": {"url": "http://app:pw-SECRET-9876@cache:6379/x"}}))
    result = run_occ("validate", str(config))
    assert result.returncode == 1
    assert b"shared_state.url: expected a redis:// or rediss:// URL" in result.stderr
    assert b"pw-SECRET" not in result.stdout + result.stderr
    config.write_text(json.dumps({"models": {"default": {"model_id": "k"}},
                                  "shared_state": {"url": "rediss://app:${PW}@cache:6380/1"}}))
    assert run_occ("validate", str(config), env={"PW": "pw-SECRET-9876"}).returncode == 0


async def test_sigterm_ends_a_stream_longer_than_the_grace_with_an_error_event(fake, tmp_path):
    """Stop accepting, let streams finish within the grace, then end each one left with an ``error`` event
    (``overloaded_error``, "server shutting down") and log it with the outcome it really had."""
    from support.fake_upstream import Reply, sse
    from support.shapes import chunk, usage_chunk
    from support.stack import fake_provider

    parts = [*sse(chunk({"content": "first "}), done=False), 30.0, *sse(chunk(finish="stop"), usage_chunk())]
    fake.default("/v1/chat/completions", Reply(chunks=parts))
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"port": 0, "providers": {"fake": fake_provider(fake)},
                                  "enable_streaming_scenario_routing": True, "shutdown_grace_ms": 500,
                                  "models": {"default": {"provider": "fake", "model_id": "m"}}}))
    env = {**os.environ, "HOME": str(tmp_path)}
    proc = await trio.lowlevel.open_process([sys.executable, "-m", "occ.cli.main", "serve", "--config", str(config)],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    stderr = b""

    async def read_stderr() -> None:
        nonlocal stderr
        while chunk_ := await proc.stderr.receive_some(65536):
            stderr += chunk_

    try:
        line = b""
        with trio.fail_after(30):
            while b"\n" not in line:
                line += await proc.stdout.receive_some(4096)
        url = line.decode().split("listening on ")[1].split()[0]
        result = {}

        async def stream() -> None:
            async with httpx.AsyncClient(timeout=20) as client:
                result["response"] = await client.post(f"{url}/v1/messages", json={
                    "model": "m", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]})

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_stderr)
            async with trio.open_nursery() as inner:
                inner.start_soon(stream)
                with trio.fail_after(10):
                    while not fake.requests("/v1/chat/completions"):
                        await trio.sleep(0.02)
                await trio.sleep(0.2)
                proc.send_signal(signal.SIGTERM)
            # ended by the shutdown, not by its natural end: an error event and no message_stop (no clock)
            message = check_stream(result["response"].content, allow_error=True)
            frames = result["response"].content.decode()
            assert "event: error" in frames and "overloaded_error" in frames and "server shutting down" in frames
            assert "message_stop" not in frames
            assert message["content"][0]["text"] == "first "
            with trio.fail_after(20):
                assert await proc.wait() == 0
        log = stderr.decode()
        assert "outcome=server_shutdown" in log and "outcome=ok" not in log
        assert "were ended with overloaded_error" in log
        assert fake.requests("/v1/chat/completions")[0].disconnected_at is not None  # upstream closed
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
