"""Anthropic Messages <-> the Gemini API (gemini-* models on OpenCode Zen), sans-IO.

Gemini has no tool-call ids: each ``functionCall`` part gets a generated ``toolu_`` id, and on the way
back each ``tool_result`` is matched to its call's name through the history. A tool-result turn must
carry exactly as many ``functionResponse`` parts as the previous model turn had calls (edge case 41).
Gemini 3 rejects a replayed ``functionCall`` without its thought signature (edge case 42). occ keeps no
server-side state: the signature travels through Claude Code's history in a thinking block's signature
(``occ1.g.<provider/model>|<signature>``, :mod:`occ.translate.thought_signatures`): the open thought block's,
or a thinking block with no text when the thoughts were closed by text or not shown. It goes back on the
call it came with (the first of its step), and only to the model that minted it. A step without one of its
own gets the documented ``skip_thought_signature_validator``, and so does every step of a client that did not
turn thinking on: it receives no thinking block (the Anthropic contract has none then), and tool ids stay
short, so nothing can carry the signature (ids of occ's earlier form, which carried it, are still read).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from occ.core.errors import UpstreamProtocolError, UpstreamStatus
from occ.core.sse import SSEEvent, event_json
from occ.core.upstream_errors import from_gemini, upstream_failure
from occ.translate.anthropic_events import SIGNATURE_PREFIX, AnthropicStreamBuilder, Usage, make_message, token_count
from occ.translate.anthropic_request import (
    blocks_of,
    clamped_max_tokens,
    effort_of,
    system_text,
    text_of,
    turns,
    visible_tools,
)
from occ.translate.gemini_schema import clean_schema
from occ.translate.thought_signatures import SKIP_SIGNATURE, THOUGHT_PREFIX, call_signatures, thought_signature
from occ.translate.tool_ids import from_upstream_name, new_tool_id, to_upstream_name
from occ.translate.web_search import gemini_search_blocks, gemini_tool, search_options

if TYPE_CHECKING:
    from occ.config.model import ModelConfig

__all__ = ["SKIP_SIGNATURE", "THOUGHT_PREFIX", "GeminiCollector", "GeminiStreamTranslator", "build_request",
           "thought_signature", "translate_response"]

_REFUSALS = {"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE"}
_RETRYABLE = {"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"}
_BUDGETS = {"low": 1024, "medium": 8192, "high": 24576, "xhigh": 32768, "max": 32768}


def _contents(request: dict[str, Any], route: str) -> list[dict[str, Any]]:
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}
    for turn in turns(request):
        parts: list[dict[str, Any]] = []
        if turn.role == "assistant":
            first_call = True
            signatures = call_signatures(list(turn.blocks), route)
            for position, block in enumerate(turn.blocks):
                kind = block.get("type")
                if kind == "text" and block.get("text"):
                    parts.append({"text": block["text"]})
                elif kind == "tool_use":
                    names[str(block.get("id"))] = to_upstream_name(str(block.get("name", "")))
                    args = block.get("input") if isinstance(block.get("input"), dict) else {}
                    part: dict[str, Any] = {"functionCall": {"name": to_upstream_name(str(block.get("name", ""))),
                                                             "args": args}}
                    own = signatures.get(position)
                    if own or first_call:
                        part["thoughtSignature"] = own or SKIP_SIGNATURE
                    first_call = False
                    parts.append(part)
            role = "model"
        else:
            media: list[dict[str, Any]] = []  # images and files of tool results, after every response
            for block in turn.blocks:
                if block.get("type") == "tool_result":
                    text = text_of(block.get("content")) or "(empty result)"
                    key = "error" if block.get("is_error") else "output"
                    name = names.get(str(block.get("tool_use_id")), "unknown_tool")
                    parts.append({"functionResponse": {"name": name, "response": {key: text}}})
                    media.extend(p for b in blocks_of(block.get("content")) if b.get("type") in ("image", "document")
                                 for p in [_media_part(b)] if p is not None)
            parts.extend(media)
            for block in turn.blocks:
                kind = block.get("type")
                if kind == "text" and block.get("text"):
                    parts.append({"text": block["text"]})
                elif kind in ("image", "document"):
                    part = _media_part(block)
                    if part is not None:
                        parts.append(part)
                elif kind == "search_result":
                    text = text_of([block])
                    if text:
                        parts.append({"text": text})
            role = "user"
        if not parts:
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents


_EXTENSIONS = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif",
               "webp": "image/webp", "heic": "image/heic", "pdf": "application/pdf"}


def _media_part(block: dict[str, Any]) -> dict[str, Any] | None:
    """An image or document block as a Gemini part: base64 data as ``inlineData``, a URL as ``fileData``
    (Gemini's file input methods take public URLs; the MIME type from the URL's extension when it has a
    known one), a text document as its text; None when there is nothing to send."""
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    image = block.get("type") == "image"
    if source.get("type") == "base64" and source.get("data"):
        mime = source.get("media_type") or ("image/png" if image else "application/pdf")
        return {"inlineData": {"mimeType": mime, "data": source["data"]}}
    if source.get("type") == "url" and isinstance(source.get("url"), str) and source["url"]:
        url = source["url"]
        mime = _EXTENSIONS.get(url.split("?")[0].rsplit(".", 1)[-1].lower())
        return {"fileData": {"fileUri": url, **({"mimeType": mime} if mime else {})}}
    text = text_of([block])
    if text and text not in ("[image]", "[document]"):
        return {"text": text}
    return None


def build_request(request: dict[str, Any], model: ModelConfig, *, stream: bool,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"contents": _contents(request, model.label)}
    system = system_text(request)
    if system:
        body["systemInstruction"] = {"parts": [{"text": system}]}
    declarations = []
    for tool in visible_tools(request):
        if not isinstance(tool, dict) or not str(tool.get("name", "")).strip():
            continue
        if isinstance(tool.get("type"), str) and tool["type"] not in ("custom", "function"):
            continue
        declaration: dict[str, Any] = {"name": to_upstream_name(tool["name"].strip())}
        if tool.get("description"):
            declaration["description"] = tool["description"]
        params = clean_schema(tool.get("input_schema"))
        if params.get("properties"):
            declaration["parameters"] = params
        declarations.append(declaration)
    if declarations:
        body["tools"] = [{"functionDeclarations": declarations}]
        choice = request.get("tool_choice")
        if isinstance(choice, dict):
            mode = {"auto": "AUTO", "any": "ANY", "none": "NONE", "tool": "ANY"}.get(choice.get("type"))
            if mode:
                config: dict[str, Any] = {"mode": mode}
                if choice.get("type") == "tool" and choice.get("name"):
                    config["allowedFunctionNames"] = [to_upstream_name(choice["name"])]
                body["toolConfig"] = {"functionCallingConfig": config}
    search = search_options(request)
    if search is not None:  # grounding with Google Search (docs/web-search.md)
        choice = request.get("tool_choice")
        if isinstance(choice, dict) and choice.get("name") == search.name:
            body.pop("toolConfig", None)  # "use the search" is no function call to force
        if body.get("tools") and "gemini-3" not in model.model_id.lower():
            # built-in tools combine with function calling from Gemini 3 on (Google's tool-combination page)
            del body["tools"]
            body.pop("toolConfig", None)
            if log is not None:
                log(f"web search on {model.label}: function tools left out (only Gemini 3 combines them)")
        body.setdefault("tools", []).append(gemini_tool())
    generation: dict[str, Any] = {}
    max_tokens = clamped_max_tokens(request, model.max_tokens, model.model_id, log)
    if max_tokens is not None:
        generation["maxOutputTokens"] = max_tokens
    temperature = model.temperature if model.temperature is not None else request.get("temperature")
    if temperature is not None:
        generation["temperature"] = temperature
    top_p = model.top_p if model.top_p is not None else request.get("top_p")
    if top_p is not None:
        generation["topP"] = top_p
    top_k = request.get("top_k")
    if isinstance(top_k, int) and not isinstance(top_k, bool) and top_k > 0:
        generation["topK"] = top_k
    output = request.get("output_config")
    fmt = output.get("format") if isinstance(output, dict) else None
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        if body.get("tools") and "gemini-3" not in model.model_id.lower():
            # before Gemini 3, "function calling with a response mime type 'application/json' is unsupported"
            if log is not None:
                log(f"structured output on {model.label}: left out beside tools (only Gemini 3 combines them)")
        else:
            generation["responseMimeType"] = "application/json"  # structured output (JSON Schema as given)
            generation["responseJsonSchema"] = fmt["schema"]
    stops = request.get("stop_sequences")
    if isinstance(stops, list) and stops:
        generation["stopSequences"] = stops[:5]
    effort = model.reasoning_effort or effort_of(request)
    if effort:
        generation["thinkingConfig"] = {"includeThoughts": True, "thinkingBudget": _BUDGETS.get(effort, -1)}
    if generation:
        body["generationConfig"] = generation
    return body


def _usage(raw: Any) -> Usage | None:
    """Anthropic usage from ``usageMetadata``; None when it reports no count (null means absent)."""
    if not isinstance(raw, dict):
        return None
    prompt, candidates, thoughts = (token_count(raw.get(k)) for k in
                                    ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount"))
    if prompt is None and candidates is None and thoughts is None:
        return None
    cached = token_count(raw.get("cachedContentTokenCount")) or 0
    return Usage(input_tokens=max(0, (prompt or 0) - cached), output_tokens=(candidates or 0) + (thoughts or 0),
                 cache_read_input_tokens=cached)


def _stop(finish: str, emitted: bool) -> str:
    if finish in ("STOP", "FINISH_REASON_STOP"):
        return "end_turn"
    if finish == "MAX_TOKENS":
        return "max_tokens"
    if finish in _REFUSALS:
        return "refusal"
    if finish in _RETRYABLE:
        raise UpstreamStatus(502, f"upstream stopped with finishReason {finish}")
    if emitted:
        return "end_turn"
    raise UpstreamStatus(502, f"upstream stopped with finishReason {finish or 'unspecified'} and no content")


def translate_response(body: Any, *, message_id: str, model_name: str, input_estimate: int,
                       route: str, thinking: bool = True) -> dict[str, Any]:
    """A GenerateContentResponse as an Anthropic message; ``thinking``: the client asked for thinking
    (without it thoughts and signatures are dropped: the next turn takes the documented placeholder)."""
    if not isinstance(body, dict):
        raise UpstreamProtocolError("upstream answer is not a JSON object")
    if isinstance(body.get("error"), dict):
        raise upstream_failure(from_gemini(body))
    candidates = body.get("candidates") or []
    usage = _usage(body.get("usageMetadata")) or Usage.estimate(input_estimate)
    if not candidates:
        if (body.get("promptFeedback") or {}).get("blockReason"):
            return make_message(message_id=message_id, model=model_name, content=[], stop_reason="refusal",
                                usage=usage)
        raise UpstreamProtocolError("upstream answer has no candidates")
    candidate = candidates[0]
    content: list[dict[str, Any]] = []
    for part in (candidate.get("content") or {}).get("parts") or []:
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("functionCall"), dict):
            if isinstance(part.get("thoughtSignature"), str) and part["thoughtSignature"] and thinking:
                signature = thought_signature(route, part["thoughtSignature"])
                if content and content[-1]["type"] == "thinking" and content[-1]["signature"] == SIGNATURE_PREFIX:
                    content[-1]["signature"] = signature
                else:
                    content.append({"type": "thinking", "thinking": "", "signature": signature})
            call = part["functionCall"]
            args = call.get("args") if isinstance(call.get("args"), dict) else {}
            content.append({"type": "tool_use", "id": new_tool_id(),
                            "name": str(call.get("name") or ""), "input": args})
        elif isinstance(part.get("text"), str):
            if part.get("thought"):
                if thinking:
                    content.append({"type": "thinking", "thinking": part["text"], "signature": SIGNATURE_PREFIX})
            else:
                content.append({"type": "text", "text": part["text"]})
    content = _grounded(content, candidate.get("groundingMetadata"))
    stop = _stop(str(candidate.get("finishReason") or "STOP"), bool(content))
    return make_message(message_id=message_id, model=model_name, content=content, stop_reason=stop, usage=usage)


def _grounded(content: list[dict[str, Any]], metadata: Any) -> list[dict[str, Any]]:
    """``content`` with Google Search grounding: the searches before the first text or call, each
    support's citations on the text block that holds its segment (else the first text block)."""
    searches, supports = gemini_search_blocks(
        metadata, next((str(b["text"]) for b in content if b["type"] == "text"), ""))
    if not searches:
        return content
    at = next((i for i, b in enumerate(content) if b["type"] != "thinking"), len(content))
    out = [*content[:at], *searches, *[dict(b) for b in content[at:]]]
    texts = [b for b in out if b["type"] == "text"]
    for segment, cites in supports:
        target = next((b for b in texts if segment and segment in b["text"]), texts[0] if texts else None)
        if target is not None:
            known = target.setdefault("citations", [])
            known.extend(c for c in cites if c not in known)
    return out


class GeminiCollector:
    """A Gemini stream gathered into one GenerateContentResponse, for an answer translated whole (a
    grounded search: ``groundingMetadata`` comes with the last chunks, after the text it cites).
    Adjacent text parts of the same kind merge; calls and signatures stay as they came."""

    def __init__(self) -> None:
        #: calls as they came; a run of text of one kind (thought or not) as its pieces, joined once at the
        #: end (appending to one string per chunk would copy the text again on every chunk)
        self._parts: list[dict[str, Any] | tuple[bool, list[str]]] = []
        self._grounding: Any = None
        self._usage: Any = None

    def feed(self, event: SSEEvent) -> dict[str, Any] | None:
        """The whole response once the stream has given its finish reason, else None."""
        if not event.data.strip():
            return None
        data = event_json(event)
        if not isinstance(data, dict):
            raise UpstreamProtocolError("upstream sent an event that is not a JSON object")
        if isinstance(data.get("error"), dict):
            raise upstream_failure(from_gemini(data))
        if isinstance(data.get("usageMetadata"), dict):
            self._usage = data["usageMetadata"]
        candidates = data.get("candidates") or []
        if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
            return data
        for candidate in candidates[:1]:
            if isinstance(candidate.get("groundingMetadata"), dict):  # merged: a chunk may carry part of it
                self._grounding = {**(self._grounding or {}),
                                   **{k: v for k, v in candidate["groundingMetadata"].items() if v is not None}}
            for part in (candidate.get("content") or {}).get("parts") or []:
                if isinstance(part, dict):
                    self._add(part)
            if candidate.get("finishReason"):
                parts = [{"text": "".join(p[1]), "thought": p[0]} if isinstance(p, tuple) else p for p in self._parts]
                whole = {"content": {"role": "model", "parts": parts},
                         "finishReason": candidate["finishReason"], "groundingMetadata": self._grounding}
                return {"candidates": [whole], "usageMetadata": self._usage}
        return None

    def _add(self, part: dict[str, Any]) -> None:
        if isinstance(part.get("functionCall"), dict):
            self._parts.append(part)
            return
        text = part.get("text")
        if not isinstance(text, str) or not text:
            return
        thought = bool(part.get("thought"))
        last = self._parts[-1] if self._parts else None
        if isinstance(last, tuple) and last[0] == thought:
            last[1].append(text)
        else:
            self._parts.append((thought, [text]))


class GeminiStreamTranslator:
    """Each SSE event is a partial GenerateContentResponse; functionCall parts arrive whole."""

    def __init__(self, builder: AnthropicStreamBuilder, *, route: str, tool_names: list[str] | None = None) -> None:
        self._builder = builder
        self._route = route
        self._tool_names = tool_names or []
        self._usage: Usage | None = None
        self._emitted = False

    @property
    def done(self) -> bool:
        return self._builder.finished

    def feed(self, event: SSEEvent) -> None:
        if self.done or not event.data.strip():
            return
        data = event_json(event)
        if isinstance(data, list):  # a chunked JSON array from a non-SSE endpoint
            raise UpstreamProtocolError("upstream sent a JSON array, not SSE (alt=sse missing?)")
        if not isinstance(data, dict):
            raise UpstreamProtocolError("upstream sent an event that is not a JSON object")
        if isinstance(data.get("error"), dict):
            raise upstream_failure(from_gemini(data))
        usage = _usage(data.get("usageMetadata"))
        if usage is not None:
            self._usage = self._builder.reported = usage
        candidates = data.get("candidates") or []
        if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
            self._builder.finish("refusal", self._usage)
            return
        for candidate in candidates[:1]:
            for part in (candidate.get("content") or {}).get("parts") or []:
                if not isinstance(part, dict):
                    continue
                if isinstance(part.get("functionCall"), dict):
                    signature = part.get("thoughtSignature")
                    if isinstance(signature, str) and signature:  # dropped by the builder with thinking off
                        self._builder.thinking_signature(thought_signature(self._route, signature))
                    call = part["functionCall"]
                    args = call.get("args") if isinstance(call.get("args"), dict) else {}
                    name = from_upstream_name(str(call.get("name") or ""), self._tool_names)
                    self._builder.tool_use(new_tool_id(), name, args)
                    self._emitted = True
                elif isinstance(part.get("text"), str) and part["text"]:
                    if part.get("thought"):
                        self._builder.thinking(part["text"])
                    else:
                        self._builder.text(part["text"])
                    self._emitted = True
            finish = candidate.get("finishReason")
            if finish:
                self._builder.finish(_stop(str(finish), self._emitted), self._usage)

    def close(self) -> None:
        if not self.done:
            raise UpstreamProtocolError("upstream stream ended without finishReason")
