"""Anthropic Messages <-> the OpenAI Responses API (gpt-* models on OpenCode Zen), sans-IO.

Function calls are items with a ``call_id`` (that is the Anthropic ``tool_use.id``) and their
arguments arrive as deltas keyed by the item's ``id``; they are buffered and written whole through
the stream builder once ``...arguments.done`` or the item's ``output_item.done`` arrives. Reasoning
items are never replayed by bare ``rs_`` id (under ``store: false`` that is a 404, protocols.md §7
item 43): their id and ``encrypted_content`` travel in a thinking block's signature (``occ1.r.<base64url>``;
a thinking block with no text when the item had no summary) through Claude Code's history and come back
as a whole reasoning item, only to the model that made it (encrypted reasoning is bound to its model:
another model's is left out, never sent to draw a 400).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from occ.core.errors import UpstreamProtocolError
from occ.core.jsonfast import JSONDecodeError, dumps_str, loads
from occ.core.sse import SSEEvent, event_json
from occ.core.upstream_errors import from_responses, upstream_failure
from occ.translate.anthropic_events import (
    SIGNATURE_PREFIX,
    AnthropicStreamBuilder,
    Usage,
    make_message,
    normalize_tool_arguments,
    token_count,
)
from occ.translate.anthropic_request import (
    blocks_of,
    clamped_max_tokens,
    effort_of,
    system_text,
    text_of,
    turns,
    visible_tools,
)
from occ.translate.tool_ids import from_upstream_name, new_tool_id, to_upstream_name
from occ.translate.tool_schema import is_strict_schema, openai_tools
from occ.translate.web_search import (
    page_key,
    responses_search_blocks,
    responses_text_citations,
    responses_tool,
    search_options,
)

if TYPE_CHECKING:
    from occ.config.model import ModelConfig

__all__ = ["ResponsesCollector", "ResponsesStreamTranslator", "build_request", "reasoning_signature",
           "translate_response"]

#: A thinking block whose signature starts with this carries a Responses reasoning item.
REASONING_PREFIX = SIGNATURE_PREFIX + "r."

_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}


def _user_parts(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text" and block.get("text"):
            parts.append({"type": "input_text", "text": block["text"]})
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") == "base64" and source.get("data"):
                url = f"data:{source.get('media_type') or 'image/png'};base64,{source['data']}"
            elif source.get("type") == "url" and isinstance(source.get("url"), str):
                url = source["url"]
            else:
                url = ""  # no data, or a source the API cannot take: an empty data URL is a 400
            if url:
                parts.append({"type": "input_image", "image_url": url})
        elif kind == "document":
            part = _document_part(block)
            if part is not None:
                parts.append(part)
        elif kind == "search_result":
            text = text_of([block])
            if text:
                parts.append({"type": "input_text", "text": text})
    return parts


def _call_output(result: dict[str, Any]) -> str | list[dict[str, Any]]:
    """A tool result as ``function_call_output.output``: its text, or, when it holds images or files,
    the list of input_text / input_image / input_file parts the API documents for that field (a
    screenshot the model can see, not the word "[image]")."""
    blocks = blocks_of(result.get("content"))
    prefix = "Error: " if result.get("is_error") else ""
    if any(b.get("type") in ("image", "document") for b in blocks):
        parts = _user_parts(blocks)
        if parts:
            return ([{"type": "input_text", "text": prefix.strip()}] if prefix else []) + parts
    return prefix + (text_of(blocks) or "(empty result)")


def _document_part(block: dict[str, Any]) -> dict[str, Any] | None:
    """A document as the Responses API takes files: a base64 PDF as ``input_file`` with a data URL
    (``file_data`` and ``filename``), a PDF URL as ``file_url``; a text document as its text."""
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    kind = source.get("type")
    if kind == "base64" and source.get("data"):
        media = source.get("media_type") or "application/pdf"
        name = str(block.get("title") or "document") + (".pdf" if media == "application/pdf" else "")
        return {"type": "input_file", "filename": name, "file_data": f"data:{media};base64,{source['data']}"}
    if kind == "url" and isinstance(source.get("url"), str) and source["url"]:
        return {"type": "input_file", "file_url": source["url"]}
    text = text_of([block])
    return {"type": "input_text", "text": text} if text and text != "[document]" else None


def _input(request: dict[str, Any], route: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for turn in turns(request):
        blocks = list(turn.blocks)
        if turn.role == "assistant":
            for block in blocks:
                signature = str(block.get("signature", "")) if block.get("type") == "thinking" else ""
                if signature.startswith(REASONING_PREFIX):
                    item = _decode_reasoning(signature[len(REASONING_PREFIX):], route)
                    if item is not None:
                        items.append(item)
            text = "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")
            if text:
                items.append({"type": "message", "role": "assistant",
                              "content": [{"type": "output_text", "text": text}]})
            for block in blocks:
                if block.get("type") == "tool_use":
                    args = block.get("input") if isinstance(block.get("input"), dict) else {}
                    items.append({"type": "function_call", "call_id": str(block.get("id", "")),
                                  "name": to_upstream_name(str(block.get("name", ""))),
                                  "arguments": dumps_str(args)})
            continue
        for block in blocks:
            if block.get("type") == "tool_result":
                items.append({"type": "function_call_output", "call_id": str(block.get("tool_use_id", "")),
                              "output": _call_output(block)})
        parts = _user_parts([b for b in blocks if b.get("type") != "tool_result"])
        if parts:
            items.append({"type": "message", "role": "user", "content": parts})
    return items


def reasoning_signature(route: str, item_id: str, encrypted: str) -> str:
    """The Anthropic thinking signature that carries a reasoning item of the model ``route``."""
    raw = dumps_str({"id": item_id, "encrypted_content": encrypted, "route": route}).encode()
    return REASONING_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_reasoning(encoded: str, route: str) -> dict[str, Any] | None:
    """A reasoning item to replay, only ever with its encrypted content (a bare ``rs_`` id is a 404
    under ``store: false``) and only to the model that made it."""
    try:
        data = loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, *JSONDecodeError):
        return None
    if not isinstance(data, dict) or not data.get("encrypted_content") or not data.get("id") \
            or data.get("route") != route:
        return None
    return {"type": "reasoning", "id": data["id"], "summary": [], "encrypted_content": data["encrypted_content"]}


def build_request(request: dict[str, Any], model: ModelConfig, *, stream: bool,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model.model_id, "input": _input(request, model.label), "store": False,
                            "stream": stream, "include": ["reasoning.encrypted_content"]}
    instructions = system_text(request)
    if instructions:
        body["instructions"] = instructions
    # strict, said out loud either way: Responses function tools are strict by default, and strict mode
    # refuses (400, the whole request) a schema with an optional property, without additionalProperties:
    # false or with a keyword it lacks; so strict only where the schema is known to satisfy it
    tools = [{"type": "function", **t["function"], "strict": is_strict_schema(t["function"]["parameters"])}
             for t in openai_tools(visible_tools(request))]
    search = search_options(request)
    if tools:
        body["tools"] = tools
        choice = request.get("tool_choice")
        if isinstance(choice, dict):
            kind = choice.get("type")
            mapped = {"auto": "auto", "any": "required", "none": "none"}.get(kind)
            if kind == "tool" and search is not None and choice.get("name") == search.name:
                pass  # the search is no function to force: the model decides (auto)
            elif kind == "tool" and choice.get("name"):
                body["tool_choice"] = {"type": "function", "name": to_upstream_name(choice["name"])}
            elif mapped:
                body["tool_choice"] = mapped
            if choice.get("disable_parallel_tool_use"):
                body["parallel_tool_calls"] = False
    if search is not None:  # the upstream's own search (docs/web-search.md)
        body.setdefault("tools", []).append(responses_tool(search))
        body["include"].append("web_search_call.action.sources")
        if search.max_uses:
            body["max_tool_calls"] = search.max_uses
    max_tokens = clamped_max_tokens(request, model.max_tokens, model.model_id, log)
    if max_tokens is not None:
        body["max_output_tokens"] = max(16, max_tokens)
    effort = model.reasoning_effort or effort_of(request)
    if effort:
        body["reasoning"] = {"effort": _EFFORTS.get(effort, "medium"), "summary": "auto"}
    else:  # reasoning models refuse sampling parameters
        temperature = model.temperature if model.temperature is not None else request.get("temperature")
        if temperature is not None:
            body["temperature"] = temperature
        top_p = model.top_p if model.top_p is not None else request.get("top_p")
        if isinstance(top_p, (int, float)) and not isinstance(top_p, bool):
            body["top_p"] = top_p
    output = request.get("output_config")
    fmt = output.get("format") if isinstance(output, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        # structured output is text.format on this API; strict only where strict mode takes the schema
        body["text"] = {"format": {"type": "json_schema", "name": str(fmt.get("name") or "output"),
                                   "schema": fmt["schema"], "strict": is_strict_schema(fmt["schema"])}}
    return body


def _usage(raw: Any) -> Usage | None:
    """Anthropic usage from Responses usage; None when it reports no count (null means absent)."""
    if not isinstance(raw, dict):
        return None
    inputs, outputs = token_count(raw.get("input_tokens")), token_count(raw.get("output_tokens"))
    if inputs is None and outputs is None:
        return None
    details = raw.get("input_tokens_details") if isinstance(raw.get("input_tokens_details"), dict) else {}
    cached = token_count(details.get("cached_tokens")) or 0
    written = token_count(details.get("cache_write_tokens")) or 0  # inside input_tokens, like cached_tokens
    return Usage(input_tokens=max(0, (inputs or 0) - cached - written), output_tokens=outputs or 0,
                 cache_read_input_tokens=cached, cache_creation_input_tokens=written)


def _incomplete_reason(response: dict[str, Any]) -> str:
    details = response.get("incomplete_details") if isinstance(response.get("incomplete_details"), dict) else {}
    return "refusal" if details.get("reason") == "content_filter" else "max_tokens"


def translate_response(body: Any, *, message_id: str, model_name: str, input_estimate: int,
                       route: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise UpstreamProtocolError("upstream answer is not a JSON object")
    if body.get("status") == "failed" or isinstance(body.get("error"), dict):
        raise upstream_failure(from_responses(body.get("error")))
    content: list[dict[str, Any]] = []
    refused = False
    titles, cited = _cited_sources(body.get("output"))
    for item in body.get("output") or []:
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "web_search_call":
            content.extend(responses_search_blocks(item, titles, cited))
        elif kind == "reasoning":
            text = "\n\n".join(str(s.get("text") or "") for s in item.get("summary") or [] if isinstance(s, dict))
            if not text.strip():  # open-weight models (gpt-oss) give the reasoning itself, not a summary
                text = "".join(str(c.get("text") or "") for c in item.get("content") or []
                               if isinstance(c, dict) and c.get("type") == "reasoning_text")
            signature = SIGNATURE_PREFIX
            if item.get("encrypted_content") and item.get("id"):
                signature = reasoning_signature(route, str(item["id"]), str(item["encrypted_content"]))
            if text.strip() or signature != SIGNATURE_PREFIX:
                content.append({"type": "thinking", "thinking": text if text.strip() else "", "signature": signature})
        elif kind == "message":
            parts = [p for p in item.get("content") or [] if isinstance(p, dict)]
            text = "".join(str(p.get("text") or p.get("refusal") or "") for p in parts
                           if p.get("type") in ("output_text", "refusal"))
            refused = refused or any(p.get("type") == "refusal" for p in parts)
            citations = [c for p in parts if p.get("type") == "output_text" for c in responses_text_citations(p)]
            if text:
                content.append({"type": "text", "text": text, **({"citations": citations} if citations else {})})
        elif kind == "function_call":
            name = str(item.get("name") or "")
            raw = item.get("arguments")
            arguments = normalize_tool_arguments(raw if isinstance(raw, (str, dict)) else None, tool_name=name)
            content.append({"type": "tool_use", "id": str(item.get("call_id") or item.get("id")), "name": name,
                            "input": loads(arguments)})
    stop = _incomplete_reason(body) if body.get("status") == "incomplete" else "refusal" if refused else "end_turn"
    return make_message(message_id=message_id, model=model_name, content=content, stop_reason=stop,
                        usage=_usage(body.get("usage")) or Usage.estimate(input_estimate))


class _Item:
    """One output item of a Responses stream, found by its ``output_index`` (never by its id, which
    some servers change on every event): what of its text has been written, and its call state."""

    __slots__ = ("args", "call_id", "done", "emitted", "kind", "name", "written")

    def __init__(self, kind: str | None) -> None:
        self.kind = kind  # "message", "reasoning", "function_call", or None until an event says
        # (channel, part index) -> the pieces of text written so far, joined only when a ``.done`` needs
        # the whole (appending to one string per delta would copy the text again on every delta)
        self.written: dict[tuple[str, int], list[str]] = {}
        self.done = False  # its output_item.done came: later events of it change nothing
        self.call_id: str | None = None
        self.name: str | None = None
        self.args: list[str] = []
        self.emitted = False  # the call's tool_use block was written (or closed)


def _joined(pieces: list[str] | None) -> str:
    """The text of a part so far, kept as one piece from then on (so each ``.done`` joins once)."""
    if not pieces:
        return ""
    if len(pieces) > 1:
        pieces[:] = ["".join(pieces)]
    return pieces[0]


def _index(value: Any) -> int:
    """A part or summary index; absent (or not a number) is the first part."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


_KIND_OF = {"output_text": "message", "refusal": "message", "content_part": "message",
            "reasoning_summary_text": "reasoning", "reasoning_summary_part": "reasoning",
            "reasoning_text": "reasoning", "function_call_arguments": "function_call"}


def _cited_sources(output: Any) -> tuple[dict[str, str], list[str]]:
    """page -> title of every ``url_citation`` in the answer (by :func:`page_key`), and the cited URLs
    in order, one per page."""
    titles: dict[str, str] = {}
    cited: list[str] = []
    for item in output if isinstance(output, list) else []:
        if isinstance(item, dict) and item.get("type") == "message":
            for part in item.get("content") or []:
                for note in (part.get("annotations") or []) if isinstance(part, dict) else []:
                    if isinstance(note, dict) and note.get("type") == "url_citation" \
                            and isinstance(note.get("url"), str):
                        key = page_key(note["url"])
                        if key not in titles:
                            titles[key] = str(note.get("title") or "")
                            cited.append(note["url"])
    return titles, cited


class ResponsesCollector:
    """A Responses stream gathered into its whole Response, for an answer that is translated whole
    (a web search: its blocks come before the text that cites them, and the citations' titles are
    known only once the text is done). The output comes from ``response.completed`` or, when a server
    leaves it empty there, from the ``output_item.done`` items and the text deltas, by ``output_index``."""

    def __init__(self) -> None:
        self._items: dict[int, dict[str, Any]] = {}
        self._texts: dict[int, list[str]] = {}
        self._notes: dict[int, list[Any]] = {}
        self._current = -1  # the output_index of the item added last: where an event without one belongs

    def feed(self, event: SSEEvent) -> dict[str, Any] | None:
        """The whole Response once the stream has given it, else None."""
        if not event.data.strip():
            return None
        data = event_json(event)
        if not isinstance(data, dict):
            raise UpstreamProtocolError("upstream sent an event that is not a JSON object")
        kind = data.get("type") or event.event
        index = data.get("output_index") if isinstance(data.get("output_index"), int) else self._current
        if kind == "response.output_item.added":
            self._current = index
        elif kind == "response.output_item.done" and isinstance(data.get("item"), dict):
            self._items[index if index >= 0 else len(self._items)] = data["item"]
        elif kind == "response.output_text.delta":
            self._texts.setdefault(index, []).append(str(data.get("delta") or ""))
        elif kind == "response.output_text.annotation.added" and isinstance(data.get("annotation"), dict):
            self._notes.setdefault(index, []).append(data["annotation"])
        elif kind in ("response.completed", "response.incomplete"):
            response = dict(data["response"]) if isinstance(data.get("response"), dict) else {}
            response.setdefault("status", "completed" if kind == "response.completed" else "incomplete")
            output = response.get("output") if isinstance(response.get("output"), list) else None
            response["output"] = self._annotated(output) if output else self._output()
            return response
        elif kind == "response.failed":
            response = data.get("response") if isinstance(data.get("response"), dict) else {}
            raise upstream_failure(from_responses(response.get("error")))
        elif kind == "error":
            raise upstream_failure(from_responses(data.get("error") if isinstance(data.get("error"), dict) else data))
        return None

    def _annotated(self, output: list[Any]) -> list[Any]:
        """The final output, with the ``annotation.added`` annotations on a message whose text parts
        came without any (by position: an item's index in ``output`` is its ``output_index``)."""
        for index, notes in self._notes.items():
            item = output[index] if 0 <= index < len(output) else None
            if not isinstance(item, dict) or item.get("type") != "message":
                continue
            parts = [p for p in item.get("content") or [] if isinstance(p, dict) and p.get("type") == "output_text"]
            if parts and not any(p.get("annotations") for p in parts):
                output[index] = {**item, "content": [{**p, "annotations": notes} if p is parts[0] else p
                                                     for p in item.get("content") or []]}
        return output

    def _output(self) -> list[dict[str, Any]]:
        items = dict(self._items)
        for index, pieces in self._texts.items():
            item = items.get(index)
            parts = item.get("content") or [] if item is not None else []
            has_text = any(isinstance(p, dict) and p.get("text") for p in parts)
            if item is None or (item.get("type") == "message" and not has_text):
                items[index] = {"type": "message", "role": "assistant", "content": [
                    {"type": "output_text", "text": "".join(pieces), "annotations": self._notes.get(index, [])}]}
        return [items[k] for k in sorted(items)]


class ResponsesStreamTranslator:
    """Responses API stream events in, builder calls out.

    Items are correlated by position, never by id: an item is its ``output_index``, a message part
    its ``content_index``, a reasoning summary its ``summary_index`` (GitHub Copilot's Responses
    endpoint gives an item a new ``item_id`` on every event; the indices stay). Each part's text is
    written once whichever events carry it: the deltas, the ``.done`` events (``output_text.done``,
    ``content_part.done``, ``reasoning_summary_text.done``, ``output_item.done``...) or both; a
    ``.done`` text writes only what the deltas did not (none of it when they wrote it all, the rest when
    they stopped short, all of it when there were none). An event without ``output_index`` is matched
    by an id seen before, else it belongs to the item in progress.

    ``stream_tool_input``: a function call's ``tool_use`` block opens at ``output_item.added`` and
    its ``function_call_arguments.delta`` pieces are written as they arrive (one call at a time; a
    call that begins while another streams is written whole at its end); False writes each call
    whole at its ``.done``.
    """

    def __init__(self, builder: AnthropicStreamBuilder, *, route: str, tool_names: list[str] | None = None,
                 stream_tool_input: bool = True) -> None:
        self._builder = builder
        self._stream_tool_input = stream_tool_input
        self._route = route
        self._tool_names = tool_names or []
        self._items: dict[object, _Item] = {}
        self._ids: dict[str, object] = {}  # item ids seen -> their item's key (streams without indices)
        self._current: object | None = None  # the key of the item events last touched
        self._live: object | None = None  # the key of the call whose arguments are streaming
        self._refused = False  # a refusal part: the model declined (stop_reason "refusal")

    @property
    def done(self) -> bool:
        return self._builder.finished

    def feed(self, event: SSEEvent) -> None:
        if self.done or not event.data.strip():
            return
        data = event_json(event)
        if not isinstance(data, dict):
            raise UpstreamProtocolError("upstream sent an event that is not a JSON object")
        kind = str(data.get("type") or event.event)
        if kind in ("response.completed", "response.incomplete", "response.failed", "error"):
            self._end(kind, data)
            return
        if not kind.startswith("response."):
            return
        item = data.get("item") if isinstance(data.get("item"), dict) else {}
        stem, _, phase = kind[len("response."):].rpartition(".")
        if stem == "output_item":
            if phase == "added":
                self._added(self._slot(data, item, new=True), item)
            elif phase == "done":
                self._item_done(self._slot(data, item), item)
            return
        family = _KIND_OF.get(stem)
        if family is None:
            return  # built-in tool items, annotations, web search progress: nothing to write
        key = self._slot(data, item, family=family)
        slot = self._items[key]
        if family == "function_call":
            self._call_event(key, slot, phase, data)
            return
        if slot.done:
            return
        if self._live is not None and phase == "delta":
            self._emit_call(self._live, None)  # other content: the streaming call is over
        content = _index(data.get("content_index"))
        if stem in ("output_text", "refusal"):
            refusal = stem == "refusal"
            self._refused = self._refused or refusal
            if phase == "delta":
                self._write(slot, "text", content, delta=data.get("delta"))
            elif phase == "done":
                self._write(slot, "text", content, full=data.get("refusal" if refusal else "text"))
        elif stem == "content_part" and phase == "done":
            self._part_done(slot, content, data.get("part"))
        elif stem == "reasoning_summary_text" or (stem == "reasoning_summary_part" and phase == "done"):
            summary = _index(data.get("summary_index"))
            if phase == "delta":
                self._write(slot, "summary", summary, delta=data.get("delta"))
            elif phase == "done":
                part = data.get("part") if isinstance(data.get("part"), dict) else {}
                text = data.get("text")  # null means absent: then the part carries it
                self._write(slot, "summary", summary, full=text if text is not None else part.get("text"))
        elif stem == "reasoning_text":
            if phase == "delta":
                self._write(slot, "reasoning", content, delta=data.get("delta"))
            elif phase == "done":
                self._write(slot, "reasoning", content, full=data.get("text"))

    def close(self) -> None:
        if not self.done:
            raise UpstreamProtocolError("upstream stream ended without response.completed")

    # -- correlation -------------------------------------------------------------------------

    def _slot(self, data: dict[str, Any], item: dict[str, Any], *, new: bool = False,
              family: str | None = None) -> object:
        """The key of the item an event is about: its ``output_index``; without one, the item an id
        named before, else (``new``: an ``output_item.added``) a new item, else the one in progress."""
        index = data.get("output_index")
        item_id = data.get("item_id") if data.get("item_id") is not None else item.get("id")
        item_id = None if item_id is None else str(item_id)
        kind = item.get("type") if isinstance(item.get("type"), str) else family
        if isinstance(index, int) and not isinstance(index, bool):
            key: object = index
        elif item_id is not None and item_id in self._ids:
            key = self._ids[item_id]
        elif not new and self._current is not None and not self._items[self._current].done \
                and self._items[self._current].kind in (None, kind):
            key = self._current
        else:
            key = ("unindexed", len(self._items))
        slot = self._items.get(key)
        if slot is None:
            slot = self._items[key] = _Item(kind)
        elif slot.kind is None:
            slot.kind = kind
        if item_id is not None:
            self._ids.setdefault(item_id, key)
        self._current = key
        return key

    # -- text and reasoning ------------------------------------------------------------------

    def _write(self, slot: _Item, channel: str, index: int, *, delta: Any = None, full: Any = None) -> None:
        """Write a part's new text once: a delta as it comes; a whole text (a ``.done``) only past
        what was written already (nothing if it does not continue it: the deltas stand)."""
        part = (channel, index)
        pieces = slot.written.get(part)
        if full is not None:
            seen = _joined(pieces)
            if not isinstance(full, str) or not full.startswith(seen):
                return
            piece = full[len(seen):]
        else:
            piece = delta if isinstance(delta, str) else ""
        if not piece:
            return
        first = not pieces
        if pieces is None:
            pieces = slot.written[part] = []
        pieces.append(piece)
        if channel == "text":
            self._builder.text(piece)
            return
        if channel == "summary" and first and any(written for key, written in slot.written.items()
                                                  if key[0] == "summary" and key != part):
            piece = "\n\n" + piece  # summary parts are paragraphs of one thinking block
        self._builder.thinking(piece)

    def _part_done(self, slot: _Item, index: int, part: Any) -> None:
        if not isinstance(part, dict):
            return
        if part.get("type") == "output_text":
            self._write(slot, "text", index, full=part.get("text"))
        elif part.get("type") == "refusal":
            self._refused = True
            self._write(slot, "text", index, full=part.get("refusal"))

    def _item_done(self, key: object, item: dict[str, Any]) -> None:
        slot = self._items[key]
        if item.get("type") == "function_call" or slot.kind == "function_call":
            slot.kind = "function_call"
            slot.call_id = slot.call_id or _text_or_none(item.get("call_id")) or _text_or_none(item.get("id"))
            slot.name = slot.name or _text_or_none(item.get("name"))
            self._emit_call(key, item.get("arguments"))
            slot.done = True
            return
        if slot.done or item.get("type") not in ("reasoning", "message"):
            slot.done = True
            return
        if self._live is not None:
            self._emit_call(self._live, None)
        if item.get("type") == "message":
            for index, part in enumerate(item.get("content") or []):
                self._part_done(slot, index, part)
        else:
            summaries = [s for s in item.get("summary") or [] if isinstance(s, dict)]
            for index, summary in enumerate(summaries):
                self._write(slot, "summary", index, full=summary.get("text"))
            has_summary = any(key[0] == "summary" and _joined(written).strip()
                              for key, written in slot.written.items())
            for index, part in enumerate(item.get("content") or []):
                if isinstance(part, dict) and part.get("type") == "reasoning_text" \
                        and (not has_summary or ("reasoning", index) in slot.written):
                    self._write(slot, "reasoning", index, full=part.get("text"))
            if item.get("encrypted_content") and item.get("id"):
                self._builder.thinking_signature(reasoning_signature(self._route, str(item["id"]),
                                                                     str(item["encrypted_content"])))
        self._builder.end_block()
        slot.done = True

    # -- function calls ----------------------------------------------------------------------

    def _added(self, key: object, item: dict[str, Any]) -> None:
        slot = self._items[key]
        if item.get("type") != "function_call" or slot.emitted or slot.done:
            return
        slot.call_id = slot.call_id or _text_or_none(item.get("call_id")) or _text_or_none(item.get("id"))
        slot.name = slot.name or _text_or_none(item.get("name"))
        if self._stream_tool_input and self._live is None and slot.name and slot.call_id:
            self._builder.tool_start(slot.call_id, from_upstream_name(slot.name, self._tool_names))
            self._live = key

    def _call_event(self, key: object, slot: _Item, phase: str, data: dict[str, Any]) -> None:
        if slot.emitted:
            return
        if phase == "delta":
            piece = str(data.get("delta") or "")
            slot.args.append(piece)
            if key == self._live:
                self._builder.tool_input(piece)
        elif phase == "done":
            slot.name = slot.name or _text_or_none(data.get("name"))
            self._emit_call(key, data.get("arguments"))

    def _emit_call(self, key: object, arguments: Any) -> None:
        slot = self._items.get(key)
        if slot is None or slot.emitted:
            return
        slot.emitted = True
        streamed = "".join(slot.args)
        if key == self._live:
            self._live = None
            if isinstance(arguments, str) and arguments.startswith(streamed) and len(arguments) > len(streamed):
                self._builder.tool_input(arguments[len(streamed):])  # what the deltas did not bring
            self._builder.tool_stop()
            return
        raw = arguments if isinstance(arguments, str) and arguments else streamed
        if not slot.name:
            raise UpstreamProtocolError("upstream sent a function call without a name")
        self._builder.tool_use(slot.call_id or new_tool_id(), from_upstream_name(slot.name, self._tool_names), raw)

    # -- the end -----------------------------------------------------------------------------

    def _end(self, kind: str, data: dict[str, Any]) -> None:
        response = data.get("response") if isinstance(data.get("response"), dict) else {}
        if kind == "response.failed":
            raise upstream_failure(from_responses(response.get("error")))
        if kind == "error":
            raise upstream_failure(from_responses(data.get("error") if isinstance(data.get("error"), dict) else data))
        for key, slot in list(self._items.items()):
            if slot.kind == "function_call":
                self._emit_call(key, None)
        stop = _incomplete_reason(response) if kind == "response.incomplete" else \
            "refusal" if self._refused else "end_turn"
        self._builder.finish(stop, _usage(response.get("usage")))


def _text_or_none(value: Any) -> str | None:
    return str(value) if value is not None and value != "" else None
