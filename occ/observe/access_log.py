"""One line per request that explains it: which model answered, why that one, what failed.

The line is built from the request's :class:`RequestLog` when the request ends, never per chunk.
API keys cannot reach it: it is assembled from routing and attempt records only, and the formatter
runs :func:`occ.core.scrub.scrub` over every line as a second guard.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import TYPE_CHECKING, Any

import attrs

from occ.core.scrub import clip, scrub
from occ.observe.logs import FIELDS, get_logger

if TYPE_CHECKING:
    from occ.config.model import Config
    from occ.core.errors import AttemptRecord, OccError

__all__ = ["RequestLog", "log_request", "redacted_body"]

log = get_logger("occ.request")

@attrs.define
class RequestLog:
    """What one request did, as plain values: the server fills it in as the request goes (routing,
    then the fallback loop's attempt records and usage, then the relay's first-content time), and
    observers read it when the request ends. It holds no live objects, so this layer never reaches
    up into the server's."""

    request_id: str
    started: float
    #: who sent it: the label of its client key (``key#0``) or its address, never the key
    client: str | None = None
    client_model: str | None = None
    scenario: str | None = None
    reason: str | None = None
    chain: list[str] = attrs.field(factory=list)
    status: int | None = None
    error: OccError | None = None
    client_cancelled: bool = False
    stream: bool | None = None
    model: str | None = None
    attempts: list[AttemptRecord] = attrs.field(factory=list)
    stop_reason: str | None = None
    usage: dict[str, int] | None = None
    #: the usage is occ's estimate: the line says so, and metrics keep it apart from reported tokens
    usage_estimated: bool = False
    ttft_s: float | None = None
    #: how the request really ended when occ ended it (``client_too_slow``, ``server_shutdown``)
    ended_by: str | None = None

    @property
    def outcome(self) -> str:
        """How the request ended, one word: the log line's and the ledger's."""
        if self.ended_by is not None:
            return self.ended_by
        if self.client_cancelled:
            return "client_cancelled"
        return "ok" if self.error is None else "error"

    def fields(self) -> dict[str, Any]:
        duration = time.monotonic() - self.started
        outcome = self.outcome
        out: dict[str, Any] = {
            "request_id": self.request_id,
            "client_model": self.client_model,
            "scenario": self.scenario,
            "reason": self.reason,
            "outcome": outcome,
            "status": self.status,
            "duration_ms": round(duration * 1000, 1),
        }
        if self.stream is not None:
            out["stream"] = self.stream
            out["model"] = self.model
            out["attempts"] = [
                {"model": f"{a.provider}/{a.model}", "protocol": a.protocol,
                 "outcome": a.outcome if a.status is None else f"http_{a.status}",
                 "ms": round(a.duration_s * 1000, 1)}
                for a in self.attempts
            ]
            out["stop_reason"] = self.stop_reason
            if self.usage:
                out["tokens_in"] = self.usage.get("input_tokens")
                out["tokens_out"] = self.usage.get("output_tokens")
                out["tokens_cached"] = self.usage.get("cache_read_input_tokens")
                if self.usage_estimated:
                    out["tokens_estimated"] = True
        if self.ttft_s is not None:
            out["ttft_ms"] = round(self.ttft_s * 1000, 1)
        if self.error is not None:
            out["error"] = clip(self.error.message, 500)
        return out


def _format_text(fields: dict[str, Any]) -> str:
    parts = []
    for key, value in fields.items():
        if value is None or value == []:
            continue
        if key == "attempts":
            value = ",".join(f"{a['model']}[{a['protocol']}]={a['outcome']}:{a['ms']}ms" for a in value)
        elif isinstance(value, str) and (" " in value or not value):
            value = json.dumps(value, ensure_ascii=False)
        parts.append(f"{key}={value}")
    return " ".join(parts)


def log_request(record: RequestLog, config: Config) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    fields = record.fields()
    if config.logging.format == "json":
        line = json.dumps(fields, ensure_ascii=False, default=str)
    else:
        line = _format_text(fields)
    # the message serves handlers occ did not install (an embedding program's); occ's own JSON
    # handler writes the fields themselves as the line's keys
    log.info(scrub(line), extra={FIELDS: fields})


_IMAGE_DATA = re.compile(r'("data"\s*:\s*")[A-Za-z0-9+/=]{64,}(")')
_SIGNATURE = re.compile(r'("signature"\s*:\s*")[^"]{16,}(")')


def redacted_body(body: bytes, limit: int) -> str:
    """A request or response body for the debug log: image data and signatures elided, keys
    redacted, truncated to ``limit`` bytes (``logging.body_limit_bytes``)."""
    text = body.decode("utf-8", "replace")
    text = _IMAGE_DATA.sub(r"\1[image data]\2", text)
    text = _SIGNATURE.sub(r"\1[signature]\2", text)
    text = scrub(text)
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more]"
