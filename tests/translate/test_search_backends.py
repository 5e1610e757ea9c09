"""The search backends, sans-IO: the request each one is sent, and its answer read."""

from __future__ import annotations

import json
import urllib.parse

import pytest
from support import search_answers as S

from occ.core.errors import UpstreamProtocolError
from occ.translate.search_backends import allowed, parse_results, search_call
from occ.translate.web_search import SearchOptions, search_query, with_search_context

BLOCK = SearchOptions(tool_type="web_search_20250305", blocked_domains=("spam.example",))
ALLOW = SearchOptions(tool_type="web_search_20250305", allowed_domains=("rust-lang.org", "docs.rs"))


def test_searxng_request():
    call = search_call("searxng", "http://127.0.0.1:8888", None, "rust 1.80", ALLOW, 5)
    assert call.url == "http://127.0.0.1:8888/search"
    assert call.headers["content-type"] == "application/x-www-form-urlencoded"
    form = urllib.parse.parse_qs(call.body.decode())
    assert form == {"q": ["rust 1.80 site:rust-lang.org OR site:docs.rs"], "format": ["json"]}


def test_tavily_request_carries_the_key_in_a_header_only():
    call = search_call("tavily", "https://api.tavily.com", "tvly-key", "q", BLOCK, 3)
    assert call.headers["authorization"] == "Bearer tvly-key"
    assert json.loads(call.body) == {"query": "q", "max_results": 3, "search_depth": "basic",
                                     "exclude_domains": ["spam.example"]}
    assert "tvly-key" not in repr(call)


def test_searxng_answer_filtered_and_cut():
    sources = parse_results("searxng", S.searxng_answer(), BLOCK, 5)
    assert [s.url for s in sources] == [S.URL_1, S.URL_2]
    assert sources[0].page_age == "2024-07-25T00:00:00" and sources[0].snippet.startswith("The Rust team")
    assert [s.url for s in parse_results("searxng", S.searxng_answer(), None, 1)] == [S.URL_1]
    assert [s.url for s in parse_results("searxng", S.searxng_answer(), ALLOW, 5)] == [S.URL_1, S.URL_2]


def test_tavily_answer():
    sources = parse_results("tavily", S.tavily_answer(), None, 5)
    assert [(s.url, s.title, s.page_age) for s in sources] == [
        (S.URL_1, S.TITLE_1, "Thu, 25 Jul 2024 00:00:00 GMT"), (S.URL_2, S.TITLE_2, None)]


@pytest.mark.parametrize("raw", [b"<html>Forbidden</html>", b'{"results": null}', b"[]"])
def test_a_broken_answer_is_a_protocol_error(raw):
    with pytest.raises(UpstreamProtocolError):
        parse_results("searxng", raw, None, 5)


def test_domains_cover_their_subdomains_only():
    assert allowed("https://blog.rust-lang.org/x", ALLOW) and allowed("https://docs.rs/", ALLOW)
    assert not allowed("https://notrust-lang.org/", ALLOW) and not allowed("https://evil.example/?docs.rs", ALLOW)
    assert not allowed("https://a.spam.example/", BLOCK) and allowed("https://spam.example.org/", BLOCK)


def test_the_query_is_the_newest_user_text():
    request = {"messages": [{"role": "user", "content": "old"}, {"role": "assistant", "content": "x"},
                            {"role": "user", "content": [
                                {"type": "text", "text": "<system-reminder>ctx</system-reminder>"},
                                {"type": "text", "text": "Perform a web search for the query:   rust\n 1.80"}]}]}
    assert search_query(request) == "rust 1.80"


def test_results_go_to_the_model_as_text_without_the_tool():
    request = {"tools": [{"type": "web_search_20250305", "name": "web_search"}],
               "tool_choice": {"type": "tool", "name": "web_search"},
               "messages": [{"role": "user", "content": "Perform a web search for the query: q"}]}
    sources = parse_results("searxng", S.searxng_answer(), BLOCK, 5)
    out = with_search_context(request, "q", sources)
    assert "tools" not in out and "tool_choice" not in out
    note = out["messages"][-1]["content"][-1]["text"]
    assert S.URL_1 in note and "Rust 1.80.0" in note and "spam" not in note
    failed = with_search_context(request, "q", None, "unavailable")
    assert "failed (unavailable)" in failed["messages"][-1]["content"][-1]["text"]
