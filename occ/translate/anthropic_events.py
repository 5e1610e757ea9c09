"""The one builder of Anthropic SSE streams: it can only emit streams the SDKs accept.

Every translator writes through :class:`AnthropicStreamBuilder`; none writes frames itself. The
builder owns the block allocator, so the failures every peer proxy shipped cannot be expressed:

* exactly one ``message_start``, emitted lazily with the first block (or the finish), carrying an
  input-token estimate (zeroed usage broke Claude Code 2.1.79);
* block indices contiguous from 0, at most one block open, each closed before the next opens;
* no empty text block, no whitespace-only text or thinking block (whitespace is held until real
  text arrives, and dropped if none does);
* a ``tool_use`` block starts with ``input: {}`` and its ``input_json_delta`` fragments concatenate to
  a JSON object. Streamed (:meth:`~AnthropicStreamBuilder.tool_start`, ``tool_input``, ``tool_stop``),
  a fragment is written only once :class:`~occ.translate.json_prefix.JsonPrefix` accepts it, because
  the SDKs parse the accumulated partial JSON after every fragment; arguments that do not begin like
  an object (double-encoded, ``null``) are held and repaired at the stop. Whole
  (:meth:`~AnthropicStreamBuilder.tool_use`), the arguments are validated before anything is written;
* one ``message_delta`` whose ``stop_reason`` agrees with the emitted blocks (any ``tool_use`` ->
  ``tool_use``), then ``message_stop``;
* a server tool's result block (``web_search_tool_result``) follows the ``server_tool_use`` it answers,
  both whole in their ``content_block_start`` (the ``server_tool_use``'s input also as one
  ``input_json_delta``, which is where Claude Code reads it); each web search counts in
  ``usage.server_tool_use.web_search_requests``; citations reach only text blocks, as ``citations_delta``;
* after :meth:`error` or :meth:`finish` nothing more can be written.

An upstream that already speaks Anthropic is relayed through ``relay_message_start``/``relay_frame``
(the passthrough checks that grammar as it goes); once a relay has started, the synthesizing methods
refuse to write, so the two allocators can never interleave.

Frames accumulate in the builder; :meth:`take` hands them out as one ``bytes`` buffer, so all the
events produced by one upstream read leave in one write.

The builder is per client response, not per upstream attempt: an attempt that fails before
:attr:`committed` leaves it untouched, and the next attempt writes through the same builder.
"""

from __future__ import annotations

from typing import Any

import attrs

from occ.core.errors import OccError, UpstreamProtocolError, error_frame
from occ.core.jsonfast import JSONDecodeError, dumps, dumps_str, loads
from occ.translate.json_prefix import JsonPrefix

__all__ = [
    "SIGNATURE_PREFIX",
    "AnthropicStreamBuilder",
    "Message",
    "Usage",
    "final_stop_reason",
    "make_message",
    "normalize_tool_arguments",
    "replay_message",
    "token_count",
    "without_thinking",
]

#: Prefix of every thinking signature occ mints; such signatures never reach real Anthropic.
SIGNATURE_PREFIX = "occ1."

STOP_REASONS = frozenset(
    {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal",
     "model_context_window_exceeded"}
)


@attrs.define
class Usage:
    """Token counts in Anthropic's sense: ``input_tokens`` excludes cache reads and writes."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    #: searches run by the web_search server tool (``usage.server_tool_use.web_search_requests``)
    web_search_requests: int = attrs.field(default=0, kw_only=True)
    #: occ made these numbers up (chars/4 and the request's estimate) because the upstream reported
    #: none: logs and metrics must never count them as reported. Not part of the wire form.
    estimated: bool = attrs.field(default=False, kw_only=True)

    @classmethod
    def estimate(cls, input_tokens: int, output_tokens: int = 0) -> Usage:
        """occ's own estimate, marked as such."""
        return cls(input_tokens=input_tokens, output_tokens=output_tokens, estimated=True)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
        }
        if self.web_search_requests:
            out["server_tool_use"] = {"web_search_requests": self.web_search_requests, "web_fetch_requests": 0}
        return out


def token_count(value: Any) -> int | None:
    """An upstream token count, or None when it is absent: null means absent (``{"prompt_tokens":
    null}`` is no report, not a report of 0); a bool or a negative number is no count either."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)) and value >= 0 and value == value:
        return int(value)
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class Message(dict[str, Any]):
    """A non-streaming Anthropic message (a plain dict on the wire) that also says whether its usage
    is occ's estimate, for the request log and metrics."""

    usage_estimated: bool = False


def normalize_tool_arguments(raw: str | dict[str, Any] | None, *, tool_name: str = "?") -> str:
    """Tool-call arguments as compact JSON text of an object.

    Empty or missing arguments are ``{}``; an object passes through unchanged (its text is not
    re-serialised); a JSON string that itself holds an object (double encoding, seen in the wild)
    is unwrapped. Anything else is the upstream breaking the protocol.

    Raises:
        UpstreamProtocolError: the arguments are not a JSON object.
    """
    if raw is None:
        return "{}"
    if isinstance(raw, dict):
        return dumps_str(raw)
    text = raw.strip()
    if not text:
        return "{}"
    try:
        value = loads(text)
    except JSONDecodeError:
        raise UpstreamProtocolError(
            f"tool call {tool_name!r}: arguments are not valid JSON ({_clip(text)})"
        ) from None
    if isinstance(value, dict):
        return text
    if isinstance(value, str):
        return normalize_tool_arguments(value, tool_name=tool_name)
    if value is None:
        return "{}"
    raise UpstreamProtocolError(f"tool call {tool_name!r}: arguments are not a JSON object ({_clip(text)})")


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def final_stop_reason(stop_reason: str | None, *, has_tool_use: bool) -> str:
    """The ``stop_reason`` that agrees with what was emitted: a tool call always gives ``tool_use``
    (unless output was cut at ``max_tokens``); ``tool_use`` without a call is ``end_turn``."""
    if has_tool_use and stop_reason not in ("max_tokens", "refusal", "pause_turn",
                                            "model_context_window_exceeded"):
        return "tool_use"
    if stop_reason == "tool_use" or stop_reason is None or stop_reason not in STOP_REASONS:
        return "end_turn"
    return stop_reason


def make_message(*, message_id: str, model: str, content: list[dict[str, Any]], stop_reason: str | None,
                 usage: Usage, stop_sequence: str | None = None) -> Message:
    """A non-streaming Anthropic message, held to the same rules as the stream builder: no empty
    text blocks, no whitespace-only thinking blocks unless they carry a signature (upstream reasoning
    state), tool inputs are objects, stop_reason agrees."""
    blocks: list[dict[str, Any]] = []
    for block in content:
        kind = block.get("type")
        if kind == "text" and not (block.get("text") or "").strip():
            continue
        if kind == "thinking" and not (block.get("thinking") or "").strip():
            if block.get("signature", SIGNATURE_PREFIX) == SIGNATURE_PREFIX:
                continue
            block = {**block, "thinking": ""}  # it stays only to carry upstream reasoning state
        blocks.append(block)
    reason = final_stop_reason(stop_reason, has_tool_use=any(b.get("type") == "tool_use" for b in blocks))
    if usage.estimated and not usage.output_tokens:
        usage = Usage.estimate(usage.input_tokens, max(1, _output_chars(blocks) // 4))
    searches = _web_searches(blocks)
    if searches and not usage.web_search_requests:
        usage = attrs.evolve(usage, web_search_requests=searches)
    message = Message(
        id=message_id,
        type="message",
        role="assistant",
        model=model,
        content=blocks,
        stop_reason=reason,
        stop_sequence=stop_sequence if reason == "stop_sequence" else None,
        usage=usage.as_dict(),
    )
    message.usage_estimated = usage.estimated
    return message


def without_thinking(message: dict[str, Any]) -> dict[str, Any]:
    """``message`` without thinking blocks, for a client that did not ask for thinking; the stop
    reason and usage stay as they are."""
    content = message.get("content")
    if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "thinking" for b in content):
        message["content"] = [b for b in content if not (isinstance(b, dict) and b.get("type") == "thinking")]
    return message


def replay_message(builder: AnthropicStreamBuilder, message: dict[str, Any]) -> None:
    """Write a whole Anthropic message through ``builder`` as a stream (an upstream that answered a
    stream request with its whole answer): each block as its events, then the message's own stop
    reason and usage."""
    for block in message.get("content") or []:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            for cited in block.get("citations") or []:
                if isinstance(cited, dict):
                    builder.citation(cited)  # before the text, as Anthropic sends them
            builder.text(str(block.get("text") or ""))
            builder.end_block()
        elif kind == "thinking":
            builder.thinking(str(block.get("thinking") or ""))
            signature = block.get("signature")
            if isinstance(signature, str) and signature and signature != SIGNATURE_PREFIX:
                builder.thinking_signature(signature)
            builder.end_block()
        elif kind == "tool_use":
            builder.tool_use(str(block.get("id") or ""), str(block.get("name") or ""), block.get("input"))
        elif kind is not None:
            builder.raw_block(block)  # redacted_thinking, server tool blocks: whole in their start
    raw = message.get("usage") if isinstance(message.get("usage"), dict) else {}
    counts = [token_count(raw.get(k)) or 0 for k in ("input_tokens", "output_tokens", "cache_read_input_tokens",
                                                      "cache_creation_input_tokens")]
    tools = raw.get("server_tool_use") if isinstance(raw.get("server_tool_use"), dict) else {}
    usage = Usage(*counts, web_search_requests=token_count(tools.get("web_search_requests")) or 0,
                  estimated=bool(getattr(message, "usage_estimated", False)))
    stop_sequence = message.get("stop_sequence") if isinstance(message.get("stop_sequence"), str) else None
    builder.finish(message.get("stop_reason"), usage, stop_sequence)


def _web_searches(blocks: list[dict[str, Any]]) -> int:
    return sum(1 for b in blocks if b.get("type") == "server_tool_use" and b.get("name") == "web_search")


def _output_chars(blocks: list[dict[str, Any]]) -> int:
    """What the estimate of output tokens counts: the text, thinking and tool input written."""
    chars = 0
    for block in blocks:
        for key in ("text", "thinking"):
            if isinstance(block.get(key), str):
                chars += len(block[key])
        if block.get("type") == "tool_use":
            chars += len(dumps(block.get("input") or {}))
    return chars


_TEXT, _THINKING, _TOOL = "text", "thinking", "tool_use"


class _ToolInput:
    """The arguments of the tool_use block being streamed."""

    __slots__ = ("held", "name", "prefix", "text")

    def __init__(self, name: str) -> None:
        self.name = name
        self.text: list[str] = []  # everything received, for the repair of held arguments
        self.prefix = JsonPrefix()
        self.held = False  # the arguments do not begin like an object: repaired and written at the stop


class AnthropicStreamBuilder:
    """Emit an Anthropic message stream that is valid by construction.

    Args:
        message_id: the ``msg_...`` id of the response.
        model: the model name the client asked for (echoed, as Anthropic does).
        input_tokens: the estimate sent in ``message_start`` until the upstream's numbers arrive.
        thinking: the client asked for thinking; when it did not, thinking text and signatures are
            dropped here (a client that follows the Anthropic contract sees no block type it did not
            request), and translators that must keep upstream state find another carrier for it.
    """

    def __init__(self, *, message_id: str, model: str, input_tokens: int, thinking: bool = True) -> None:
        self.message_id = message_id
        self.thinking_enabled = thinking
        self.model = model
        self.input_estimate = max(1, int(input_tokens))
        self._frames: list[bytes] = []
        self._started = False
        self._next_index = 0
        self._open: str | None = None  # _TEXT / _THINKING while a block is open
        self._held_ws = ""  # whitespace that may open a block once real text follows
        self._held_kind: str | None = None
        self._signature: str | None = None
        self.tool_use_count = 0
        self.block_count = 0
        self.finished = False
        self.stop_reason: str | None = None
        self.usage: Usage | None = None
        #: the upstream's counts as far as it reported them before its finish (a message_start, a usage
        #: chunk): what :meth:`usage_so_far` starts from
        self.reported: Usage | None = None
        self.output_chars = 0
        self._relayed = False  # the message is an upstream Anthropic stream relayed as is
        self._tool: _ToolInput | None = None  # the streamed tool_use block, while it is open
        self._citations: list[bytes] = []  # citations for the text block that opens next
        self._server_tools: set[str] = set()  # ids of the server_tool_use blocks written
        self._prelude: list[dict[str, Any]] = []
        self.web_search_requests = 0

    # -- state the relay and the fallback loop read ------------------------------------------

    @property
    def committed(self) -> bool:
        """True once anything beyond pings reached (or is queued for) the client."""
        return self._started

    def usage_so_far(self) -> Usage:
        """What the message has cost until now, for a stream that ends before its finish (the client left,
        a failure after commit, a deadline, the shutdown): the upstream's counts as far as it reported them,
        else the request's input estimate; output tokens no fewer than a quarter of the characters of
        content written (rounded up). Marked estimated whenever a number is occ's."""
        if self.usage is not None:
            return self.usage
        written = (self.output_chars + 3) // 4
        reported = self.reported
        if reported is None:
            return Usage.estimate(self.input_estimate, written)
        output = max(reported.output_tokens, written)
        return Usage(reported.input_tokens, output, reported.cache_read_input_tokens,
                     reported.cache_creation_input_tokens,
                     estimated=reported.estimated or output != reported.output_tokens)

    def forget_uncommitted(self) -> None:
        """Drop the whitespace a failed attempt left held before anything was sent, so the next
        attempt starts clean. Committed state is never touched."""
        if not self._started:
            self._held_ws = ""
            self._held_kind = None

    def take(self) -> bytes:
        """All frames produced since the last call, as one buffer."""
        if not self._frames:
            return b""
        out = b"".join(self._frames) if len(self._frames) > 1 else self._frames[0]
        self._frames.clear()
        return out

    # -- content ------------------------------------------------------------------------------

    def text(self, text: str) -> None:
        self._content(_TEXT, text)

    def thinking(self, text: str) -> None:
        if self.thinking_enabled:
            self._content(_THINKING, text)
        else:
            self._check_synthesizing()

    def thinking_signature(self, signature: str) -> None:
        """Carry ``signature`` (an upstream's opaque reasoning state) in the message.

        An open thinking block takes it as its ``signature_delta`` at its stop. Otherwise (the thinking
        closed before the state arrived, or the upstream showed no thinking at all) a thinking block
        with no text carries it, as Anthropic's own omitted-thinking blocks do: Claude Code keeps it in
        its history and sends it back, so the state is never dropped on the floor.

        With thinking off (the client did not ask for it) the signature is dropped here: a translator
        whose upstream needs it back carries it elsewhere (Gemini: in the tool_use id)."""
        self._check_synthesizing()
        if not self.thinking_enabled:
            return
        if self._open == _THINKING:
            self._signature = signature
            return
        self._held_ws = ""
        self._held_kind = None
        self._close_open()
        self._open_block(b'{"type":"thinking","thinking":"","signature":""}')
        self._open = _THINKING
        self._signature = signature
        self._close_open()

    def end_block(self) -> None:
        """Close the open text/thinking block, so that the next content of the same kind starts a
        new block (Responses and Gemini separate reasoning items and text parts)."""
        self._held_ws = ""
        self._held_kind = None
        self._citations.clear()
        self._close_open()

    def tool_use(self, tool_id: str, name: str, arguments: str | dict[str, Any] | None) -> None:
        """A whole tool call. Arguments are validated first, so a bad call writes nothing."""
        self._check_synthesizing()
        args = normalize_tool_arguments(arguments, tool_name=name)
        if not tool_id or not name:
            raise UpstreamProtocolError("tool call without id or name")
        self._held_ws = ""
        self._held_kind = None
        self._close_open()
        index = self._open_block(
            b'{"type":"tool_use","id":' + dumps(tool_id) + b',"name":' + dumps(name) + b',"input":{}}'
        )
        self._frames.append(
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
            + str(index).encode()
            + b',"delta":{"type":"input_json_delta","partial_json":'
            + dumps(args)
            + b"}}\n\n"
        )
        self._stop_block(index)
        self.tool_use_count += 1
        self.output_chars += len(args)

    def tool_start(self, tool_id: str, name: str) -> None:
        """Open a tool_use block whose arguments follow in pieces (:meth:`tool_input`) until
        :meth:`tool_stop` (or whatever closes the block: other content, the finish)."""
        self._check_synthesizing()
        if not tool_id or not name:
            raise UpstreamProtocolError("tool call without id or name")
        self._held_ws = ""
        self._held_kind = None
        self._close_open()
        self._open_block(
            b'{"type":"tool_use","id":' + dumps(tool_id) + b',"name":' + dumps(name) + b',"input":{}}'
        )
        self._open = _TOOL
        self._tool = _ToolInput(name)

    def tool_input(self, fragment: str) -> None:
        """The next piece of the open tool call's arguments, written at once when it keeps them a
        valid beginning of a JSON object.

        Raises:
            UpstreamProtocolError: the arguments stopped being JSON (nothing of the bad piece is
                written: the client's partial parse never sees it).
        """
        self._check_synthesizing()
        tool = self._tool
        if tool is None or self._open != _TOOL:
            raise RuntimeError("tool_input without an open tool_use block")
        tool.text.append(fragment)
        if tool.held or not fragment:
            return
        if not tool.prefix.started:
            fragment = fragment.lstrip(" \t\n\r")
            if not fragment:
                return  # leading whitespace alone would not parse on the client
            if fragment[0] != "{":
                tool.held = True  # a double-encoded or otherwise odd object: repaired at the stop
                return
        if not tool.prefix.feed(fragment):
            text = "".join(tool.text)
            raise UpstreamProtocolError(f"tool call {tool.name!r}: arguments are not valid JSON "
                                        f"({_clip(text[max(0, len(text) - 80):])})")
        self._input_delta(fragment)

    def tool_stop(self) -> None:
        """Close the streamed tool_use block.

        Raises:
            UpstreamProtocolError: its arguments ended before the JSON object did, or held
                arguments that no repair makes an object.
        """
        self._check_synthesizing()
        if self._open != _TOOL:
            raise RuntimeError("tool_stop without an open tool_use block")
        self._close_open()

    def _end_tool(self) -> None:
        tool = self._tool
        assert tool is not None
        if tool.held or not tool.prefix.started:
            self._input_delta(normalize_tool_arguments("".join(tool.text), tool_name=tool.name))
        elif not tool.prefix.complete:
            raise UpstreamProtocolError(f"tool call {tool.name!r}: arguments end before their JSON object does")
        self._tool = None
        self.tool_use_count += 1

    def _input_delta(self, fragment: str) -> None:
        self._frames.append(
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
            + str(self._next_index - 1).encode()
            + b',"delta":{"type":"input_json_delta","partial_json":'
            + dumps(fragment)
            + b"}}\n\n"
        )
        self.output_chars += len(fragment)

    def raw_block(self, block: dict[str, Any]) -> None:
        """A block that arrives complete in its start event (``redacted_thinking``, ``server_tool_use``,
        ``web_search_tool_result``). A server tool's result must answer a ``server_tool_use`` already
        written (Anthropic pairs them by ``tool_use_id``); each ``web_search`` use counts one search
        in the usage.

        Raises:
            UpstreamProtocolError: a server tool block without its id, or a result without its use.
        """
        self._check_synthesizing()
        kind = block.get("type")
        if kind == "server_tool_use":
            if not block.get("id") or not block.get("name") or not isinstance(block.get("input"), dict):
                raise UpstreamProtocolError("server_tool_use block without id, name or input")
        elif isinstance(kind, str) and kind.endswith("_tool_result") and kind != "tool_result":
            if block.get("tool_use_id") not in self._server_tools:
                raise UpstreamProtocolError(f"{kind} block for no server_tool_use written before it")
        self._held_ws = ""
        self._held_kind = None
        self._citations.clear()
        self._close_open()
        self._write_whole(block)

    def prelude(self, blocks: list[dict[str, Any]]) -> None:
        """Blocks that open the message (a search occ ran before asking the model), written with the
        first content or the finish, so they commit nothing on their own: an attempt that fails
        before its first content still falls back unseen. Each call replaces the last.

        Raises:
            RuntimeError: the message has already started.
        """
        self._check_synthesizing()
        if self._started:
            raise RuntimeError("prelude after the message started")
        self._prelude = list(blocks)

    def _write_whole(self, block: dict[str, Any]) -> None:
        index = self._open_block(dumps(block))
        if block.get("type") == "server_tool_use":
            # The start carries the whole input, and the input comes again as one input_json_delta, as the
            # Anthropic API streams it: Claude Code resets a server_tool_use's input to "" at its start and
            # parses the deltas at its stop (the SDKs' accumulators read either, and the delta replaces).
            self._frames.append(
                b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
                + str(index).encode()
                + b',"delta":{"type":"input_json_delta","partial_json":'
                + dumps(dumps_str(block.get("input") or {}))
                + b"}}\n\n"
            )
        self._stop_block(index)
        if block.get("type") == "server_tool_use":
            self._server_tools.add(str(block["id"]))
            if block.get("name") == "web_search":
                self.web_search_requests += 1

    def citation(self, citation: dict[str, Any]) -> None:
        """A citation of the open text block (a ``citations_delta``), or, when no text block is open,
        of the next one to open, before its first text (a citation no text follows is dropped)."""
        self._check_synthesizing()
        if not isinstance(citation.get("type"), str):
            raise UpstreamProtocolError("citation without a type")
        frame = dumps(citation)
        if self._open == _TEXT:
            self._citation_delta(self._next_index - 1, frame)
        else:
            self._citations.append(frame)

    def _citation_delta(self, index: int, citation_json: bytes) -> None:
        self._frames.append(
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
            + str(index).encode()
            + b',"delta":{"type":"citations_delta","citation":'
            + citation_json
            + b"}}\n\n"
        )

    # -- relaying a stream that is already Anthropic (passthrough) -----------------------------

    def relay_message_start(self, frame: bytes) -> None:
        """The upstream's own ``message_start``, re-framed; it commits the response.

        From here on the message belongs to the relay: the synthesizing methods refuse to write,
        because their block allocator knows nothing of the relayed blocks."""
        self._check_live()
        if self._started:
            raise RuntimeError("message_start already sent")
        self._started = True
        self._relayed = True
        self._frames.append(frame)

    def relay_frame(self, frame: bytes, *, tool_use: bool = False, stop_reason: str | None = None,
                    usage: Usage | None = None, finishes: bool = False) -> None:
        """One whole upstream event, re-framed by the caller (grammar checked by the caller);
        ``finishes`` marks ``message_stop``, after which nothing more can be written."""
        self._check_live()
        if not self._relayed:
            raise RuntimeError("relay_frame before relay_message_start")
        self._frames.append(frame)
        if tool_use:
            self.tool_use_count += 1
        if stop_reason is not None:
            self.stop_reason = stop_reason
        if usage is not None:
            self.usage = usage
        if finishes:
            self.finished = True

    # -- the end --------------------------------------------------------------------------------

    def finish(self, stop_reason: str | None, usage: Usage | None = None,
               stop_sequence: str | None = None) -> None:
        """Close everything and end the message with one ``message_delta`` and ``message_stop``."""
        self._check_synthesizing()
        self._held_ws = ""
        self._held_kind = None
        self._close_open()
        self._ensure_started()
        reason = self._final_stop_reason(stop_reason)
        if reason != "stop_sequence":
            stop_sequence = None
        final = usage if usage is not None else Usage.estimate(self.input_estimate, max(1, self.output_chars // 4))
        if self.web_search_requests and not final.web_search_requests:
            final = attrs.evolve(final, web_search_requests=self.web_search_requests)
        self.stop_reason = reason
        self.usage = final
        delta = {"stop_reason": reason, "stop_sequence": stop_sequence}
        self._frames.append(
            b'event: message_delta\ndata: {"type":"message_delta","delta":'
            + dumps(delta)
            + b',"usage":'
            + dumps(final.as_dict())
            + b"}\n\n"
            + b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
        )
        self.finished = True

    def error(self, exc: OccError) -> None:
        """End the stream with an Anthropic ``error`` event (after commit only; see the relay)."""
        if self.finished:
            return
        self._frames.append(error_frame(exc))
        self.finished = True

    def _final_stop_reason(self, stop_reason: str | None) -> str:
        return final_stop_reason(stop_reason, has_tool_use=bool(self.tool_use_count))

    # -- the block allocator ------------------------------------------------------------------

    def _check_live(self) -> None:
        if self.finished:
            raise RuntimeError("the message is already finished")

    def _check_synthesizing(self) -> None:
        self._check_live()
        if self._relayed:
            raise RuntimeError("the message is relayed from upstream; only relay_* may write")

    def _content(self, kind: str, text: str) -> None:
        self._check_synthesizing()
        if not text:
            return
        if self._open != kind:
            if self._held_kind != kind:
                self._held_ws = ""
                self._held_kind = kind
            if text.isspace():
                self._held_ws += text
                return
            text = self._held_ws + text
            self._held_ws = ""
            self._held_kind = None
            self._close_open()
            if kind == _TEXT:
                index = self._open_block(b'{"type":"text","text":""}')
                for frame in self._citations:
                    self._citation_delta(index, frame)
                self._citations.clear()
            else:
                self._open_block(b'{"type":"thinking","thinking":"","signature":""}')
            self._open = kind
        index = self._next_index - 1
        if kind == _TEXT:
            head = b',"delta":{"type":"text_delta","text":'
        else:
            head = b',"delta":{"type":"thinking_delta","thinking":'
        self._frames.append(
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
            + str(index).encode()
            + head
            + dumps(text)
            + b"}}\n\n"
        )
        self.output_chars += len(text)

    def _ensure_started(self) -> None:
        if self._started:
            return
        self._started = True
        message = {
            "id": self.message_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": self.input_estimate,
                "output_tokens": 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        self._frames.append(
            b'event: message_start\ndata: {"type":"message_start","message":' + dumps(message) + b"}\n\n"
        )
        for block in self._prelude:
            self._write_whole(block)

    def _open_block(self, content_block_json: bytes) -> int:
        self._ensure_started()
        index = self._next_index
        self._next_index += 1
        self.block_count += 1
        self._frames.append(
            b'event: content_block_start\ndata: {"type":"content_block_start","index":'
            + str(index).encode()
            + b',"content_block":'
            + content_block_json
            + b"}\n\n"
        )
        return index

    def _stop_block(self, index: int) -> None:
        self._frames.append(
            b'event: content_block_stop\ndata: {"type":"content_block_stop","index":'
            + str(index).encode()
            + b"}\n\n"
        )

    def _close_open(self) -> None:
        if self._open is None:
            return
        index = self._next_index - 1
        if self._open == _TOOL:
            self._end_tool()  # raises, leaving the block open, when the arguments are unusable
        if self._open == _THINKING:
            signature = self._signature or SIGNATURE_PREFIX
            self._signature = None
            self._frames.append(
                b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
                + str(index).encode()
                + b',"delta":{"type":"signature_delta","signature":'
                + dumps(signature)
                + b"}}\n\n"
            )
        self._open = None
        self._stop_block(index)
