"""Operating occ: request log lines, /status and /metrics counts, client keys, the concurrency limit,
public binds, `occ status` and `occ code`."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys

import httpx
import pytest
import trio
from support.fake_upstream import Reply, sse
from support.shapes import USER, chunk, usage_chunk
from support.stack import TEST_KEY, by_model, chain, make_config, ok_stream, wait_for_log

import occ
from occ.cli.ops import format_status
from occ.server.checks import check_bind

CHAT = "/v1/chat/completions"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def body(stream: bool = True) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 50, "stream": stream, "messages": USER}




async def test_log_line_for_a_request_that_fell_back_once(fake, start_occ, caplog):
    caplog.set_level(logging.INFO)
    fake.default(CHAT, by_model({"model-a": Reply(status=503, body={"error": {"message": "busy"}}),
                                 "model-b": ok_stream("fine")}))
    url = await start_occ(make_config(fake, **chain("model-a", "model-b")))
    async with httpx.AsyncClient() as client:
        await client.post(f"{url}/v1/messages", json=body())
    (line,) = await wait_for_log(caplog, "request_id")
    assert "scenario=default" in line and "outcome=ok" in line and "status=200" in line
    assert "attempts=fake/model-a[openai]=http_503:" in line and ",fake/model-b[openai]=ok:" in line
    assert "model=fake/model-b" in line and "stop_reason=end_turn" in line
    assert "tokens_in=" in line and "ttft_ms=" in line and "reason=" in line


async def test_log_line_json_format_and_stall(fake, start_occ, caplog):
    caplog.set_level(logging.INFO)
    fake.default(CHAT, Reply(chunks=sse(chunk({"role": "assistant"}), done=False), stall_s=10))
    url = await start_occ(make_config(fake, logging={"format": "json"}, provider={"stream_timeout_ms": 300}))
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{url}/v1/messages", json=body())
    assert response.status_code == 504
    fields = json.loads((await wait_for_log(caplog, "request_id"))[0])
    assert fields["outcome"] == "error" and fields["attempts"][0]["outcome"] == "stall"


async def test_status_and_metrics_count_a_scripted_sequence(fake, start_occ):
    fake.default(CHAT, by_model({"model-a": Reply(status=500, body={"error": {"message": "x"}}),
                                 "model-b": ok_stream("ok")}))
    config = make_config(fake, **chain("model-a", "model-b"))
    app = occ.create_app(config)
    url = await start_occ(config, app=app)
    async with httpx.AsyncClient() as client:
        for _ in range(3):
            assert (await client.post(f"{url}/v1/messages", json=body(stream=False))).status_code == 200
        status = (await client.get(f"{url}/status")).json()
        metrics = (await client.get(f"{url}/metrics")).text
    a, b = status["models"]["fake/model-a"], status["models"]["fake/model-b"]
    assert a["requests"] == 3 and a["outcomes"] == {"http_500": 3} and a["breaker"] == "open"
    assert b["requests"] == 3 and b["outcomes"] == {"ok": 3}
    assert 'occ_requests_total{model="fake/model-b",outcome="ok",scenario="default"} 3.0' in metrics
    assert 'occ_fallbacks_total{model="fake/model-a"} 3.0' in metrics
    assert 'occ_breaker_open{model="fake/model-a"} 1.0' in metrics
    text = format_status(status)
    assert "fake/model-a" in text and "open" in text
    # one connection served all six upstream requests, the error answers included
    assert status["upstream_connections"] == {"opened": 1, "reused": 5, "sent": 6, "idle": 1, "busy": 0}
    assert "upstream connections: 1 opened, 5 reused, 1 idle" in text


async def test_client_keys_accepted_and_refused(fake, start_occ):
    fake.default(CHAT, ok_stream("hi"))
    url = await start_occ(make_config(fake, client_api_keys=["client-key-1-0123456789"]))
    async with httpx.AsyncClient() as client:
        refused = await client.post(f"{url}/v1/messages", json=body())
        wrong = await client.post(f"{url}/v1/messages", json=body(), headers={"x-api-key": "nope"})
        ok = await client.post(f"{url}/v1/messages", json=body(), headers={"x-api-key": "client-key-1-0123456789"})
        bearer = await client.post(f"{url}/v1/messages", json=body(),
                                   headers={"authorization": "Bearer client-key-1-0123456789"})
        models = await client.get(f"{url}/v1/models")
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
    assert wrong.status_code == 401
    assert ok.status_code == 200 and bearer.status_code == 200
    assert models.status_code == 401


async def test_public_bind_refused_without_keys(fake):
    config = make_config(fake)
    with pytest.raises(Exception, match="--insecure-public"):
        check_bind("0.0.0.0", config, insecure_public=False)
    check_bind("0.0.0.0", config, insecure_public=True)
    check_bind("127.0.0.1", config, insecure_public=False)
    check_bind("0.0.0.0", make_config(fake, client_api_keys=["k-1234567890abcdef"]), insecure_public=False)


async def test_concurrency_limit_429_without_dropping_in_flight(fake, start_occ):
    parts = [*sse(chunk({"content": "slow "}), done=False), 0.6, *sse(chunk(finish="stop"), usage_chunk())]
    fake.default(CHAT, Reply(chunks=parts))
    url = await start_occ(make_config(fake, max_concurrent_per_client=1))
    results = {}

    async def first() -> None:
        async with httpx.AsyncClient() as client:
            results["first"] = await client.post(f"{url}/v1/messages", json=body())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        with trio.fail_after(5):
            while not fake.requests(CHAT):
                await trio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            second = await client.post(f"{url}/v1/messages", json=body())
    assert second.status_code == 429 and second.headers["retry-after"]
    assert second.json()["error"]["type"] == "rate_limit_error"
    assert results["first"].status_code == 200 and b"message_stop" in results["first"].content
    async with httpx.AsyncClient() as client:
        assert (await client.post(f"{url}/v1/messages", json=body())).status_code == 200


def test_occ_code_sets_the_environment(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    out = tmp_path / "env.json"
    script = bindir / "claude"
    script.write_text(f"#!{sys.executable}\nimport json, os, sys\n"
                      f"json.dump({{'env': dict(os.environ), 'argv': sys.argv[1:]}}, open({str(out)!r}, 'w'))\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    config = tmp_path / "c.json"
    with socket_port() as port:
        config.write_text(json.dumps({"port": port, "models": {"default": {"model_id": "m"}}}))
    env = {**os.environ, "PATH": f"{bindir}:{os.environ['PATH']}", "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "occ.cli.main", "code", "--config", str(config), "-p", "hi"],
                            env=env, capture_output=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    seen = json.loads(out.read_text())
    assert seen["env"]["ANTHROPIC_BASE_URL"] == f"http://127.0.0.1:{port}"
    assert seen["env"]["ANTHROPIC_AUTH_TOKEN"]
    assert seen["env"]["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
    assert seen["argv"] == ["-p", "hi"]


def test_occ_code_without_claude(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "occ.cli.main", "code"], env=env, capture_output=True, timeout=60,
                            cwd=ROOT)
    assert result.returncode == 1 and b"not installed" in result.stderr


class socket_port:
    def __enter__(self) -> int:
        import socket

        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def __exit__(self, *exc: object) -> None:
        return None


_ = TEST_KEY


async def test_logging_requests_logs_redacted_truncated_bodies(fake, start_occ, caplog):
    caplog.set_level(logging.DEBUG)
    fake.default(CHAT, ok_stream("ok"))
    url = await start_occ(make_config(fake, logging={"level": "debug", "requests": True, "body_limit_bytes": 300}))
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "Q" * 5000}}
    async with httpx.AsyncClient() as client:
        await client.post(f"{url}/v1/messages", json={**body(), "messages": [
            {"role": "user", "content": [image, {"type": "text", "text": "see " + TEST_KEY}]}]},
            headers={"x-api-key": "client-secret-xyz"})
    await wait_for_log(caplog, "request_id")
    lines = [r.getMessage() for r in caplog.records if "request body" in r.getMessage()]
    assert lines and "[image data]" in lines[0] and "QQQQQQQQ" not in lines[0]
    assert TEST_KEY not in caplog.text and "client-secret-xyz" not in caplog.text
    assert len(lines[0]) < 450
