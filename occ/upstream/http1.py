"""HTTP/1.1 client framing, sans-IO: request heads out, one response in (the way h11 does it).

occ's upstream traffic is one shape only: a ``POST`` with a known body, answered by one response
whose body is JSON or an event stream. Writing that framing ourselves, rather than going through
httpx, httpcore and h11 for every chunk, is what lets occ keep up with many concurrent streams on
one core (``benchmarks/RESULTS.md``). The parser is strict where a mistake would corrupt a body
(framing, sizes, transfer codings) and lenient where servers differ harmlessly (bare ``LF`` line
ends in the head, a missing reason phrase, interim ``1xx`` responses, chunk extensions).

It agrees with h11 wherever h11 is stricter or more correct (``tests/upstream/test_http1_h11.py``
feeds both the same bytes): ``Transfer-Encoding`` other than exactly ``chunked`` is refused (a
``gzip, chunked`` body would otherwise reach the translators still compressed); obsolete line
folding is unfolded into one space (RFC 9112 §5.2); control characters in a header value or the
reason phrase, a ``Content-Length`` of more than 20 digits and a chunk line or chunk-data end other
than ``CRLF`` are refused; an HTTP/1.0 connection is never reused. Where the two differ, occ is
stricter (HTTP/1.0 and 1.1 only, no 101, no reuse after ``Content-Length`` beside
``Transfer-Encoding``), or follows RFC 9112 where h11 does not (blanks before a chunk extension's
``;``, §7.1.1); the test lists each difference with its reason.

:class:`ResponseParser` is fed bytes as they arrive and returns the body bytes they carried, with
the transfer coding removed. It never does I/O, so its tests feed it every way a response can be
split across reads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from occ.core.errors import UpstreamProtocolError

__all__ = ["MAX_HEAD_BYTES", "ResponseParser", "check_headers", "request_head"]

#: Limit for a response's status line and headers together.
MAX_HEAD_BYTES = 64 * 1024
#: Limit for one chunk-size line (extensions included) or trailer line, line end excluded.
_MAX_CHUNK_LINE = 4096
_DIGITS = re.compile(r"[0-9]{1,20}")
#: a chunk-size line, line end excluded: the size, extensions after optional blanks (RFC 9112 §7.1.1
#: allows them before ``;``), trailing blanks (h11 tolerates those; some servers send them)
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[^\r\n]*)?[ \t]*")

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_LINE_END = re.compile(rb"\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.([01]) ([0-9]{3})(?: ([\t\x20-\x7e\x80-\xff]*))?")
#: One header field: a token name, a colon, the value (a bare CR in it is refused, as RFC 9112
#: allows; trailing blanks are stripped by the caller), the line end.
_HEADER_FIELD = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n]*)(?:\r?\n|\Z)")
_FORBIDDEN_VALUE = re.compile(r"[\r\n\x00]")
#: what a received field value may not hold besides CR and LF: NUL, VT and FF, as h11 (other controls
#: are RFC 9110 §5.5's "MAY retain", and h11 keeps them)
_CONTROL = re.compile(rb"[\x00\x0b\x0c]")
_FOLD = (b" ", b"\t")

# body framing
_NONE = 0
_LENGTH = 1
_CHUNKED = 2
_UNTIL_CLOSE = 3

# chunked-coding states
_SIZE = 0
_DATA = 1
_DATA_END = 2
_TRAILERS = 3


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse headers that would break the framing, naming the header but never its value (an API
    key read from a CRLF ``.env`` file ends in ``\\r``; the value is a secret).

    Raises:
        UpstreamProtocolError: a name or value with CR, LF or NUL, an empty name, a colon in a
            name, or a value outside latin-1.
    """
    for name, value in headers.items():
        if not name or ":" in name or _FORBIDDEN_VALUE.search(name) or _FORBIDDEN_VALUE.search(value):
            raise UpstreamProtocolError(f"header {name.strip()!r} cannot be sent upstream: it contains a control "
                                        "character (a line break at the end of an API key?)")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise UpstreamProtocolError(f"header {name.strip()!r} cannot be sent upstream: its value is not "
                                        "latin-1 text") from None


def request_head(method: str, target: str, host: str, headers: Mapping[str, str], content_length: int) -> bytes:
    """The request line and headers of one request with a body of ``content_length`` bytes.

    ``Host`` and ``Content-Length`` come from the arguments; a caller's own copies are dropped
    rather than sent twice (a duplicated length is a request-smuggling signal to servers).

    Raises:
        UpstreamProtocolError: a header that :func:`check_headers` refuses.
    """
    check_headers(headers)
    lines = [f"{method} {target} HTTP/1.1", f"host: {host}"]
    for name, value in headers.items():
        if name.lower() not in ("host", "content-length", "transfer-encoding"):
            lines.append(f"{name}: {value}")
    lines.append(f"content-length: {content_length}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1")


class ResponseParser:
    """One HTTP/1.1 response, parsed as its bytes arrive.

    Feed it with :meth:`feed` and, if the server closes the connection, :meth:`feed_eof`. Once
    :attr:`head_done` is true, :attr:`status`, :attr:`reason` and :attr:`headers` (lower-cased
    names; repeated headers joined with ``", "``) are set. :attr:`complete` says the body ended
    where its framing said it would; :attr:`reusable` says the connection may carry another
    request afterwards.

    Raises :class:`~occ.core.errors.UpstreamProtocolError` on anything that is not a well-framed
    response: after one, the connection must be closed.
    """

    def __init__(self, *, method: str = "POST") -> None:
        self._method = method
        self._buffer = bytearray()
        self._head_scanned = 0  # bytes of the buffer known to hold no head end (less its last three)
        self.head_done = False
        self.complete = False
        self.status = 0
        self.reason = ""
        self.http_minor = 1
        self.headers: dict[str, str] = {}
        self._framing = _NONE
        self._remaining = 0
        self._chunk_state = _SIZE
        self._keep_alive = True
        self._trailing_garbage = False

    @property
    def reusable(self) -> bool:
        return self.complete and self._keep_alive and not self._trailing_garbage

    def forbid_reuse(self) -> None:
        """The connection must close after this response (the request was not fully sent)."""
        self._keep_alive = False

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes from the connection; return the body bytes they completed."""
        if self.complete:
            if data:
                self._trailing_garbage = True
            return b""
        if not self.head_done:
            self._buffer += data
            if not self._parse_head():
                return b""
            data = bytes(self._buffer)
            self._buffer.clear()
            if self.complete:
                if data:
                    self._trailing_garbage = True
                return b""
        if self._framing == _LENGTH:
            return self._feed_length(data)
        if self._framing == _CHUNKED:
            return self._feed_chunked(data)
        return data

    def feed_eof(self) -> None:
        """The server closed the connection.

        Raises:
            UpstreamProtocolError: the response was not complete (an until-close body is).
        """
        self._keep_alive = False
        if self.complete:
            return
        if self.head_done and self._framing == _UNTIL_CLOSE:
            self.complete = True
            return
        if not self.head_done:
            raise UpstreamProtocolError("upstream closed the connection before a complete response head")
        raise UpstreamProtocolError("upstream closed the connection in the middle of the response body")

    # -- the head ----------------------------------------------------------------------------------

    def _parse_head(self) -> bool:
        """Parse every complete head in the buffer (interim 1xx ones are skipped); True when the
        final response's head is parsed and the buffer holds only body bytes."""
        while True:
            # resume where the last search stopped (a head trickling in must not be rescanned whole
            # for every read); the blank line may have begun in the last three bytes searched
            match = _HEAD_END.search(self._buffer, max(0, self._head_scanned - 3))
            if match is None:
                if len(self._buffer) > MAX_HEAD_BYTES + 3:
                    raise UpstreamProtocolError(f"upstream response head is larger than {MAX_HEAD_BYTES} bytes")
                self._head_scanned = len(self._buffer)
                return False
            self._head_scanned = 0
            if match.start() > MAX_HEAD_BYTES:
                raise UpstreamProtocolError(f"upstream response head is larger than {MAX_HEAD_BYTES} bytes")
            head = bytes(self._buffer[: match.start()])
            del self._buffer[: match.end()]
            if self._parse_head_block(head):
                return True

    def _parse_head_block(self, head: bytes) -> bool:
        end = head.find(b"\n")
        pos = len(head) if end < 0 else end + 1
        first = head[:end] if end >= 0 else head
        status_line = _STATUS_LINE.fullmatch(first[:-1] if first.endswith(b"\r") else first)
        if status_line is None:
            raise UpstreamProtocolError(f"upstream sent no HTTP/1.x status line ({first[:80]!r})")
        status = int(status_line.group(2))
        headers = _parse_fields(head, pos)
        if 100 <= status < 200:
            if status == 101:
                raise UpstreamProtocolError("upstream switched protocols (HTTP 101), which occ does not speak")
            return False
        self.status = status
        self.reason = (status_line.group(3) or b"").decode("latin-1")
        self.http_minor = int(status_line.group(1))
        self.headers = headers
        self.head_done = True
        self._choose_framing()
        return True

    def _choose_framing(self) -> None:
        connection = {token.strip().lower() for token in self.headers.get("connection", "").split(",")}
        # HTTP/1.0 "keep-alive" is an old extension with its own failure modes: as h11, never reused
        self._keep_alive = self.http_minor == 1 and "close" not in connection
        if self._method == "HEAD" or self.status in (204, 304):
            self._framing = _NONE
            self.complete = True
            return
        coding = self.headers.get("transfer-encoding")
        if coding is not None:
            codings = [c.strip().lower() for c in coding.split(",")]
            if codings.count("chunked") > 1:
                raise UpstreamProtocolError("upstream applied the chunked transfer coding twice")
            if codings != ["chunked"]:
                # gzip, deflate... under chunked: occ does not decode transfer codings, and passing
                # the coded bytes on as the body would be garbage (h11 refuses them too)
                raise UpstreamProtocolError(f"upstream used the transfer coding {coding[:60]!r}; occ reads "
                                            "only chunked")
            if "content-length" in self.headers:
                # the coding wins, but the pair is a smuggling signal: no second request here
                self._keep_alive = False
            self._framing = _CHUNKED
            return
        length = self.headers.get("content-length")
        if length is None:
            self._framing = _UNTIL_CLOSE
            self._keep_alive = False
            return
        values = {v.strip() for v in length.split(",")}
        if len(values) != 1 or _DIGITS.fullmatch(next(iter(values))) is None:
            raise UpstreamProtocolError(f"upstream sent an invalid Content-Length ({length[:40]!r})")
        self._remaining = int(next(iter(values)))
        self._framing = _LENGTH
        if self._remaining == 0:
            self.complete = True

    # -- the body ----------------------------------------------------------------------------------

    def _feed_length(self, data: bytes) -> bytes:
        if len(data) < self._remaining:
            self._remaining -= len(data)
            return data
        body, extra = data[: self._remaining], data[self._remaining :]
        self._remaining = 0
        self.complete = True
        if extra:
            self._trailing_garbage = True
        return body

    def _feed_chunked(self, data: bytes) -> bytes:
        buffer = self._buffer
        if buffer:
            buffer += data
            data = bytes(buffer)
            buffer.clear()
        out: list[bytes] = []
        pos = 0
        end = len(data)
        while pos < end:
            state = self._chunk_state
            if state == _DATA:
                take = min(self._remaining, end - pos)
                out.append(data[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining == 0:
                    self._chunk_state = _DATA_END
                continue
            newline = data.find(b"\r\n", pos)  # chunk lines end in CRLF, exactly (as h11 reads them)
            if newline < 0:
                rest = data[pos:]
                if len(rest) > _MAX_CHUNK_LINE + 1:  # + a CR that may belong to the line end
                    raise UpstreamProtocolError("upstream sent an over-long chunk-size or trailer line")
                buffer += rest
                break
            if newline - pos > _MAX_CHUNK_LINE + 1:
                raise UpstreamProtocolError("upstream sent an over-long chunk-size or trailer line")
            line = data[pos:newline]
            pos = newline + 2
            if state == _SIZE:
                size_match = _CHUNK_SIZE.fullmatch(line)
                if size_match is None:
                    raise UpstreamProtocolError(f"upstream sent an invalid chunk size ({line[:40]!r})")
                size = int(size_match[1], 16)
                if size == 0:
                    self._chunk_state = _TRAILERS
                else:
                    self._remaining = size
                    self._chunk_state = _DATA
            elif state == _DATA_END:
                if line:
                    raise UpstreamProtocolError("upstream chunk data was longer than its declared size")
                self._chunk_state = _SIZE
            elif not line:  # _TRAILERS: the blank line ends the body
                self.complete = True
                if pos < end:
                    self._trailing_garbage = True
                break
            elif line[:1] not in _FOLD:
                _parse_fields(line, 0)  # a trailer field must be a well-formed field (its value is unused)
        if not out:
            return b""
        return out[0] if len(out) == 1 else b"".join(out)


def _parse_fields(head: bytes, pos: int) -> dict[str, str]:
    """The header fields of ``head`` from ``pos`` on: names lower-cased, repeats joined with ``", "``,
    obsolete line folding replaced by one space (RFC 9112 §5.2, as h11 does: the line's value, a
    space, the continuation less its leading blanks; then the whole value's outer blanks stripped).

    Raises:
        UpstreamProtocolError: a malformed line, a NUL, VT or FF in a value, or a continuation line
            before any field.
    """
    fields: list[tuple[str, bytes]] = []
    end = len(head)
    while pos < end:
        # anchored at each field's start: a search (finditer) would rescan the rest of the head for
        # every bad position, quadratic in a long malformed line
        field = _HEADER_FIELD.match(head, pos)
        if field is not None:
            fields.append((field[1].decode("ascii").lower(), field[2]))
            pos = field.end()
            continue
        line_end = _LINE_END.search(head, pos)
        line = head[pos:line_end.start() if line_end else end]
        if line[:1] in _FOLD and b"\r" not in line:
            if not fields:
                raise UpstreamProtocolError("upstream response header starts with a continuation line")
            key, value = fields[-1]
            fields[-1] = (key, value + b" " + line.lstrip(b" \t"))
            pos = line_end.end() if line_end else end
            continue
        raise UpstreamProtocolError(f"upstream sent a malformed response header line ({line[:80]!r})")
    headers: dict[str, str] = {}
    for key, raw in fields:
        value = raw.strip(b" \t")
        if _CONTROL.search(value):
            raise UpstreamProtocolError(f"upstream sent a control character in header {key!r}")
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers
