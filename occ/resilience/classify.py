"""The one failure classifier: for every failed attempt, move on or stop, and does it count.

A 400 that says the request itself is bad goes back to the client as is (another model would
refuse it too, and "all models failed" would hide the reason); a context-length error is reworded
to start with "prompt is too long" so Claude Code compacts instead of retrying. Everything that
says the *model* is unwell (connect errors, deadlines, stalls, 429, 5xx, 529, broken streams)
moves on and counts against its breaker. Client cancellation never reaches this function: it is a
``trio.Cancelled``, not an ``OccError``. Sans-IO.
"""

from __future__ import annotations

import attrs

from ..errors import (
    MissingApiKey,
    OccError,
    TranslationError,
    UpstreamConnectError,
    UpstreamProtocolError,
    UpstreamStalled,
    UpstreamStatus,
    UpstreamTimeout,
)

__all__ = ["Verdict", "classify"]

_CONTEXT_LENGTH = ("context_length_exceeded", "maximum context length", "prompt is too long", "too many tokens",
                   "context window", "input is too long")
_QUOTA = ("gousagelimiterror", "usage limit", "insufficient_quota", "quota", "credit")


@attrs.frozen
class Verdict:
    action: str  # "next" | "stop"
    counts_against_health: bool
    outcome: str


def classify(exc: OccError) -> Verdict:
    if isinstance(exc, UpstreamConnectError):
        return Verdict("next", True, "connect_error")
    if isinstance(exc, UpstreamStalled):
        return Verdict("next", True, "stall")
    if isinstance(exc, UpstreamTimeout):
        return Verdict("next", True, "timeout")
    if isinstance(exc, UpstreamProtocolError):
        return Verdict("next", True, "protocol_error")
    if isinstance(exc, TranslationError):
        return Verdict("next", False, "translation_error")
    if isinstance(exc, MissingApiKey):
        return Verdict("next", False, "no_api_key")
    if isinstance(exc, UpstreamStatus):
        status = exc.upstream_status
        text = exc.message.lower()
        outcome = f"http_{status}"
        if status in (408, 409, 429) or status >= 500:
            return Verdict("next", True, outcome)
        if status == 402 or any(q in text for q in _QUOTA):
            return Verdict("next", True, outcome)
        if status in (401, 403):
            return Verdict("next", False, outcome)
        if status == 404 and "model" in text:
            return Verdict("next", True, outcome)
        if any(c in text for c in _CONTEXT_LENGTH):
            if not exc.message.startswith("prompt is too long"):
                exc.message = f"prompt is too long: {exc.message}"
                exc.args = (exc.message,)
            return Verdict("stop", False, outcome)
        return Verdict("stop", False, outcome)
    return Verdict("next", True, "error")
