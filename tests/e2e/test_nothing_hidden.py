"""Nothing hidden, through real ``occ serve``: a ledger on a read-only folder says so at start-up, in
``/health`` (degraded), ``/status``'s notices, ``occ status``, ``/ui`` and ``occ usage`` (exit 1), and
its rows reach a fallback file at shutdown, named in the log and counted by ``occ usage``; a failed hot
reload (invalid JSON, a bad value, a deleted file) shows in the same places until a good one succeeds."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import anthropic
import httpx
import pytest
import trio
from support.fake_upstream import Reply
from support.readonly import read_only_dir
from support.shapes import USER, completion
from support.stack import ROOT, fake_provider

CHAT = "/v1/chat/completions"


def _config(tmp_path: Path, fake, ledger: str, **extra) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "host": "127.0.0.1", "port": 0, "shutdown_grace_ms": 2000,
        "providers": {"fake": fake_provider(fake)},
        "models": {"default": {"provider": "fake", "model_id": "model-a"}},
        "usage": {"path": ledger, "flush_interval_ms": 100},
        **extra,
    }))
    return path


class Serve:
    """``occ serve`` in a subprocess; its log (stderr) goes to a file the test reads."""

    def __init__(self, process: trio.Process, url: str, log: Path) -> None:
        self.process, self.url, self.log = process, url, log

    @classmethod
    async def start(cls, config: Path, log: Path, env: dict[str, str], *extra: str) -> Serve:
        stderr = open(log, "wb")
        try:
            process = await trio.lowlevel.open_process(
                [sys.executable, "-m", "occ.cli.main", "serve", "--config", str(config), *extra],
                stdout=subprocess.PIPE, stderr=stderr, env=env)
        finally:
            stderr.close()
        text = b""
        with trio.fail_after(30):
            while b" \xe2\x80\x94" not in text.partition(b"listening on ")[2]:
                chunk = await process.stdout.receive_some()
                if not chunk:
                    raise AssertionError(f"occ serve exited: {text!r} {log.read_text()}")
                text += chunk
        return cls(process, text.split(b"listening on ", 1)[1].split(b" ", 1)[0].decode(), log)

    async def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            code = await self.process.wait()
        await self.process.stdout.aclose()
        return code

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_STATE_HOME": str(tmp_path / "state")}
    env.pop("OCC_CONFIG", None)
    return env


def _occ(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "occ.cli.main", *args], capture_output=True, text=True, timeout=60,
                          env=env)


async def _until(get, check, what: str, seconds: float = 20):
    with trio.fail_after(seconds):
        while True:
            value = await get()
            if check(value):
                return value
            await trio.sleep(0.1)


async def test_a_read_only_ledger_says_so_everywhere_and_its_rows_survive_shutdown(fake, tmp_path):
    fake.default(CHAT, Reply(body=completion({"content": "ok"}, prompt=30, completion=4)))
    env = _env(tmp_path)
    with read_only_dir(tmp_path / "ro") as ro:
        ledger = str(ro / "usage.sqlite")
        config = _config(tmp_path, fake, ledger)
        server = await Serve.start(config, tmp_path / "occ.log", env)
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                async def health():
                    return (await http.get("/health")).json()

                body = await _until(health, lambda b: b["status"] != "ok", "degraded")
                assert body["status"].startswith("degraded: ") and "cannot be written" in body["status"]
                assert any(ledger in p for p in body["problems"])
                assert re.search(r"usage ledger .*usage\.sqlite cannot be written", server.log.read_text())

                client = anthropic.AsyncAnthropic(base_url=server.url, api_key="x", max_retries=0)
                for _ in range(3):
                    await client.messages.create(model="claude-x", max_tokens=20, messages=USER)
                await client.close()

                status = (await http.get("/status")).json()
                assert any("cannot be written" in n and ledger in n for n in status["notices"])
                ui = (await http.get("/ui/data.json")).json()
                assert any("cannot be written" in n for n in ui["status"]["notices"])
                page = (await http.get("/ui")).text
                assert 'id="notices"' in page and 's.notices' in page  # the page draws them (see below)
            shown = await trio.to_thread.run_sync(lambda: _occ(env, "status", "--url", server.url))
            assert shown.returncode == 0, shown.stderr
            assert any(line.startswith("! usage ledger") and "cannot be written" in line
                       for line in shown.stdout.splitlines()), shown.stdout
            usage = await trio.to_thread.run_sync(lambda: _occ(env, "usage", "--config", str(config), "--json"))
            assert usage.returncode == 1
            assert "cannot be written" in usage.stderr
            assert 0 == await server.stop()
        finally:
            server.kill()
        log = server.log.read_text()
        assert "rows could not be written" not in log or "they are in" in log
        saved = re.search(r"3 rows could not be written before shutdown; they are in (\S+)", log)
        assert saved, log
        lines = Path(saved.group(1)).read_text().splitlines()
        assert json.loads(lines[0])["ledger"] == ledger
        assert [json.loads(line)["model"] for line in lines[1:]] == ["fake/model-a"] * 3
        assert str(tmp_path / "state") in saved.group(1)  # the read-only folder did not take it

        # occ usage counts the saved rows, and still fails: the ledger itself cannot be written
        usage = _occ(env, "usage", "--config", str(config), "--json", "--since", "1d")
        assert usage.returncode == 1
        [row] = json.loads(usage.stdout)
        assert (row["model"], row["requests"], row["input_tokens"], row["output_tokens"]) == ("fake/model-a", 3, 90, 12)
        assert saved.group(1) in usage.stderr
        table = _occ(env, "usage", "--config", str(config))
        assert table.returncode == 1 and "no requests in this period" not in table.stdout


async def test_ui_draws_the_notices(fake, tmp_path):
    pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
    from test_status_page import CHROMIUM_ARGS, _chromium

    chromium = _chromium()
    env = _env(tmp_path)
    with read_only_dir(tmp_path / "ro") as ro:
        server = await Serve.start(_config(tmp_path, fake, str(ro / "usage.sqlite")), tmp_path / "occ.log", env)
        try:
            def drive() -> list[str]:
                from playwright.sync_api import sync_playwright

                with sync_playwright() as p:
                    browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
                    try:
                        page = browser.new_page()
                        page.goto(f"{server.url}/ui")
                        page.wait_for_selector("#notices li", timeout=15_000)
                        return page.eval_on_selector_all("#notices li", "items => items.map(i => i.textContent)")
                    finally:
                        browser.close()

            notices = await trio.to_thread.run_sync(drive)
            assert any("cannot be written" in n for n in notices), notices
            assert 0 == await server.stop()
        finally:
            server.kill()


async def test_a_failed_reload_shows_until_a_good_one(fake, tmp_path):
    fake.default(CHAT, Reply(body=completion({"content": "ok"}, prompt=30, completion=4)))
    env = _env(tmp_path)
    config = _config(tmp_path, fake, str(tmp_path / "usage.sqlite"), hot_reload=True)
    good = config.read_text()
    server = await Serve.start(config, tmp_path / "occ.log", env)
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            async def health():
                return (await http.get("/health")).json()

            assert "ok" == (await health())["status"]
            broken = [
                ("{not json", "invalid JSON"),
                (good.replace('"host"', '"circuit_breaker": {"failure_threshold": 0}, "host"'),
                 "circuit_breaker.failure_threshold"),
                (None, "does not exist"),
            ]
            for text, needle in broken:
                if text is None:
                    config.unlink()
                else:
                    config.write_text(text)
                body = await _until(health, lambda b, n=needle: any(n in p for p in b["problems"]), needle)
                assert body["status"].startswith("degraded: config reload failed")
                notices = (await http.get("/status")).json()["notices"]
                assert any("config reload failed" in n and needle in n for n in notices)
                ui = (await http.get("/ui/data.json")).json()
                assert any(needle in n for n in ui["status"]["notices"])
                shown = await trio.to_thread.run_sync(lambda: _occ(env, "status", "--url", server.url))
                assert any(line.startswith("! config reload failed") for line in shown.stdout.splitlines())
                # the old config still serves
                client = anthropic.AsyncAnthropic(base_url=server.url, api_key="x", max_retries=0)
                assert "ok" == (await client.messages.create(model="claude-x", max_tokens=20,
                                                             messages=USER)).content[0].text
                await client.close()
            config.write_text(good.replace('"flush_interval_ms": 100', '"flush_interval_ms": 200'))
            body = await _until(health, lambda b: b["status"] == "ok", "ok again")
            assert [] == body["problems"]
            assert [] == [n for n in (await http.get("/status")).json()["notices"] if "reload" in n]
            with read_only_dir(tmp_path / "ro") as ro:  # a reload that moves the ledger somewhere unwritable
                config.write_text(good.replace(str(tmp_path / "usage.sqlite"), str(ro / "usage.sqlite")))
                body = await _until(health, lambda b: any("cannot be written" in p for p in b["problems"]),
                                    "the moved ledger probed, before any request")
        assert 0 == await server.stop()
    finally:
        server.kill()


async def test_every_worker_says_so_and_keeps_its_rows(fake, tmp_path):
    """``--workers 2``: whichever worker answers reports the read-only ledger and a failed reload, and
    at SIGTERM each writes its own rows to its own fallback file; ``occ usage`` counts them all."""
    fake.default(CHAT, Reply(body=completion({"content": "ok"}, prompt=30, completion=4)))
    env = _env(tmp_path)
    with read_only_dir(tmp_path / "ro") as ro:
        ledger = str(ro / "usage.sqlite")
        config = _config(tmp_path, fake, ledger, hot_reload=True)
        good = config.read_text()
        server = await Serve.start(config, tmp_path / "occ.log", env, "--workers", "2")
        try:
            async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
                async def health():
                    # a new connection each time, so both workers get asked
                    async with httpx.AsyncClient(base_url=server.url, timeout=10) as fresh:
                        return (await fresh.get("/health")).json()

                async def all_say(needle: str) -> None:
                    with trio.fail_after(30):
                        streak = 0
                        while streak < 10:  # ten answers in a row, from whichever workers took them
                            body = await health()
                            streak = streak + 1 if any(needle in p for p in body["problems"]) else 0
                            await trio.sleep(0.05)

                await all_say("cannot be written")
                client = anthropic.AsyncAnthropic(base_url=server.url, api_key="x", max_retries=0)
                for _ in range(6):
                    await client.messages.create(model="claude-x", max_tokens=20, messages=USER)
                await client.close()
                config.write_text("{broken")
                await all_say("config reload failed")
                config.write_text(good)
                with trio.fail_after(30):
                    while any("config reload failed" in p for p in (await health())["problems"]):
                        await trio.sleep(0.05)
                assert (await http.get("/status")).status_code == 200
            assert 0 == await server.stop()
        finally:
            server.kill()
        log = server.log.read_text()
        saved = re.findall(r"(\d+) rows could not be written before shutdown; they are in (\S+)", log)
        assert sum(int(n) for n, _ in saved) == 6, log
        assert all(str(tmp_path / "state") in path for _, path in saved)
        usage = _occ(env, "usage", "--config", str(config), "--json", "--since", "1d")
        assert usage.returncode == 1
        [row] = json.loads(usage.stdout)
        assert (row["requests"], row["input_tokens"]) == (6, 180)
