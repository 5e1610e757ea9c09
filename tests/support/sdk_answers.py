"""Upstream answers built from the providers' own SDK types and serialised by those SDKs.

Every answer here is a ``openai`` / ``google-genai`` / ``anthropic`` model object, dumped with the SDK's
own ``model_dump_json`` (nulls included, as pydantic writes them, and any extra field a provider adds),
so the fakes carry every field a real server can send, not only the ones occ reads. A stream is derived
from its final object the way each API streams it (Responses: created, item added, deltas, item done,
completed; Anthropic: message_start, block start/delta/stop, message_delta, message_stop).

One neutral :class:`Answer` describes what the model said; ``<wire>_body`` gives the non-streaming
object and ``<wire>_stream`` the SSE bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import attrs


@attrs.frozen
class Answer:
    """What the model said, independent of any wire."""

    text: str = ""
    thinking: str = ""
    #: opaque reasoning state: Responses encrypted_content, Gemini thought signature, Anthropic signature
    signature: str = ""
    tools: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: "end", "max_tokens", "refusal", "failed"
    stop: str = "end"
    #: (input, output); None: the upstream reports no usage
    usage: tuple[int, int] | None = (120, 30)
    cached: int = 0
    model: str = "model-a"
    #: extra fields a provider adds, merged into the message / delta (reasoning_content, ...)
    extra: dict[str, Any] = attrs.field(factory=dict)

    def evolve(self, **changes: Any) -> Answer:
        return attrs.evolve(self, **changes)


def _pieces(text: str, size: int = 7) -> Iterator[str]:
    for at in range(0, len(text), size):
        yield text[at:at + size]


def sse_data(objects: list[str], *, done: bool = False, crlf: bool = False) -> bytes:
    """``data:`` frames of already-serialised JSON (chat, Gemini)."""
    end = "\r\n\r\n" if crlf else "\n\n"
    out = "".join(f"data: {o}{end}" for o in objects)
    return (out + (f"data: [DONE]{end}" if done else "")).encode()


def sse_named(objects: list[str]) -> bytes:
    """``event: <type>`` + ``data:`` frames (Responses, Anthropic)."""
    return "".join(f"event: {json.loads(o)['type']}\ndata: {o}\n\n" for o in objects).encode()


# -- OpenAI chat completions ------------------------------------------------------------------------


def chat_body(a: Answer) -> str:
    from openai.types.chat import ChatCompletion, ChatCompletionMessage
    from openai.types.chat.chat_completion import Choice
    from openai.types.chat.chat_completion_message_function_tool_call import (
        ChatCompletionMessageFunctionToolCall,
        Function,
    )

    calls = [ChatCompletionMessageFunctionToolCall(id=f"call_{i}_{name}", type="function",
                                                   function=Function(name=name, arguments=json.dumps(args)),
                                                   **_chat_signature(a, i))
             for i, (name, args) in enumerate(a.tools)] or None
    extra = {"reasoning_content": a.thinking, **a.extra} if a.thinking else a.extra
    message = ChatCompletionMessage(role="assistant", content=a.text or None, tool_calls=calls,
                                    refusal=a.text if a.stop == "refusal" else None, **extra)
    if a.stop == "refusal":
        message.content = None
    choice = Choice(index=0, message=message, finish_reason=_chat_finish(a), logprobs=None)
    completion = ChatCompletion(id="chatcmpl-1", object="chat.completion", created=1700000000, model=a.model,
                                choices=[choice], usage=_chat_usage(a), system_fingerprint="fp_1")
    return completion.model_dump_json()


def _chat_signature(a: Answer, call: int) -> dict[str, Any]:
    """Gemini 3 behind chat completions: the step's first call carries the thought signature in
    ``extra_content.google.thought_signature`` (Google's OpenAI-compatibility docs)."""
    return {"extra_content": {"google": {"thought_signature": a.signature}}} if a.signature and call == 0 else {}


def _chat_finish(a: Answer) -> Any:
    if a.stop == "max_tokens":
        return "length"
    if a.stop == "refusal":
        return "content_filter" if not a.text else "stop"
    return "tool_calls" if a.tools else "stop"


def _chat_usage(a: Answer) -> Any:
    from openai.types.completion_usage import CompletionUsage, PromptTokensDetails

    if a.usage is None:
        return None
    return CompletionUsage(prompt_tokens=a.usage[0], completion_tokens=a.usage[1], total_tokens=sum(a.usage),
                           prompt_tokens_details=PromptTokensDetails(cached_tokens=a.cached))


def chat_stream(a: Answer, *, reasoning_key: str = "reasoning_content") -> bytes:
    from openai.types.chat import ChatCompletionChunk
    from openai.types.chat.chat_completion_chunk import (
        Choice,
        ChoiceDelta,
        ChoiceDeltaToolCall,
        ChoiceDeltaToolCallFunction,
    )

    def chunk(delta: ChoiceDelta | None = None, finish: Any = None, usage: Any = None, no_choice: bool = False) -> str:
        choices = [] if no_choice else [Choice(index=0, delta=delta or ChoiceDelta(), finish_reason=finish)]
        return ChatCompletionChunk(id="chatcmpl-1", object="chat.completion.chunk", created=1700000000,
                                   model=a.model, choices=choices, usage=usage).model_dump_json()

    out = [chunk(ChoiceDelta(role="assistant", content=""))]
    for piece in _pieces(a.thinking):
        out.append(chunk(ChoiceDelta(**{reasoning_key: piece})))
    text_key = "refusal" if a.stop == "refusal" else "content"
    for piece in _pieces(a.text):
        out.append(chunk(ChoiceDelta(**{text_key: piece})))
    for i, (name, args) in enumerate(a.tools):
        raw = json.dumps(args)
        out.append(chunk(ChoiceDelta(tool_calls=[ChoiceDeltaToolCall(
            index=i, id=f"call_{i}_{name}", type="function",
            function=ChoiceDeltaToolCallFunction(name=name, arguments=""), **_chat_signature(a, i))])))
        for piece in _pieces(raw, 5):
            out.append(chunk(ChoiceDelta(tool_calls=[ChoiceDeltaToolCall(
                index=i, function=ChoiceDeltaToolCallFunction(arguments=piece))])))
    out.append(chunk(finish=_chat_finish(a)))
    if a.usage is not None:
        out.append(chunk(usage=_chat_usage(a), no_choice=True))
    return sse_data(out, done=True)


def chat_error(message: str, etype: str, code: str | None) -> str:
    from openai.types import ErrorObject

    return json.dumps({"error": ErrorObject(message=message, type=etype, param=None, code=code).model_dump()})


# -- OpenAI Responses --------------------------------------------------------------------------------


def responses_object(a: Answer, *, status: str | None = None, raw_reasoning: bool = False) -> Any:
    """``raw_reasoning``: the reasoning itself in the item's ``content`` (open-weight models such as
    gpt-oss), not a summary."""
    from openai.types.responses import (
        Response,
        ResponseFunctionToolCall,
        ResponseOutputMessage,
        ResponseOutputRefusal,
        ResponseOutputText,
        ResponseReasoningItem,
    )
    from openai.types.responses.response import IncompleteDetails
    from openai.types.responses.response_error import ResponseError
    from openai.types.responses.response_reasoning_item import Content, Summary
    from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails, ResponseUsage

    output: list[Any] = []
    if a.thinking or a.signature:
        summary = [Summary(type="summary_text", text=t) for t in a.thinking.split("\n\n") if t]
        content = [Content(type="reasoning_text", text=a.thinking)] if raw_reasoning and a.thinking else None
        output.append(ResponseReasoningItem(id="rs_1", type="reasoning", status=None,
                                            summary=[] if raw_reasoning else summary, content=content,
                                            encrypted_content=a.signature or None))
    if a.text:
        part = (ResponseOutputRefusal(type="refusal", refusal=a.text) if a.stop == "refusal"
                else ResponseOutputText(type="output_text", text=a.text, annotations=[], logprobs=[]))
        output.append(ResponseOutputMessage(id="msg_1", type="message", role="assistant", status="completed",
                                            content=[part]))
    for i, (name, args) in enumerate(a.tools):
        output.append(ResponseFunctionToolCall(id=f"fc_{i}", type="function_call", call_id=f"call_{i}_{name}",
                                               name=name, arguments=json.dumps(args), status="completed"))
    usage = None
    if a.usage is not None:
        usage = ResponseUsage(input_tokens=a.usage[0], output_tokens=a.usage[1], total_tokens=sum(a.usage),
                              input_tokens_details=InputTokensDetails(cached_tokens=a.cached, cache_write_tokens=0),
                              output_tokens_details=OutputTokensDetails(reasoning_tokens=0))
    status = status or {"max_tokens": "incomplete", "failed": "failed"}.get(a.stop, "completed")
    incomplete = IncompleteDetails(reason="max_output_tokens") if status == "incomplete" else None
    error = ResponseError(code="server_error", message="The model failed to answer.") if status == "failed" else None
    return Response(id="resp_1", object="response", created_at=1700000000.0, model=a.model, output=output,
                    parallel_tool_calls=True, tool_choice="auto", tools=[], status=status, error=error,
                    incomplete_details=incomplete, usage=usage, **a.extra)


def responses_body(a: Answer, *, raw_reasoning: bool = False) -> str:
    return responses_object(a, raw_reasoning=raw_reasoning).model_dump_json()


#: The ``.done`` events that repeat what their deltas carried (``output_item.done`` is kept).
RESPONSES_DONE_TEXT = frozenset({
    "response.output_text.done", "response.refusal.done", "response.content_part.done",
    "response.reasoning_summary_text.done", "response.reasoning_summary_part.done", "response.reasoning_text.done",
    "response.function_call_arguments.done"})


def responses_stream(a: Answer, *, raw_reasoning: bool = False, carriers: str = "both",
                     rotate_ids: bool = False) -> bytes:
    """The event sequence the Responses API streams for ``a``, each event an SDK type.

    ``carriers``: which events carry the content: ``"both"`` (the deltas and the ``.done`` events, as
    OpenAI sends it), ``"done"`` (no deltas: servers that send each part whole) or ``"deltas"`` (no
    ``.done`` text events, and ``output_item.done`` items emptied of their text). ``rotate_ids``: every
    event names its item by a new id (GitHub Copilot's Responses endpoint); indices stay."""
    from openai.types.responses import (
        ResponseCompletedEvent,
        ResponseContentPartAddedEvent,
        ResponseContentPartDoneEvent,
        ResponseCreatedEvent,
        ResponseFailedEvent,
        ResponseFunctionCallArgumentsDeltaEvent,
        ResponseFunctionCallArgumentsDoneEvent,
        ResponseIncompleteEvent,
        ResponseInProgressEvent,
        ResponseOutputItemAddedEvent,
        ResponseOutputItemDoneEvent,
        ResponseReasoningSummaryPartAddedEvent,
        ResponseReasoningSummaryPartDoneEvent,
        ResponseReasoningSummaryTextDeltaEvent,
        ResponseReasoningSummaryTextDoneEvent,
        ResponseReasoningTextDeltaEvent,
        ResponseReasoningTextDoneEvent,
        ResponseRefusalDeltaEvent,
        ResponseTextDeltaEvent,
        ResponseTextDoneEvent,
    )
    from openai.types.responses.response_reasoning_summary_part_added_event import Part as SummaryPart

    final = responses_object(a, raw_reasoning=raw_reasoning)
    start = final.model_copy(update={"status": "in_progress", "output": [], "usage": None, "error": None,
                                     "incomplete_details": None})
    seq = iter(range(10_000))
    events: list[Any] = [ResponseCreatedEvent(type="response.created", response=start, sequence_number=next(seq)),
                         ResponseInProgressEvent(type="response.in_progress", response=start,
                                                 sequence_number=next(seq))]
    for index, item in enumerate(final.output):
        item_id = item.id or f"item_{index}"
        if item.type == "reasoning":
            events.append(ResponseOutputItemAddedEvent(
                type="response.output_item.added", output_index=index, sequence_number=next(seq),
                item=item.model_copy(update={"summary": [], "content": None, "encrypted_content": None})))
            for c_index, part in enumerate(item.content or []):
                common = {"item_id": item_id, "output_index": index, "content_index": c_index}
                for piece in _pieces(part.text):
                    events.append(ResponseReasoningTextDeltaEvent(type="response.reasoning_text.delta", delta=piece,
                                                                  sequence_number=next(seq), **common))
                events.append(ResponseReasoningTextDoneEvent(type="response.reasoning_text.done", text=part.text,
                                                             sequence_number=next(seq), **common))
            for s_index, summary in enumerate(item.summary):
                common = {"item_id": item_id, "output_index": index, "summary_index": s_index}
                events.append(ResponseReasoningSummaryPartAddedEvent(
                    type="response.reasoning_summary_part.added", sequence_number=next(seq),
                    part=SummaryPart(type="summary_text", text=""), **common))
                for piece in _pieces(summary.text):
                    events.append(ResponseReasoningSummaryTextDeltaEvent(
                        type="response.reasoning_summary_text.delta", delta=piece, sequence_number=next(seq),
                        **common))
                events.append(ResponseReasoningSummaryTextDoneEvent(
                    type="response.reasoning_summary_text.done", text=summary.text, sequence_number=next(seq),
                    **common))
                events.append(ResponseReasoningSummaryPartDoneEvent(
                    type="response.reasoning_summary_part.done", sequence_number=next(seq),
                    part={"type": "summary_text", "text": summary.text}, **common))
        elif item.type == "message":
            events.append(ResponseOutputItemAddedEvent(
                type="response.output_item.added", output_index=index, sequence_number=next(seq),
                item=item.model_copy(update={"content": [], "status": "in_progress"})))
            for c_index, part in enumerate(item.content):
                common = {"item_id": item_id, "output_index": index, "content_index": c_index}
                empty = part.model_copy(update={"text": ""} if part.type == "output_text" else {"refusal": ""})
                events.append(ResponseContentPartAddedEvent(type="response.content_part.added", part=empty,
                                                            sequence_number=next(seq), **common))
                if part.type == "output_text":
                    for piece in _pieces(part.text):
                        events.append(ResponseTextDeltaEvent(type="response.output_text.delta", delta=piece,
                                                             logprobs=[], sequence_number=next(seq), **common))
                    events.append(ResponseTextDoneEvent(type="response.output_text.done", text=part.text,
                                                        logprobs=[], sequence_number=next(seq), **common))
                else:
                    for piece in _pieces(part.refusal):
                        events.append(ResponseRefusalDeltaEvent(type="response.refusal.delta", delta=piece,
                                                                sequence_number=next(seq), **common))
                events.append(ResponseContentPartDoneEvent(type="response.content_part.done", part=part,
                                                           sequence_number=next(seq), **common))
        else:
            events.append(ResponseOutputItemAddedEvent(
                type="response.output_item.added", output_index=index, sequence_number=next(seq),
                item=item.model_copy(update={"arguments": "", "status": "in_progress"})))
            for piece in _pieces(item.arguments, 6):
                events.append(ResponseFunctionCallArgumentsDeltaEvent(
                    type="response.function_call_arguments.delta", delta=piece, item_id=item_id,
                    output_index=index, sequence_number=next(seq)))
            events.append(ResponseFunctionCallArgumentsDoneEvent(
                type="response.function_call_arguments.done", arguments=item.arguments, item_id=item_id,
                name=item.name, output_index=index, sequence_number=next(seq)))
        events.append(ResponseOutputItemDoneEvent(type="response.output_item.done", item=item, output_index=index,
                                                  sequence_number=next(seq)))
    if final.status == "failed":
        events.append(ResponseFailedEvent(type="response.failed", response=final, sequence_number=next(seq)))
    elif final.status == "incomplete":
        events.append(ResponseIncompleteEvent(type="response.incomplete", response=final, sequence_number=next(seq)))
    else:
        events.append(ResponseCompletedEvent(type="response.completed", response=final, sequence_number=next(seq)))
    if carriers == "done":
        events = [e for e in events if not e.type.endswith(".delta")]
    elif carriers == "deltas":
        events = [_emptied(e) for e in events if e.type not in RESPONSES_DONE_TEXT]
    if rotate_ids:
        events = [_rotated(e) for e in events]
    return sse_named([e.model_dump_json() for e in events])


def _emptied(event: Any) -> Any:
    """An ``output_item.done`` whose item no longer holds the text its deltas carried."""
    if event.type != "response.output_item.done":
        return event
    item = event.item
    update = {"message": {"content": []}, "reasoning": {"summary": [], "content": None},
              "function_call": {"arguments": ""}}.get(item.type, {})
    return event.model_copy(update={"item": item.model_copy(update=update)})


def _rotated(event: Any) -> Any:
    """``event`` with its item named by an id of its own, as if every event were a new item."""
    import hashlib

    def fresh(old: str) -> str:
        return old.split("_")[0] + "_" + hashlib.sha256(f"{old}/{event.sequence_number}".encode()).hexdigest()[:24]

    if getattr(event, "item_id", None):
        return event.model_copy(update={"item_id": fresh(event.item_id)})
    item = getattr(event, "item", None)
    if item is not None and item.id:
        return event.model_copy(update={"item": item.model_copy(update={"id": fresh(item.id)})})
    return event


# -- Gemini ------------------------------------------------------------------------------------------


def gemini_object(a: Answer, *, parts_only: list[Any] | None = None, finish: str | None = None,
                  with_usage: bool = True, block_reason: str | None = None) -> Any:
    from google.genai import types as T

    parts: list[Any] = []
    if parts_only is not None:
        parts = parts_only
    else:
        if a.thinking:
            parts.append(T.Part(text=a.thinking, thought=True))
        if a.text:
            parts.append(T.Part(text=a.text))
        for i, (name, args) in enumerate(a.tools):
            signature = a.signature.encode() if a.signature and i == 0 else None
            parts.append(T.Part(function_call=T.FunctionCall(name=name, args=args), thought_signature=signature))
    usage = None
    if with_usage and a.usage is not None:
        usage = T.GenerateContentResponseUsageMetadata(
            prompt_token_count=a.usage[0], candidates_token_count=a.usage[1], total_token_count=sum(a.usage),
            cached_content_token_count=a.cached or None)
    if block_reason:
        return T.GenerateContentResponse(candidates=[], usage_metadata=usage, model_version=a.model,
                                         prompt_feedback=T.GenerateContentResponsePromptFeedback(
                                             block_reason=T.BlockedReason(block_reason)))
    reason = finish if finish is not None else {"max_tokens": "MAX_TOKENS", "refusal": "SAFETY"}.get(a.stop, "STOP")
    candidate = T.Candidate(content=T.Content(role="model", parts=parts), index=0,
                            finish_reason=T.FinishReason(reason) if reason else None)
    return T.GenerateContentResponse(candidates=[candidate], usage_metadata=usage, model_version=a.model,
                                     response_id="resp-g1")


def gemini_json(obj: Any) -> str:
    return obj.model_dump_json(by_alias=True)


def gemini_body(a: Answer) -> str:
    return gemini_json(gemini_object(a))


def gemini_stream(a: Answer) -> bytes:
    """Gemini streams partial GenerateContentResponses: thoughts and text in pieces (no finish reason:
    ``""``), calls whole, the finish reason and usage on the last one."""
    from google.genai import types as T

    objects = []
    for piece in _pieces(a.thinking, 12):
        objects.append(gemini_object(a, parts_only=[T.Part(text=piece, thought=True)], finish="", with_usage=False))
    for piece in _pieces(a.text, 12):
        objects.append(gemini_object(a, parts_only=[T.Part(text=piece)], finish="", with_usage=False))
    calls = [T.Part(function_call=T.FunctionCall(name=name, args=args),
                    thought_signature=a.signature.encode() if a.signature and i == 0 else None)
             for i, (name, args) in enumerate(a.tools)]
    if calls:
        objects.append(gemini_object(a, parts_only=calls, finish="", with_usage=False))
    objects.append(gemini_object(a, parts_only=[T.Part(text="")]))
    return sse_data([gemini_json(o) for o in objects], crlf=True)


def gemini_error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> str:
    """Google's error envelope (no SDK type describes it; google.rpc.Status is what servers send)."""
    return json.dumps({"error": {"code": code, "message": message, "status": status, "details": details or []}})


# -- Anthropic ---------------------------------------------------------------------------------------


def anthropic_object(a: Answer) -> Any:
    from anthropic.types import Message, TextBlock, ThinkingBlock, ToolUseBlock, Usage

    content: list[Any] = []
    if a.thinking or a.signature:
        content.append(ThinkingBlock(type="thinking", thinking=a.thinking, signature=a.signature or "sig"))
    if a.text:
        content.append(TextBlock(type="text", text=a.text, citations=None))
    for i, (name, args) in enumerate(a.tools):
        content.append(ToolUseBlock(type="tool_use", id=f"toolu_{i:02d}{name}", name=name, input=args))
    stop = {"max_tokens": "max_tokens", "refusal": "refusal"}.get(a.stop, "tool_use" if a.tools else "end_turn")
    usage = Usage(input_tokens=a.usage[0] if a.usage else 0, output_tokens=a.usage[1] if a.usage else 0,
                  cache_read_input_tokens=a.cached, cache_creation_input_tokens=0)
    return Message(id="msg_up1", type="message", role="assistant", model=a.model, content=content,
                   stop_reason=stop, stop_sequence=None, usage=usage, **a.extra)


def anthropic_body(a: Answer) -> str:
    return anthropic_object(a).model_dump_json()


def anthropic_events(a: Answer, *, pings: bool = True) -> list[str]:
    """The raw stream events for ``a``, each an SDK type, serialised by the SDK."""
    from anthropic.types import (
        InputJSONDelta,
        MessageDeltaUsage,
        RawContentBlockDeltaEvent,
        RawContentBlockStartEvent,
        RawContentBlockStopEvent,
        RawMessageDeltaEvent,
        RawMessageStartEvent,
        RawMessageStopEvent,
        SignatureDelta,
        TextDelta,
        ThinkingDelta,
    )
    from anthropic.types.raw_message_delta_event import Delta

    final = anthropic_object(a)
    start = final.model_copy(update={"content": [], "stop_reason": None,
                                     "usage": final.usage.model_copy(update={"output_tokens": 1})})
    events = [RawMessageStartEvent(type="message_start", message=start).model_dump_json()]
    if pings:
        events.append(json.dumps({"type": "ping"}))
    for index, block in enumerate(final.content):
        if block.type == "thinking":
            empty = block.model_copy(update={"thinking": "", "signature": ""})
            deltas: list[Any] = [ThinkingDelta(type="thinking_delta", thinking=p) for p in _pieces(block.thinking)]
            deltas.append(SignatureDelta(type="signature_delta", signature=block.signature))
        elif block.type == "text":
            empty = block.model_copy(update={"text": ""})
            deltas = [TextDelta(type="text_delta", text=p) for p in _pieces(block.text)]
        else:
            empty = block.model_copy(update={"input": {}})
            deltas = [InputJSONDelta(type="input_json_delta", partial_json=p)
                      for p in _pieces(json.dumps(block.input), 6)]
        events.append(RawContentBlockStartEvent(type="content_block_start", index=index,
                                                content_block=empty).model_dump_json())
        events.extend(RawContentBlockDeltaEvent(type="content_block_delta", index=index, delta=d).model_dump_json()
                      for d in deltas)
        events.append(RawContentBlockStopEvent(type="content_block_stop", index=index).model_dump_json())
    usage = MessageDeltaUsage(output_tokens=final.usage.output_tokens, input_tokens=final.usage.input_tokens,
                              cache_read_input_tokens=final.usage.cache_read_input_tokens,
                              cache_creation_input_tokens=0)
    delta = Delta(stop_reason=final.stop_reason, stop_sequence=None)
    events.append(RawMessageDeltaEvent(type="message_delta", usage=usage, delta=delta).model_dump_json())
    events.append(RawMessageStopEvent(type="message_stop").model_dump_json())
    return events


def anthropic_stream(a: Answer, *, pings: bool = True) -> bytes:
    return sse_named(anthropic_events(a, pings=pings))


def anthropic_error(etype: str, message: str) -> str:
    from anthropic.types import ErrorResponse

    return ErrorResponse.model_validate({"type": "error", "error": {"type": etype, "message": message},
                                         "request_id": "req_up1"}).model_dump_json()
