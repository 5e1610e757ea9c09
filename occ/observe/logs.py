"""Logging set-up: levels from config, and redaction of secrets on every occ logger.

Redaction is attached to the loggers themselves (:func:`get_logger`), not to handlers, so it holds
whoever installs the handlers: ``occ serve``, an embedding application, or pytest's caplog.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from occ.config.model import Config

__all__ = ["RedactingFilter", "configure_logging", "get_logger", "log_level", "redact", "remember_secrets"]

_SECRET_PATTERNS = [
    re.compile(r"(?i)(authorization\s*[:=]\s*)(bearer\s+)?[^\s,;\"']+"),
    re.compile(r"(?i)(x-api-key\s*[:=]\s*)[^\s,;\"']+"),
    re.compile(r"(?i)(x-goog-api-key\s*[:=]\s*)[^\s,;\"']+"),
    re.compile(r"(?i)(api[_-]?key[\"']?\s*[:=]\s*[\"']?)[^\s,;\"']+"),
    re.compile(r"\b(sk-[A-Za-z0-9_-]{8,})"),
]


_KNOWN_SECRETS: set[str] = set()


def remember_secrets(secrets: object) -> None:
    """Register configured key values, so they are blanked even where no pattern would spot them."""
    for secret in secrets:  # type: ignore[attr-defined]
        if isinstance(secret, str) and len(secret) >= 6:
            _KNOWN_SECRETS.add(secret)


def redact(text: str) -> str:
    """Blank out configured keys and anything that looks like a credential."""
    for secret in _KNOWN_SECRETS:
        if secret in text:
            text = text.replace(secret, "[redacted]")
    for pattern in _SECRET_PATTERNS:
        if pattern.pattern.startswith("\\b"):
            text = pattern.sub("[redacted]", text)
        else:
            text = pattern.sub(lambda m: m.group(1) + "[redacted]", text)
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def log_level(name: str) -> int:
    """The ``logging`` level for the config's ``logging.level`` name (``warn`` too); INFO if unknown."""
    return {"warn": logging.WARNING}.get(name.lower(), getattr(logging, name.upper(), logging.INFO))


def configure_logging(config: Config, *, quiet_if_configured: bool = False, debug: bool = False) -> None:
    """Set occ's level from the config; install a stderr handler unless the host program (or a
    test runner) already configured logging."""
    get_logger("occ").setLevel(logging.DEBUG if debug else log_level(config.logging.level))
    for name in ("httpx", "httpcore", "hypercorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    if quiet_if_configured and root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_FILTER)
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)
