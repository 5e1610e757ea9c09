"""The occ ASGI application. Read it top to bottom to follow a request.

``POST /v1/messages`` is a thin ASGI route in front of the Quart app (Quart documents wrapping
``asgi_app``): occ receives ``(scope, receive, send)`` itself, so the request nursery (client
lifetime, relay, fallback loop) encloses the whole sending of the body. A Quart view could not do
that: it returns before its body is sent, and a streaming body generator may not yield out of a
nursery it opened. Quart keeps the other endpoints, with its response and body timeouts off.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from occ import __version__
from occ.config.model import Config
from occ.config.parse import load_config
from occ.config.presets import resolve_protocol
from occ.core.collector import collector_paused
from occ.core.errors import InvalidRequest, NotFound, OccError, RequestTooLarge, Unauthorized, to_anthropic
from occ.core.ids import random_hex
from occ.core.jsonfast import JSONDecodeError, dumps, loads
from occ.core.scrub import scrub, scrub_json
from occ.core.tokens import count_tokens
from occ.core.validate import (
    LOW_MEMORY_PARSE_BYTES,
    parse_count_tokens_request,
    parse_messages_request,
    parse_messages_text,
)
from occ.observe.access_log import RequestLog, log_request, redacted_body
from occ.observe.logs import get_logger
from occ.observe.usage import usage_row
from occ.resilience.routing import Route, route, scenario_models
from occ.server.checks import Guard, allowed_origin, cors_headers, preflight_headers
from occ.server.fallback import Call, run_nonstreaming, run_streaming
from occ.server.hypercorn_worker import on_disconnect, writes_whole
from occ.server.relay import Relay, error_headers, header_list, send_json
from occ.server.state import ServerState
from occ.server.status_page import PAGE, PAGE_HEADERS, basic_auth_as_key, ui_data, usage_today
from occ.server.usage_writer import flush_usage_on_shutdown, write_usage
from occ.upstream.client import UpstreamClient

__all__ = ["OccApp", "create_app"]

log = get_logger("occ")

#: How long the server's last step, after serving, may spend closing its upstream clients. Closing takes
#: no wait today (the pool drops its sockets; httpx closes TLS without waiting for the peer), so this only
#: bounds a close that would wait on a peer that never lets go: the shield around it would otherwise keep
#: the process from exiting, past every backstop. 2 s fits in the ``--workers`` parent's STOP_MARGIN_S, so
#: a worker still exits by itself before the parent kills it; its ledger was written just before.
UPSTREAM_CLOSE_TIMEOUT_S = 2.0

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

def create_app(config: Config | None = None, *, config_path: str | None = None,
               insecure_public: bool = False) -> OccApp:
    """The ASGI app for ``config`` (or the config found the usual way: ``--config``,
    ``$OCC_CONFIG``, ``~/.config/occ/config.json``, the embedded default).

    ``insecure_public`` lets the app answer on a public address without client keys (the CLI's
    ``--insecure-public``); otherwise such an app refuses every request (docs/security.md).

    Raises:
        ConfigError: the config cannot be served (an empty or too short client key).
    """
    if config is None:
        config = load_config(config_path)
    state = ServerState(config=config, config_path=config.source if config_path is None else config_path,
                        guard=Guard(insecure_public=insecure_public))
    return OccApp(state)


class OccApp:
    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.quart = _build_quart(state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.quart(scope, receive, send)
            return
        if kind != "http":  # occ has no websocket route: refuse before anything can be reached
            await send({"type": "websocket.close", "code": 1008})
            return
        # Every route passes the guard first (bind, Host, Origin, client key, Content-Type), so a
        # route added later is protected without doing anything: occ/server/checks.py.
        headers = _client_headers(scope)
        config = self.state.config
        path = scope["path"]
        ui = path == "/ui" or path.startswith("/ui/")
        try:
            admission = self.state.guard.admit(scope["method"], path, basic_auth_as_key(headers) if ui else headers,
                                               scope.get("server"), (scope.get("client") or (None,))[0], config)
        except OccError as exc:
            origin = headers.get("origin")
            if allowed_origin(origin, config):  # an allowed page may read why it was refused
                send = _with_headers(send, cors_headers(origin))
            if ui and isinstance(exc, Unauthorized):  # ask the browser for the key (any user, key as password)
                send = _with_headers(send, {"www-authenticate": 'Basic realm="occ", charset="UTF-8"'})
            await _send_error(send, _request_id(scope), exc)
            return
        if admission.origin is not None:
            if admission.preflight:
                headers = preflight_headers(admission.origin, headers.get("access-control-request-headers"))
                await send({"type": "http.response.start", "status": 204, "headers": header_list(headers)})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            send = _with_headers(send, cors_headers(admission.origin))
        scope["occ.client"] = admission.client
        if scope["path"] == "/v1/messages":
            if scope["method"] == "POST":
                await self.messages(scope, receive, send, headers)
            else:
                error = InvalidRequest(f"method {scope['method']} not allowed on /v1/messages")
                await _send_error(send, _new_request_id(), error, 405)
            return
        await self.quart(scope, receive, send)

    # -- POST /v1/messages ----------------------------------------------------------------------

    async def messages(self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str]) -> None:
        """``POST /v1/messages``; ``headers`` are the client's, as the guard read them (:func:`_client_headers`)."""
        request_id = _request_id(scope)
        state = self.state
        config = state.config  # this request's snapshot
        started = time.monotonic()
        record = RequestLog(request_id=request_id, started=started)
        client: str | None = None
        slot: str | None = None  # the client's slot in the fleet's count (shared state)
        call: Call | None = None
        state.in_flight += 1
        state.observer.request_started()
        try:
            who = scope["occ.client"]  # named by the guard, which checked the client key
            record.client = who
            limit = config.max_concurrent_per_client
            if limit is not None and state.shared.status != "off":
                slot, checked = await state.shared.client_slot(who, limit)  # bounded by shared_state.timeout_ms
                state.limiter.acquire(who, limit, fleet_checked=checked)
            else:
                state.limiter.acquire(who, limit)
            client = who
            body = await _read_body(headers, receive, config.max_body_bytes)
            body_bytes = len(body)
            with collector_paused(body_bytes):  # a large history: no collector passes over its objects
                text = _decoded(body)
                if text is None:
                    request = parse_messages_request(body)
                else:  # large: the text replaces the bytes, so parsing holds two copies, not three
                    del body
                    request = parse_messages_text(text)
                record.client_model = request["model"]
                estimate = count_tokens(request)  # once: routing and message_start use the same count
                the_route = route(request, config, token_estimate=estimate)
            record.scenario, record.reason = the_route.scenario, the_route.reason
            record.chain = [m.label for m in the_route.chain]
            if text is not None:  # the client's bytes again (the same bytes), only where they are read
                body = text.encode() if config.logging.requests or _passthrough_in(the_route, config) else b""
                del text
            if config.logging.requests:
                log.debug("%s request body: %s", request_id, redacted_body(body, config.logging.body_limit_bytes))
            call = Call(
                request_id=request_id,
                request=request,
                raw_body=body if _passthrough_in(the_route, config) else None,
                client_headers=headers,
                requested_model=request["model"],
                stream=bool(request.get("stream")),
                input_estimate=estimate,
                route=the_route,
                message_id="msg_" + random_hex(),
                config=config,
                body_bytes=body_bytes,
            )
            del body  # the parsed request is what the attempts read from here on
            if call.stream:
                await self._stream(call, scope, receive, send, record)
            else:
                await self._respond(call, scope, receive, send, record)
        except _ClientGone:
            record.client_cancelled = True
        except OccError as exc:
            record.status = exc.http_status
            record.error = exc
            await _send_error(send, request_id, exc)
        finally:
            state.in_flight -= 1
            if client is not None:
                state.limiter.release(client)
            if slot is not None:
                state.shared.release_slot(who, slot)
            if call is not None:
                _record_call(record, call)
            log_request(record, config)
            state.observer.observe(record)
            if record.client is not None:  # unauthenticated requests spend nothing and are not kept
                state.usage.add(usage_row(record, config.prices), keep=config.usage.enabled)

    async def _respond(self, call: Call, scope: Scope, receive: Receive, send: Send, record: RequestLog) -> None:
        """Non-streaming: the whole fallback loop, then one JSON body (or nothing, if the client left)."""
        message: dict[str, Any] | None = None
        failure: OccError | None = None
        async with _ClientLifetime(scope, receive, record):  # CLIENT LIFETIME
            try:
                message = await run_nonstreaming(self.state, call)
            except OccError as exc:  # raised here, not out of the nursery, to keep it ungrouped
                failure = exc
        if failure is not None:
            raise failure
        if message is not None:
            record.status = 200
            await send_json(send, 200, message, {"request-id": call.request_id})

    async def _stream(self, call: Call, scope: Scope, receive: Receive, send: Send, record: RequestLog) -> None:
        """Streaming: the fallback loop in this task, inside the CLIENT LIFETIME scope, writing through the
        relay (the one writer: this task's pump, or the heartbeat)."""
        relay = Relay(send, request_id=call.request_id, write_timeout_s=call.config.client_write_timeout_s,
                      on_stuck=call.abandon_client, whole_writes=writes_whole(scope))
        async with _ClientLifetime(scope, receive, record, relay) as lifetime:
            call.request_scope = lifetime
            try:
                await run_streaming(self.state, call, relay)
            except OccError as exc:  # caught here, not out of the nursery, to keep it ungrouped
                record.error = exc
        record.status = relay.status
        if relay.first_content_at is not None:
            record.ttft_s = relay.first_content_at - relay.created_at


# -- the request nursery's helpers ------------------------------------------------------------


def _record_call(record: RequestLog, call: Call) -> None:
    """Copy what the fallback loop learned into the request's log record, as values."""
    record.stream = call.stream
    if call.model is not None:
        record.model = call.model.label
    elif call.attempts:  # failed, cancelled, timed out: the model it was last spent on
        record.model = f"{call.attempts[-1].provider}/{call.attempts[-1].model}"
    record.attempts = list(call.attempts)
    record.stop_reason = call.stop_reason
    record.usage = call.usage
    record.usage_estimated = call.usage_estimated
    record.ended_by = call.ended_by


class _ClientLifetime:
    """The request's CLIENT LIFETIME scope: cancelled the moment the client goes away, upstream connection
    included (``async with`` gives the cancel scope).

    hypercorn also reports ``http.disconnect`` once a response is complete; that is not the client
    leaving, so a finished relay does not count as a cancellation.

    On occ's own connection the server calls back when the disconnect comes (:func:`on_disconnect`), so
    this is a cancel scope and nothing more. Under any other server a task waits in ``receive()`` for it,
    in a nursery whose scope is the lifetime (a nursery and a task cost ~35 us a request; the callback ~2).
    """

    __slots__ = ("_forget", "_nursery", "_receive", "_record", "_relay", "_scope", "_watch")

    def __init__(self, scope: Scope, receive: Receive, record: RequestLog, relay: Relay | None = None) -> None:
        self._watch = on_disconnect(scope)
        self._receive = receive
        self._record = record
        self._relay = relay
        self._scope = trio.CancelScope()
        self._nursery: Any = None
        self._forget: Callable[[], None] | None = None

    # KeyboardInterrupt is held off while the scope is entered or left by hand (as trio's own scopes do), so an
    # embedding app's Ctrl-C cannot leave it half-entered on trio's stack of scopes
    @trio.lowlevel.enable_ki_protection
    async def __aenter__(self) -> trio.CancelScope:
        if self._watch is None:
            self._nursery = trio.open_nursery()
            nursery = await self._nursery.__aenter__()
            nursery.start_soon(self._wait_for_disconnect)
            self._scope = nursery.cancel_scope
            return self._scope
        self._scope.__enter__()
        self._forget = self._watch(self._client_left)
        return self._scope

    @trio.lowlevel.enable_ki_protection
    async def __aexit__(self, *exc: Any) -> bool:
        if self._nursery is not None:  # the request is over: the task that waits for the disconnect goes too
            self._scope.cancel()
            return bool(await self._nursery.__aexit__(*exc))
        assert self._forget is not None
        self._forget()  # a disconnect after the request (a finished response's) is no longer this request's
        return bool(self._scope.__exit__(*exc))

    def _client_left(self) -> None:
        self._record.client_cancelled = self._relay is None or not self._relay.finished
        self._scope.cancel(reason="client disconnected")

    async def _wait_for_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self._client_left()


async def _read_body(headers: dict[str, str], receive: Receive, limit: int) -> bytes | bytearray:
    """The request body, refused with 413 as early as can be: a ``Content-Length`` over ``limit``
    before a byte of the body is read, a chunked body the moment its running count passes it.

    A small body's parts are joined once and dropped at once; a large one announced with its length is
    read into one buffer (a ``bytearray``), so it is held once.

    Raises:
        RequestTooLarge: over ``max_body_bytes`` (hypercorn then closes the connection instead of
            reading the rest).
        _ClientGone: the client left mid-body.
    """
    announced = headers.get("content-length", "").strip()
    if announced.isdigit() and int(announced) > limit:
        raise RequestTooLarge(f"request body of {int(announced)} bytes is larger than the limit of {limit} bytes "
                              "(max_body_bytes)")
    # A large announced body goes straight into one buffer of its size, each part dropped once copied:
    # all parts and their join are never held at once.
    buffer = bytearray(int(announced)) if announced.isdigit() and int(announced) >= LOW_MEMORY_PARSE_BYTES else None
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone("client disconnected while sending the request body")
        chunk = message.get("body", b"")
        if size + len(chunk) > limit:
            raise RequestTooLarge(f"request body is larger than the limit of {limit} bytes (max_body_bytes)")
        if buffer is not None:
            buffer[size:size + len(chunk)] = chunk  # past the announced end, it grows
        else:
            parts.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            if buffer is not None:
                del buffer[size:]  # shorter than announced (the server would have refused it first)
                return buffer
            body = b"".join(parts) if len(parts) != 1 else parts[0]
            parts.clear()
            return body


def _decoded(body: bytes | bytearray) -> str | None:
    """A large body as text (:data:`LOW_MEMORY_PARSE_BYTES`), or None: small, or not UTF-8 (then the
    bytes' own parse names the bad byte)."""
    if len(body) < LOW_MEMORY_PARSE_BYTES:
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _passthrough_in(the_route: Route, config: Config) -> bool:
    """Whether any model of the chain speaks the Anthropic wire, the one that needs the client's bytes."""
    return any(
        resolve_protocol(model, config.providers[model.provider]) == "anthropic"
        for model in the_route.chain if model.provider in config.providers
    )


class _ClientGone(InvalidRequest):
    """The client disconnected while still sending its body: nothing to answer."""


def _client_headers(scope: Scope) -> dict[str, str]:
    """The client's request headers by lower-case name; repeated headers are joined with commas."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    return headers


def _new_request_id() -> str:
    return "req_" + random_hex()


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name.lower() in (b"x-request-id", b"request-id"):
            text = value.decode("latin-1")
            if 0 < len(text) <= 128 and text.isprintable():
                return text
    return _new_request_id()


def _with_headers(send: Send, extra: dict[str, str]) -> Send:
    """``send`` with ``extra`` added to the response's headers (CORS headers for an allowed origin)."""
    extra_list = header_list(extra)

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra_list]}
        await send(message)

    return wrapped


async def _send_error(send: Send, request_id: str, exc: OccError, status: int | None = None) -> None:
    code, body = to_anthropic(exc, request_id)
    try:
        await send_json(send, status or code, body, error_headers(exc, request_id))
    except Exception:  # the response had already started; the relay reported the error in-stream
        log.debug("%s could not send error response", request_id, exc_info=True)


# -- everything else: Quart ---------------------------------------------------------------------


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status=status, content_type="application/json", headers=headers)


def _build_quart(state: ServerState) -> QuartTrio:
    app = QuartTrio("occ")
    app.config["RESPONSE_TIMEOUT"] = None
    app.config["BODY_TIMEOUT"] = None
    app.config["MAX_CONTENT_LENGTH"] = state.config.max_body_bytes
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    @app.before_serving
    async def open_upstream() -> None:
        state.upstream = await UpstreamClient().__aenter__()
        state.upstream.pool.drain_in(app.nursery)
        app.nursery.start_soon(state.upstream.pool.sweep_idle)
        from occ.server.reload import watch_config

        app.nursery.start_soon(watch_config, state)
        app.nursery.start_soon(write_usage, state)
        app.nursery.start_soon(state.shared.run, lambda: state.config.shared_state, lambda: state.in_flight)

    @app.after_serving
    async def close_upstream() -> None:
        client, state.upstream = state.upstream, None
        with trio.CancelScope(shield=True):
            await flush_usage_on_shutdown(state)  # hypercorn let the requests in flight finish first
        if client is not None:
            with trio.move_on_after(UPSTREAM_CLOSE_TIMEOUT_S, shield=True) as closing:  # UPSTREAM CLOSE DEADLINE
                await client.__aexit__(None, None, None)
            if closing.cancelled_caught:
                log.warning("shutdown: the upstream connections did not close within %gs; left to the exit",
                            UPSTREAM_CLOSE_TIMEOUT_S)

    @app.after_request
    async def add_request_id(response: Response) -> Response:
        response.headers.setdefault("request-id", request.headers.get("x-request-id") or _new_request_id())
        return response

    @app.after_request
    async def scrub_body(response: Response) -> Response:
        """Whatever a Quart route answers (``/status``, ``/metrics``, errors, routes added later)
        leaves through the scrubber: JSON string by string, plain text whole."""
        mimetype = response.mimetype or ""
        if mimetype in ("application/json", "text/plain"):  # not HTML: a page's script is not text to mask
            data = await response.get_data()
            if mimetype == "application/json":
                try:
                    cleaned = dumps(scrub_json(loads(data)))
                except JSONDecodeError:
                    cleaned = scrub(data.decode("utf-8", "replace")).encode()
            else:
                cleaned = scrub(data.decode("utf-8", "replace")).encode()
            if cleaned != data:
                response.set_data(cleaned)
        return response

    @app.get("/health")
    async def health() -> Response:
        config = state.config
        providers = {
            name: {"api_key": "present" if p.api_keys else f"missing: set {p.api_key_env}"}
            for name, p in config.providers.items()
        }
        ready = any(p.api_keys for p in config.providers.values())
        problems = ([] if ready else ["no API key"]) + list(state.problems.values())
        return _json({
            "service": "occ",  # `occ code` checks that the server on its port is occ, not another proxy
            "status": "degraded: " + "; ".join(problems) if problems else "ok",
            "problems": problems,
            "version": __version__,
            "config": config.source,
            "providers": providers,
        })

    @app.get("/status")
    async def status() -> Response:
        body = state.observer.status(state.snapshot())
        body["usage_today"] = await usage_today(state)
        return _json(body)

    @app.get("/ui")
    async def ui() -> Response:
        return Response(PAGE, content_type="text/html; charset=utf-8", headers=dict(PAGE_HEADERS))

    @app.get("/ui/data.json")
    async def ui_json() -> Response:
        return _json(await ui_data(state), headers={"cache-control": "no-store"})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(state.observer.metrics_text(state.snapshot()), content_type="text/plain; version=0.0.4")

    @app.post("/admin/reset-breakers")
    async def reset_breakers() -> Response:
        """Close breakers now (``occ reset-breakers MODEL``): the operator knows the model is back before
        its cooldown says so. Behind the guard (client key, JSON only) like every endpoint but /health."""
        raw = await request.get_data(cache=False)
        try:
            payload = loads(raw) if raw else {}
        except JSONDecodeError:
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("model", ""), str):
            raise InvalidRequest('expected a JSON body {"model": "provider/model_id"} (or {} for every model)')
        name = payload.get("model") or ""
        keys = None
        if name:
            keys = _model_keys(state.config, name)
            if not keys:
                raise NotFound(f"no configured model is called {name!r} (use provider/model_id, a model_id "
                               "or a scenario name such as default)")
        reset = state.board.reset(keys, "reset by an operator (occ reset-breakers)")
        return _json({"reset": reset, "models": sorted(f"{k[0]}/{k[1]}" for k in keys) if keys else "all"})

    @app.get("/v1/models")
    async def models() -> Response:
        data = _model_list(state.config)
        limit = request.args.get("limit", type=int) or len(data) or 1
        after = request.args.get("after_id")
        if after:
            ids = [m["id"] for m in data]
            data = data[ids.index(after) + 1:] if after in ids else []
        page, more = data[:limit], len(data) > limit
        return _json({"data": page, "has_more": more, "first_id": page[0]["id"] if page else None,
                      "last_id": page[-1]["id"] if page else None})

    @app.get("/v1/models/<path:model_id>")
    async def model(model_id: str) -> Response:
        for entry in _model_list(state.config):
            if entry["id"] == model_id:
                return _json(entry)
        raise NotFound(f"model {model_id!r} not found")

    @app.post("/v1/messages/count_tokens")
    async def count() -> Response:
        body = await request.get_data(cache=False)
        payload = parse_count_tokens_request(body if isinstance(body, bytes) else body.encode())
        return _json({"input_tokens": count_tokens(payload)})

    @app.errorhandler(OccError)
    async def occ_error(exc: OccError) -> Response:
        status, body = to_anthropic(exc, request.headers.get("x-request-id"))
        return _json(body, status, error_headers(exc, body.get("request_id") or _new_request_id()))

    @app.errorhandler(404)
    async def not_found(exc: Exception) -> Response:
        return _json(to_anthropic(NotFound(f"no route for {request.method} {request.path}"))[1], 404)

    @app.errorhandler(405)
    async def not_allowed(exc: Exception) -> Response:
        err = InvalidRequest(f"method {request.method} not allowed on {request.path}")
        return _json(to_anthropic(err)[1], 405)

    @app.errorhandler(413)
    async def too_large(exc: Exception) -> Response:
        err = RequestTooLarge(f"request body is larger than the limit of {state.config.max_body_bytes} bytes")
        return _json(to_anthropic(err)[1], 413)

    @app.errorhandler(500)
    async def internal(exc: Exception) -> Response:
        return _json(to_anthropic(Exception())[1], 500)

    return app


def _model_keys(config: Config, name: str) -> list[tuple[str, str]]:
    """The configured models ``name`` means: a ``provider/model_id`` label, an upstream model id, or a key of
    ``models`` (a scenario or alias)."""
    if name in config.models:
        return [config.models[name].key]
    return [m.key for m in config.all_models() if name in (m.label, m.model_id)]


def _model_list(config: Config) -> list[dict[str, Any]]:
    """One ``claude-occ-<scenario>`` id per scenario (Claude Code's picker keeps only ``claude*``
    ids), then the upstream ids themselves."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for model_id, scenario in scenario_models(config):
        target = config.models.get(scenario) or config.models.get("default")
        name = f"occ {scenario} ({target.model_id})" if target else f"occ {scenario}"
        out.append(_model_entry(model_id, name, target.max_tokens if target else None,
                                target.context_window if target else None))
        seen.add(model_id)
    for model in config.all_models():
        if model.model_id not in seen:
            seen.add(model.model_id)
            out.append(_model_entry(model.model_id, f"{model.model_id} ({model.provider})", model.max_tokens,
                                    model.context_window))
    return out


def _model_entry(model_id: str, display: str, max_tokens: int | None, window: int | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "model", "id": model_id, "display_name": display,
                             "created_at": "2026-01-01T00:00:00Z"}
    if window:
        entry["max_input_tokens"] = window
    if max_tokens:
        entry["max_tokens"] = max_tokens
    return entry

