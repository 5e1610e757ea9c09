"""The one error hierarchy of occ, and its one mapping to Anthropic errors.

Every failure occ reports to a client is an :class:`OccError`. Each subclass carries the HTTP
status and the Anthropic ``error.type`` it maps to as class attributes (the way h11's errors carry
``error_status_hint``), so :func:`to_anthropic` is a lookup, not a decision tree.

Whose fault it is matters, as in h11: ``UpstreamProtocolError`` is the upstream breaking its
protocol (a retryable outcome), ``TranslationError`` is occ's own bug (500 ``api_error``).

This module is sans-IO: no trio, no httpx.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import attrs

from occ.core.scrub import scrub

__all__ = [
    "STATUS_BY_TYPE",
    "AllAttemptsFailed",
    "AttemptRecord",
    "ConfigError",
    "Forbidden",
    "InvalidRequest",
    "MissingApiKey",
    "NotFound",
    "OccError",
    "Overloaded",
    "RateLimited",
    "RequestTooLarge",
    "TranslationError",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamStalled",
    "UpstreamStatus",
    "UpstreamTimeout",
    "UpstreamUnparseable",
    "anthropic_error_body",
    "error_type_for_status",
    "to_anthropic",
]


_TYPE_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "request_too_large",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


#: The status Anthropic gives each of its error types (the inverse of the table above, where a type
#: has more than one status: the one Anthropic sends).
STATUS_BY_TYPE: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def error_type_for_status(status: int) -> str:
    """The Anthropic ``error.type`` a client expects for an HTTP ``status``."""
    if status in _TYPE_BY_STATUS:
        return _TYPE_BY_STATUS[status]
    if 400 <= status < 500:
        return "invalid_request_error"
    return "api_error"


class OccError(Exception):
    """Base of every error occ reports. ``status``/``error_type`` say how a client sees it."""

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "api_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def http_status(self) -> int:
        return self.status

    @property
    def anthropic_type(self) -> str:
        return self.error_type

    @property
    def retry_after_s(self) -> float | None:
        return None


class ConfigError(OccError):
    """A configuration file that cannot be used. ``problems`` lists every one, with key paths;
    ``warnings`` what the same file would have been warned about (unknown keys...), because a
    misspelt key is often the cause of the error beside it."""

    status = 500
    error_type = "api_error"

    def __init__(self, problems: list[str], source: str = "config", *,
                 warnings: list[str] | tuple[str, ...] = ()) -> None:
        self.problems = list(problems)
        self.warnings = list(warnings)
        self.source = source
        super().__init__(f"{source}: " + "; ".join(self.problems))


class InvalidRequest(OccError):
    status = 400
    error_type = "invalid_request_error"


class NotFound(OccError):
    status = 404
    error_type = "not_found_error"


class Unauthorized(OccError):
    """Client keys are configured and the request presented none, or a wrong one."""

    status = 401
    error_type = "authentication_error"


class Forbidden(OccError):
    """The request checks refused it: a public bind without keys, a foreign Host or Origin."""

    status = 403
    error_type = "permission_error"


class UnsupportedMediaType(OccError):
    """A body that is not ``application/json``: what a browser can send cross-origin unasked."""

    status = 415
    error_type = "invalid_request_error"


class RequestTooLarge(OccError):
    status = 413
    error_type = "request_too_large"


class MissingApiKey(OccError):
    """No provider key is configured: the client learns which variable to set."""

    status = 401
    error_type = "authentication_error"


class _OwnRefusal(OccError):
    """occ refuses by itself, and always says when to come back (``Retry-After``)."""

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self._retry_after_s = retry_after_s

    @property
    def retry_after_s(self) -> float | None:
        return self._retry_after_s


class RateLimited(_OwnRefusal):
    """occ itself refuses: too many concurrent requests from one client."""

    status = 429
    error_type = "rate_limit_error"


class Overloaded(_OwnRefusal):
    """occ's own limit (every upstream connection slot busy): the client should retry soon."""

    status = 529
    error_type = "overloaded_error"


class TranslationError(OccError):
    """occ's own bug while translating: never the upstream's or the client's fault."""

    status = 500
    error_type = "api_error"


class UpstreamError(OccError):
    """Something went wrong talking to an upstream model. Subclasses say what."""

    status = 502
    error_type = "api_error"
    #: Short machine-readable outcome used by logs, metrics and the classifier.
    outcome: ClassVar[str] = "error"


class UpstreamStatus(UpstreamError):
    """The upstream answered with an HTTP error status (or an error event inside a 200 stream)."""

    outcome = "http_error"

    def __init__(
        self,
        upstream_status: int,
        message: str,
        *,
        retry_after_s: float | None = None,
        upstream_type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status
        self.upstream_type = upstream_type
        self._retry_after_s = retry_after_s

    @property
    def http_status(self) -> int:
        if self.upstream_type == "overloaded_error":
            return 529
        if self.upstream_status in (502, 503) and _looks_overloaded(self.message):
            return 529
        if self.upstream_status < 400:
            return 502
        return self.upstream_status

    @property
    def anthropic_type(self) -> str:
        if self.upstream_type in STATUS_BY_TYPE:
            return self.upstream_type
        return error_type_for_status(self.http_status)

    @property
    def retry_after_s(self) -> float | None:
        return self._retry_after_s


def _looks_overloaded(message: str) -> bool:
    lowered = message.lower()
    return "overload" in lowered or "capacity" in lowered


class UpstreamConnectError(UpstreamError):
    outcome = "connect_error"


class UpstreamTimeout(UpstreamError):
    """The attempt's deadline passed (``timeout_ms`` / ``streaming_timeout_ms``)."""

    status = 504
    error_type = "timeout_error"
    outcome = "timeout"


class UpstreamStalled(UpstreamError):
    """No upstream byte for longer than the stall guard allows (``stream_timeout_ms``)."""

    status = 504
    error_type = "timeout_error"
    outcome = "stall"


class UpstreamProtocolError(UpstreamError):
    """The upstream broke its protocol: bad JSON, bad SSE, a truncated stream."""

    outcome = "protocol_error"


class UpstreamUnparseable(UpstreamProtocolError):
    """A complete answer occ could not parse (a 2xx body that is not JSON). It says nothing about the
    model's availability, so it counts against no breaker (docs/configuration.md, Circuit breaker)."""

    outcome = "parse_error"


@attrs.frozen
class AttemptRecord:
    """What happened to one attempt, for the all-failed message and the request log."""

    provider: str
    model: str
    protocol: str
    outcome: str
    duration_s: float
    detail: str = ""
    status: int | None = None
    #: whether its request went to the upstream (a cancellation before that, in occ's own web search say,
    #: spent nothing)
    sent: bool = True

    def describe(self) -> str:
        what = self.outcome if self.status is None else f"HTTP {self.status}"
        text = f"{self.provider}/{self.model}: {what} after {self.duration_s:.2f}s"
        if self.detail:
            text += f" ({self.detail})"
        return text


class AllAttemptsFailed(OccError):
    """Every model of the chain failed. The status reflects the causes, not a blanket 502."""

    def __init__(self, attempts: list[AttemptRecord], errors: list[OccError], skipped: list[str], *,
                 retry_after_s: float | None = None) -> None:
        self._retry_after_hint = retry_after_s
        self.attempts = list(attempts)
        self.errors = list(errors)
        self.skipped = list(skipped)
        parts = [a.describe() for a in self.attempts]
        parts += [f"{name}: skipped (circuit open)" for name in self.skipped]
        super().__init__("all models failed: " + "; ".join(parts) if parts else "all models failed")

    @property
    def http_status(self) -> int:
        statuses = [e.http_status for e in self.errors]
        if not statuses:
            return 529  # every model skipped by an open breaker: overloaded, retry later
        if all(s == 529 for s in statuses):
            return 529
        if all(s == 429 for s in statuses):
            return 429
        if all(s in (429, 529) for s in statuses):
            return 529
        if all(isinstance(e, (UpstreamTimeout, UpstreamStalled)) for e in self.errors):
            return 504
        if all(s == 401 for s in statuses):
            return 401
        return 502

    @property
    def anthropic_type(self) -> str:
        return error_type_for_status(self.http_status)

    @property
    def retry_after_s(self) -> float | None:
        hints = [e.retry_after_s for e in self.errors if e.retry_after_s is not None]
        if hints:
            return min(hints)
        if self._retry_after_hint is not None:
            return max(1.0, self._retry_after_hint)
        return 1.0 if self.http_status in (429, 529) else None  # occ's own 529 always says when to retry


def anthropic_error_body(error_type: str, message: str, request_id: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
    if request_id:
        body["request_id"] = request_id
    return body


def to_anthropic(exc: BaseException, request_id: str | None = None) -> tuple[int, dict[str, Any]]:
    """Map any exception to ``(http_status, anthropic_error_body)``.

    Non-occ exceptions are our bugs: 500 ``api_error`` with a generic message (their text may
    carry secrets, so it is not echoed). An occ error's message goes through the scrubber
    (:mod:`occ.core.scrub`) here, the one place errors become bodies: upstream text that echoes a
    key reaches the client with the key masked and the rest of the text intact.
    """
    if isinstance(exc, OccError):
        return exc.http_status, anthropic_error_body(exc.anthropic_type, scrub(exc.message), request_id)
    return 500, anthropic_error_body("api_error", "internal error in occ", request_id)


def error_frame(exc: BaseException) -> bytes:
    """An Anthropic SSE ``error`` event for a failure after the stream has committed (scrubbed, as
    every body :func:`to_anthropic` makes)."""
    _, body = to_anthropic(exc)
    body.pop("request_id", None)
    data = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return f"event: error\ndata: {data}\n\n".encode()
