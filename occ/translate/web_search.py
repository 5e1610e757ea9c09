"""Anthropic's web search server tool on wires that are not Anthropic's, sans-IO.

Claude Code's WebSearch tool sends ``{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}``
(perhaps with ``allowed_domains``/``blocked_domains``/``user_location``). Anthropic answers with a
``server_tool_use`` block (``srvtoolu_`` id, ``input.query``), a ``web_search_tool_result`` block holding
one ``web_search_result`` per source, text blocks whose ``citations`` are ``web_search_result_location``
and ``usage.server_tool_use.web_search_requests``. This module makes those blocks from what each
upstream says about its own search (Responses ``web_search_call`` items and ``url_citation``
annotations, Gemini ``groundingMetadata``, chat ``annotations`` from OpenRouter's web plugin or OpenAI's
search models, a search backend's results) and turns them back into text
when a later turn's history carries them to a wire that has no such blocks. docs/web-search.md says
what each wire does, with the protocol facts and their sources.

Anthropic's ``encrypted_content`` and ``encrypted_index`` are opaque to the client; occ's carry
``occ1.w.<base64url JSON>`` (the source's url, title and, from a backend, its snippet), so a later turn
can give the model the search again as text, and no real Anthropic upstream ever receives one.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs

from occ.core.ids import random_hex
from occ.core.jsonfast import JSONDecodeError, dumps_str, loads

__all__ = [
    "CHAT_SEARCH_OPTIONS",
    "ENCRYPTED_PREFIX",
    "SearchOptions",
    "Source",
    "chat_search_blocks",
    "chat_search_fields",
    "chat_search_option",
    "citation",
    "decode_encrypted",
    "error_blocks",
    "gemini_search_blocks",
    "gemini_tool",
    "history_as_text",
    "is_occ_search_block",
    "page_key",
    "responses_search_blocks",
    "responses_text_citations",
    "responses_tool",
    "search_blocks",
    "search_options",
    "search_query",
    "with_query",
    "with_search_context",
    "without_search_tool",
]

#: The start of every ``encrypted_content`` / ``encrypted_index`` occ mints.
ENCRYPTED_PREFIX = "occ1.w."
#: Anthropic's longest ``cited_text`` (its docs: up to 150 characters of the cited content).
CITED_TEXT_LIMIT = 150
#: Claude Code's WebSearch tool phrases its one user turn like this.
_CLAUDE_CODE_PROMPT = re.compile(r"^\s*perform a web search for the query:\s*", re.IGNORECASE)
_QUERY_LIMIT = 400
_SEARCH_BLOCKS = frozenset({"server_tool_use", "web_search_tool_result"})


@attrs.frozen
class SearchOptions:
    """The request's web_search server tool, as every wire reads it."""

    tool_type: str
    #: the tool's name (``web_search``), which a ``tool_choice`` may name
    name: str = "web_search"
    max_uses: int | None = None
    allowed_domains: tuple[str, ...] = ()
    blocked_domains: tuple[str, ...] = ()
    user_location: Mapping[str, Any] | None = None


@attrs.frozen
class Source:
    """One search result: what a ``web_search_result`` shows, and the backend's snippet (context)."""

    url: str
    title: str = ""
    page_age: str | None = None
    snippet: str = ""


def _domains(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(d.strip().lower() for d in value if isinstance(d, str) and d.strip())


def search_options(request: Mapping[str, Any]) -> SearchOptions | None:
    """The request's web search server tool (``web_search_20250305`` and later versions), or None."""
    tools = request.get("tools")
    if not isinstance(tools, list):
        return None
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        kind = tool.get("type")
        if isinstance(kind, str) and kind.startswith("web_search_"):
            uses = tool.get("max_uses")
            location = tool.get("user_location")
            return SearchOptions(
                tool_type=kind, name=str(tool.get("name") or "web_search"),
                max_uses=uses if isinstance(uses, int) and not isinstance(uses, bool) and uses >= 0 else None,
                allowed_domains=_domains(tool.get("allowed_domains")),
                blocked_domains=_domains(tool.get("blocked_domains")),
                user_location=location if isinstance(location, dict) else None)
    return None


def without_search_tool(request: dict[str, Any]) -> dict[str, Any]:
    """``request`` without its web search server tool (a wire that runs no search of its own), and
    without a ``tool_choice`` naming it (Claude Code's WebSearch sends ``{"type": "tool", "name":
    "web_search"}``: kept, it would name a function the upstream was never given)."""
    tools = request.get("tools")
    if not isinstance(tools, list):
        return request
    dropped = {str(t.get("name")) for t in tools
               if isinstance(t, dict) and str(t.get("type", "")).startswith("web_search_")}
    kept = [t for t in tools if not (isinstance(t, dict) and str(t.get("type", "")).startswith("web_search_"))]
    out = {**request, "tools": kept}
    choice = out.get("tool_choice")
    if not kept:
        del out["tools"]
        out.pop("tool_choice", None)
    elif isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name") in dropped:
        out["tool_choice"] = {k: v for k, v in choice.items() if k != "name"} | {"type": "auto"}
    return out


# -- the blocks the client sees ----------------------------------------------------------------------


def _b64(data: Mapping[str, Any]) -> str:
    return base64.urlsafe_b64encode(dumps_str(data).encode()).decode().rstrip("=")


def decode_encrypted(value: Any) -> dict[str, Any] | None:
    """What an ``encrypted_content``/``encrypted_index`` occ minted carries; None for anyone else's."""
    if not isinstance(value, str) or not value.startswith(ENCRYPTED_PREFIX):
        return None
    encoded = value[len(ENCRYPTED_PREFIX):]
    try:
        data = loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, binascii.Error, *JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def title_for(url: str) -> str:
    """A title for a source the upstream named by URL only: its host (``title`` is required); the URL
    itself when Python cannot split it (``https://[docs]/x`` raises ValueError)."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return url
    return host.removeprefix("www.") or url


#: The start of every ``server_tool_use`` id occ mints (Anthropic's own begin ``srvtoolu_01``).
OCC_TOOL_ID_PREFIX = "srvtoolu_occ"


_TRACKING = re.compile(r"(?:^|&)utm_[a-z]+=[^&]*")


def page_key(url: str) -> str:
    """``url`` without tracking parameters, to know the same page: OpenAI's ``url_citation`` URLs carry
    ``?utm_source=openai`` where the call's ``sources`` do not."""
    base, sep, query = url.partition("?")
    if not sep:
        return url
    query = _TRACKING.sub("", query).lstrip("&")
    return f"{base}?{query}" if query else base


def new_server_tool_id() -> str:
    return f"{OCC_TOOL_ID_PREFIX}{random_hex(11)}"


def result_block(source: Source) -> dict[str, Any]:
    data: dict[str, Any] = {"u": source.url, "t": source.title}
    if source.snippet:
        data["s"] = source.snippet
    return {"type": "web_search_result", "url": source.url, "title": source.title or title_for(source.url),
            "encrypted_content": ENCRYPTED_PREFIX + _b64(data), "page_age": source.page_age}


def search_blocks(query: str, sources: Iterable[Source], *, tool_id: str | None = None) -> list[dict[str, Any]]:
    """One search as Anthropic answers it: the ``server_tool_use`` and its ``web_search_tool_result``."""
    tool_id = tool_id or new_server_tool_id()
    return [{"type": "server_tool_use", "id": tool_id, "name": "web_search", "input": {"query": query}},
            {"type": "web_search_tool_result", "tool_use_id": tool_id,
             "content": [result_block(s) for s in sources]}]


def error_blocks(query: str, code: str) -> list[dict[str, Any]]:
    """A search that failed (``unavailable``, ``too_many_requests``...), as Anthropic reports one: in
    the result block, so the model still answers and says it could not search."""
    tool_id = new_server_tool_id()
    return [{"type": "server_tool_use", "id": tool_id, "name": "web_search", "input": {"query": query}},
            {"type": "web_search_tool_result", "tool_use_id": tool_id,
             "content": {"type": "web_search_tool_result_error", "error_code": code}}]


def citation(url: str, title: str, cited_text: str) -> dict[str, Any]:
    return {"type": "web_search_result_location", "url": url, "title": title or title_for(url),
            "cited_text": cited_text[:CITED_TEXT_LIMIT], "encrypted_index": ENCRYPTED_PREFIX + _b64({"u": url})}


# -- OpenAI Responses --------------------------------------------------------------------------------


def responses_tool(options: SearchOptions) -> dict[str, Any]:
    """The Responses ``web_search`` tool for ``options``: ``allowed_domains`` become
    ``filters.allowed_domains`` and ``user_location`` passes (both APIs take the same approximate
    location fields). Responses has no blocked-domains filter."""
    tool: dict[str, Any] = {"type": "web_search"}
    if options.allowed_domains:
        tool["filters"] = {"allowed_domains": list(options.allowed_domains)}
    if options.user_location:
        location = {k: v for k, v in options.user_location.items()
                    if k in ("city", "region", "country", "timezone") and isinstance(v, str) and v}
        tool["user_location"] = {"type": "approximate", **location}
    return tool


def _sentence_before(text: str, end: int) -> str:
    """The sentence that ends where a citation marker starts: what the marker cites."""
    head = text[:max(0, end)].rstrip(" ([")
    cut = max(head.rfind(". "), head.rfind("\n"), head.rfind("! "), head.rfind("? "))
    return head[cut + 1:].strip()[-CITED_TEXT_LIMIT:]


def responses_text_citations(part: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An ``output_text`` part's ``url_citation`` annotations as Anthropic citations. The annotation's
    range covers the inline marker (``([site](url))``); ``cited_text`` is the sentence before it."""
    text = str(part.get("text") or "")
    out = []
    for note in part.get("annotations") or []:
        if not isinstance(note, dict) or note.get("type") != "url_citation" or not isinstance(note.get("url"), str):
            continue
        start = note.get("start_index") if isinstance(note.get("start_index"), int) else 0
        end = note.get("end_index") if isinstance(note.get("end_index"), int) else start
        cited = _sentence_before(text, start) or text[start:end].strip() or " ".join(
            str(note.get("content") or "").split())  # OpenRouter's annotations carry the page's words
        out.append(citation(note["url"], str(note.get("title") or ""), cited))
    return out


def responses_search_blocks(item: Mapping[str, Any], titles: Mapping[str, str],
                            fallback_urls: list[str]) -> list[dict[str, Any]]:
    """A ``web_search_call`` item as a search pair; an ``open_page``/``find_in_page`` action is no
    search (Anthropic calls that web_fetch) and gives nothing. ``titles``: page (:func:`page_key`) -> title from the
    answer's citations; ``fallback_urls`` (consumed): the cited URLs, for a call that listed no sources
    (``include: web_search_call.action.sources`` not honoured)."""
    action = item.get("action") if isinstance(item.get("action"), dict) else {}
    if action.get("type") not in (None, "search"):
        return []
    queries = action.get("queries") if isinstance(action.get("queries"), list) else []
    query = action.get("query") if isinstance(action.get("query"), str) and action.get("query") else \
        next((q for q in queries if isinstance(q, str) and q), "")
    urls = [s["url"] for s in action.get("sources") or [] if isinstance(s, dict) and isinstance(s.get("url"), str)]
    if not urls:
        urls, fallback_urls[:] = list(fallback_urls), []
    seen: set[str] = set()
    sources = []
    for url in urls:
        if url not in seen:
            seen.add(url)
            sources.append(Source(url=url, title=titles.get(page_key(url)) or title_for(url)))
    return search_blocks(query, sources)


# -- chat completions: OpenRouter's web plugin, OpenAI's search models -------------------------------

#: The chat-completions search options occ knows (a model's ``web_search`` names one, or its
#: provider's host does): OpenRouter's ``plugins: [{"id": "web"}]`` and OpenAI's ``web_search_options``.
CHAT_SEARCH_OPTIONS = ("openrouter", "openai")


def chat_search_option(base_url: str | None) -> str | None:
    """The search option of a chat provider, by its host: ``openrouter.ai`` or ``api.openai.com``."""
    try:
        host = (urlsplit(base_url or "").hostname or "").lower()
    except ValueError:
        return None
    if host == "openrouter.ai" or host.endswith(".openrouter.ai"):
        return "openrouter"
    if host == "api.openai.com":
        return "openai"
    return None


def chat_search_fields(option: str, options: SearchOptions) -> dict[str, Any]:
    """The request fields of a chat search option. OpenRouter's web plugin (its web search docs; the
    ``openrouter:web_search`` tool succeeds it) takes ``max_results`` and no domain filter; OpenAI's
    ``web_search_options`` (its chat web search guide, for the ``*-search-*`` models) takes the approximate
    ``user_location`` and no domain filter either."""
    if option == "openrouter":
        return {"plugins": [{"id": "web", "max_results": 5}]}
    fields: dict[str, Any] = {}
    if options.user_location:
        location = {k: v for k, v in options.user_location.items()
                    if k in ("city", "region", "country", "timezone") and isinstance(v, str) and v}
        fields["user_location"] = {"type": "approximate", "approximate": location}
    return {"web_search_options": fields}


def chat_search_blocks(message: Mapping[str, Any], text: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A chat message's ``annotations`` (``{"type": "url_citation", "url_citation": {url, title,
    start_index, end_index}}``, the shape OpenAI and OpenRouter share) as one search pair (the query is
    not reported: the caller fills it, :func:`with_query`) and the text's citations."""
    notes = [n["url_citation"] for n in message.get("annotations") or []
             if isinstance(n, dict) and n.get("type") == "url_citation" and isinstance(n.get("url_citation"), dict)
             and isinstance(n["url_citation"].get("url"), str)]
    if not notes:
        return [], []
    seen: dict[str, Source] = {}
    for note in notes:
        seen.setdefault(page_key(note["url"]), Source(url=note["url"], title=str(note.get("title") or "")))
    citations = responses_text_citations({"text": text, "annotations": [{"type": "url_citation", **n}
                                                                         for n in notes]})
    return search_blocks("", seen.values()), citations


def with_query(message: dict[str, Any], query: str) -> dict[str, Any]:
    """``message`` with ``query`` on each web search whose upstream did not say what it searched for."""
    for block in message.get("content") or []:
        if isinstance(block, dict) and block.get("type") == "server_tool_use" and block.get("name") == "web_search" \
                and not (block.get("input") or {}).get("query"):
            block["input"] = {"query": query}
    return message


# -- Gemini ------------------------------------------------------------------------------------------


def gemini_tool() -> dict[str, Any]:
    """Grounding with Google Search, written as Google's grounding page does (``google_search``; the API
    reads proto field names in snake or camel case). The Gemini API takes no domain filter (``exclude_domains`` exists
    for Vertex AI only, per google-genai's ``GoogleSearch`` type) and no use limit."""
    return {"google_search": {}}


def _segment_text(segment: Mapping[str, Any], answer: str) -> str:
    """A segment given by byte offsets only (``startIndex``/``endIndex`` count UTF-8 bytes)."""
    start, end = segment.get("startIndex"), segment.get("endIndex")
    if not isinstance(end, int) or not answer:
        return ""
    start = start if isinstance(start, int) else 0
    return answer.encode()[max(0, start):end].decode(errors="ignore").strip()


def gemini_search_blocks(metadata: Any, answer: str = ""
                         ) -> tuple[list[dict[str, Any]], list[tuple[str, list[dict[str, Any]]]]]:
    """``groundingMetadata`` as search pairs (one per ``webSearchQueries`` entry; Gemini does not say
    which chunk came from which query, so every source is listed under the first) and the citations:
    (segment text, its citations) for each ``groundingSupports`` entry. ``answer``: the answer's text,
    for a segment that gives only its byte offsets."""
    if not isinstance(metadata, dict):
        return [], []
    queries = [q for q in metadata.get("webSearchQueries") or [] if isinstance(q, str) and q]
    chunks: list[Source | None] = []
    for chunk in metadata.get("groundingChunks") or []:
        web = chunk.get("web") if isinstance(chunk, dict) and isinstance(chunk.get("web"), dict) else None
        uri = web.get("uri") if web else None
        chunks.append(Source(url=uri, title=str(web.get("title") or "") or title_for(uri))
                      if isinstance(uri, str) and uri else None)
    sources = [s for s in chunks if s is not None]
    if not queries and not sources:
        return [], []
    blocks: list[dict[str, Any]] = []
    for i, query in enumerate(queries or [""]):
        blocks += search_blocks(query, sources if i == 0 else [])
    supports = []
    for support in metadata.get("groundingSupports") or []:
        if not isinstance(support, dict):
            continue
        segment = support.get("segment") if isinstance(support.get("segment"), dict) else {}
        text = str(segment.get("text") or "") or _segment_text(segment, answer)
        cites = []
        for index in support.get("groundingChunkIndices") or []:
            if isinstance(index, int) and 0 <= index < len(chunks) and chunks[index] is not None:
                source = chunks[index]
                assert source is not None
                cites.append(citation(source.url, source.title, text))
        if cites:
            supports.append((text, cites))
    return blocks, supports


# -- a search occ ran itself (a backend) -------------------------------------------------------------


def search_query(request: Mapping[str, Any]) -> str:
    """What to search for: the newest user text (Claude Code's "Perform a web search for the query:"
    prefix removed), clipped."""
    messages = request.get("messages")
    for message in reversed(messages if isinstance(messages, list) else []):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            text = content
        else:
            text = " ".join(str(b.get("text") or "") for b in content or []
                            if isinstance(b, dict) and b.get("type") == "text")
        text = re.sub(r"<system-reminder>.*?(?:</system-reminder>|\Z)", " ", text, flags=re.DOTALL).strip()
        if text:
            return " ".join(_CLAUDE_CODE_PROMPT.sub("", text).split())[:_QUERY_LIMIT]
    return ""


def _context_text(query: str, sources: list[Source] | None, error: str | None) -> str:
    if sources is None:
        return (f'A web search for "{query}" failed ({error or "unavailable"}). Say that the search could not '
                "be run, and answer from what you know only if that is still useful.")
    if not sources:
        return f'A web search for "{query}" found nothing.'
    lines = [f'Web search results for "{query}" (occ ran the search; cite the sources you use by URL):']
    for i, source in enumerate(sources, 1):
        lines.append(f"[{i}] {source.title or title_for(source.url)}\n    URL: {source.url}")
        if source.page_age:
            lines.append(f"    Age: {source.page_age}")
        if source.snippet:
            lines.append(f"    {source.snippet}")
    return "\n".join(lines)


def with_search_context(request: dict[str, Any], query: str, sources: list[Source] | None,
                        error: str | None = None) -> dict[str, Any]:
    """``request`` for a model that cannot search: the web search tool removed and the results
    (``sources``; None when the search failed) added to the newest user turn as text."""
    out = without_search_tool(request)
    messages = list(out.get("messages") or [])
    note = {"type": "text", "text": _context_text(query, sources, error)}
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
            messages[index] = {**message, "content": [*blocks, note]}
            break
    else:
        messages.append({"role": "user", "content": [note]})
    return {**out, "messages": messages}


# -- history: the blocks sent back in later turns ----------------------------------------------------


def _result_lines(content: Any) -> str:
    if isinstance(content, dict):
        return f"(the search failed: {content.get('error_code') or 'error'})"
    lines = []
    for i, result in enumerate(content if isinstance(content, list) else [], 1):
        if not isinstance(result, dict):
            continue
        url = str(result.get("url") or "")
        line = f"[{i}] {result.get('title') or title_for(url)} <{url}>"
        carried = decode_encrypted(result.get("encrypted_content"))
        if carried and carried.get("s"):
            line += f"\n    {carried['s']}"
        lines.append(line)
    return "\n".join(lines) or "(no results)"


def _as_text(block: dict[str, Any]) -> dict[str, Any]:
    if block.get("type") == "server_tool_use":
        args = block.get("input") if isinstance(block.get("input"), dict) else {}
        query = args.get("query", "") if args else ""
        return {"type": "text", "text": f'\n[{block.get("name") or "server tool"}: "{query}"]\n'}
    return {"type": "text", "text": f"\n[web search results]\n{_result_lines(block.get('content'))}\n"}


def history_as_text(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``blocks`` with every server-tool block (``server_tool_use``, ``web_search_tool_result``) as a
    text block saying the same, for a wire that has no such blocks: the model keeps what it found
    and nothing is sent that the upstream would refuse. Citations ride on text blocks, which every
    wire reads as text only. ``blocks`` itself when there is nothing to change."""
    for block in blocks:
        if block.get("type") in _SEARCH_BLOCKS:
            break
    else:
        return blocks
    return [_as_text(b) if b.get("type") in _SEARCH_BLOCKS else b for b in blocks]


def is_occ_search_block(block: Any) -> bool:
    """A search block (or a text block with citations) that occ minted: never for real Anthropic."""
    if not isinstance(block, dict):
        return False
    if str(block.get("id") or block.get("tool_use_id") or "").startswith(OCC_TOOL_ID_PREFIX):
        return True
    if block.get("type") == "web_search_tool_result":
        content = block.get("content")
        return isinstance(content, list) and any(
            isinstance(r, dict) and str(r.get("encrypted_content", "")).startswith(ENCRYPTED_PREFIX) for r in content)
    if block.get("type") == "text" and isinstance(block.get("citations"), list):
        return any(isinstance(c, dict) and str(c.get("encrypted_index", "")).startswith(ENCRYPTED_PREFIX)
                   for c in block["citations"])
    return False
