"""The ``web_search`` section and the models' ``web_search`` key: read, checked, and the key kept secret."""

from __future__ import annotations

import pytest

from occ.config.parse import parse_config
from occ.core.errors import ConfigError

KEY = "tvly-SECRET-abcdef0123456789"


def load(**top):
    return parse_config({"api_key": "k", "models": {"default": {"model_id": "glm-5"}}, **top}, env={}, source="t")


def test_searxng_and_tavily():
    searx = load(web_search={"backend": "searxng", "url": "http://127.0.0.1:8888/", "timeout_ms": 2500}).web_search
    assert (searx.backend, searx.url, searx.max_results, searx.timeout_s) == ("searxng", "http://127.0.0.1:8888", 5,
                                                                              2.5)
    tavily = load(web_search={"backend": "tavily", "api_key": KEY, "max_results": 8}).web_search
    assert (tavily.url, tavily.max_results) == ("https://api.tavily.com", 8)
    assert KEY not in repr(tavily)
    assert KEY in load(web_search={"backend": "tavily", "api_key": KEY}).secrets()


def test_the_key_comes_from_the_environment():
    config = parse_config({"api_key": "k", "models": {"default": {"model_id": "glm-5"}},
                           "web_search": {"backend": "tavily", "api_key": "${TAVILY_API_KEY}"}},
                          env={"TAVILY_API_KEY": KEY}, source="t")
    assert config.web_search.api_key == KEY


@pytest.mark.parametrize(("section", "where"), [
    ({"backend": "bing"}, "web_search.backend"),
    ({"url": "http://x"}, "web_search.backend"),
    ({"backend": "searxng"}, "web_search.url"),
    ({"backend": "searxng", "url": "ftp://x"}, "web_search.url"),
    ({"backend": "tavily"}, "web_search.api_key"),
    ({"backend": "searxng", "url": "http://x", "max_results": 50}, "web_search.max_results"),
    ({"backend": "searxng", "url": "http://x", "timeout_ms": 0}, "web_search.timeout_ms"),
])
def test_problems_name_their_key(section, where):
    with pytest.raises(ConfigError) as caught:
        load(web_search=section)
    assert where in str(caught.value)


def test_an_unknown_key_is_a_warning():
    config = load(web_search={"backend": "searxng", "url": "http://x", "colour": "red"})
    assert any("web_search.colour" in w for w in config.warnings)


def test_a_bad_section_never_shows_its_key():
    with pytest.raises(ConfigError) as caught:
        load(web_search={"backend": "tavily", "api_key": KEY, "max_results": 99, "url": KEY})
    assert KEY not in str(caught.value)


def test_a_models_web_search_mode():
    config = load(models={"default": {"model_id": "glm-5", "web_search": "backend"}})
    assert config.models["default"].web_search == "backend"
    with pytest.raises(ConfigError) as caught:
        load(models={"default": {"model_id": "glm-5", "web_search": "yes"}})
    assert "models.default.web_search" in str(caught.value)


def test_web_search_is_a_scenario():
    config = load(models={"default": {"model_id": "glm-5"}, "web_search": {"model_id": "kimi-k2.6"}})
    assert config.models["web_search"].model_id == "kimi-k2.6"
