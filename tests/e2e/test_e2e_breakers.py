"""Circuit breakers never lock a user out, end to end: panic mode when every model of the chain is open,
Retry-After capped, breakers cleared by a reload or ``occ reset-breakers``, and a parse failure that stays
out of the breaker. The real server on hypercorn, the fake upstream on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

import httpx
import trio
from support.fake_upstream import Reply
from support.shapes import USER
from support.stack import ROOT, by_model, chain, fake_provider, make_config, ok_stream, wait_for_log

import occ
from occ.server.reload import reload_now

CHAT = "/v1/chat/completions"
RATE_LIMITED = Reply(status=429, body={"error": {"message": "slow down", "type": "rate_limit_error"}})


def models_tried(fake) -> list[str]:
    return [s.json["model"] for s in fake.requests(CHAT)]


def body(stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "max_tokens": 50, "stream": stream, "messages": USER, **extra}


async def post(url: str, payload: dict[str, Any], **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(f"{url}/v1/messages", json=payload, **kwargs)


async def get(url: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.get(f"{url}{path}")


async def test_a_single_model_after_three_429s_is_asked_again_not_refused(fake, start_occ, caplog):
    """The issue's first finding: three 429s used to lock a one-model setup out for 30 s with instant 529s.
    Now the open breaker is logged, the next request still reaches the upstream (panic mode), and its success
    closes the breaker."""
    caplog.set_level(logging.INFO)
    fake.queue(CHAT, RATE_LIMITED, RATE_LIMITED, RATE_LIMITED)
    fake.default(CHAT, ok_stream("back"))
    app = occ.create_app(make_config(fake))  # the defaults: threshold 3, cooldown 30 s
    url = await start_occ(app.state.config, app=app)
    for _ in range(3):
        assert (await post(url, body())).status_code == 429
    assert app.state.breakers.state(("fake", "model-a"), app.state.board.now()) == "open"
    assert any("breaker for fake/model-a opened" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)

    for stream in (False, True):
        response = await post(url, body(stream=stream))
        assert response.status_code == 200, response.text
        assert "back" in response.text
    assert len(fake.requests(CHAT)) == 5
    panic = [r for r in caplog.records if "panic mode" in r.getMessage() and r.name == "occ.breaker"]
    assert len(panic) == 1 and panic[0].levelno == logging.WARNING
    assert any("breaker for fake/model-a closed" in r.getMessage() and r.levelno == logging.INFO
               for r in caplog.records)

    status = (await get(url, "/status")).json()["models"]["fake/model-a"]
    assert (status["breaker"], status["breaker_opened"], status["breaker_closed"], status["panic_routed"]) == \
        ("closed", 1, 1, 1)
    assert status["breaker_last_opened_at"] and status["breaker_last_closed_at"]
    metrics = (await get(url, "/metrics")).text
    assert 'occ_panic_routed_total{model="fake/model-a"} 1.0' in metrics
    assert 'occ_breaker_transitions_total{model="fake/model-a",to="opened"} 1.0' in metrics
    assert 'occ_breaker_transitions_total{model="fake/model-a",to="closed"} 1.0' in metrics
    assert 'occ_upstream_attempts_total{model="fake/model-a"} 5.0' in metrics  # what the upstream received


async def test_every_model_open_tries_them_anyway_least_recently_failed_first(fake, start_occ):
    """Two models, both open: the one that failed longer ago is asked first, and when it fails too the other
    is asked; the client gets the upstream's own verdict, never a 529 no upstream saw."""
    fake.default(CHAT, by_model({"model-a": RATE_LIMITED, "model-b": RATE_LIMITED}))
    config = make_config(fake, **chain("model-a", "model-b"), circuit_breaker={"failure_threshold": 1})
    app = occ.create_app(config)
    url = await start_occ(config, app=app)
    board = app.state.board
    board.record_failure(("fake", "model-b"), None, "test")  # model-b failed first...
    await trio.sleep(0.01)
    board.record_failure(("fake", "model-a"), None, "test")  # ...then model-a
    response = await post(url, body())
    assert response.status_code == 429, response.text
    assert models_tried(fake) == ["model-b", "model-a"]

    fake.default(CHAT, by_model({"model-a": ok_stream("a"), "model-b": RATE_LIMITED}))
    response = await post(url, body())  # model-b failed least recently again (it went first)
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "a"
    assert models_tried(fake)[2:] == ["model-b", "model-a"]


async def test_an_open_model_is_skipped_while_a_usable_one_is_left(fake, start_occ):
    fake.default(CHAT, by_model({"model-a": ok_stream("a"), "model-b": ok_stream("b")}))
    config = make_config(fake, **chain("model-a", "model-b"))
    app = occ.create_app(config)
    url = await start_occ(config, app=app)
    for _ in range(3):
        app.state.board.record_failure(("fake", "model-a"), None, "test")
    response = await post(url, body())
    assert response.json()["content"][0]["text"] == "b"
    assert models_tried(fake) == ["model-b"]


async def test_panic_mode_sends_one_probe_at_a_time_per_model(fake, start_occ):
    """Concurrent requests on an open single-model chain: the first probes, the others wait for its verdict
    (here a success, which closes the breaker) and then go; none is refused and none overlaps the probe."""
    in_flight_at_arrival: list[int] = []

    def answer(seen):
        in_flight_at_arrival.append(sum(1 for s in fake.requests(CHAT) if not s.finished))  # itself included
        # the probe takes 0.5 s; the two after it 2 s each, so they overlap even on a loaded machine
        return Reply(body=ok_stream("ok")(seen).body, delay_s=0.5 if len(in_flight_at_arrival) == 1 else 2.0)

    fake.default(CHAT, answer)
    config = make_config(fake, circuit_breaker={"failure_threshold": 1})
    app = occ.create_app(config)
    url = await start_occ(config, app=app)
    app.state.board.record_failure(("fake", "model-a"), None, "test")
    statuses: list[int] = []

    async def one() -> None:
        statuses.append((await post(url, body())).status_code)

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(one)
    assert statuses == [200, 200, 200]
    starts = sorted(s.started for s in fake.requests(CHAT))
    assert starts[1] - starts[0] >= 0.4, "a second request went out while the probe was in flight"
    # after the probe closed the breaker the other two no longer wait for a verdict: they overlap
    # (shown by what was in flight when each arrived, not by a clock)
    assert in_flight_at_arrival[0] == 1 and 2 in in_flight_at_arrival[1:], in_flight_at_arrival
    metrics = (await get(url, "/metrics")).text
    assert 'occ_panic_routed_total{model="fake/model-a"} 1.0' in metrics


async def test_retry_after_is_honoured_up_to_the_cap(fake, start_occ, caplog):
    caplog.set_level(logging.WARNING)
    fake.queue(CHAT, Reply(status=429, headers={"retry-after": "86400"},
                           body={"error": {"message": "come back tomorrow"}}))
    fake.default(CHAT, ok_stream("fine"))
    config = make_config(fake, **chain("model-a", "model-b"),
                         circuit_breaker={"failure_threshold": 1, "cooldown_ms": 500, "max_retry_after_ms": 2000})
    app = occ.create_app(config)
    url = await start_occ(config, app=app)
    assert (await post(url, body())).status_code == 200  # model-b answered
    info = (await get(url, "/status")).json()["models"]["fake/model-a"]
    assert info["breaker"] == "open" and 0 < info["reopens_in_s"] <= 2.0  # capped: not tomorrow
    assert any("capped at 2s" in r.getMessage() for r in caplog.records)
    await trio.sleep(2.1)
    assert (await post(url, body())).status_code == 200
    assert models_tried(fake)[-1] == "model-a"  # the half-open probe went to model-a after the cap, not a day


async def test_a_reload_closes_every_breaker(fake, start_occ, tmp_path, caplog):
    caplog.set_level(logging.INFO)

    path = tmp_path / "c.json"
    config = make_config(fake, **chain("model-a", "model-b"))
    path.write_text(json.dumps({"port": 0, "providers": {"fake": fake_provider(fake)},
                                "models": {"default": {"provider": "fake", "model_id": "model-a"}}}))
    app = occ.create_app(config, config_path=str(path))
    await start_occ(config, app=app)
    for _ in range(3):
        app.state.board.record_failure(("fake", "model-a"), 86400, "test")
    assert app.state.breakers.snapshot(app.state.board.now())["fake/model-a"]["state"] == "open"
    reload_now(app.state)
    assert app.state.breakers.snapshot(app.state.board.now()) == {}
    assert any("breaker for fake/model-a closed: the config was reloaded" in r.getMessage()
               for r in caplog.records)


async def test_occ_reset_breakers_closes_one_model_through_the_running_server(fake, start_occ, tmp_path):
    fake.default(CHAT, ok_stream("ok"))
    config = make_config(fake, **chain("model-a", "model-b"), client_api_keys=["client-secret-1-abcdef"])
    app = occ.create_app(config)
    url = await start_occ(config, app=app)
    for key in (("fake", "model-a"), ("fake", "model-b")):
        for _ in range(3):
            app.state.board.record_failure(key, None, "test")

    def cli(*args: str, key: str | None = None) -> Any:
        env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": ROOT}
        env.pop("OCC_CLIENT_KEY", None)
        if key:
            env["OCC_CLIENT_KEY"] = key
        return trio.run_process([sys.executable, "-m", "occ.cli.main", "reset-breakers", *args, "--url", url],
                                capture_stdout=True, capture_stderr=True, check=False, env=env, cwd=ROOT)

    refused = await cli("fake/model-a")
    assert refused.returncode == 1 and b"client key" in refused.stderr
    unknown = await cli("no-such-model", key="client-secret-1-abcdef")
    assert unknown.returncode == 1 and b"no configured model" in unknown.stderr
    done = await cli("model-a", key="client-secret-1-abcdef")
    assert done.returncode == 0, done.stderr
    assert b"fake/model-a" in done.stdout
    snapshot = app.state.breakers.snapshot(app.state.board.now())
    assert "fake/model-a" not in snapshot and snapshot["fake/model-b"]["state"] == "open"
    everything = await cli("all", key="client-secret-1-abcdef")
    assert everything.returncode == 0 and app.state.breakers.snapshot(app.state.board.now()) == {}


async def test_a_parse_failure_moves_on_but_does_not_open_the_breaker_for_streams(fake, start_occ, caplog):
    """The decision documented in docs/configuration.md: non-streaming answers occ cannot parse send the
    request to the next model, are logged as parse_error, and leave model-a's streams alone."""
    caplog.set_level(logging.INFO)

    def model_a(seen):
        if seen.json.get("stream"):
            return ok_stream("a streams fine")(seen)
        return Reply(body=b"<html>gateway said hello</html>", headers={"content-type": "application/json"})

    fake.default(CHAT, by_model({"model-a": model_a, "model-b": ok_stream("b")}))
    config = make_config(fake, **chain("model-a", "model-b"), circuit_breaker={"failure_threshold": 1})
    app = occ.create_app(config)
    url = await start_occ(config, app=app)
    for _ in range(3):
        response = await post(url, body())
        assert response.json()["content"][0]["text"] == "b"
    await wait_for_log(caplog, "=parse_error")
    assert app.state.breakers.state(("fake", "model-a"), app.state.board.now()) == "closed"
    response = await post(url, body(stream=True))
    assert "a streams fine" in response.text
    assert models_tried(fake)[-1] == "model-a"
    status = (await get(url, "/status")).json()["models"]["fake/model-a"]
    assert status["outcomes"]["parse_error"] == 3 and status["breaker_opened"] == 0


async def test_after_the_usable_models_fail_an_open_model_with_a_probe_out_is_waited_for_not_skipped(
        fake, start_occ):
    """model-a is usable but fails; model-b is open and another request holds its probe. The request waits
    for that probe to settle (bounded by connect_timeout_ms) and then asks model-b, instead of failing with
    model-b never asked."""
    fake.default(CHAT, by_model({"model-a": RATE_LIMITED, "model-b": ok_stream("b")}))
    config = make_config(fake, **chain("model-a", "model-b"), circuit_breaker={"failure_threshold": 1})
    app = occ.create_app(config)
    url = await start_occ(config, app=app)
    board = app.state.board
    board.record_failure(("fake", "model-b"), None, "test")
    assert board.allow(("fake", "model-b"), panic=True)  # "another request" holds model-b's probe

    async def settle_later() -> None:
        await trio.sleep(0.5)
        board.release(("fake", "model-b"))  # that request left without a verdict

    async with trio.open_nursery() as nursery:
        nursery.start_soon(settle_later)
        started = trio.current_time()
        response = await post(url, body())
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "b"
    assert models_tried(fake) == ["model-a", "model-b"]
    assert trio.current_time() - started >= 0.45


async def test_every_model_open_with_probes_out_each_is_waited_for_in_turn(fake, start_occ):
    """Both models open, both probes held by other requests: the request waits for the first probe to settle,
    asks that model, and when it fails waits for the other's, so neither is left unasked (found by the soak)."""
    fake.default(CHAT, by_model({"model-a": ok_stream("a"), "model-b": RATE_LIMITED}))
    config = make_config(fake, **chain("model-a", "model-b"), circuit_breaker={"failure_threshold": 1})
    app = occ.create_app(config)
    url = await start_occ(config, app=app)
    board = app.state.board
    for key in (("fake", "model-a"), ("fake", "model-b")):
        board.record_failure(key, None, "test")
        assert board.allow(key, panic=True)  # "other requests" hold both probes

    async def settle_later() -> None:
        await trio.sleep(0.3)
        board.release(("fake", "model-b"))
        await trio.sleep(0.3)
        board.release(("fake", "model-a"))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(settle_later)
        response = await post(url, body())
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "a"
    assert models_tried(fake) == ["model-b", "model-a"]
