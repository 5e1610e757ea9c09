"""``/ui`` in a real browser: Playwright drives the system's Chromium (never Playwright's own
download) against a running occ, after real requests through the SDK. The breaker table and the
usage chart must show those requests, names from the config must appear as text (never as HTML),
and the page must log no console error (a Content Security Policy violation is one).

Skipped, with the reason, when Playwright or a Chromium binary is missing (``.ci/run`` installs
Debian's ``chromium``; ``$OCC_CHROMIUM`` points at another binary; ``$OCC_UI_SCREENSHOT`` saves a
screenshot for a human to look at).
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import anthropic
import pytest
import trio
from support.fake_upstream import Reply, sse
from support.shapes import USER, chunk, completion, usage_chunk
from support.stack import make_config

CHAT = "/v1/chat/completions"
KEY = "browser-client-key"
#: A model id with markup in it: the page must show it as these characters.
ODD_MODEL = "model-<b>bold</b>&amp;"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def _chromium() -> str:
    candidates = [os.environ.get("OCC_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                  shutil.which("chromium-browser")]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    pytest.skip("no Chromium binary (apt-get install chromium, or set OCC_CHROMIUM)")


def _drive(url: str, chromium: str, screenshot: str | None) -> dict[str, Any]:
    """Runs in a thread: Playwright's sync API has its own event loop."""
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(http_credentials={"username": "me", "password": KEY},
                                          viewport={"width": 1100, "height": 900})
            page = context.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
            response = page.goto(f"{url}/ui")
            assert response is not None and response.status == 200
            page.wait_for_selector("body[data-loaded=yes]", timeout=15_000)
            page.wait_for_selector("#chart svg g.bar", timeout=15_000)
            out = {
                "breakers": page.eval_on_selector_all(
                    "#breakers-body tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"),
                "bars": page.eval_on_selector_all(
                    "#chart g.bar", "gs => gs.map(g => ({window: g.dataset.window, model: g.dataset.model, "
                    "width: Number(g.querySelector('rect').getAttribute('width')), "
                    "text: g.querySelector('text.value').textContent}))"),
                "recent": page.eval_on_selector_all(
                    "#recent-body tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"),
                "bold_elements": page.eval_on_selector_all("b", "bs => bs.map(b => b.textContent)"),
                "config": page.text_content("#config"),
                "today": page.text_content("#today"),
            }
            if screenshot:
                page.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()
    out["problems"] = problems
    return out


async def test_ui_renders_the_requests_it_was_sent(fake, start_occ):
    pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
    chromium = _chromium()
    fake.queue(CHAT,
               Reply(body=completion({"content": "one"}, prompt=1200, completion=30)),
               Reply(chunks=sse(chunk({"content": "two"}), chunk(finish="stop"), usage_chunk(800, 50, 300))),
               Reply(status=500, body={"error": {"message": "upstream broke"}}),
               Reply(body=completion({"content": "four"}, prompt=400, completion=20)))
    config = make_config(
        fake, client_api_keys=[KEY],
        models={"default": {"provider": "fake", "model_id": "model-a"}},
        fallbacks={"default": [{"provider": "fake", "model_id": ODD_MODEL}]},
        prices={"fake/model-a": {"input": 3.0, "output": 15.0, "cache_read": 0.3}},
        usage={"flush_interval_ms": 50}, circuit_breaker={"failure_threshold": 1, "cooldown_ms": 600_000})
    url = await start_occ(config)
    client = anthropic.AsyncAnthropic(base_url=url, api_key=KEY, max_retries=0)
    await client.messages.create(model="claude-x", max_tokens=50, messages=USER)
    async with client.messages.stream(model="claude-x", max_tokens=50, messages=USER) as stream:
        await stream.get_final_message()
    await client.messages.create(model="claude-x", max_tokens=50, messages=USER)  # model-a 500, then the odd one

    seen = await trio.to_thread.run_sync(_drive, url, chromium, os.environ.get("OCC_UI_SCREENSHOT"))

    assert [] == seen["problems"]
    breakers = {row[0]: row for row in seen["breakers"]}
    assert {"fake/model-a", f"fake/{ODD_MODEL}"} <= set(breakers)
    assert breakers["fake/model-a"][1].startswith("open ")  # its 500 opened it, for 600 s
    assert ["3", "1"] == breakers["fake/model-a"][2:4]  # 3 attempts, one failed
    assert ["closed", "1", "0"] == breakers[f"fake/{ODD_MODEL}"][1:4]
    bars = {(b["window"], b["model"]): b for b in seen["bars"]}
    for window in ("last 24 hours", "last 7 days"):
        a = bars[(window, "fake/model-a")]
        odd = bars[(window, f"fake/{ODD_MODEL}")]
        # (1200+30) + (500+50+300) tokens; (1200*3 + 30*15 + 500*3 + 50*15 + 300*0.3) / 1e6 USD
        assert "2 req, 2,080 tok, $0.0064" == a["text"]
        assert "1 req, 420 tok, -" == odd["text"]  # no price: no cost, not $0
        assert a["width"] > odd["width"] > 0
    assert 3 == len(seen["recent"])
    assert [f"fake/{ODD_MODEL}", "fake/model-a", "fake/model-a"] == [r[2] for r in seen["recent"]]
    assert ["ok"] * 3 == [r[3] for r in seen["recent"]]
    assert "bold" not in seen["bold_elements"]  # the model id's markup stayed text
    assert "test" == seen["config"]
    assert seen["today"].startswith("3 requests, ")
