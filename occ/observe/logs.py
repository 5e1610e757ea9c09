"""Logging set-up: levels and format from config, and the scrubber (:mod:`occ.core.scrub`) on every
occ logger.

Redaction is attached to the loggers themselves (:func:`get_logger`), not to handlers, so it holds
whoever installs the handlers: ``occ serve``, an embedding application, or pytest's caplog.

``logging.format: json`` makes occ's handler write one JSON object per line for every record that
reaches it (occ's, hypercorn's, Python warnings), through the standard :mod:`logging` module: a log
shipper reads each line as it is. The request line's fields are the object's top-level keys.
"""

from __future__ import annotations

import datetime
import json
import logging
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any, TextIO

from occ.core.scrub import scrub

if TYPE_CHECKING:
    from occ.config.model import Config

__all__ = ["FIELDS", "JsonFormatter", "RedactingFilter", "configure_logging", "get_logger", "install_scrubbing_hooks",
           "log_level", "print_traceback"]

#: The ``extra`` key under which a record carries structured fields (the request line's): the JSON
#: formatter writes them as top-level keys instead of the message text.
FIELDS = "occ_fields"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RedactingFilter(logging.Filter):
    """Every record through :func:`occ.core.scrub.scrub`: message, arguments and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
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


def _redact_values(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _redact_values(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_values(v) for v in value]
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``, then either the
    record's structured fields (:data:`FIELDS`) or ``message``; ``exception`` holds a formatted
    traceback when there is one. Every string is redacted before it is serialised, so a key can
    neither leak nor break the JSON."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC)
            .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            out.update((k, v) for k, v in fields.items() if k not in out)
        else:
            out["message"] = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            out["exception_type"] = type(record.exc_info[1]).__name__
            out["exception"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(_redact_values(out), ensure_ascii=False, default=str)


class _TextFormatter(logging.Formatter):
    """The human format; redacts the finished line, traceback included, whatever logger wrote it."""

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


_HANDLER: logging.Handler | None = None


def _formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else _TextFormatter(TEXT_FORMAT)


def configure_logging(config: Config, *, quiet_if_configured: bool = False, debug: bool = False) -> None:
    """Set occ's level and format from the config; install a stderr handler unless the host program
    (or a test runner) already configured logging. Called again (a reload), it updates both."""
    global _HANDLER
    get_logger("occ").setLevel(logging.DEBUG if debug else log_level(config.logging.level))
    for name in ("httpx", "httpcore", "hypercorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    if _HANDLER is not None and _HANDLER in root.handlers:
        _HANDLER.setFormatter(_formatter(config.logging.format))
        return
    if quiet_if_configured and root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(config.logging.format))
    handler.addFilter(_FILTER)
    root.addHandler(handler)
    _HANDLER = handler
    logging.captureWarnings(True)  # Python warnings become records, in the same format
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.WARNING)


def print_traceback(exc: BaseException, file: TextIO | None = None) -> None:
    """``exc``'s traceback (causes, contexts and exception groups included) on stderr, scrubbed: a
    ``--debug`` traceback repeats exception messages, and those can carry what an upstream echoed."""
    out = sys.stderr if file is None else file
    out.write(scrub("".join(traceback.format_exception(exc))))
    out.flush()


def _excepthook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
    print_traceback(exc.with_traceback(tb) if tb is not None else exc, sys.__stderr__ or sys.stderr)


def _thread_excepthook(args: Any) -> None:
    if args.exc_value is not None:
        name = args.thread.name if args.thread is not None else "?"
        (sys.__stderr__ or sys.stderr).write(scrub(f"Exception in thread {name}:\n"))
        print_traceback(args.exc_value, sys.__stderr__ or sys.stderr)


def install_scrubbing_hooks() -> None:
    """Python's last-resort printers (an uncaught exception, one in a thread) through the scrubber.
    The CLI and ``occ serve``'s worker processes own their process, so they set them; an embedding
    program keeps its own."""
    sys.excepthook = _excepthook
    threading.excepthook = _thread_excepthook
