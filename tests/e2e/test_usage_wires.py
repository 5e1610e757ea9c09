"""The ledger agrees with the client on every wire: each successful answer of the recordings corpus
(``tests/recordings/``, the providers' real shapes) is sent through occ once, with the official SDK
as the client, and the ledger row of that request holds exactly the tokens the SDK accumulated, and
says estimated exactly when the recording carries no usage."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import trio
from support.fake_upstream import Reply
from support.stack import THINKING, make_config, sdk
from support.wire_readers import read

from occ.observe.ledger import Ledger

CORPUS = Path(__file__).resolve().parent.parent / "recordings"
MODEL_ID = "recorded-model"
USER = [{"role": "user", "content": "What is the status of the build?"}]


def _path(wire: str, stream: bool) -> str:
    if wire == "gemini":
        return f"/v1beta/models/{MODEL_ID}:{'streamGenerateContent' if stream else 'generateContent'}"
    return {"openai": "/v1/chat/completions", "responses": "/v1/responses", "anthropic": "/v1/messages"}[wire]


def _answers(wire: str) -> list[tuple[Path, dict[str, Any], bool, bool]]:
    """(recording, manifest, stream, usage reported) of each successful answer of ``wire``."""
    out = []
    for recording in sorted((CORPUS / wire).glob("*")):
        if recording.suffix not in (".json", ".sse") or recording.name.endswith(".meta.json"):
            continue
        meta = recording.with_name(recording.stem + ".meta.json")
        manifest = json.loads(meta.read_text()) if meta.exists() else {}
        stream = manifest.get("stream", recording.suffix == ".sse")
        expected = read(wire, recording.read_bytes(), stream=stream, status=manifest.get("status", 200))
        if expected.error is None:
            out.append((recording, manifest, stream, expected.usage is not None))
    return out


@pytest.mark.parametrize("wire", ["openai", "responses", "gemini", "anthropic"])
async def test_every_recorded_answer_is_in_the_ledger_as_the_client_saw_it(wire, fake, start_occ, tmp_path):
    answers = _answers(wire)
    assert answers, f"no successful {wire} recordings"
    for recording, manifest, stream, _ in answers:
        content_type = "text/event-stream" if recording.suffix == ".sse" else "application/json"
        fake.queue(_path(wire, stream), Reply(headers={"content-type": content_type, **manifest.get("headers", {})},
                                              chunks=[recording.read_bytes()]))
    path = str(tmp_path / "usage.sqlite")
    url = await start_occ(make_config(fake, models={"default": {"provider": "fake", "model_id": MODEL_ID,
                                                                "wire_format": wire}},
                                      usage={"path": path, "flush_interval_ms": 50}))
    client = sdk(url)
    told: dict[str, tuple[Any, ...]] = {}
    with trio.fail_after(60):
        for recording, manifest, stream, reported in answers:
            request: dict[str, Any] = {"model": "claude-sonnet-5-5", "max_tokens": 1024, "messages": USER}
            if manifest.get("thinking", True):
                request["thinking"] = THINKING
            if stream:
                async with client.messages.stream(**request) as events:
                    message = await events.get_final_message()
                    request_id = events.response.headers["request-id"]
            else:
                message = await client.messages.create(**request)
                request_id = message._request_id
            u = message.usage
            told[request_id] = (recording.name, u.input_tokens, u.output_tokens, u.cache_read_input_tokens or 0,
                                u.cache_creation_input_tokens or 0, not reported)
        ledger = Ledger(path)
        while ledger.count() < len(told):
            await trio.sleep(0.05)
    conn = sqlite3.connect(path)
    try:
        rows = {r[0]: (r[1], r[2], r[3] or 0, r[4] or 0, bool(r[5])) for r in conn.execute(
            "SELECT request_id, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, usage_estimated "
            "FROM requests")}
    finally:
        conn.close()
    assert set(told) == set(rows)
    for request_id, (name, *expected) in told.items():
        assert tuple(expected) == rows[request_id], name
