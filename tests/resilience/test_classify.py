"""The failure classifier table: move on or stop, and whether it counts against the model's health."""

from __future__ import annotations

import pytest

from occ.core.errors import (
    InvalidRequest,
    MissingApiKey,
    Overloaded,
    TranslationError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamStalled,
    UpstreamStatus,
    UpstreamTimeout,
    to_anthropic,
)
from occ.resilience.classify import classify


@pytest.mark.parametrize(("exc", "action", "counts", "outcome"), [
    (UpstreamConnectError("connection refused"), "next", True, "connect_error"),
    (UpstreamTimeout("attempt deadline"), "next", True, "timeout"),
    (UpstreamStalled("no byte for 120 s"), "next", True, "stall"),
    (UpstreamProtocolError("stream ended without [DONE]"), "next", True, "protocol_error"),
    (UpstreamStatus(408, "request timeout"), "next", True, "http_408"),
    (UpstreamStatus(409, "conflict"), "next", True, "http_409"),
    (UpstreamStatus(429, "Rate limit reached for requests", retry_after_s=2), "next", True, "http_429"),
    (UpstreamStatus(500, "internal error"), "next", True, "http_500"),
    (UpstreamStatus(502, "bad gateway"), "next", True, "http_502"),
    (UpstreamStatus(503, "Service Unavailable"), "next", True, "http_503"),
    (UpstreamStatus(529, "Overloaded", upstream_type="overloaded_error"), "next", True, "overloaded"),
    (UpstreamStatus(200, "Overloaded", upstream_type="overloaded_error"), "next", True, "overloaded"),
    (UpstreamStatus(402, "Payment required"), "next", True, "usage_limit"),
    (UpstreamStatus(429, '{"type":"GoUsageLimitError","message":"5-hour usage limit reached"}'), "next", True,
     "usage_limit"),
    (UpstreamStatus(400, "GoUsageLimitError: usage limit reached"), "next", True, "usage_limit"),
    (UpstreamStatus(429, "You exceeded your current quota", upstream_type="insufficient_quota"), "next", True,
     "usage_limit"),
    (UpstreamStatus(401, "Invalid API key"), "next", False, "http_401"),
    (UpstreamStatus(403, "Forbidden"), "next", False, "http_403"),
    (UpstreamStatus(404, "The model `kimi-k9` does not exist"), "next", True, "model_not_found"),
    (UpstreamStatus(404, "Not Found"), "next", True, "http_404"),
    (UpstreamStatus(400, "Model Not Exist"), "next", True, "model_not_found"),
    (UpstreamStatus(200, "stream error: internal", upstream_type="api_error"), "next", True, "api_error"),
    (UpstreamStatus(200, "upstream sent an error event"), "next", True, "stream_error"),
    (UpstreamStatus(400, "messages.1.content.0: tool_use ids must be unique"), "stop", False, "bad_request"),
    (UpstreamStatus(422, "Unprocessable Entity: tools.0.input_schema"), "stop", False, "bad_request"),
    (UpstreamStatus(400, "function name or parameters is empty (2013)"), "stop", False, "bad_request"),
    (TranslationError("occ bug"), "next", False, "translation_error"),
    (MissingApiKey("set OCC_API_KEY"), "next", False, "no_api_key"),
    (Overloaded("occ is overloaded: all 1024 upstream connections were busy"), "stop", False, "occ_overloaded"),
    (InvalidRequest("unexpected"), "next", True, "error"),
])
def test_classifier_table(exc, action, counts, outcome):
    assert classify(exc) == type(classify(exc))(action, counts, outcome)


@pytest.mark.parametrize(("status", "message"), [
    (400, "This model's maximum context length is 128000 tokens. However, you requested 140000 tokens"),
    (400, '{"error":{"code":"context_length_exceeded"}}'),
    (400, "Prompt is too long: 213000 tokens > 200000 maximum"),
    (422, "Input is too long for requested model"),
    (413, "Request Entity Too Large"),
    (200, "too many tokens in the input"),
])
def test_context_length_errors_stop_as_a_400_prompt_is_too_long(status, message):
    """Claude Code compacts on "prompt is too long" instead of retrying a 502."""
    exc = UpstreamStatus(status, message)
    verdict = classify(exc)
    assert (verdict.action, verdict.counts_against_health, verdict.outcome) == ("stop", False, "context_length")
    http_status, body = to_anthropic(exc)
    assert http_status == 400 and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("prompt is too long")
    assert message[10:] in body["error"]["message"]


def test_context_length_rewording_is_idempotent():
    exc = UpstreamStatus(400, "prompt is too long: 213000 tokens > 200000 maximum")
    classify(exc)
    classify(exc)
    assert exc.message == "prompt is too long: 213000 tokens > 200000 maximum"


def test_a_5xx_mentioning_quota_or_context_still_moves_on():
    assert classify(UpstreamStatus(503, "maximum context length service unavailable")).action == "next"
    assert classify(UpstreamStatus(500, "quota service down")).outcome == "http_500"
