"""Web search answers as the providers give them, built from their SDKs' own types.

A Responses answer with a ``web_search_call`` item (action ``search``, its ``sources``) and a message whose
``output_text`` carries ``url_citation`` annotations over inline ``([site](url))`` markers, streamed the
way the Responses API streams it (``response.web_search_call.*`` and
``response.output_text.annotation.added`` events); a Gemini answer with ``groundingMetadata``
(``webSearchQueries``, ``groundingChunks``, ``groundingSupports``, ``searchEntryPoint``), streamed as
partial GenerateContentResponses with the grounding on the last one. And the JSON a SearXNG or Tavily
server answers.
"""

from __future__ import annotations

import json
from typing import Any

from support.sdk_answers import gemini_json, sse_data, sse_named

QUERY = "rust 1.80 release date"
URL_1 = "https://blog.rust-lang.org/2024/07/25/Rust-1.80.0.html"
URL_2 = "https://doc.rust-lang.org/std/sync/struct.LazyLock.html"
TITLE_1 = "Announcing Rust 1.80.0 | Rust Blog"
TITLE_2 = "LazyLock in std::sync - Rust"
SENTENCE_1 = "Rust 1.80 was released on July 25, 2024"
SENTENCE_2 = "It stabilised LazyLock"
MARK_1 = f"([blog.rust-lang.org]({URL_1}))"
MARK_2 = f"([doc.rust-lang.org]({URL_2}))"
TEXT = f"{SENTENCE_1} {MARK_1}. {SENTENCE_2} {MARK_2}."


def _pieces(text: str, size: int = 9) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


# -- OpenAI Responses --------------------------------------------------------------------------------


def responses_search_object(*, with_sources: bool = True) -> Any:
    from openai.types.responses import Response, ResponseFunctionWebSearch, ResponseOutputMessage, ResponseOutputText
    from openai.types.responses.response_function_web_search import ActionSearch, ActionSearchSource
    from openai.types.responses.response_output_text import AnnotationURLCitation
    from openai.types.responses.response_usage import InputTokensDetails, OutputTokensDetails, ResponseUsage

    sources = [ActionSearchSource(type="url", url=URL_1), ActionSearchSource(type="url", url=URL_2)] \
        if with_sources else None
    call = ResponseFunctionWebSearch(id="ws_1", type="web_search_call", status="completed",
                                     action=ActionSearch(type="search", query=QUERY, sources=sources))
    start_1 = TEXT.index(MARK_1)
    start_2 = TEXT.index(MARK_2)
    notes = [AnnotationURLCitation(type="url_citation", url=URL_1, title=TITLE_1, start_index=start_1,
                                   end_index=start_1 + len(MARK_1)),
             AnnotationURLCitation(type="url_citation", url=URL_2, title=TITLE_2, start_index=start_2,
                                   end_index=start_2 + len(MARK_2))]
    message = ResponseOutputMessage(id="msg_1", type="message", role="assistant", status="completed",
                                    content=[ResponseOutputText(type="output_text", text=TEXT, annotations=notes,
                                                                logprobs=[])])
    usage = ResponseUsage(input_tokens=300, output_tokens=60, total_tokens=360,
                          input_tokens_details=InputTokensDetails(cached_tokens=0, cache_write_tokens=0),
                          output_tokens_details=OutputTokensDetails(reasoning_tokens=0))
    return Response(id="resp_ws", object="response", created_at=1700000000.0, model="gpt-5.4", output=[call, message],
                    parallel_tool_calls=True, tool_choice="auto", tools=[], status="completed", error=None,
                    incomplete_details=None, usage=usage)


def responses_search_body(*, with_sources: bool = True) -> str:
    return responses_search_object(with_sources=with_sources).model_dump_json()


def responses_search_stream(*, with_sources: bool = True, empty_completed: bool = False) -> bytes:
    """``empty_completed``: ``response.completed`` carries no output (some servers), so the answer must
    come from the items and deltas."""
    from openai.types.responses import (
        ResponseCompletedEvent,
        ResponseContentPartAddedEvent,
        ResponseContentPartDoneEvent,
        ResponseCreatedEvent,
        ResponseOutputItemAddedEvent,
        ResponseOutputItemDoneEvent,
        ResponseOutputTextAnnotationAddedEvent,
        ResponseTextDeltaEvent,
        ResponseTextDoneEvent,
        ResponseWebSearchCallCompletedEvent,
        ResponseWebSearchCallInProgressEvent,
        ResponseWebSearchCallSearchingEvent,
    )

    final = responses_search_object(with_sources=with_sources)
    call, message = final.output
    seq = iter(range(10_000))
    start = final.model_copy(update={"status": "in_progress", "output": [], "usage": None})
    events: list[Any] = [ResponseCreatedEvent(type="response.created", response=start, sequence_number=next(seq))]
    events.append(ResponseOutputItemAddedEvent(
        type="response.output_item.added", output_index=0, sequence_number=next(seq),
        item=call.model_copy(update={"status": "in_progress", "action": call.action.model_copy(
            update={"query": None, "sources": None})})))
    common = {"item_id": "ws_1", "output_index": 0}
    events.append(ResponseWebSearchCallInProgressEvent(type="response.web_search_call.in_progress",
                                                       sequence_number=next(seq), **common))
    events.append(ResponseWebSearchCallSearchingEvent(type="response.web_search_call.searching",
                                                      sequence_number=next(seq), **common))
    events.append(ResponseWebSearchCallCompletedEvent(type="response.web_search_call.completed",
                                                      sequence_number=next(seq), **common))
    events.append(ResponseOutputItemDoneEvent(type="response.output_item.done", output_index=0, item=call,
                                              sequence_number=next(seq)))
    events.append(ResponseOutputItemAddedEvent(type="response.output_item.added", output_index=1,
                                               sequence_number=next(seq),
                                               item=message.model_copy(update={"content": [],
                                                                               "status": "in_progress"})))
    part = message.content[0]
    common = {"item_id": "msg_1", "output_index": 1, "content_index": 0}
    events.append(ResponseContentPartAddedEvent(type="response.content_part.added", sequence_number=next(seq),
                                                part=part.model_copy(update={"text": "", "annotations": []}),
                                                **common))
    written = 0
    for index, note in enumerate(part.annotations):
        for piece in _pieces(TEXT[written:note.end_index]):
            events.append(ResponseTextDeltaEvent(type="response.output_text.delta", delta=piece, logprobs=[],
                                                 sequence_number=next(seq), **common))
        written = note.end_index
        events.append(ResponseOutputTextAnnotationAddedEvent(
            type="response.output_text.annotation.added", annotation=note.model_dump(), annotation_index=index,
            sequence_number=next(seq), **common))
    for piece in _pieces(TEXT[written:]):
        events.append(ResponseTextDeltaEvent(type="response.output_text.delta", delta=piece, logprobs=[],
                                             sequence_number=next(seq), **common))
    events.append(ResponseTextDoneEvent(type="response.output_text.done", text=TEXT, logprobs=[],
                                        sequence_number=next(seq), **common))
    events.append(ResponseContentPartDoneEvent(type="response.content_part.done", part=part,
                                               sequence_number=next(seq), **common))
    events.append(ResponseOutputItemDoneEvent(type="response.output_item.done", output_index=1, item=message,
                                              sequence_number=next(seq)))
    done = final.model_copy(update={"output": []}) if empty_completed else final
    events.append(ResponseCompletedEvent(type="response.completed", response=done, sequence_number=next(seq)))
    return sse_named([e.model_dump_json() for e in events])


# -- Gemini ------------------------------------------------------------------------------------------

G_URL_1 = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/AAA111"
G_URL_2 = "https://vertexaisearch.cloud.google.com/grounding-api-redirect/BBB222"
G_TEXT = f"{SENTENCE_1}. {SENTENCE_2}."


def gemini_grounding() -> Any:
    from google.genai import types as T

    encoded = G_TEXT.encode()
    first = SENTENCE_1.encode()
    second_at = encoded.index(SENTENCE_2.encode())
    return T.GroundingMetadata(
        web_search_queries=[QUERY, "rust LazyLock stabilised"],
        grounding_chunks=[T.GroundingChunk(web=T.GroundingChunkWeb(uri=G_URL_1, title="rust-lang.org")),
                          T.GroundingChunk(web=T.GroundingChunkWeb(uri=G_URL_2, title="doc.rust-lang.org"))],
        grounding_supports=[
            T.GroundingSupport(segment=T.Segment(start_index=0, end_index=len(first), text=SENTENCE_1),
                               grounding_chunk_indices=[0], confidence_scores=[0.93]),
            T.GroundingSupport(segment=T.Segment(start_index=second_at, end_index=second_at + len(SENTENCE_2),
                                                 text=SENTENCE_2),
                               grounding_chunk_indices=[1, 0], confidence_scores=[0.9, 0.6])],
        search_entry_point=T.SearchEntryPoint(rendered_content="<div class=\"container\">...</div>"))


def gemini_search_object(*, parts: list[Any] | None = None, grounding: bool = True, finish: str | None = "STOP",
                         usage: bool = True) -> Any:
    from google.genai import types as T

    parts = [T.Part(text=G_TEXT)] if parts is None else parts
    meta = T.GenerateContentResponseUsageMetadata(prompt_token_count=200, candidates_token_count=40,
                                                  total_token_count=240) if usage else None
    candidate = T.Candidate(content=T.Content(role="model", parts=parts), index=0,
                            finish_reason=T.FinishReason(finish) if finish else None,
                            grounding_metadata=gemini_grounding() if grounding else None)
    return T.GenerateContentResponse(candidates=[candidate], usage_metadata=meta, model_version="gemini-3-pro",
                                     response_id="resp-gs")


def gemini_search_body() -> str:
    return gemini_json(gemini_search_object())


def gemini_search_stream() -> bytes:
    from google.genai import types as T

    objects = [gemini_search_object(parts=[T.Part(text="Let me look.", thought=True)], grounding=False, finish=None,
                                    usage=False)]
    for piece in _pieces(G_TEXT, 12):
        objects.append(gemini_search_object(parts=[T.Part(text=piece)], grounding=False, finish=None, usage=False))
    objects.append(gemini_search_object(parts=[T.Part(text="")]))
    return sse_data([gemini_json(o) for o in objects], crlf=True)


# -- search backends ---------------------------------------------------------------------------------


def searxng_answer(query: str = QUERY) -> bytes:
    """A SearXNG ``format=json`` answer (its webapp's shape: results with url/title/content/engine...)."""
    return json.dumps({
        "query": query, "number_of_results": 0,
        "results": [
            {"url": URL_1, "title": TITLE_1, "content": "The Rust team is happy to announce Rust 1.80.0.",
             "engine": "duckduckgo", "parsed_url": ["https", "blog.rust-lang.org", "/2024/07/25/Rust-1.80.0.html",
                                                    "", "", ""],
             "template": "default.html", "engines": ["duckduckgo"], "positions": [1], "score": 1.0,
             "category": "general", "publishedDate": "2024-07-25T00:00:00"},
            {"url": URL_2, "title": TITLE_2, "content": "A value which is initialized on the first access.",
             "engine": "bing", "engines": ["bing"], "positions": [2], "score": 0.5, "category": "general",
             "publishedDate": None},
            {"url": "https://spam.example/rust", "title": "Rust deals", "content": "buy", "engine": "bing"},
        ],
        "answers": [], "corrections": [], "infoboxes": [], "suggestions": [], "unresponsive_engines": []}).encode()


def tavily_answer(query: str = QUERY) -> bytes:
    return json.dumps({
        "query": query, "answer": None, "images": [], "response_time": 1.2,
        "results": [{"title": TITLE_1, "url": URL_1, "content": "Rust 1.80.0 is out.", "score": 0.98,
                     "raw_content": None, "published_date": "Thu, 25 Jul 2024 00:00:00 GMT"},
                    {"title": TITLE_2, "url": URL_2, "content": "LazyLock docs.", "score": 0.7,
                     "raw_content": None}]}).encode()


# -- chat completions with url_citation annotations (OpenAI search models, OpenRouter's web plugin) ------


def chat_search_body() -> str:
    from openai.types.chat import ChatCompletion, ChatCompletionMessage
    from openai.types.chat.chat_completion import Choice
    from openai.types.chat.chat_completion_message import Annotation, AnnotationURLCitation
    from openai.types.completion_usage import CompletionUsage

    start_1, start_2 = TEXT.index(MARK_1), TEXT.index(MARK_2)
    notes = [Annotation(type="url_citation", url_citation=AnnotationURLCitation(
                 url=URL_1, title=TITLE_1, start_index=start_1, end_index=start_1 + len(MARK_1))),
             Annotation(type="url_citation", url_citation=AnnotationURLCitation(
                 url=URL_2, title=TITLE_2, start_index=start_2, end_index=start_2 + len(MARK_2)))]
    message = ChatCompletionMessage(role="assistant", content=TEXT, annotations=notes, refusal=None)
    return ChatCompletion(id="gen-1", object="chat.completion", created=1700000000, model="openai/gpt-5.4",
                          choices=[Choice(index=0, finish_reason="stop", message=message, logprobs=None)],
                          usage=CompletionUsage(prompt_tokens=400, completion_tokens=50, total_tokens=450)
                          ).model_dump_json()
