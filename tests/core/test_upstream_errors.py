"""Each provider's error, read by its extractor and mapped by the one mapping.

Bodies are the providers' real shapes: built from the SDKs' own types where they have them
(``anthropic.types.ErrorResponse``, ``openai.types.shared.ErrorObject``,
``openai.types.responses.ResponseError``), else copied from the providers' documentation and from
captured streams (``support/fixtures/chat``).
"""

from __future__ import annotations

import json
import os
import typing

import pytest
from anthropic.types import ErrorResponse
from openai.types.responses import ResponseError, ResponseErrorEvent
from openai.types.shared import ErrorObject

from occ.core.errors import STATUS_BY_TYPE, error_type_for_status, to_anthropic
from occ.core.sse import SSEDecoder
from occ.core.upstream_errors import (
    UpstreamFault,
    from_anthropic,
    from_chat,
    from_gemini,
    from_http,
    from_responses,
    upstream_failure,
)
from occ.resilience.classify import classify

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "support", "fixtures")


def _seen(exc) -> tuple[int, str]:
    """What a client would get: the status and the Anthropic ``error.type``."""
    status, body = to_anthropic(exc)
    return status, body["error"]["type"]


def _openai(**error) -> bytes:
    return json.dumps({"error": ErrorObject(**error).model_dump()}).encode()


def _data_lines(path: str) -> list[dict]:
    with open(os.path.join(FIXTURES, path), "rb") as f:
        return [json.loads(e.data) for e in SSEDecoder().feed(f.read()) if e.data.startswith("{")]


# -- an HTTP error on any wire ---------------------------------------------------------------------

def test_http_openai_rate_limit_keeps_message_and_header_retry():
    with open(os.path.join(FIXTURES, "chat", "openai_error.json"), "rb") as f:
        body = f.read()
    exc = upstream_failure(from_http(429, body, 7.0))
    assert exc.message == "upstream HTTP 429: Rate limit reached for gpt-5.1"
    assert exc.retry_after_s == 7.0 and _seen(exc) == (429, "rate_limit_error")


def test_http_openai_bad_key_is_authentication_whatever_its_type_says():
    """OpenAI calls a bad key ``invalid_request_error``; the 401 decides."""
    body = _openai(message="Incorrect API key provided: sk-...abcd.", type="invalid_request_error",
                   code="invalid_api_key")
    exc = upstream_failure(from_http(401, body))
    assert _seen(exc) == (401, "authentication_error") and classify(exc).outcome == "http_401"


def test_http_openai_quota_is_a_usage_limit():
    body = _openai(message="You exceeded your current quota, please check your plan and billing details.",
                   type="insufficient_quota", code="insufficient_quota")
    exc = upstream_failure(from_http(429, body))
    assert exc.upstream_status == 429 and "current quota" in exc.message
    assert classify(exc).outcome == "usage_limit"


def test_http_gemini_resource_exhausted_reads_the_retry_delay():
    body = json.dumps({"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                                 "status": "RESOURCE_EXHAUSTED", "details": [
                                     {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
                                     {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}})
    exc = upstream_failure(from_http(429, body.encode()))
    assert exc.retry_after_s == 37.0 and exc.upstream_type == "rate_limit_error"
    assert upstream_failure(from_http(429, body.encode(), 2.0)).retry_after_s == 2.0  # the header wins


def test_http_gemini_unavailable_is_overloaded():
    body = {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                      "status": "UNAVAILABLE"}}
    exc = upstream_failure(from_http(503, json.dumps(body).encode()))
    assert _seen(exc) == (529, "overloaded_error") and classify(exc).outcome == "overloaded"


def test_http_anthropic_envelope():
    body = ErrorResponse(type="error", error={"type": "overloaded_error", "message": "Overloaded"},
                         request_id="req_011CSHoEeqs5C35K2UUqR7Fy").model_dump_json().encode()
    exc = upstream_failure(from_http(529, body))
    assert exc.message == "upstream HTTP 529: Overloaded" and _seen(exc) == (529, "overloaded_error")


@pytest.mark.parametrize(("body", "message"), [
    (b"", "upstream HTTP 502: HTTP 502"),
    (b"<html><body>502 Bad Gateway</body></html>", "upstream HTTP 502: <html><body>502 Bad Gateway</body></html>"),
    (b'{"error": "model is loading"}', "upstream HTTP 502: model is loading"),
    (b'{"message": "Invalid token", "type": "auth"}', "upstream HTTP 502: Invalid token"),
    (b"x" * 600, "upstream HTTP 502: " + "x" * 500),
])
def test_http_bodies_without_an_envelope_are_quoted_clipped(body, message):
    exc = upstream_failure(from_http(502, body))
    assert exc.message == message and exc.upstream_status == 502


# -- chat completions: error bodies and in-stream error chunks -------------------------------------

def test_chat_openrouter_error_chunk_from_a_captured_stream():
    chunk = next(d for d in _data_lines("chat/openrouter_error_chunk.sse") if "error" in d)
    exc = upstream_failure(from_chat(chunk))
    assert exc.message == "upstream error: Provider disconnected" and exc.upstream_status == 500


def test_chat_vllm_error_object_from_a_captured_stream():
    [chunk] = _data_lines("chat/vllm_error_object.sse")
    exc = upstream_failure(from_chat(chunk))
    assert _seen(exc) == (404, "not_found_error") and classify(exc).outcome == "model_not_found"


def test_chat_openrouter_numeric_code_is_the_status():
    chunk = {"error": {"code": 429, "message": "Rate limit exceeded: free-models-per-day",
                       "metadata": {"headers": {"X-RateLimit-Limit": "50"}}}}
    assert upstream_failure(from_chat(chunk)).upstream_status == 429


@pytest.mark.parametrize(("error", "status"), [
    ({"message": "m", "type": "server_error", "param": None, "code": None}, 500),
    ({"message": "m", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}, 400),
    ({"message": "m", "type": "tokens", "param": None, "code": "rate_limit_exceeded"}, 429),
    ({"message": "m", "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}, 402),
    ({"message": "m", "type": "weird"}, 502),
])
def test_chat_openai_error_words_give_the_status(error, status):
    body = {"error": ErrorObject(**error).model_dump()}
    assert upstream_failure(from_chat(body)).upstream_status == status


def test_chat_overloaded_in_the_message_is_overloaded():
    exc = upstream_failure(from_chat({"error": {"message": "Model is overloaded, retry", "code": 503}}))
    assert _seen(exc) == (529, "overloaded_error")


# -- the Responses API ---------------------------------------------------------------------------

@pytest.mark.parametrize("code", typing.get_args(ResponseError.model_fields["code"].annotation))
def test_responses_every_documented_code_says_whose_fault_it_is(code):
    """From the SDK's own list: a rate limit, a server error, or (every other code) the request."""
    exc = upstream_failure(from_responses(ResponseError(code=code, message="m").model_dump()))
    expected = {"rate_limit_exceeded": 429, "server_error": 500}.get(code, 400)
    assert exc.upstream_status == expected and exc.message == f"upstream error ({code}): m"


def test_responses_error_event_and_a_failure_without_error():
    event = ResponseErrorEvent(type="error", code="server_error", message="The server had an error",
                               param=None, sequence_number=3).model_dump()
    assert upstream_failure(from_responses(event)).upstream_status == 500
    exc = upstream_failure(from_responses(None))
    assert exc.upstream_status == 500 and exc.message == "upstream error (unknown): the upstream response failed"


# -- Gemini --------------------------------------------------------------------------------------

def test_gemini_bodies():
    body = {"error": {"code": 400, "message": "* GenerateContentRequest.contents: contents is not specified\n",
                      "status": "INVALID_ARGUMENT"}}
    exc = upstream_failure(from_gemini(body))
    assert _seen(exc) == (400, "invalid_request_error") and exc.message.startswith("upstream error (INVALID_ARGUMENT)")
    body = {"error": {"code": 429, "message": "Quota exceeded", "status": "RESOURCE_EXHAUSTED",
                      "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.5s"}]}}
    exc = upstream_failure(from_gemini(body))
    assert _seen(exc) == (429, "rate_limit_error") and exc.retry_after_s == 12.5
    exc = upstream_failure(from_gemini({"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}}))
    assert _seen(exc) == (529, "overloaded_error")
    assert upstream_failure(from_gemini({"error": {"message": "?"}})).upstream_status == 502


# -- Anthropic -----------------------------------------------------------------------------------

#: The status Anthropic documents for each error type it sends.
ANTHROPIC_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                    "permission_error": 403, "not_found_error": 404, "rate_limit_error": 429, "api_error": 500,
                    "timeout_error": 504, "overloaded_error": 529}


@pytest.mark.parametrize("etype", sorted(ANTHROPIC_STATUS))
def test_anthropic_each_type_keeps_its_status_and_type(etype):
    body = ErrorResponse(type="error", error={"type": etype, "message": "boom"}).model_dump()
    exc = upstream_failure(from_anthropic(body))
    assert _seen(exc) == (ANTHROPIC_STATUS[etype], etype) and exc.message == "upstream error: boom"


def test_anthropic_unknown_type_and_empty_message():
    exc = upstream_failure(from_anthropic({"type": "error", "error": {"type": "conflict_error", "message": ""}}))
    assert exc.upstream_status == 502 and exc.message == "upstream error: conflict_error"
    assert upstream_failure(from_anthropic({"type": "error"})).upstream_status == 500


def test_the_mapping_reads_a_status_from_words_only_when_none_was_given():
    assert upstream_failure(UpstreamFault("m", words="rate_limit_exceeded")).upstream_status == 429
    assert upstream_failure(UpstreamFault("m", status=400, words="rate_limit_exceeded")).upstream_status == 400
    assert upstream_failure(UpstreamFault("m")).upstream_status == 502


def test_anthropic_type_and_status_tables_agree():
    """``STATUS_BY_TYPE`` (a provider's type -> status) and ``error_type_for_status`` (a status -> the
    type a client sees) are one vocabulary read both ways."""
    assert {t: error_type_for_status(s) for t, s in STATUS_BY_TYPE.items()} == {t: t for t in STATUS_BY_TYPE}
    assert set(STATUS_BY_TYPE) == set(ANTHROPIC_STATUS) | {"request_too_large"}


def test_an_error_wrapped_in_an_array_is_read_as_the_error():
    """Google's OpenAI-compatible endpoint answers a missing thought signature with its error object inside
    a JSON array; the message reaches the client, not the array's raw text."""
    body = json.dumps([{"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
                                  "Function call is missing a thought_signature in functionCall parts."}}]).encode()
    fault = from_http(400, body)
    assert fault.message == "Function call is missing a thought_signature in functionCall parts."
    assert fault.status == 400
