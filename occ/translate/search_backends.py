"""The search APIs occ runs a web search through for a model that cannot search itself, sans-IO.

Each backend is a request builder (URL, headers, body) and a parser of its JSON answer into
:class:`~occ.translate.web_search.Source` values; the I/O, with its own deadline, is in
``occ/server/web_search.py``. Both use ``POST`` (occ's upstream client speaks nothing else):

* SearXNG (self-hosted, no key): ``POST /search`` with the form ``q=...&format=json``; SearXNG reads
  form and query parameters alike, and answers ``{"results": [{"url", "title", "content",
  "publishedDate"?...}]}`` when its settings enable the ``json`` format (``search.formats``), else 403.
* Tavily (hosted): ``POST https://api.tavily.com/search`` with ``Authorization: Bearer <key>`` and
  ``{"query", "max_results", "include_domains", "exclude_domains"}``; it answers ``{"results":
  [{"title", "url", "content", "score", "published_date"?}]}``.

The request's ``allowed_domains``/``blocked_domains`` go to the backend where it takes them (Tavily;
for SearXNG as ``site:`` words in the query, which its engines honour) and are enforced on the results
in any case, so a blocked domain never reaches the model.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode, urlsplit

import attrs

from occ.core.errors import UpstreamProtocolError
from occ.core.jsonfast import JSONDecodeError, dumps, loads
from occ.translate.web_search import SearchOptions, Source

__all__ = ["SearchCall", "allowed", "parse_results", "search_call"]

_SNIPPET_LIMIT = 600


@attrs.frozen
class SearchCall:
    """One backend request: where, with which headers (a key among them), what body."""

    url: str
    headers: dict[str, str] = attrs.field(repr=False)
    body: bytes


def search_call(backend: str, base_url: str, api_key: str | None, query: str, options: SearchOptions | None,
                max_results: int) -> SearchCall:
    allow = options.allowed_domains if options else ()
    block = options.blocked_domains if options else ()
    if backend == "searxng":
        words = [query]
        if allow:
            words.append(" OR ".join(f"site:{d}" for d in allow))
        words += [f"-site:{d}" for d in block]
        form = {"q": " ".join(words), "format": "json"}
        return SearchCall(f"{base_url}/search", {"content-type": "application/x-www-form-urlencoded",
                                                 "accept": "application/json"}, urlencode(form).encode())
    if backend == "tavily":
        body: dict[str, Any] = {"query": query, "max_results": max_results, "search_depth": "basic"}
        if allow:
            body["include_domains"] = list(allow)
        if block:
            body["exclude_domains"] = list(block)
        headers = {"content-type": "application/json", "accept": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return SearchCall(f"{base_url}/search", headers, dumps(body))
    raise ValueError(f"unknown search backend {backend!r}")


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def _matches(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def allowed(url: str, options: SearchOptions | None) -> bool:
    """Whether ``url`` passes the request's domain filters (a domain covers its subdomains)."""
    if options is None:
        return True
    host = _host(url)
    if options.allowed_domains and not any(_matches(host, d) for d in options.allowed_domains):
        return False
    return not any(_matches(host, d) for d in options.blocked_domains)


def parse_results(backend: str, raw: bytes, options: SearchOptions | None, max_results: int) -> list[Source]:
    """The backend's answer as sources, filtered by the request's domains, at most ``max_results``.

    Raises:
        UpstreamProtocolError: the answer is not the backend's JSON.
    """
    try:
        data = loads(raw)
    except JSONDecodeError:
        raise UpstreamProtocolError(f"the {backend} search backend did not answer JSON") from None
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list):
        raise UpstreamProtocolError(f"the {backend} search backend's answer has no results list")
    age_key = "publishedDate" if backend == "searxng" else "published_date"
    sources: list[Source] = []
    seen: set[str] = set()
    for result in results:
        if not isinstance(result, dict):
            continue
        url = result.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or url in seen:
            continue
        if not allowed(url, options):
            continue
        seen.add(url)
        age = result.get(age_key)
        snippet = " ".join(str(result.get("content") or "").split())
        sources.append(Source(url=url, title=" ".join(str(result.get("title") or "").split()),
                              page_age=age if isinstance(age, str) and age else None,
                              snippet=snippet[:_SNIPPET_LIMIT]))
        if len(sources) >= max_results:
            break
    return sources
