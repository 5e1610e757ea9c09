"""Server-sent events, sans-IO: an incremental decoder and a frame encoder.

The decoder follows the WHATWG "event stream interpretation" with the deviations occ needs:

* one incremental UTF-8 decoder for the whole stream, so a character split across chunks is never
  corrupted;
* lines end at CRLF, LF or CR, and a chunk ending in CR waits for the next byte (CR+LF is one end);
  ``str.splitlines`` is never used, because it also splits on U+2028 and friends, which occur raw in
  JSON strings;
* at EOF an unterminated event that has data is flushed (upstreams often end with ``data: [DONE]``
  and no blank line) and :attr:`SSEDecoder.truncated` records it;
* lines and events are capped, so a hostile upstream cannot make occ buffer without bound.

Comments are not events but are liveness: :attr:`SSEDecoder.comments` counts them.
"""

from __future__ import annotations

import codecs
from typing import Any

import attrs

from occ.core.errors import UpstreamProtocolError
from occ.core.scrub import clip

__all__ = ["PING_FRAME", "SSEDecoder", "SSEEvent", "event_json"]

MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_EVENT_BYTES = 32 * 1024 * 1024


@attrs.frozen(slots=True)
class SSEEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class SSEDecoder:
    """Feed bytes with :meth:`feed`, get complete events; call :meth:`close` at EOF."""

    def __init__(self, *, max_line: int = MAX_LINE_BYTES, max_event: int = MAX_EVENT_BYTES) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending: list[str] = []  # text not yet terminated by a line end, in pieces
        self._pending_size = 0
        self._pending_cr = False  # the last text ended in CR: a following LF belongs to it
        self._bom_checked = False
        self._event_type = ""
        self._data: list[str] = []
        self._data_size = 0
        self._last_id: str | None = None
        self._retry: int | None = None
        self._max_line = max_line
        self._max_event = max_event
        self.truncated = False
        self.comments = 0

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        text = self._utf8.decode(chunk)
        return self._feed_text(text)

    def close(self) -> list[SSEEvent]:
        """Flush at EOF: the rest of the decoder, then an unterminated event that has data."""
        events = self._feed_text(self._utf8.decode(b"", final=True))
        if self._pending:
            line = "".join(self._pending)
            self._pending, self._pending_size = [], 0
            events.extend(self._line(line))
        if self._data:
            self.truncated = True
            events.extend(self._dispatch())
        return events

    def _feed_text(self, text: str) -> list[SSEEvent]:
        if not text:
            return []
        if not self._bom_checked:
            self._bom_checked = True
            if text.startswith("\ufeff"):
                text = text[1:]
        if self._pending_cr:
            self._pending_cr = False
            if text.startswith("\n"):
                text = text[1:]
                if not text:
                    return []
        if "\n" not in text and "\r" not in text:
            # no line ends here: keep the piece, never re-join or re-scan what is already held, so
            # one long line arriving in many chunks costs linear time, not quadratic
            self._hold(text)
            return []
        events: list[SSEEvent] = []
        if self._pending:
            buf = "".join(self._pending) + text
            self._pending, self._pending_size = [], 0
        else:
            buf = text
        start = 0
        n = len(buf)
        has_cr = "\r" in buf
        find = buf.find
        while start < n:
            lf = find("\n", start)
            cr = find("\r", start, lf if lf >= 0 else n) if has_cr else -1
            if cr >= 0:
                end, nxt = cr, cr + 1
                if nxt < n:
                    if buf[nxt] == "\n":
                        nxt += 1
                else:
                    self._pending_cr = True
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            # the two lines of nearly every upstream event, inline: "data: ..." and the blank line
            if end == start:
                if self._data:
                    events.append(self._event())
                else:
                    self._event_type = ""
            elif buf.startswith("data:", start):
                value = buf[start + 6:end] if buf.startswith(" ", start + 5) else buf[start + 5:end]
                self._data.append(value)
                self._data_size += len(value) + 1
                if self._data_size > self._max_event:
                    raise UpstreamProtocolError(f"SSE event larger than {self._max_event} bytes")
            else:
                events.extend(self._line(buf[start:end]))
            start = nxt
        if start < n:
            self._hold(buf[start:])
        return events

    def _hold(self, text: str) -> None:
        self._pending.append(text)
        self._pending_size += len(text)
        if self._pending_size > self._max_line:
            raise UpstreamProtocolError(f"SSE line longer than {self._max_line} bytes")

    def _line(self, line: str) -> list[SSEEvent]:
        if not line:
            return self._dispatch()
        if line[0] == ":":
            self.comments += 1
            return []
        field, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._data_size += len(value) + 1
            if self._data_size > self._max_event:
                raise UpstreamProtocolError(f"SSE event larger than {self._max_event} bytes")
        elif field == "event":
            self._event_type = value
        elif field == "id":
            if "\0" not in value:
                self._last_id = value
        elif field == "retry":
            if value.isdigit():
                self._retry = int(value)
        return []

    def _dispatch(self) -> list[SSEEvent]:
        if not self._data:
            self._event_type = ""
            return []
        return [self._event()]

    def _event(self) -> SSEEvent:
        """The event the data lines so far make (there is at least one), and a fresh start."""
        data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
        event = SSEEvent(data=data, event=self._event_type or "message", id=self._last_id, retry=self._retry)
        self._data = []
        self._data_size = 0
        self._event_type = ""
        return event


PING_FRAME = b'event: ping\ndata: {"type":"ping"}\n\n'


def event_json(event: SSEEvent) -> Any:
    """An upstream event's data as JSON.

    Raises:
        UpstreamProtocolError: the data is not JSON.
    """
    from occ.core.jsonfast import JSONDecodeError, loads

    try:
        return loads(event.data)
    except JSONDecodeError:
        raise UpstreamProtocolError(f"upstream sent an event that is not JSON: {clip(event.data, 80)!r}") from None
