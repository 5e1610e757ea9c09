"""Random upstream error text with secrets spliced in, through every path that leads to a client.

Each path is the real code: an upstream HTTP error body (``status_error``), an error event or error
chunk fed to each wire's stream translator, a non-streaming error body through each wire's
``translate_response``, the all-failed summary, the request log line, ``/status``'s JSON, and the
log filter. Whatever the path, the error body, the ``error`` frame and the log line must hold
neither the configured key nor any key-shaped string that was spliced in.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from occ.config.model import ModelConfig
from occ.core.errors import AllAttemptsFailed, AttemptRecord, OccError, error_frame, to_anthropic
from occ.core.scrub import clip, remember_secrets, scrub_json
from occ.core.sse import SSEEvent
from occ.observe.access_log import RequestLog
from occ.observe.logs import get_logger
from occ.translate.anthropic_events import AnthropicStreamBuilder
from occ.translate.wires import wire_for
from occ.upstream.client import status_error

#: configured (the server registers its config's secrets exactly like this)
CONFIGURED = "opencode-live-Zq81x0aPLk2mN7"
remember_secrets([CONFIGURED])

#: never configured: caught by shape
SHAPED = ["sk-proj-9XfT2bQ8LmN4vR6w", "AIzaSyD-4m9Qx2ZpL7kT1wVb3nR8cY6hJ0sE5uF", "Bearer eyJ0eXAi0iJKV1Qi.Zm9v.YmFy"]

_TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=40)


@st.composite
def leaky_messages(draw: st.DrawFn) -> tuple[str, list[str]]:
    """Random text with the configured key and some key shapes spliced in at random places."""
    secrets = [CONFIGURED, *draw(st.lists(st.sampled_from(SHAPED), max_size=2))]
    secrets = draw(st.permutations(secrets))
    text = "".join(draw(_TEXT) + " " + s + " " for s in secrets) + draw(_TEXT)
    return text, secrets


def _tails(secrets: list[str]) -> list[str]:
    """What must not survive: each configured key whole, the secret part of each shaped one."""
    return [s.split(" ", 1)[1] if s.startswith("Bearer ") else s for s in secrets]


def _assert_clean(shown: str, secrets: list[str]) -> None:
    for secret in _tails(secrets):
        assert secret not in shown
        assert secret[:16] not in shown  # no half key either (clipping happens after scrubbing)


def _builder() -> AnthropicStreamBuilder:
    return AnthropicStreamBuilder(message_id="msg_x", model="claude-x", input_tokens=10)


_MODEL = ModelConfig(provider="p", model_id="m")


def _stream_error_events(message: str) -> dict[str, SSEEvent]:
    """The mid-stream error each wire can send, carrying ``message``."""
    return {
        "openai": SSEEvent(json.dumps({"error": {"message": message, "type": "invalid_request_error"}})),
        "anthropic": SSEEvent(json.dumps({"type": "error", "error": {"type": "api_error", "message": message}}),
                              event="error"),
        "responses": SSEEvent(json.dumps({"type": "response.failed",
                                          "response": {"error": {"code": "server_error", "message": message}}})),
        "gemini": SSEEvent(json.dumps({"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}})),
    }


def _error_bodies(message: str) -> dict[str, Any]:
    return {
        "openai": {"error": {"message": message, "type": "invalid_request_error"}},
        "anthropic": {"type": "error", "error": {"type": "authentication_error", "message": message}},
        "responses": {"error": {"code": "invalid_api_key", "message": message}},
        "gemini": {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}},
    }


def _shown(exc: BaseException) -> str:
    """Everything a client can see of an error: the HTTP body and the in-stream frame."""
    return json.dumps(to_anthropic(exc, "req_1")[1]) + error_frame(exc).decode()


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(leak=leaky_messages(), status=st.sampled_from([400, 401, 403, 429, 500, 502, 503]))
def test_an_upstream_http_error_body_never_shows_a_key(leak, status):
    message, secrets = leak
    for body in _error_bodies(message).values():
        _assert_clean(_shown(status_error(status, json.dumps(body).encode(), {})), secrets)
    _assert_clean(_shown(status_error(status, message.encode(), {})), secrets)  # not JSON: quoted, clipped


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(leak=leaky_messages())
def test_a_mid_stream_error_on_every_wire_never_shows_a_key(leak):
    message, secrets = leak
    for protocol, event in _stream_error_events(message).items():
        builder = _builder()
        translator = wire_for(protocol).stream_translator(builder, _MODEL, [])
        try:
            translator.feed(event)
        except OccError as exc:
            builder.error(exc)
            _assert_clean(_shown(exc), secrets)
        else:
            raise AssertionError(f"{protocol}: an error event did not raise")
        _assert_clean(builder.take().decode(), secrets)  # the frames the relay would write


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(leak=leaky_messages())
def test_a_non_streaming_error_body_on_every_wire_never_shows_a_key(leak):
    message, secrets = leak
    for protocol, body in _error_bodies(message).items():
        try:
            wire_for(protocol).translate_response(body, model=_MODEL, message_id="msg_x", model_name="claude-x",
                                                  input_estimate=1)
        except OccError as exc:
            _assert_clean(_shown(exc), secrets)
        else:
            raise AssertionError(f"{protocol}: an error body did not raise")


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(leak=leaky_messages())
def test_the_all_failed_summary_and_the_request_log_never_show_a_key(leak):
    message, secrets = leak
    cause = status_error(401, json.dumps({"error": {"message": message}}).encode(), {})
    record = AttemptRecord("p", "m", "openai", "http_error", 0.1, detail=clip(cause.message, 300), status=401)
    failed = AllAttemptsFailed([record], [cause], [])
    _assert_clean(_shown(failed), secrets)
    log = RequestLog(request_id="req_1", started=0.0, error=failed, stream=True, attempts=[record])
    _assert_clean(json.dumps(scrub_json(log.fields())), secrets)


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(leak=leaky_messages())
def test_a_log_record_never_shows_a_key(leak):
    message, secrets = leak
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(self.format(record))

    logger = get_logger("occ.test_scrub_paths")
    handler = Keep()
    logger.addHandler(handler)
    try:
        logger.warning("upstream said %s", message)
        try:
            raise ValueError(message)
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    _assert_clean("\n".join(seen), secrets)
