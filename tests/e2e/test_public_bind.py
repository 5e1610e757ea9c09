"""A public bind without client keys is refused whatever starts occ, on real sockets.

``occ serve`` refuses to start; ``occ.serve`` in an embedding program, plain ``hypercorn
occ.asgi:app -b 0.0.0.0:...`` and an app served by someone else's hypercorn answer every request
with 403 and log why once. Connections go to 127.0.0.1 (or, for the one case that needs a request to
arrive on a non-loopback address, to this machine's own address, which never leaves the host).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys

import attrs
import httpx
import pytest
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from support.fake_upstream import Reply
from support.shapes import completion
from support.stack import fake_provider, make_config

import occ
from occ.core.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHAT = "/v1/chat/completions"
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
CLIENT_KEY = "client-key-0123456789abcdef"


def _local(url: str) -> str:
    """The bound URL, reached through loopback."""
    return "http://127.0.0.1:" + url.rsplit(":", 1)[1]


def _refusals(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "every request will be refused" in r.getMessage()]


async def _assert_refused(url: str) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for response in (await client.post(url + "/v1/messages", json=BODY), await client.get(url + "/health"),
                         await client.get(url + "/status")):
            assert response.status_code == 403, response.text
            error = response.json()["error"]
            assert error["type"] == "permission_error"
            assert "no client_api_keys" in error["message"] and "other machines" in error["message"]


async def test_occ_serve_in_an_embedding_program_refuses_a_public_bind_without_keys(nursery, fake, caplog):
    caplog.set_level(logging.INFO)
    fake.default(CHAT, Reply(body=completion({"content": "hello"})))
    binds = await nursery.start(lambda task_status: occ.serve(make_config(fake), host="0.0.0.0",
                                                              task_status=task_status))
    await _assert_refused(_local(binds[0]))
    assert fake.requests(CHAT) == []
    assert len(_refusals(caplog)) == 1  # logged once, at start-up, not per request


async def test_with_client_keys_or_insecure_public_a_public_bind_serves(nursery, fake):
    fake.default(CHAT, Reply(body=completion({"content": "hello"})))
    keyed = await nursery.start(lambda task_status: occ.serve(
        make_config(fake, client_api_keys=[CLIENT_KEY]), host="0.0.0.0", task_status=task_status))
    config = make_config(fake)
    app = occ.create_app(config, insecure_public=True)
    opened = await nursery.start(lambda task_status: occ.serve(config, host="0.0.0.0", app=app,
                                                               task_status=task_status))
    async with httpx.AsyncClient(timeout=10) as client:
        served = await client.post(_local(keyed[0]) + "/v1/messages", json=BODY, headers={"x-api-key": CLIENT_KEY})
        # a public bind is reached by other names: Host is only checked on a loopback bind
        named = await client.get(_local(keyed[0]) + "/health", headers={"host": "occ-box.lan:3456"})
        insecure = await client.post(_local(opened[0]) + "/v1/messages", json=BODY)
    assert served.status_code == 200, served.text
    assert named.status_code == 200, named.text
    assert insecure.status_code == 200, insecure.text


def _arrived_on_a_public_interface(app):
    """The ASGI app as a server bound to 0.0.0.0 would call it for a request that came in on a public
    interface: the ``server`` address in the scope is that interface's. Tests send traffic only to
    127.0.0.1, so the one request marked ``x-test-public`` gets a public (TEST-NET-3) server address;
    everything else about the request is real."""

    async def wrapped(scope, receive, send):
        if scope["type"] == "http" and (b"x-test-public", b"1") in scope.get("headers", []):
            scope = {**scope, "server": ("203.0.113.7", scope["server"][1])}
        await app(scope, receive, send)

    return wrapped


async def test_an_app_served_by_someone_elses_hypercorn_learns_the_bind_from_the_first_request(nursery, fake,
                                                                                                  caplog):
    """No occ code saw the bind: the ASGI ``server`` address of a request that arrived on a public
    interface proves it, and from then on every request is refused, loopback ones included."""
    caplog.set_level(logging.INFO)
    app = occ.create_app(make_config(fake))
    hc = HypercornConfig()
    hc.bind = ["127.0.0.1:0"]
    hc.accesslog = None
    binds = await nursery.start(lambda task_status: hypercorn_serve(_arrived_on_a_public_interface(app), hc,
                                                                    task_status=task_status))
    url = _local(binds[0])
    async with httpx.AsyncClient(timeout=10) as client:
        before = await client.get(f"{url}/health")
        public = await client.get(f"{url}/health", headers={"x-test-public": "1"})
    assert before.status_code == 200  # nothing proved the bind public yet
    assert public.status_code == 403
    await _assert_refused(url)
    assert len(_refusals(caplog)) == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_plain_hypercorn_on_0_0_0_0_refuses_every_request(fake, tmp_path):
    """The README's ``hypercorn --worker-class trio 'occ.asgi:app' -b 0.0.0.0:PORT``, run for real."""
    config = {"providers": {"fake": fake_provider(fake)}, "models": {"default": {"provider": "fake",
                                                                                  "model_id": "model-a"}}}
    path = tmp_path / "occ.json"
    path.write_text(json.dumps(config))
    port = _free_port()
    env = {**os.environ, "OCC_CONFIG": str(path), "HOME": str(tmp_path), "PYTHONPATH": ROOT}
    env.pop("OCC_INSECURE_PUBLIC", None)
    env.pop("OCC_BIND_HOST", None)
    proc = await trio.lowlevel.open_process(
        [sys.executable, "-m", "hypercorn", "--worker-class", "trio", "occ.asgi:app", "-b", f"0.0.0.0:{port}"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=2) as client:
            with trio.fail_after(30):
                while True:
                    try:
                        await client.get(url + "/health")
                        break
                    except httpx.TransportError:
                        await trio.sleep(0.1)
        await _assert_refused(url)
    finally:
        proc.terminate()
        with trio.fail_after(20):
            err = b""
            while chunk := await proc.stderr.receive_some(65536):
                err += chunk
            await proc.wait()
    assert err.decode().count("every request will be refused") == 1, err.decode()
    assert fake.requests(CHAT) == []


async def test_occ_serve_with_workers_refuses_to_start_on_a_public_bind(tmp_path):
    result = await trio.run_process(
        [sys.executable, "-m", "occ.cli.main", "serve", "--host", "0.0.0.0", "--port", "0", "--workers", "2"],
        capture_stdout=True, capture_stderr=True, check=False, cwd=ROOT,
        env={**{k: v for k, v in os.environ.items() if k != "OCC_CONFIG"}, "HOME": str(tmp_path)})
    assert result.returncode == 1
    err = result.stderr.decode()
    assert "refusing to listen on 0.0.0.0" in err and "--insecure-public" in err
    assert "Traceback" not in err


async def test_an_embedding_program_cannot_serve_an_empty_or_short_client_key(fake):
    """The parser refuses them; a Config built in code is refused by create_app the same way."""
    config = make_config(fake)
    for keys in (("",), ("short-key",)):
        with pytest.raises(ConfigError, match=r"client_api_keys\.0"):
            occ.create_app(attrs.evolve(config, client_api_keys=keys))
