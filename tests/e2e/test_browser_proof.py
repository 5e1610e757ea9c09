"""A web page the user visits must not be able to use occ: through hypercorn on real sockets.

A browser may send ``text/plain``, form and untyped bodies cross-origin without asking first, always
sends ``Origin`` on such requests, and after DNS rebinding sends its own name as ``Host``.
"""

from __future__ import annotations

import json

import httpx
import pytest
from support.fake_upstream import Reply
from support.shapes import completion
from support.stack import make_config

CHAT = "/v1/chat/completions"
BODY = {"model": "claude-sonnet-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
CLIENT_KEY = "client-key-0123456789abcdef"


def _assert_error(response: httpx.Response, status: int, error_type: str, needle: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert needle in body["error"]["message"]
    assert response.headers.get("request-id")


async def _post(url: str, path: str = "/v1/messages", *, content: bytes | None = None,
                headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url + path, content=json.dumps(BODY).encode() if content is None else content,
                                 headers=headers or {})


@pytest.fixture
async def occ_url(fake, start_occ):
    fake.default(CHAT, Reply(body=completion({"content": "hello"})))
    return await start_occ(make_config(fake))


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None])
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
async def test_a_body_that_is_not_declared_json_gets_415_and_never_reaches_the_upstream(occ_url, fake, path,
                                                                                         content_type):
    headers = {"content-type": content_type} if content_type else {}
    async with httpx.AsyncClient(timeout=10) as client:
        request = client.build_request("POST", occ_url + path, content=json.dumps(BODY).encode(), headers=headers)
        assert request.headers.get("content-type") == content_type  # raw bytes: httpx adds no type
        response = await client.send(request)
    _assert_error(response, 415, "invalid_request_error", "application/json")
    assert fake.requests(CHAT) == []


async def test_application_json_with_a_charset_is_served(occ_url):
    response = await _post(occ_url, headers={"content-type": "application/json; charset=utf-8"})
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "hello"


@pytest.mark.parametrize("path", ["/v1/messages", "/health", "/v1/models", "/status"])
async def test_a_foreign_origin_gets_403_on_every_path(occ_url, fake, path):
    headers = {"origin": "https://evil.example", "content-type": "application/json"}
    async with httpx.AsyncClient(timeout=10) as client:
        if path == "/v1/messages":
            response = await client.post(occ_url + path, content=json.dumps(BODY), headers=headers)
        else:
            response = await client.get(occ_url + path, headers=headers)
    _assert_error(response, 403, "permission_error", "https://evil.example")
    assert "access-control-allow-origin" not in response.headers
    assert fake.requests(CHAT) == []


@pytest.mark.parametrize("host", ["evil.example", "evil.example:3456", "127.0.0.1.evil.example", "localhost.evil"])
async def test_a_rebound_host_gets_403(occ_url, fake, host):
    response = await _post(occ_url, headers={"content-type": "application/json", "host": host})
    _assert_error(response, 403, "permission_error", "not this machine")
    assert fake.requests(CHAT) == []


@pytest.mark.parametrize("host", ["localhost", "localhost:3456", "127.0.0.1", "127.0.0.1:9", "[::1]", "[::1]:3456",
                                  "LOCALHOST"])
async def test_this_machines_names_pass_with_or_without_a_port(occ_url, host):
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(occ_url + "/health", headers={"host": host})
    assert response.status_code == 200, response.text


async def test_a_preflight_from_a_foreign_origin_is_refused(occ_url):
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.options(occ_url + "/v1/messages", headers={
            "origin": "https://evil.example", "access-control-request-method": "POST",
            "access-control-request-headers": "content-type"})
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


async def test_an_allowed_origin_and_host_are_served_with_cors_headers(fake, start_occ):
    """``allowed_origins`` and ``allowed_hosts`` open exactly what they name."""
    fake.default(CHAT, Reply(body=completion({"content": "hello"})))
    url = await start_occ(make_config(fake, allowed_origins=["https://app.example"],
                                      allowed_hosts=["occ.internal"]))
    origin = {"origin": "https://app.example"}
    async with httpx.AsyncClient(timeout=10) as client:
        preflight = await client.options(url + "/v1/messages", headers={
            **origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type"})
        served = await client.post(url + "/v1/messages", content=json.dumps(BODY),
                                   headers={**origin, "content-type": "application/json", "host": "occ.internal"})
        other = await client.get(url + "/health", headers={"origin": "https://app.example.evil"})
        text = await client.post(url + "/v1/messages", content=json.dumps(BODY),
                                 headers={**origin, "content-type": "text/plain"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert served.status_code == 200, served.text
    assert served.headers["access-control-allow-origin"] == "https://app.example"
    assert other.status_code == 403
    assert text.status_code == 415  # an allowed origin still sends JSON
    assert text.headers["access-control-allow-origin"] == "https://app.example"  # ...and can read why


async def test_with_client_keys_every_path_but_health_needs_one(fake, start_occ):
    fake.default(CHAT, Reply(body=completion({"content": "hello"})))
    url = await start_occ(make_config(fake, client_api_keys=[CLIENT_KEY]))
    key = {"x-api-key": CLIENT_KEY}
    async with httpx.AsyncClient(timeout=10) as client:
        for path in ("/status", "/metrics", "/v1/models", "/no/such/path"):
            refused = await client.get(url + path)
            _assert_error(refused, 401, "authentication_error", "client key")
            assert (await client.get(url + path, headers=key)).status_code in (200, 404)
        assert (await client.get(url + "/health")).status_code == 200
        empty = await client.get(url + "/status", headers={"x-api-key": ""})
        assert empty.status_code == 401


async def test_metrics_public_opens_metrics_and_nothing_else(fake, start_occ):
    url = await start_occ(make_config(fake, client_api_keys=[CLIENT_KEY], metrics_public=True))
    async with httpx.AsyncClient(timeout=10) as client:
        metrics = await client.get(url + "/metrics")
        status = await client.get(url + "/status")
    assert metrics.status_code == 200 and "occ_in_flight_requests" in metrics.text
    assert status.status_code == 401
