"""A provider's error, read once per wire and mapped once to occ's error.

Each wire says "something went wrong" in its own shape: an HTTP status with an error body
(OpenAI's ``{"error":{"message","type","param","code"}}``, Gemini's ``{"error":{"code","message",
"status","details"}}``, Anthropic's ``{"type":"error","error":{"type","message"}}``), an error chunk
inside a 200 chat stream (OpenRouter, vLLM's ``{"object":"error",...}``), a failed Responses
``response``. A small *extractor* per shape pulls out what the provider said, as an
:class:`UpstreamFault`; :func:`upstream_failure` is the one place that turns it into the
:class:`~occ.core.errors.UpstreamStatus` the classifier, the breaker and the client see: which status
when the provider gave none, which Anthropic type its words amount to, how the message reads.

Sans-IO: dicts and bytes in, values out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from occ.core.errors import STATUS_BY_TYPE, UpstreamError, UpstreamProtocolError, UpstreamStatus, UpstreamUnparseable
from occ.core.jsonfast import JSONDecodeError, loads
from occ.core.scrub import clip

__all__ = [
    "UpstreamFault",
    "answer_instead_of_stream",
    "from_anthropic",
    "from_chat",
    "from_gemini",
    "from_http",
    "from_responses",
    "malformed_answer",
    "upstream_failure",
]


@attrs.frozen
class UpstreamFault:
    """What a provider said went wrong, in its own words, before occ decides what that means."""

    #: The provider's own text (the extractor's placeholder when it gave none).
    message: str
    #: The HTTP status the provider gave: the response's, a numeric code in the body, or the status
    #: its wire gives the error's type. ``None``: it gave none, and :func:`upstream_failure` reads
    #: one from :attr:`words`.
    status: int | None = None
    #: The words the provider classified the error with (``type``, ``code``, ``status``), for a
    #: status when it gave none.
    words: str = ""
    #: The Anthropic error type the provider's own vocabulary names outright (an Anthropic
    #: ``overloaded_error``, Gemini's ``UNAVAILABLE``...), else ``None``: the status decides.
    anthropic_type: str | None = None
    retry_after_s: float | None = None
    #: How the message names the failure: ``upstream {label}: {message}``.
    label: str = "error"


#: Words that name an Anthropic error type outright, in any envelope (Anthropic's types, Gemini's statuses).
_TYPE_BY_WORD = {
    "overloaded_error": "overloaded_error",
    "UNAVAILABLE": "overloaded_error",
    "rate_limit_error": "rate_limit_error",
    "RESOURCE_EXHAUSTED": "rate_limit_error",
}

#: A status from the words of an error that carries none, first match wins (OpenAI types and codes,
#: vLLM's exception names, Gemini's statuses, Anthropic's types all contain one of these).
_STATUS_BY_WORD = (
    ("rate_limit", 429), ("too_many", 429), ("overload", 529), ("insufficient_quota", 402), ("billing", 402),
    ("context_length", 400), ("invalid_request", 400), ("bad_request", 400), ("badrequest", 400),
    ("authentication", 401), ("invalid_api_key", 401), ("permission", 403), ("not_found", 404),
    ("timeout", 504), ("unavailable", 503), ("server_error", 500), ("internal", 500),
)

#: An error that says nothing about its cause is the upstream failing: a bad gateway.
_UNKNOWN_STATUS = 502


def upstream_failure(fault: UpstreamFault) -> UpstreamStatus:
    """The one mapping from what a provider said to occ's :class:`UpstreamStatus`."""
    status = fault.status
    if status is None:
        words = fault.words.lower()
        status = next((s for word, s in _STATUS_BY_WORD if word in words), _UNKNOWN_STATUS)
    return UpstreamStatus(status, f"upstream {fault.label}: {fault.message}", retry_after_s=fault.retry_after_s,
                          upstream_type=fault.anthropic_type)


def _gemini_retry_delay(err: Mapping[str, Any]) -> float | None:
    """Gemini's ``RetryInfo`` detail (``{"retryDelay": "12s"}``) in seconds."""
    for detail in err.get("details") or []:
        if isinstance(detail, dict) and detail.get("retryDelay") is not None:  # null means absent
            try:
                return float(str(detail["retryDelay"]).rstrip("s"))
            except ValueError:
                pass
    return None


def from_http(status: int, body: bytes, retry_after_s: float | None = None) -> UpstreamFault:
    """An HTTP error response on any wire: the status is the response's; the body may be any of
    the providers' envelopes (OpenAI, Anthropic, Gemini, a bare ``{"message","type"}``) or none,
    in which case its text is quoted, clipped. ``retry_after_s`` is the response header's, which
    wins over Gemini's ``retryDelay``."""
    message = ""
    kind = ""
    try:
        parsed: Any = loads(body) if body else None
    except JSONDecodeError:
        parsed = None
    if isinstance(parsed, list) and len(parsed) == 1:
        parsed = parsed[0]  # Google's OpenAI-compatible endpoint wraps its error in an array
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            etype = err.get("type") or err.get("status") or err.get("code")
            kind = str(etype) if etype is not None else ""
            if retry_after_s is None:
                retry_after_s = _gemini_retry_delay(err)
        elif isinstance(err, str):
            message = err
        elif isinstance(parsed.get("message"), str):
            message = parsed["message"]
            if isinstance(parsed.get("type"), str):
                kind = parsed["type"]
    if not message:
        text = body.decode("utf-8", "replace").strip()
        message = clip(text, 500) if text else f"HTTP {status}"
    return UpstreamFault(message, status=status, words=kind, anthropic_type=_TYPE_BY_WORD.get(kind),
                         retry_after_s=retry_after_s, label=f"HTTP {status}")


def from_chat(data: Mapping[str, Any]) -> UpstreamFault:
    """An error body or in-stream error chunk of a chat-completions upstream: OpenAI's envelope,
    OpenRouter's ``error`` beside ``choices``, vLLM's flat ``{"object":"error",...}``, a bare string.
    A numeric ``code``/``status`` (OpenRouter, vLLM) is the status; otherwise the words decide."""
    err = data.get("error") if isinstance(data.get("error"), dict) else data
    message = err.get("message") if isinstance(err.get("message"), str) else None
    if message is None:
        message = data["error"] if isinstance(data.get("error"), str) else "upstream error"
    status = None
    for key in ("code", "status"):
        value = err.get(key)
        if isinstance(value, str) and value.isdigit():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
            status = value
            break
    words = " ".join(str(err.get(k) or "") for k in ("type", "code", "status")).lower()
    overloaded = "overload" in (words + " " + message).lower()
    return UpstreamFault(message, status=status, words=words, anthropic_type="overloaded_error" if overloaded else None)


#: The Responses API's error codes name a request problem, except these (and none at all).
_RESPONSES_UPSTREAM_CODES = (("rate_limit", 429), ("server_error", 500))


def from_responses(error: Any, fallback: str = "the upstream response failed") -> UpstreamFault:
    """The ``error`` of a failed Responses ``response`` or of an ``error`` event: ``{"code",
    "message"}``, where every code but a rate limit or a server error (``invalid_prompt``,
    ``invalid_image``...) is the request's fault."""
    error = error if isinstance(error, dict) else {}
    code = str(error.get("code") or error.get("type") or "")
    message = str(error.get("message") or fallback)
    status = next((s for word, s in _RESPONSES_UPSTREAM_CODES if word in code), 400 if code else 500)
    return UpstreamFault(message, status=status, words=code, label=f"error ({code or 'unknown'})")


def from_gemini(data: Mapping[str, Any]) -> UpstreamFault:
    """A Gemini ``{"error":{"code","message","status","details"}}`` body or stream chunk."""
    err = data.get("error") if isinstance(data.get("error"), dict) else {}
    code = err.get("code") if isinstance(err.get("code"), int) else _UNKNOWN_STATUS
    status_word = str(err.get("status") or "")
    # RESOURCE_EXHAUSTED always comes with code 429, which says "rate limit" already
    return UpstreamFault(str(err.get("message") or ""), status=code, words=status_word,
                         anthropic_type="overloaded_error" if status_word == "UNAVAILABLE" else None,
                         retry_after_s=_gemini_retry_delay(err), label=f"error ({status_word or code})")


def from_anthropic(data: Mapping[str, Any]) -> UpstreamFault:
    """An Anthropic error body or ``error`` event: the ``type`` decides the status, as Anthropic's
    own (``overloaded_error`` 529, ``rate_limit_error`` 429...); an unknown type is a bad gateway."""
    err = data.get("error")
    err = err if isinstance(err, dict) else {}
    etype = err.get("type") if isinstance(err.get("type"), str) else "api_error"
    message = err.get("message") if isinstance(err.get("message"), str) and err.get("message") else etype
    known = etype in STATUS_BY_TYPE
    return UpstreamFault(message, status=STATUS_BY_TYPE.get(etype, _UNKNOWN_STATUS), words=etype,
                         anthropic_type=etype if known else None)


def malformed_answer(body: bytes, expected: str = "a JSON answer") -> UpstreamUnparseable:
    """A 2xx answer occ cannot read, named for what happened: cut off, empty or not JSON at all.

    Never an HTTP status that did not happen: the upstream said 200, then sent something broken
    (a proxy that truncated it, an HTML page from a gateway). ``expected`` says what was asked for.
    """
    try:
        loads(body)
        what = "a body occ could not read"
    except JSONDecodeError as exc:
        pos = getattr(exc, "pos", None)
        text = body.decode("utf-8", "replace").strip()
        if not text:
            what = "an empty body"
        elif isinstance(pos, int) and pos >= len(body.rstrip()) and text[:1] in "{[":
            what = f"JSON cut off after {len(body)} bytes (ends {clip(text[-40:], 40)!r})"
        else:
            what = f"a body that is not valid JSON ({clip(text, 80)!r})"
    return UpstreamUnparseable(f"malformed upstream answer: HTTP 200 with {what}, where {expected} was expected")


def answer_instead_of_stream(body: bytes) -> UpstreamError:
    """What a JSON body means when an event stream was asked for: the provider's error in a 200
    (its words decide the status, as in a stream's error chunk), a whole answer where a stream was
    asked for, or a broken body (:func:`malformed_answer`)."""
    try:
        parsed: Any = loads(body)
    except JSONDecodeError:
        return malformed_answer(body, "an event stream")
    if isinstance(parsed, dict) and parsed.get("error") is not None:  # null means absent
        fault = from_http(200, body)
        return upstream_failure(attrs.evolve(fault, status=None, label="error in an HTTP 200 answer"))
    return UpstreamProtocolError("malformed upstream answer: HTTP 200 with a whole JSON answer where an event "
                                 "stream was asked for")
