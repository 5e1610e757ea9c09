"""Anthropic Messages <-> OpenAI chat completions, sans-IO.

Most of occ's traffic goes here (DeepSeek, Kimi, GLM, Qwen, MiMo, MiniMax through OpenCode, or any
compatible URL). The stream translator only decides *what* the upstream said; the
:class:`~occ.translate.anthropic_events.AnthropicStreamBuilder` decides how it is written, so block
order, indices and stop reasons are right by construction.

Tool calls are buffered per call and emitted whole once complete (the next non-tool content, the
finish, ``[DONE]`` or EOF): arguments may arrive before the id and name, interleaved between
parallel calls, or all at once, and the Python SDK raises mid-stream on invalid partial JSON.

Gemini 3 behind chat completions (Google's ``/v1beta/openai/``, gateways) puts a thought signature on
each step's first call, ``tool_calls[].extra_content.google.thought_signature``, and rejects the next turn
without it (docs/thought-signatures.md). It reaches the client as an ``occ1.g.`` thinking signature in
front of its call (:mod:`occ.translate.thought_signatures`) and goes back on the same call, only to the
model that made it; a Gemini 3 turn without one gets Google's documented placeholder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from occ.core.errors import UpstreamProtocolError, UpstreamStatus
from occ.core.jsonfast import JSONDecodeError, dumps_str, loads
from occ.core.scrub import clip
from occ.core.sse import SSEEvent
from occ.core.upstream_errors import from_chat, upstream_failure
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
from occ.translate.thought_signatures import SKIP_SIGNATURE, call_signatures, needs_signatures, thought_signature
from occ.translate.tool_ids import from_upstream_id, from_upstream_name, new_tool_id, to_upstream_id, to_upstream_name
from occ.translate.tool_schema import openai_tools
from occ.translate.web_search import CHAT_SEARCH_OPTIONS, chat_search_blocks, chat_search_fields, search_options

if TYPE_CHECKING:
    from occ.config.model import ModelConfig

__all__ = ["ChatStreamTranslator", "ThinkTagSplitter", "build_request", "translate_response"]

#: Families that need ``reasoning_content`` replayed on assistant turns with tool calls.
REASONING_REPLAY_FAMILIES = ("deepseek", "kimi", "glm", "mimo", "qwen", "moonshot")

_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
    "sensitive": "refusal",
}
#: finish_reasons that mean the upstream failed, not that the answer ended (protocols.md §3).
_FAILED_FINISH = {"insufficient_system_resource", "error", "network_error"}
_REASONING_KEYS = ("reasoning_content", "reasoning", "reasoning_details")


# -- request ---------------------------------------------------------------------------------------


def _image_part(block: dict[str, Any]) -> dict[str, Any] | None:
    source = block.get("source") if isinstance(block.get("source"), dict) else {}
    if source.get("type") == "base64" and source.get("data"):
        url = f"data:{source.get('media_type') or 'image/png'};base64,{source['data']}"
    elif source.get("type") == "url" and source.get("url"):
        url = source["url"]
    else:
        return None
    return {"type": "image_url", "image_url": {"url": url}}


def _user_parts(blocks: list[dict[str, Any]], vision: bool | None) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image":
            image = _image_part(block) if vision is not False else None
            parts.append(image or {"type": "text", "text": "[Image]"})
        elif kind in ("document", "search_result"):
            text = text_of([block])
            if text:
                parts.append({"type": "text", "text": text})
    return parts


def _family(model: ModelConfig, *names: str) -> bool:
    lowered = model.model_id.lower()
    return any(name in lowered for name in names)


def _flatten(parts: list[dict[str, Any]]) -> str:
    return "\n".join(p["text"] if p["type"] == "text" else "[Image]" for p in parts)


class _History:
    """The chat ``messages`` list under construction: same-role neighbours merge (strict templates
    and ``deepseek-reasoner`` reject successive same-role messages), user content stays a plain
    string while it is text only."""

    def __init__(self, *, flat: bool) -> None:
        self.messages: list[dict[str, Any]] = []
        self._flat = flat  # list content rejected (old deepseek-reasoner): always a string
        #: the content of a user message still open to merging (the last message), made once by _close():
        #: a long run of merges costs linear time, not a re-join of everything at each one. Text only: its
        #: texts (one string in the end); else its parts.
        self._user_texts: list[str] | None = None
        self._user_parts: list[dict[str, Any]] | None = None
        #: the same for an assistant message without tool calls: its texts and reasoning
        self._assistant_texts: list[str] | None = None
        self._assistant_reasoning: list[str] | None = None
        self._assistant_merged = False

    def user(self, parts: list[dict[str, Any]]) -> None:
        text_only = all(p["type"] == "text" for p in parts)
        if not parts:
            return
        if self._user_texts is not None:  # merge into a text-only user message: still one string
            if text_only:
                self._user_texts.extend(p["text"] for p in parts)
                return
            self._user_parts = [{"type": "text", "text": "\n".join(self._user_texts)}, *parts]
            self._user_texts = None
            return
        if self._user_parts is not None:  # merge into a user message with images: its parts, then these
            self._user_parts.extend(parts)
            return
        self._close()
        if text_only:
            self._user_texts = [p["text"] for p in parts]
        else:
            self._user_parts = list(parts)
        self.messages.append({"role": "user", "content": None})

    def assistant(self, message: dict[str, Any]) -> None:
        if self._assistant_texts is not None:  # the last message is an assistant one without tool calls: merge
            if message.get("content"):
                self._assistant_texts.append(message["content"])
            if "reasoning_content" not in message:
                self._assistant_reasoning = None  # the later message's (absent) reasoning wins
            elif self._assistant_reasoning is None:
                self._assistant_reasoning = [message["reasoning_content"]]
            else:
                self._assistant_reasoning.append(message["reasoning_content"])
            self._assistant_merged = True
            self.messages[-1] = {k: v for k, v in message.items() if k != "reasoning_content"}
            if "tool_calls" in message:  # nothing merges into a message with tool calls
                self._close()
            return
        self._close()
        self.messages.append(message)
        if "tool_calls" not in message:
            self._assistant_texts = [message["content"]] if message.get("content") else []
            self._assistant_reasoning = [message["reasoning_content"]] if "reasoning_content" in message else None
            self._assistant_merged = False

    def tool(self, call_id: str, content: str) -> None:
        self._close()
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": content})

    def finish(self) -> list[dict[str, Any]]:
        self._close()
        return self.messages

    def _close(self) -> None:
        """Give the open message (the last one) its content, once."""
        if self._user_texts is not None:
            self.messages[-1]["content"] = "\n".join(self._user_texts)
            self._user_texts = None
        if self._user_parts is not None:
            parts, self._user_parts = self._user_parts, None
            self.messages[-1]["content"] = _flatten(parts) if self._flat else parts
        if self._assistant_texts is not None:
            texts, self._assistant_texts = self._assistant_texts, None
            reasoning, self._assistant_reasoning = self._assistant_reasoning, None
            if self._assistant_merged:
                message = self.messages[-1]
                message["content"] = "\n\n".join(texts) or None
                if reasoning is not None:
                    message["reasoning_content"] = "".join(reasoning)


def _assistant_message(blocks: list[dict[str, Any]], model: ModelConfig) -> dict[str, Any] | None:
    text = "\n\n".join(str(b["text"]) for b in blocks
                       if b.get("type") == "text" and isinstance(b.get("text"), str) and b["text"].strip())
    thinking = "".join(str(b.get("thinking", "")) for b in blocks if b.get("type") == "thinking")
    signatures = call_signatures(blocks, model.label)
    placeholder = needs_signatures(model.model_id)
    calls = []
    for position, block in enumerate(blocks):
        if block.get("type") != "tool_use":
            continue
        raw = block.get("input")
        if isinstance(raw, str):
            try:
                raw = loads(raw)
            except JSONDecodeError:
                raw = {}
        call: dict[str, Any] = {"id": to_upstream_id(str(block.get("id") or "")), "type": "function",
                                "function": {"name": to_upstream_name(str(block.get("name") or "")),
                                             "arguments": dumps_str(raw if isinstance(raw, dict) else {})}}
        signature = signatures.get(position) or (SKIP_SIGNATURE if placeholder and not calls else None)
        if signature:  # back on the call it came with; the first call of a step without one: the placeholder
            call["extra_content"] = {"google": {"thought_signature": signature}}
        calls.append(call)
    if calls and thinking.strip() and _family(model, "minimax"):
        # MiniMax keeps its reasoning in content; in tool loops the whole message goes back.
        text = f"<think>{thinking}</think>\n\n{text}" if text else f"<think>{thinking}</think>"
    if not (text or calls):
        return None  # thinking-only or empty: a turn without content would be a 400
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
        if _family(model, *REASONING_REPLAY_FAMILIES):
            message["reasoning_content"] = thinking  # required on tool-call turns, even "" (§7 items 32-33)
    return message


def _messages(request: dict[str, Any], model: ModelConfig) -> list[dict[str, Any]]:
    history = _History(flat=_family(model, "deepseek-reasoner"))
    system = system_text(request)
    if system:
        history.messages.append({"role": "system", "content": system})
    pending: list[str] = []  # upstream ids of the last assistant turn's calls, in call order
    for turn in turns(request):
        blocks = turn.blocks
        if turn.role == "assistant":
            _answer_calls(history, pending, {})
            message = _assistant_message(blocks, model)
            if message is not None:
                history.assistant(message)
                pending = [c["id"] for c in message.get("tool_calls", [])]
            continue
        answers: dict[str, str] = {}
        late: list[dict[str, Any]] = []  # results that answer no call of the previous turn
        images: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []
        others: list[dict[str, Any]] = []
        for block in blocks:
            (results if block.get("type") == "tool_result" else others).append(block)
        for result in results:
            call_id = to_upstream_id(str(result.get("tool_use_id") or ""))
            content = text_of(result.get("content")) or "(empty result)"
            if result.get("is_error"):
                content = "Error: " + content
            if call_id in pending and call_id not in answers:
                answers[call_id] = content
                if model.vision is not False:
                    images.extend(_user_parts([b for b in blocks_of(result.get("content"))
                                               if b.get("type") == "image"], model.vision))
            else:
                late.append({"type": "text", "text": f"[result of an earlier tool call]\n{content}"})
        _answer_calls(history, pending, answers)
        rest = _user_parts(others, model.vision) if others else []
        history.user(late + images + rest)
    _answer_calls(history, pending, {})
    return history.finish()


def _answer_calls(history: _History, pending: list[str], answers: dict[str, str]) -> None:
    """One tool message per call of the previous assistant turn, in call order; a call without a
    result (a cancel, compaction) gets a stub, or upstreams answer 400 (§7 item 35)."""
    for call_id in pending:
        history.tool(call_id, answers.get(call_id, "(no result)"))
    pending.clear()


#: Families known to accept ``reasoning_effort``; others may reject an unknown parameter, so the
#: client's effort is only forwarded to these (a configured ``reasoning_effort`` is always sent).
EFFORT_FAMILIES = ("deepseek", "kimi", "glm", "qwen", "mimo", "gpt-5", "o1", "o3", "o4", "grok")


def _takes_reasoning_effort(model_id: str) -> bool:
    lowered = model_id.lower()
    return lowered.startswith(EFFORT_FAMILIES) or "deepseek" in lowered


#: OpenAI's reasoning models by their own ids (OpenAI, Azure): they refuse ``max_tokens`` ("Use
#: 'max_completion_tokens' instead"). Ids with a router's prefix (``openai/gpt-5``) keep ``max_tokens``,
#: which the routers document and translate.
MAX_COMPLETION_TOKENS_FAMILIES = ("gpt-5", "o1", "o3", "o4")


def _max_tokens_key(model_id: str) -> str:
    lowered = model_id.lower()
    return "max_completion_tokens" if lowered.startswith(MAX_COMPLETION_TOKENS_FAMILIES) else "max_tokens"


_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high", "minimal": "low"}


def _tool_choice(choice: Any) -> Any:
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind == "tool" and isinstance(choice.get("name"), str) and choice["name"]:
        return {"type": "function", "function": {"name": to_upstream_name(choice["name"])}}
    return {"any": "required", "auto": "auto", "none": "none"}.get(kind)


def build_request(request: dict[str, Any], model: ModelConfig, *, stream: bool,
                  log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The chat-completions body for an Anthropic request. ``context_management``, ``metadata``,
    ``top_k``, ``cache_control`` and unknown fields are dropped: chat upstreams have no use for them."""
    body: dict[str, Any] = {"model": model.model_id, "messages": _messages(request, model)}
    tools = openai_tools(visible_tools(request))
    if tools:
        body["tools"] = tools
        choice = _tool_choice(request.get("tool_choice"))
        if choice is not None:
            body["tool_choice"] = choice
        if isinstance(request.get("tool_choice"), dict) and request["tool_choice"].get("disable_parallel_tool_use"):
            body["parallel_tool_calls"] = False
    stops = request.get("stop_sequences")
    if isinstance(stops, list):
        stops = [s for s in stops if isinstance(s, str) and s][:4]
        if stops:
            body["stop"] = stops
    max_tokens = clamped_max_tokens(request, model.max_tokens, model.label, log)
    if max_tokens is not None:
        body[_max_tokens_key(model.model_id)] = max_tokens
    effort = model.reasoning_effort
    if effort is None and _takes_reasoning_effort(model.model_id):
        effort = effort_of(request)
    deepseek = _family(model, "deepseek")
    if effort is not None and _family(model, "qwen") and not stream and model.thinking is None:
        # DashScope: "enable_thinking must be set to false for non-streaming calls" (§7 item 38)
        body["enable_thinking"] = False
        effort = None
    thinking_on = effort is not None or (model.thinking or {}).get("type") == "enabled"
    if effort is not None:
        body["reasoning_effort"] = effort if deepseek and effort in ("high", "max") else _EFFORTS.get(effort, effort)
    if model.thinking is not None:
        body["thinking"] = dict(model.thinking)
    if not (thinking_on and deepseek):  # ignored in DeepSeek's thinking mode; do not pretend otherwise
        temperature = model.temperature if model.temperature is not None else request.get("temperature")
        top_p = model.top_p if model.top_p is not None else request.get("top_p")
        if isinstance(temperature, (int, float)):
            body["temperature"] = temperature
        if isinstance(top_p, (int, float)):
            body["top_p"] = top_p
    output = request.get("output_config")
    if isinstance(output, dict) and isinstance(output.get("format"), dict):
        fmt = output["format"]
        if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": str(fmt.get("name") or "output"),
                                                       "schema": fmt["schema"]}}
    search = search_options(request) if model.web_search in CHAT_SEARCH_OPTIONS else None
    if search is not None:  # the provider's own search (docs/web-search.md), answered whole: the search
        body.update(chat_search_fields(str(model.web_search), search))  # blocks come before the text
    elif stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


# -- shared by both directions ---------------------------------------------------------------------


def _int(value: Any) -> int:
    if isinstance(value, bool):
        return 0
    if isinstance(value, (int, float)):
        return max(0, int(value))
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def _usage(raw: Any) -> Usage | None:
    """Anthropic usage from chat usage: input excludes cache reads (OpenAI ``cached_tokens``,
    DeepSeek ``prompt_cache_hit_tokens``, Moonshot top-level ``cached_tokens``, Anthropic's
    ``cache_read_input_tokens`` beside prompt_tokens as proxies of Claude report it) and cache writes
    (OpenRouter ``prompt_tokens_details.cache_write_tokens``, LiteLLM ``cache_creation_tokens``,
    ``cache_creation_input_tokens``); prompt_tokens counts both. None when neither count is there
    (``{"prompt_tokens": null}`` included: null means absent)."""
    if not isinstance(raw, dict):
        return None
    prompt_count, completion_count = token_count(raw.get("prompt_tokens")), token_count(raw.get("completion_tokens"))
    if prompt_count is None and completion_count is None:
        return None
    prompt = prompt_count or 0
    details = raw.get("prompt_tokens_details") if isinstance(raw.get("prompt_tokens_details"), dict) else {}
    cached = _int(details.get("cached_tokens")) or _int(raw.get("prompt_cache_hit_tokens")) \
        or _int(raw.get("cached_tokens")) or _int(raw.get("cache_read_input_tokens"))
    written = _int(details.get("cache_write_tokens")) or _int(details.get("cache_creation_tokens")) \
        or _int(raw.get("cache_creation_input_tokens"))
    if prompt:
        cached = min(cached, prompt)
        written = min(written, prompt - cached)
    return Usage(input_tokens=max(0, prompt - cached - written), output_tokens=completion_count or 0,
                 cache_read_input_tokens=cached, cache_creation_input_tokens=written)


def _is_error(data: dict[str, Any]) -> bool:
    return bool(data.get("error")) or data.get("object") == "error"


def _failed_finish(finish: str) -> UpstreamStatus:
    return UpstreamStatus(503, f"upstream stopped with finish_reason {finish!r}")


_OPEN, _CLOSE = "<think>", "</think>"


class ThinkTagSplitter:
    """Reasoning inside ``content`` as ``<think>…</think>`` (MiniMax, vLLM without a reasoning parser).

    Tags only count before any visible answer text: the model's reasoning comes first, and a coding
    model writing about ``<think>`` later must not lose its answer into a thinking block. A closing
    tag without an opening one at that point (the opening tag was in the prompt template, or the
    reasoning went to ``reasoning_content`` and the tag leaked) is dropped. Tags may be split
    across chunks: a suffix that could still become a tag is held until the next chunk.
    """

    def __init__(self) -> None:
        self._in_think = False
        self._literal = False  # visible text was emitted: no more tags
        self._held = ""

    def feed(self, text: str) -> list[tuple[bool, str]]:
        """``(is_thinking, text)`` pieces, in order."""
        out: list[tuple[bool, str]] = []
        text = self._held + text
        self._held = ""
        while text:
            if self._in_think:
                at = text.find(_CLOSE)
                if at >= 0:
                    out.append((True, text[:at]))
                    text = text[at + len(_CLOSE):]
                    self._in_think = False
                    continue
                keep = _partial_tag_suffix(text, _CLOSE)
                self._held = text[len(text) - keep:] if keep else ""
                out.append((True, text[:len(text) - keep]))
                break
            if self._literal:
                out.append((False, text))
                break
            body = text.lstrip()
            lead = text[:len(text) - len(body)]
            if body.startswith(_OPEN) or body.startswith(_CLOSE):
                out.append((False, lead))
                self._in_think = body.startswith(_OPEN)
                text = body[len(_OPEN) if self._in_think else len(_CLOSE):]
                continue
            if body and (_OPEN.startswith(body) or _CLOSE.startswith(body)):
                self._held = text  # "<thi": undecided until the next chunk
                break
            if body:
                self._literal = True
            out.append((False, text))
            break
        return [(thinking, piece) for thinking, piece in out if piece]

    def flush(self) -> list[tuple[bool, str]]:
        held, self._held = self._held, ""
        return [(self._in_think, held)] if held else []


def _partial_tag_suffix(text: str, tag: str) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


def _reasoning_text(key: str, value: Any) -> str:
    if key != "reasoning_details":
        return value if isinstance(value, str) else ""
    if not isinstance(value, list):
        return ""
    parts = []
    for item in value:
        if isinstance(item, dict):
            text = item.get("text") if isinstance(item.get("text"), str) else item.get("summary")
            if isinstance(text, str):
                parts.append(text)
    return "".join(parts)


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(text for thinking, text in _content_parts(content) if not thinking)


def _content_parts(content: Any) -> list[tuple[bool, str]]:
    """``(is_thinking, text)`` of content given as parts (Mistral's reasoning models: ``{"type":
    "thinking", "thinking": [{"type": "text", "text": ...}]}`` beside ``{"type": "text", ...}``)."""
    out: list[tuple[bool, str]] = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            out.append((False, part["text"]))
        elif part.get("type") == "thinking":
            inner = part.get("thinking")
            if isinstance(inner, str):
                out.append((True, inner))
            elif isinstance(inner, list):
                out.append((True, "".join(str(i.get("text") or "") for i in inner if isinstance(i, dict))))
    return out


# -- non-streaming response ------------------------------------------------------------------------


def _signature_of(holder: Any) -> str | None:
    """The Gemini thought signature of a tool call (or a delta): ``extra_content.google.thought_signature``."""
    extra = holder.get("extra_content") if isinstance(holder, dict) else None
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    return signature if isinstance(signature, str) and signature else None


def translate_response(body: Any, *, message_id: str, model_name: str, input_estimate: int,
                       route: str = "") -> dict[str, Any]:
    """A ``chat.completion`` as an Anthropic message: thinking first, then text, then tool_use (a call
    with a Gemini thought signature behind a thinking block that carries it for the model ``route``).

    Raises:
        UpstreamStatus: the body is an error, or the finish_reason says the upstream failed.
        UpstreamProtocolError: the body is not a chat completion, or a tool call is unusable.
    """
    if not isinstance(body, dict):
        raise UpstreamProtocolError("upstream answer is not a JSON object")
    if _is_error(body):
        raise upstream_failure(from_chat(body))
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamProtocolError("upstream answer has no choices")
    choice = choices[0]
    finish = choice.get("finish_reason")
    if finish in _FAILED_FINISH:
        raise _failed_finish(finish)
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    reasoning = next((r for r in (_reasoning_text(k, message.get(k)) for k in _REASONING_KEYS) if r), "")
    reasoning = reasoning or "".join(t for thinking, t in _content_parts(message.get("content")) if thinking)
    text = _content_text(message.get("content"))
    if not reasoning:
        pieces = ThinkTagSplitter()
        split = pieces.feed(text) + pieces.flush()
        reasoning = "".join(t for thinking, t in split if thinking)
        text = "".join(t for thinking, t in split if not thinking)
    refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else ""
    content: list[dict[str, Any]] = []
    if reasoning.strip():
        content.append({"type": "thinking", "thinking": reasoning, "signature": SIGNATURE_PREFIX})
    if (text or refusal).strip():
        content.append({"type": "text", "text": text or refusal})
    used: set[str] = set()
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise UpstreamProtocolError("upstream sent a tool call without a name")
        name = function["name"]
        args = loads(normalize_tool_arguments(function.get("arguments"), tool_name=name))
        tool_id = from_upstream_id(call.get("id") if isinstance(call.get("id"), str) else None)
        if tool_id in used:
            tool_id = new_tool_id()
        used.add(tool_id)
        signature = _signature_of(call)
        if signature:
            carrier = thought_signature(route, signature)
            if content and content[-1]["type"] == "thinking" and content[-1]["signature"] == SIGNATURE_PREFIX:
                content[-1]["signature"] = carrier  # the thoughts right before the call carry it
            else:
                content.append({"type": "thinking", "thinking": "", "signature": carrier})
        content.append({"type": "tool_use", "id": tool_id, "name": name, "input": args})
    searches, citations = chat_search_blocks(message, text)
    if searches:  # url_citation annotations: the provider searched (OpenRouter's plugin, OpenAI's search models)
        at = next((i for i, b in enumerate(content) if b["type"] != "thinking"), len(content))
        if citations and at < len(content) and content[at]["type"] == "text":
            content[at] = {**content[at], "citations": citations}
        content[at:at] = searches
    stop = "refusal" if refusal and not text else _FINISH.get(finish if isinstance(finish, str) else "")
    usage = _usage(body.get("usage")) or Usage.estimate(input_estimate)
    return make_message(message_id=message_id, model=model_name, content=content, stop_reason=stop, usage=usage)


# -- stream ----------------------------------------------------------------------------------------


class _Call:
    __slots__ = ("args", "buffered", "done", "id", "index", "late_signature", "live", "name", "signature")

    def __init__(self, call_id: str | None, index: int | None = None) -> None:
        self.id = call_id
        self.index = index
        self.name: str | None = None
        self.signature: str | None = None  # a Gemini thought signature, written in front of the call
        self.late_signature = False  # it came after the call's block had opened: written after the block
        self.args: list[str] = []
        self.live = False  # its tool_use block is open and its arguments stream as they arrive
        self.buffered = False  # another call was streaming when it began: written whole at the end
        self.done = False  # streamed and closed; kept so that its late empty fragments still find it


class ChatStreamTranslator:
    """OpenAI chat-completion chunks in, builder calls out.

    Args:
        builder: where the Anthropic stream is written.
        think_tags: parse ``<think>`` tags in ``content`` (MiniMax).
        tool_names: the request's tool names, to restore names shortened for the upstream.
        route: the model's label, which a Gemini thought signature is bound to.
        stream_tool_input: write each call's arguments as they arrive (``input_json_delta``
            fragments), the way Anthropic does; False holds every call until it is complete and
            repairs it first (``occ.translate.wires.streams_tool_input`` decides per model).

    One call streams at a time, in index order: a call that begins while another is still streaming
    (parallel calls with interleaved fragments), or ahead of its turn, is held and written whole after.
    """

    def __init__(self, builder: AnthropicStreamBuilder, *, think_tags: bool = True,
                 tool_names: list[str] | None = None, stream_tool_input: bool = True, route: str = "") -> None:
        self._builder = builder
        self._route = route
        self._stream_tool_input = stream_tool_input
        self._next_call_index = 0  # the index a call must have to stream (calls are written in index order)
        self._tool_names = tool_names or []
        self._tags = ThinkTagSplitter() if think_tags else None
        self._reasoning_key: str | None = None  # one source per stream (OpenRouter sends two copies)
        self._calls: list[_Call] = []
        self._by_index: dict[int, _Call] = {}
        self._used_ids: set[str] = set()
        self._finish: str | None = None
        self._refusal = False
        self._usage: Usage | None = None

    @property
    def done(self) -> bool:
        return self._builder.finished

    def feed(self, event: SSEEvent) -> None:
        """One upstream SSE event.

        Raises:
            UpstreamStatus: an error chunk, or a finish_reason that means failure.
            UpstreamProtocolError: a chunk that is not a JSON object, or an unusable tool call.
        """
        if self.done:
            return
        data = event.data.strip()
        if not data:
            return
        if data == "[DONE]":
            self._end(at_done=True)
            return
        try:
            chunk = loads(data)
        except JSONDecodeError:
            raise UpstreamProtocolError(f"upstream sent a chunk that is not JSON: {clip(data, 80)!r}") from None
        if not isinstance(chunk, dict):
            raise UpstreamProtocolError("upstream sent a chunk that is not a JSON object")
        if _is_error(chunk):
            raise upstream_failure(from_chat(chunk))
        usage = _usage(chunk.get("usage"))
        if usage is not None:
            self._usage = self._builder.reported = usage
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else []:
            if not isinstance(choice, dict) or (choice.get("index") or 0) != 0:
                continue  # n > 1 is never requested; a second choice is not this message
            usage = _usage(choice.get("usage"))  # Moonshot puts it inside the final choice
            if usage is not None:
                self._usage = self._builder.reported = usage
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            self._delta(delta)
            finish = choice.get("finish_reason")
            if isinstance(finish, str) and finish:
                if finish in _FAILED_FINISH:
                    raise _failed_finish(finish)
                self._finish = finish

    def close(self) -> None:
        """EOF. Without ``[DONE]`` the stream must have sent a finish_reason, else it was cut.

        Raises:
            UpstreamProtocolError: the stream ended without finishing.
        """
        if self.done:
            return
        self._end(at_done=False)

    # -- internals ---------------------------------------------------------------------------------

    def _end(self, *, at_done: bool) -> None:
        self._flush_tags()
        if self._finish is None:
            # [DONE] without finish_reason is an end when something was said and every call is whole
            # (§7 item 5); EOF without either is a truncation, never a clean end_turn (§7 item 20).
            complete = all(self._args_complete(c) for c in self._calls)
            said = self._builder.committed or self._calls
            if not (at_done and said and complete):
                raise UpstreamProtocolError("upstream stream ended without finish_reason")
        self._flush_calls()
        stop = "refusal" if self._refusal and self._finish in (None, "stop") else _FINISH.get(self._finish or "")
        self._builder.finish(stop, self._usage)

    @staticmethod
    def _args_complete(call: _Call) -> bool:
        text = "".join(call.args).strip()
        if not text:
            return True
        try:
            loads(text)
        except JSONDecodeError:
            return False
        return True

    def _reasoning(self, delta: dict[str, Any]) -> str:
        """The reasoning text of one delta: one field only (OpenRouter repeats the text in ``reasoning``
        and ``reasoning_details``), the stream's first source preferred."""
        keys = _REASONING_KEYS if self._reasoning_key is None else (self._reasoning_key, *_REASONING_KEYS)
        for key in keys:
            text = _reasoning_text(key, delta.get(key))
            if text:
                self._reasoning_key = self._reasoning_key or key
                return text
        return ""

    def _delta(self, delta: dict[str, Any]) -> None:
        reasoning = self._reasoning(delta)
        if reasoning:
            self._emit(reasoning, thinking=True)
        content = delta.get("content")
        if isinstance(content, list):
            for thinking, piece in _content_parts(content):
                self._emit(piece, thinking=thinking)
        elif isinstance(content, str) and content:
            if self._tags is None:
                self._emit(content, thinking=False)
            else:
                for thinking, piece in self._tags.feed(content):
                    self._emit(piece, thinking=thinking)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            self._refusal = True
            self._emit(refusal, thinking=False)
        if isinstance(delta.get("annotations"), list) and delta["annotations"]:
            self._searched(delta)
        calls = delta.get("tool_calls")
        if isinstance(calls, list) and calls:
            outer = _signature_of(delta)  # beside the calls rather than on one: the first call's
            for fragment in calls:
                if isinstance(fragment, dict):
                    self._tool_fragment(fragment, outer)
                    outer = None

    def _searched(self, delta: dict[str, Any]) -> None:
        """``url_citation`` annotations in a delta (a provider that searched: OpenRouter's web plugin,
        OpenAI's search models): the citations go to the open text block, then the search pair."""
        searches, citations = chat_search_blocks(delta, "")
        if not searches:
            return
        self._flush_calls()
        for cited in citations:
            self._builder.citation(cited)
        for block in searches:
            self._builder.raw_block(block)

    def _flush_tags(self) -> None:
        if self._tags is not None:
            for thinking, piece in self._tags.flush():
                self._emit(piece, thinking=thinking)

    def _emit(self, text: str, *, thinking: bool) -> None:
        if not text:
            return
        self._flush_calls()
        if thinking:
            self._builder.thinking(text)
        else:
            self._builder.text(text)

    def _tool_fragment(self, fragment: dict[str, Any], outer_signature: str | None = None) -> None:
        raw_id = fragment.get("id")
        call_id = raw_id if isinstance(raw_id, str) and raw_id else None
        index = fragment.get("index")
        call: _Call | None = None
        if isinstance(index, int) and not isinstance(index, bool):
            call = self._by_index.get(index)
            if call is not None and call_id and call.id and call_id != call.id:
                call = None  # a different id at a used index: a new call (buggy adapters put all at 0)
            if call is None:
                call = _Call(call_id, index)
                self._calls.append(call)
                self._by_index[index] = call
        else:
            if call_id:
                call = next((c for c in self._calls if c.id == call_id), None)
            elif self._calls:
                call = self._calls[-1]
            if call is None:
                call = _Call(call_id)
                self._calls.append(call)
        if call_id and not call.id:
            call.id = call_id
        signature = _signature_of(fragment) or outer_signature
        if signature and not call.signature:
            call.signature = signature
            call.late_signature = call.live or call.done
        function = fragment.get("function") if isinstance(fragment.get("function"), dict) else {}
        name = function.get("name")
        if isinstance(name, str) and name and not call.name:
            call.name = name
        args = function.get("arguments")
        piece = ""
        if isinstance(args, str):
            call.args.append(args)
            piece = args
        elif isinstance(args, dict):
            call.args = [dumps_str(args)]
            call.buffered = call.buffered or not call.live  # whole arguments in one piece: nothing to stream
            piece = call.args[0]
        if self._stream_tool_input:
            self._stream(call, piece)

    def _stream(self, call: _Call, piece: str) -> None:
        """Write what can be written of ``call`` now: open its block once its name is known and no
        other call streams, then pass its arguments on as they arrive."""
        if call.done:
            if piece.strip():
                raise UpstreamProtocolError(f"tool call {call.name!r}: arguments continued after their JSON "
                                            "object was complete")
            return
        if call.live:
            if piece:
                self._builder.tool_input(piece)
            return
        live = next((c for c in self._calls if c.live), None)
        if live is not None:
            if not self._args_complete(live) or not "".join(live.args).strip():
                call.buffered = True  # interleaved with the streaming call: written whole after it
                return
            self._stop_live(live)  # the streaming call is complete and a new one began
        if call.buffered or not call.name:
            return
        if call.index is None:
            if next((c for c in self._calls if not c.done), None) is not call:
                return
        elif call.index != self._next_call_index:
            return  # a call may still come before it: held, and written in index order at the end
        else:
            self._next_call_index = call.index + 1
        self._flush_tags()  # text held by the think-tag splitter goes before the call
        call.live = True
        self._carry_signature(call)
        self._builder.tool_start(self._tool_id(call), from_upstream_name(call.name, self._tool_names))
        for held in call.args:
            self._builder.tool_input(held)

    def _carry_signature(self, call: _Call) -> None:
        """The call's thought signature, as the thinking block in front of it (dropped by the builder when
        the client did not ask for thinking: the next turn then takes the placeholder)."""
        if call.signature:
            self._builder.thinking_signature(thought_signature(self._route, call.signature))

    def _stop_live(self, call: _Call) -> None:
        self._builder.tool_stop()
        call.live, call.done = False, True
        if call.late_signature:
            self._carry_signature(call)  # after its block: read back as the last call's before it (or the next's)

    def _tool_id(self, call: _Call) -> str:
        tool_id = from_upstream_id(call.id)
        if tool_id in self._used_ids:
            tool_id = new_tool_id()  # ids must be unique within a message (§7 item 12)
        self._used_ids.add(tool_id)
        return tool_id

    def _flush_calls(self) -> None:
        if not self._calls:
            return
        calls, self._calls = self._calls, []
        self._by_index = {}
        for live in [c for c in calls if c.live]:
            self._stop_live(live)
        calls = [c for c in calls if not c.done]
        if all(c.index is not None for c in calls):
            calls.sort(key=lambda c: c.index)  # call order, whichever call's first fragment came first
        for call in calls:
            if not call.name:
                raise UpstreamProtocolError("upstream sent a tool call without a name")
            tool_id = self._tool_id(call)
            name = from_upstream_name(call.name, self._tool_names)
            self._carry_signature(call)
            self._builder.tool_use(tool_id, name, "".join(call.args))
