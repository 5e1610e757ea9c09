"""hypercorn's HTTP/1.1 protocol as occ's connection runs it: a request's head read once, not three times.

Measured on a trivial app with Claude Code's ~20 request headers (benchmarks/RESULTS.md, session 9), a
request through hypercorn and h11 went over its headers four times before the app saw them:

- **h11 reads them** one regular-expression match and one ``groupdict`` per line, through a generator that
  joins folded lines (~13 us for 18 lines). :class:`_Connection` reads the common head (no folded line) with
  one ``findall`` of h11's own header grammar over the whole block (~5 us), and gives any other head to
  h11's reader unchanged (:func:`header_lines`).
- **hypercorn looks at them twice more**, once for an h2c upgrade and once for a WebSocket one, decoding and
  lowercasing every name each time through h11's slow ``Sequence.__iter__``; then it copies them for the
  app. :class:`H11Protocol` copies them once, from h11's own (lowercased) entries, and leaves any request with
  an ``Upgrade`` header, ``PRI``, or ``h11_pass_raw_headers`` to hypercorn's code as it is.
- **Each response** formats the ``Date`` header anew; here it is formatted once a second per connection (the
  header has one-second resolution, so the bytes are the same).

Everything else (HTTP/2, h2c, WebSockets, errors, ``100-continue``, keep-alive, the 500 an app that sends
nothing gets) is hypercorn's and h11's own code. tests/server/test_h11_protocol.py checks the reader against
h11's on arbitrary heads and the whole protocol against stock hypercorn's bytes.
"""

from __future__ import annotations

import re
from time import time
from typing import Any

import h11
from hypercorn.protocol.events import Event as StreamEvent
from hypercorn.protocol.events import Request, Response
from hypercorn.protocol.h11 import STREAM_ID
from hypercorn.protocol.h11 import H11Protocol as _HypercornH11Protocol
from hypercorn.protocol.http_stream import HTTPStream

try:  # h11's reader, as 0.12 to 0.16 have it (occ requires 0.16); another h11's heads go to its own reader
    from h11._abnf import header_field
    from h11._events import Request as H11Request
    from h11._readers import READERS, _decode_header_lines, maybe_read_from_IDLE_client, request_line_re
    from h11._receivebuffer import ReceiveBuffer
    from h11._state import CLIENT, IDLE
    from h11._util import LocalProtocolError, validate
except ImportError:  # pragma: no cover - the h11 occ requires has them all
    READER_FITS = False
else:
    # the reader h11 picks for a request's head is the one read_request_head stands for, and the buffer
    # splits lines on LF (before 0.12 it split on CRLF only: a line could hold a bare LF, which one findall
    # over the block would take for a line end)
    READER_FITS = (callable(getattr(h11.Connection, "_get_io_object", None))
                   and READERS.get((CLIENT, IDLE)) is maybe_read_from_IDLE_client
                   and hasattr(ReceiveBuffer, "is_next_line_obviously_invalid_request_line"))

__all__ = ["READER_FITS", "H11Protocol", "header_lines", "read_request_head"]

#: h11's header-line grammar, anchored to each line of a block: a block of n lines in which every line is a
#: header field (none folded, none malformed) has exactly n matches; any other has fewer.
_HEADER_LINE = re.compile(b"^" + header_field.encode("ascii") + b"$", re.MULTILINE) if READER_FITS else None


def header_lines(lines: list[bytearray]) -> list[tuple[bytes, bytes]]:
    """The (name, value) pairs of a request's header lines, as h11's ``_decode_header_lines`` gives them.

    A block whose every line matches h11's grammar is read with one ``findall``: a line that does not match
    (a folded one starts with a space or tab, which no field name does) is missing from the matches, and then
    h11's reader reads the whole block, folding and raising as it does. The grammar is h11's own, so a line
    that matches gives the groups h11's ``fullmatch`` would.
    """
    assert _HEADER_LINE is not None
    found = _HEADER_LINE.findall(b"\n".join(lines))
    if len(found) == len(lines):
        return [(name, value) for name, value, _ in found]
    return list(_decode_header_lines(lines))


def read_request_head(buf: ReceiveBuffer) -> H11Request | None:
    """h11's reader for a request's head (``maybe_read_from_IDLE_client``) with :func:`header_lines`."""
    lines = buf.maybe_extract_lines()
    if lines is None:
        if buf.is_next_line_obviously_invalid_request_line():
            raise LocalProtocolError("illegal request line")
        return None
    if not lines:
        raise LocalProtocolError("no request line received")
    matches = validate(request_line_re, lines[0], "illegal request line: {!r}", lines[0])
    return H11Request(headers=header_lines(lines[1:]), _parsed=True, **matches)


class _Connection(h11.Connection):
    """h11's server connection, reading each request's head with :func:`read_request_head`."""

    def _get_io_object(self, role: Any, event: Any, io_dict: Any) -> Any:
        io = super()._get_io_object(role, event, io_dict)
        return read_request_head if io is maybe_read_from_IDLE_client else io


class H11Protocol(_HypercornH11Protocol):
    """hypercorn's HTTP/1.1 protocol, with a request's headers gone over once and ``Date`` made once a
    second. Any request that might change protocol goes hypercorn's way whole."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if READER_FITS:
            self.connection = _Connection(h11.SERVER, max_incomplete_event_size=self.config.h11_max_incomplete_size)
        #: the app's headers of the request being checked, when none of them asks for another protocol
        self._headers: list[tuple[bytes, bytes]] | None = None
        #: the server's own response headers (Date, Server, Alt-Svc), and the second they were made in
        self._own_headers: list[tuple[bytes, bytes]] = []
        self._own_headers_second = -1

    async def _check_protocol(self, event: h11.Request) -> None:
        """hypercorn's check for h2c and HTTP/2 prior knowledge, which only a request with an ``Upgrade``
        header or ``PRI`` can need; on the way, the headers the app gets (h11's lowercased names)."""
        self._headers = None
        items = getattr(event.headers, "_full_items", None)
        if type(items) is not list or event.method == b"PRI" or self.config.h11_pass_raw_headers:
            await super()._check_protocol(event)
            return
        headers = []
        for _, name, value in items:
            if name == b"upgrade":  # h2c or a WebSocket: hypercorn's way, both checks and the stream
                await super()._check_protocol(event)
                return
            headers.append((name, value))
        self._headers = headers

    async def _create_stream(self, request: h11.Request) -> None:
        """hypercorn's, for a request :meth:`_check_protocol` found no upgrade in: an HTTP stream, with
        the headers it collected (what ``list(request.headers)`` gives)."""
        headers, self._headers = self._headers, None
        if headers is None:
            await super()._create_stream(request)
            return
        self.stream = HTTPStream(self.app, self.config, self.context, self.task_group, self.ssl, self.client,
                                 self.server, self.stream_send, STREAM_ID)
        await self.stream.handle(Request(stream_id=STREAM_ID, headers=headers,
                                         http_version=request.http_version.decode(),
                                         method=request.method.decode("ascii").upper(),
                                         raw_path=request.target, state=self.connection_state))
        self.keep_alive_requests += 1
        await self.context.mark_request()

    async def stream_send(self, event: StreamEvent) -> None:
        """hypercorn's, with a final response's own headers made once a second."""
        if type(event) is Response and event.status_code >= 200:
            second = int(time())
            if second != self._own_headers_second:
                self._own_headers = self.config.response_headers("h11")
                self._own_headers_second = second
            headers = [*event.headers, *self._own_headers]
            if self.keep_alive_requests >= self.config.keep_alive_max_requests:
                headers.append((b"connection", b"close"))
            await self._send_h11_event(h11.Response(headers=headers, status_code=event.status_code))
            return
        await super().stream_send(event)
