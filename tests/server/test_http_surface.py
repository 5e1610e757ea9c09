"""The HTTP surface of the foundation: health, models, count_tokens, and an Anthropic-shaped error
with the right status for every bad input."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from support.stack import TEST_KEY, make_config, wait_for_log

from occ.config.parse import parse_config


@pytest.fixture
async def url(fake, start_occ):
    return await start_occ(make_config(fake, max_body_bytes=200_000))


async def _post(url: str, path: str, content: bytes | str, **kw) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.post(url + path, content=content, headers={"content-type": "application/json"}, **kw)


def assert_error(response: httpx.Response, status: int, error_type: str, *needles: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    for needle in needles:
        assert needle in body["error"]["message"]
    assert response.headers.get("request-id")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"model": "m", "max_tokens": NaN, "messages": []}', "not valid JSON"),
        (b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "\xff"}]}',
         "not valid UTF-8: byte 0xff at offset 74"),
        # the lone-surrogate leniency lets nothing else in: an infinite number, raw surrogate bytes, UTF-16
        (b'{"model": "m", "max_tokens": 5, "temperature": 1e400, "messages": [{"role": "user", "content": '
         b'"\\ud83d"}]}', "not valid JSON"),
        (b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "a\xed\xa0\xbd \\ud83d"}]}',
         "not valid UTF-8: byte 0xed at offset 75"),
        ('{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "\\ud83d"}]}'.encode("utf-16"),
         "not valid UTF-8: byte 0xff at offset 0"),
        (b"[1, 2]", "must be a JSON object"),
        (b"", "empty"),
        (b'{"messages": [], "max_tokens": 5}', "model: field required"),
        (b'{"model": "m", "max_tokens": 5}', "messages: field required"),
        (b'{"model": "m", "messages": []}', "max_tokens: field required"),
        (b'{"model": "m", "messages": "hi", "max_tokens": 5}', "messages: expected an array"),
        (b'{"model": 5, "messages": [], "max_tokens": 5}', "model: expected a non-empty string"),
        (b'{"model": "m", "messages": [], "max_tokens": "many"}', "max_tokens: expected an integer"),
        (b'{"model": "m", "messages": [{"role": "robot", "content": "x"}], "max_tokens": 5}', "messages.0.role"),
        (b'{"model": "m", "messages": [{"role": "user", "content": 5}], "max_tokens": 5}', "messages.0.content"),
        (b'{"model": "m", "messages": [], "max_tokens": 5, "stream": "yes"}', "stream: expected a boolean"),
    ],
)
async def test_bad_bodies_get_a_clear_400(url, content, needle):
    response = await _post(url, "/v1/messages?beta=true", content)
    assert_error(response, 400, "invalid_request_error", needle)


async def test_a_lone_surrogate_is_repaired_not_a_400(url, fake):
    """Half an emoji in a tool output (JSON.stringify writes it as a lone escape) made Anthropic's API
    answer 400 on every later turn of the session (anthropics/claude-code#3277); occ sends U+FFFD on."""
    from support.fake_upstream import Reply

    fake.queue("/v1/chat/completions", Reply(body={"id": "x", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": "fine"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3,
                                                                                     "completion_tokens": 1}}))
    body = (b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result", '
            b'"tool_use_id": "t", "content": "cut \\ud83d here, kept \\ud83d\\ude00"}, {"type": "text", '
            b'"text": "go on"}]}]}')
    response = await _post(url, "/v1/messages", body)
    assert response.status_code == 200, response.text
    assert "cut \ufffd here, kept \U0001f600" in json.dumps(fake.requests("/v1/chat/completions")[-1].json,
                                                              ensure_ascii=False)
    counted = await _post(url, "/v1/messages/count_tokens", body)
    assert counted.status_code == 200 and counted.json()["input_tokens"] > 0


async def test_body_over_the_limit_is_413(url):
    big = b'{"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "' + b"x" * 300_000 + b'"}]}'
    assert_error(await _post(url, "/v1/messages", big), 413, "request_too_large", "max_body_bytes")
    assert_error(await _post(url, "/v1/messages/count_tokens", big), 413, "request_too_large")


async def test_unknown_fields_are_tolerated(url, fake):
    from support.fake_upstream import Reply

    fake.queue("/v1/chat/completions", Reply(body={"id": "x", "choices": [{"index": 0, "message": {
        "role": "assistant", "content": "fine"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3,
                                                                                     "completion_tokens": 1}}))
    response = await _post(url, "/v1/messages?beta=true&foo=bar", b'{"model": "m", "max_tokens": 5, "messages": '
                           b'[{"role": "user", "content": "hi"}], "service_tier": "auto", "speed": "fast", '
                           b'"container": null, "mcp_servers": []}')
    assert response.status_code == 200, response.text
    assert response.json()["content"][0]["text"] == "fine"


async def test_unknown_route_and_wrong_method(url):
    async with httpx.AsyncClient() as client:
        assert_error(await client.get(url + "/v1/nothing"), 404, "not_found_error")
        assert_error(await client.get(url + "/v1/messages"), 405, "invalid_request_error")
        assert_error(await client.get(url + "/v1/models/claude-unknown"), 404, "not_found_error")


async def test_health_models_and_count_tokens(url):
    async with httpx.AsyncClient() as client:
        health = await client.get(url + "/health")
        assert health.status_code == 200
        assert health.headers["request-id"]
        data = health.json()
        assert data["providers"]["fake"]["api_key"] == "present"
        assert TEST_KEY not in health.text

        models = (await client.get(url + "/v1/models?limit=1000")).json()
        ids = [m["id"] for m in models["data"]]
        assert "claude-occ-default" in ids and "model-a" in ids
        assert all(m["type"] == "model" for m in models["data"])
        one = await client.get(url + "/v1/models/claude-occ-default")
        assert one.json()["id"] == "claude-occ-default"

        counted = await client.post(url + "/v1/messages/count_tokens?beta=true", json={
            "model": "m", "messages": [{"role": "user", "content": "hello world " * 50}],
            "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {
                "type": "string"}}}}]})
        assert counted.status_code == 200
        assert 100 < counted.json()["input_tokens"] < 700


async def test_missing_key_is_401_naming_the_variable(fake, start_occ):
    config = parse_config({"port": 0, "api_key": "${OCC_TEST_UNSET_KEY}",
                           "providers": {"fake": {"base_url": f"{fake.url}/v1/chat/completions"}},
                           "models": {"default": {"provider": "fake", "model_id": "m"}}},
                          env={}, source="test")
    url = await start_occ(config)
    async with httpx.AsyncClient() as client:
        health = (await client.get(url + "/health")).json()
        assert "OCC_TEST_UNSET_KEY" in health["providers"]["fake"]["api_key"]
        response = await client.post(url + "/v1/messages", json={
            "model": "m", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    assert_error(response, 401, "authentication_error", "OCC_TEST_UNSET_KEY")
    assert not fake.requests()


async def test_logs_never_contain_keys(fake, start_occ, caplog):
    from support.fake_upstream import Reply

    caplog.set_level(logging.DEBUG)
    fake.default("/v1/chat/completions", Reply(status=500, body={"error": {"message": "echo " + TEST_KEY}}))
    url = await start_occ(make_config(fake))
    async with httpx.AsyncClient() as client:
        await client.post(url + "/v1/messages", json={"model": "m", "max_tokens": 5, "messages": [
            {"role": "user", "content": "hi"}]}, headers={"x-api-key": "client-secret-abc",
                                                          "authorization": "Bearer client-secret-abc"})
    await wait_for_log(caplog, "request_id=")
    assert TEST_KEY not in caplog.text
    assert "client-secret-abc" not in caplog.text
