"""The one failure classifier: for every failed attempt, move on or stop, and does it count against the model.

* Anything that says the *model or its provider* is unwell moves on and counts against its breaker:
  connect errors, deadlines, stalls, broken streams, 408/409/429, 5xx, 529 / ``overloaded_error``, a missing
  model (404, or "model not found" in any 4xx), and usage limits (402, OpenCode's ``GoUsageLimitError``,
  OpenAI's ``insufficient_quota``): another model may well answer.
* occ's own overload (every upstream connection slot busy) stops with a 529 and counts against no
  model: the next model would wait on the same slots, and the models are not to blame.
* A complete answer occ cannot parse (:class:`~occ.core.errors.UpstreamUnparseable`) moves on but does not
  count: it says the model's wire and occ disagree, not that the model is down, and a breaker would also cut
  the model's other traffic (its streams parse fine). Only the upstream's behaviour counts against it.
* 401/403 move on but do not count: a wrong key is configuration, not health, and must not hide a model
  whose key gets fixed by a reload.
* A 4xx that says the *request* is bad stops: another model would refuse it too, and "all models failed"
  would hide the reason; the client gets that error.
* A context-length error (any wording, or a 413) stops with a 400 ``invalid_request_error`` whose message
  starts with "prompt is too long", the text Claude Code answers by compacting instead of retrying. The
  rewording is done on the exception itself, so the caller re-raises it as is.

Client cancellation never reaches this function: it is a ``trio.Cancelled``, not an ``OccError``. Sans-IO.
"""

from __future__ import annotations

import re

import attrs

from occ.core.errors import (
    MissingApiKey,
    OccError,
    Overloaded,
    TranslationError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamStalled,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnparseable,
)

__all__ = ["CONTEXT_LENGTH_PREFIX", "Verdict", "classify"]

CONTEXT_LENGTH_PREFIX = "prompt is too long"

_CONTEXT_LENGTH = ("context_length_exceeded", "maximum context length", "prompt is too long", "too many tokens",
                   "context window", "context length", "input is too long", "input too long",
                   "reduce the length of the messages", "exceeds the model's context")
_USAGE_LIMIT = ("gousagelimiterror", "usage limit", "usage_limit", "insufficient_quota", "quota", "credit balance",
                "out of credits", "billing")
_MODEL_MISSING = re.compile(r"model[_ ]not[_ ]found|\bmodel\b[^.]{0,80}?\b(?:not found|does not exist|not exist|"
                            r"is not supported|is not available)|\b(?:unknown|unsupported|no such) model\b")
_RATE_LIMIT = ("rate limit", "rate_limit", "too many requests")


@attrs.frozen
class Verdict:
    action: str  # "next": try the next model | "stop": return this error to the client now
    counts_against_health: bool
    outcome: str  # short bounded label for logs and metrics


_NEXT_COUNTED = {
    UpstreamConnectError: "connect_error",
    UpstreamStalled: "stall",
    UpstreamTimeout: "timeout",
    UpstreamProtocolError: "protocol_error",
}


def classify(exc: OccError) -> Verdict:
    if isinstance(exc, UpstreamUnparseable):
        return Verdict("next", False, "parse_error")  # a wire mismatch, not a sick model: no breaker counts it
    for kind, outcome in _NEXT_COUNTED.items():
        if isinstance(exc, kind):
            return Verdict("next", True, outcome)
    if isinstance(exc, UpstreamStatus):
        return _classify_status(exc)
    if isinstance(exc, TranslationError):
        return Verdict("next", False, "translation_error")  # occ's bug for this wire; another wire may work
    if isinstance(exc, MissingApiKey):
        return Verdict("next", False, "no_api_key")
    if isinstance(exc, Overloaded):
        return Verdict("stop", False, "occ_overloaded")  # occ's own limit: every model would wait on it
    return Verdict("next", True, "error")


def _has(text: str, needles: tuple[str, ...]) -> bool:
    return any(n in text for n in needles)


def _classify_status(exc: UpstreamStatus) -> Verdict:
    status = exc.upstream_status
    text = f"{exc.upstream_type or ''} {exc.message}".lower()
    if exc.upstream_type == "overloaded_error" or status == 529:
        return Verdict("next", True, "overloaded")
    if status == 413 or (status < 500 and _has(text, _CONTEXT_LENGTH)):
        _as_prompt_too_long(exc)
        return Verdict("stop", False, "context_length")
    if status == 402 or (status < 500 and _has(text, _USAGE_LIMIT)):
        return Verdict("next", True, "usage_limit")
    if status in (401, 403):
        return Verdict("next", False, f"http_{status}")
    if status in (408, 409, 429) or status >= 500:
        return Verdict("next", True, f"http_{status}")
    model_missing = _MODEL_MISSING.search(text) is not None
    if status == 404 or model_missing:
        return Verdict("next", True, "model_not_found" if model_missing else "http_404")
    if _has(text, _RATE_LIMIT) or exc.upstream_type in ("rate_limit_error", "api_error"):
        return Verdict("next", True, "rate_limit" if _has(text, _RATE_LIMIT) else "api_error")
    if status < 400:
        # An error event inside a 200 stream with no recognisable cause: the model failed, not the request.
        return Verdict("next", True, "stream_error")
    return Verdict("stop", False, "bad_request")


def _as_prompt_too_long(exc: UpstreamStatus) -> None:
    if not exc.message.lower().startswith(CONTEXT_LENGTH_PREFIX):
        exc.message = f"{CONTEXT_LENGTH_PREFIX}: {exc.message}"
    elif not exc.message.startswith(CONTEXT_LENGTH_PREFIX):
        exc.message = CONTEXT_LENGTH_PREFIX + exc.message[len(CONTEXT_LENGTH_PREFIX):]
    exc.args = (exc.message,)
    exc.upstream_status = 400
    exc.upstream_type = "invalid_request_error"
