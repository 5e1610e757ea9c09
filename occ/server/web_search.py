"""A web search occ runs itself, for a model that cannot search (docs/web-search.md).

Once per request, before the first attempt that needs it: the query is the request's newest user
text, the backend (``web_search.backend``) is asked through the upstream client inside the SEARCH
DEADLINE (``web_search.timeout_ms``, a cancel scope of its own, under the request's), and the
answer is parsed sans-IO (:mod:`occ.translate.search_backends`). The model gets the results as text
in its request and the client gets them as Anthropic's ``server_tool_use`` + ``web_search_tool_result``
blocks ahead of the model's answer. A search that fails or times out is no failed request: the result
block carries Anthropic's ``web_search_tool_result_error`` and the model is told it could not search.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from occ.core.errors import OccError, UpstreamStatus
from occ.core.scrub import clip
from occ.observe.logs import get_logger
from occ.server.state import ServerState
from occ.translate.search_backends import parse_results, search_call
from occ.translate.web_search import (
    Source,
    error_blocks,
    search_blocks,
    search_options,
    search_query,
    with_search_context,
)

__all__ = ["BackendSearch", "backend_search", "with_search_blocks"]

log = get_logger("occ.server.web_search")

_BODY_LIMIT = 4 * 1024 * 1024


@attrs.frozen
class BackendSearch:
    """One search occ ran: what the model is given and what the client sees."""

    query: str
    #: None when the search failed
    sources: list[Source] | None
    error: str | None
    #: the ``server_tool_use`` and ``web_search_tool_result`` blocks
    blocks: list[dict[str, Any]]

    def request_for_model(self, request: dict[str, Any]) -> dict[str, Any]:
        return with_search_context(request, self.query, self.sources, self.error)


def _error_code(exc: OccError) -> str:
    if isinstance(exc, UpstreamStatus) and exc.upstream_status == 429:
        return "too_many_requests"
    return "unavailable"


async def backend_search(state: ServerState, request: dict[str, Any], request_id: str) -> BackendSearch:
    """Run the request's search through the configured backend (``state.config.web_search``)."""
    config = state.config.web_search
    options = search_options(request)
    query = search_query(request)
    if config is None:  # a reload removed the backend after routing
        return BackendSearch(query, None, "unavailable", error_blocks(query, "unavailable"))
    if not query:
        return BackendSearch(query, None, "invalid_tool_input", error_blocks(query, "invalid_tool_input"))
    if options is not None and options.max_uses == 0:
        return BackendSearch(query, None, "max_uses_exceeded", error_blocks(query, "max_uses_exceeded"))
    if state.upstream is None:
        raise RuntimeError("occ is not serving: the upstream client is closed")
    call = search_call(config.backend, config.url, config.api_key, query, options, config.max_results)
    raw: bytes | None = None
    failure = "unavailable"
    with trio.move_on_after(config.timeout_s) as deadline:  # SEARCH DEADLINE (web_search.timeout_ms)
        try:
            async with state.upstream.open(call.url, headers=call.headers, body=call.body,
                                           connect_timeout_s=config.timeout_s) as response:
                raw = await response.read_all(_BODY_LIMIT)
        except OccError as exc:
            failure = _error_code(exc)
            hint = " (SearXNG answers 403 until its settings enable the json format)" \
                if config.backend == "searxng" and isinstance(exc, UpstreamStatus) and exc.upstream_status == 403 \
                else ""
            log.warning("%s web search through %s failed: %s%s", request_id, config.backend,
                        clip(exc.message, 300), hint)
    if deadline.cancelled_caught:
        log.warning("%s web search through %s: no answer within %gs (web_search.timeout_ms)", request_id,
                    config.backend, config.timeout_s)
    sources: list[Source] | None = None
    if raw is not None:
        try:
            sources = parse_results(config.backend, raw, options, config.max_results)
        except OccError as exc:
            log.warning("%s web search through %s: %s", request_id, config.backend, exc.message)
    if sources is None:
        return BackendSearch(query, None, failure, error_blocks(query, failure))
    log.info("%s web search through %s: %d result(s)", request_id, config.backend, len(sources))
    return BackendSearch(query, sources, None, search_blocks(query, sources))


def with_search_blocks(message: dict[str, Any], search: BackendSearch) -> dict[str, Any]:
    """A whole answer with the search ahead of the model's blocks, counted in its usage."""
    message["content"] = [*search.blocks, *(message.get("content") or [])]
    usage = message.get("usage")
    if isinstance(usage, dict):
        usage["server_tool_use"] = {"web_search_requests": 1, "web_fetch_requests": 0}
    return message
