"""The fallback loop: one attempt per model of the route's chain, each inside its own deadlines.

The tree of one streaming request (docs/timeouts.md draws it with what a user sees when each fires)::

    request nursery                (app.py)     client lifetime: a disconnect cancels all of it
    ├── disconnect watcher
    └── fallback loop              (here, in the request's own task)   optional request deadline
        └── attempt scope                       streaming_timeout_ms / timeout_ms, from the snapshot
            └── attempt nursery                 current when the attempt starts
                ├── heartbeat                   pings (relay.py) while the client hears nothing
                └── pump, one iteration per upstream chunk, in one task:
                    read (STALL GUARD + PAYLOAD GUARD: one scope, reads only)
                    → SSEDecoder → translator → AnthropicStreamBuilder
                    → Relay.write (HAND-OFF DEADLINE, shielded): one ASGI send to the client

The loop, not the attempt, decides what a failure means: ``cancelled_caught`` says which of our
deadlines fired, :func:`~occ.resilience.classify.classify` gives the verdict, the breakers take
it. ``trio.Cancelled`` (the client left, or the request deadline) is never caught as a failure:
it passes every ``except OccError``, no breaker counts it and no further attempt starts.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import attrs
import trio

from occ.config.model import Config, ModelConfig, ProviderConfig, Timeouts
from occ.config.presets import auth_headers, body_caps, endpoint_url, resolve_protocol
from occ.core.collector import collector_paused
from occ.core.errors import (
    AllAttemptsFailed,
    AttemptRecord,
    InvalidRequest,
    MissingApiKey,
    OccError,
    Overloaded,
    TranslationError,
    UpstreamProtocolError,
    UpstreamStalled,
    UpstreamStatus,
    UpstreamTimeout,
)
from occ.core.jsonfast import JSONDecodeError, dumps, loads
from occ.core.scrub import clip
from occ.core.sse import SSEDecoder, SSEEvent
from occ.core.upstream_errors import answer_instead_of_stream, malformed_answer
from occ.observe.logs import get_logger
from occ.resilience.classify import classify
from occ.resilience.routing import Route, search_mode
from occ.server.relay import Relay, heartbeat
from occ.server.state import ServerState
from occ.server.web_search import BackendSearch, backend_search, with_search_blocks
from occ.translate import anthropic_passthrough
from occ.translate.anthropic_events import AnthropicStreamBuilder, Usage, replay_message, without_thinking
from occ.translate.anthropic_request import thinking_requested, without_images
from occ.translate.tool_ids import restore_tool_names
from occ.translate.web_search import (
    CHAT_SEARCH_OPTIONS,
    chat_search_option,
    search_query,
    with_query,
    without_search_tool,
)
from occ.translate.wires import StreamTranslator, wire_for
from occ.upstream.client import UpstreamClient, UpstreamResponse

__all__ = ["Call", "run_nonstreaming", "run_streaming"]

log = get_logger("occ.server.fallback")

_NON_STREAM_BODY_LIMIT = 64 * 1024 * 1024
T = TypeVar("T")


@attrs.define
class Call:
    """One client request as the fallback loop sees it."""

    request_id: str
    request: dict[str, Any]
    #: the client's bytes, kept only while a model of the chain speaks Anthropic (passthrough sends
    #: them nearly as they are); None otherwise, so a large request is not held twice
    raw_body: bytes | None
    client_headers: Mapping[str, str]
    requested_model: str
    stream: bool
    input_estimate: int
    route: Route
    message_id: str
    config: Config
    attempts: list[AttemptRecord] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)
    #: the current attempt has started its upstream request (set by the attempt, just before it opens it)
    asked: bool = False
    #: what the winning attempt reported: stop_reason and usage, for the request log
    stop_reason: str | None = None
    usage: dict[str, int] | None = None
    #: the usage is occ's estimate (the upstream reported none), never to be counted as reported
    usage_estimated: bool = False
    protocol: str | None = None
    model: ModelConfig | None = None
    #: the request nursery's scope (streaming): cancelled when the client stops reading for too long
    request_scope: trio.CancelScope | None = None
    #: the size of the client's body: a large one is translated with the garbage collector paused
    body_bytes: int = 0
    #: how the request really ended when that was not the usual way (``client_too_slow``,
    #: ``server_shutdown``): the log's outcome
    ended_by: str | None = None
    #: the web search occ ran for this request (once, for the models that cannot search)
    search: BackendSearch | None = None

    def note(self, text: str) -> None:
        self.notes.append(text)
        log.info("%s %s", self.request_id, text)

    def abandon_client(self, why: str) -> None:
        """Give the client up: cancel the request nursery (relay, fallback loop and upstream connection)."""
        self.ended_by = "client_too_slow"
        log.warning("%s %s: giving the stream up and closing its upstream connection", self.request_id, why)
        if self.request_scope is not None:
            self.request_scope.cancel(reason=why)


def _check_keys(state: ServerState, call: Call) -> None:
    """Fail fast, with the variable to set, when no model of the chain has a key."""
    missing: list[str] = []
    for model in call.route.chain:
        provider = call.config.providers.get(model.provider)
        if provider is not None and provider.api_keys:
            return
        if provider is not None and provider.api_key_env not in missing:
            missing.append(provider.api_key_env)
    names = " or ".join(missing) or "OCC_API_KEY"
    raise MissingApiKey(f"occ has no API key for the upstream provider: set the environment variable {names} "
                        "and restart occ (or put api_key in the config file)")


def _upstream_headers(provider: ProviderConfig, protocol: str, key: str, call: Call, stream: bool,
                      model: ModelConfig) -> dict[str, str]:
    """The headers of one attempt's upstream request: content type, the provider's auth, the
    client's forwarded Anthropic headers (passthrough only; with the betas of the body fields this
    model is sent as they are) and the OpenCode session id."""
    headers = {"content-type": "application/json", "user-agent": "occ"}
    if stream:
        headers["accept"] = "text/event-stream"
        headers["accept-encoding"] = "identity"
    if protocol == "anthropic":
        headers.update(anthropic_passthrough.forward_headers(call.client_headers, body_caps(model).betas))
    session = call.client_headers.get("x-claude-code-session-id")
    if session and provider.preset is not None:
        headers["x-opencode-session"] = session
    headers.update(auth_headers(provider, protocol, key))
    return headers


async def _fallback(
    state: ServerState,
    call: Call,
    attempt: Callable[[ModelConfig, ProviderConfig, str, Timeouts], Awaitable[T]],
    committed: Callable[[], bool],
) -> T:
    """Try each model of the chain until one succeeds, the classifier says stop, or the stream
    has committed (after which a failure belongs to the client, as an ``error`` event).

    An open breaker defers its model while a usable one is left. Models still deferred when the usable
    ones are spent are tried anyway (panic mode, :mod:`occ.resilience.breaker`): least recently failed
    first, one probe per model at a time. When every model left already has another request's probe out,
    this request waits for one to settle, at most the model's ``connect_timeout_ms``, and then goes anyway:
    failing while a model of the chain was never asked (a 529 without an upstream call, or a 5xx after the
    usable models failed) would be occ giving up without trying.
    """
    if call.route.refusal:
        raise InvalidRequest(call.route.refusal)
    _check_keys(state, call)
    board = state.board
    errors: list[OccError] = []
    tried = 0

    async def one(model: ModelConfig) -> tuple[bool, T | None]:
        nonlocal tried
        tried += 1
        config = state.config if model.provider in state.config.providers else call.config
        provider = config.providers.get(model.provider) or call.config.providers[model.provider]
        protocol = resolve_protocol(model, provider)
        timeouts = config.timeouts_for(model)
        started = trio.current_time()
        state.observer.attempt_started(model.label)
        call.asked = False
        try:
            result = await attempt(model, provider, protocol, timeouts)
        except OccError as exc:
            duration = trio.current_time() - started
            verdict = classify(exc)
            status = exc.upstream_status if isinstance(exc, UpstreamStatus) else None
            call.attempts.append(
                AttemptRecord(provider.name, model.model_id, protocol, verdict.outcome, duration,
                              detail=clip(exc.message, 300), status=status)
            )
            if verdict.counts_against_health:
                board.record_failure(model.key, exc.retry_after_s, verdict.outcome)
            else:
                board.release(model.key)
            log.warning("%s attempt %s (%s) failed after %.2fs: %s", call.request_id, model.label, protocol,
                        duration, clip(exc.message, 300))
            if verdict.action == "stop" or committed():
                raise
            errors.append(exc)
            return False, None
        except BaseException:  # cancelled (the client left, a deadline, the shutdown): it reached the upstream
            board.release(model.key)
            call.attempts.append(AttemptRecord(provider.name, model.model_id, protocol, "cancelled",
                                               trio.current_time() - started, sent=call.asked))
            raise
        duration = trio.current_time() - started
        board.record_success(model.key)
        call.attempts.append(AttemptRecord(provider.name, model.model_id, protocol, "ok", duration))
        call.protocol = protocol
        call.model = model
        return True, result

    deferred: list[ModelConfig] = []
    for model in call.route.chain:
        if not board.allow(model.key):
            deferred.append(model)
            call.note(f"deferred {model.label}: circuit open")
            continue
        done, result = await one(model)
        if done:
            return result  # type: ignore[return-value]

    by_key = {m.key: m for m in deferred}
    busy: list[ModelConfig] = []
    for key in board.registry.panic_order(by_key):
        model = by_key[key]
        was_open = not board.usable(model.key)
        if not board.allow(model.key, panic=True):
            busy.append(model)
            continue
        if was_open:
            board.panic_routed(model.key, call.request_id)
        done, result = await one(model)
        if done:
            return result  # type: ignore[return-value]

    while busy:  # at most once per model of the chain, each wait bounded
        chosen = await _wait_for_probe(state, call, busy)
        busy.remove(chosen)
        done, result = await one(chosen)
        if done:
            return result  # type: ignore[return-value]
    skipped = [m.label for m in busy]
    reopen = [board.registry.get(m.key).open_until for m in busy]
    hint = min((t - board.now() for t in reopen if t is not None), default=None)
    raise AllAttemptsFailed(call.attempts, errors, skipped, retry_after_s=hint)


async def _wait_for_probe(state: ServerState, call: Call, busy: list[ModelConfig]) -> ModelConfig:
    """Every model left has an open breaker *and* another request's probe out: wait for a probe to settle
    (bounded by the first model's connect timeout), then take a free probe slot, or go anyway."""
    board = state.board
    wait_s = call.config.timeouts_for(busy[0]).connect_timeout_s if busy[0].provider in call.config.providers \
        else 10.0
    with trio.move_on_after(wait_s):
        while True:
            for model in busy:
                was_open = not board.usable(model.key)
                if board.allow(model.key, panic=True):
                    if was_open:
                        board.panic_routed(model.key, call.request_id)
                    call.note(f"waited for another request's probe; trying {model.label}")
                    return model
            await board.wait_settled()
    model = busy[0]
    board.panic_routed(model.key, call.request_id)
    call.note(f"panic mode: {model.label} still has a probe out after {wait_s:g}s; trying it anyway")
    return model


def _tool_names(request: dict[str, Any]) -> list[str]:
    return [t["name"] for t in request.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("name"), str)]


def _key(state: ServerState, provider: ProviderConfig) -> str:
    client = _client(state)
    key = client.keys.next_key(provider.name, provider.api_keys)
    if key is None:
        raise MissingApiKey(f"no API key for provider {provider.name}: set {provider.api_key_env}")
    return key


def _client(state: ServerState) -> UpstreamClient:
    if state.upstream is None:
        raise RuntimeError("occ is not serving: the upstream client is closed")
    return state.upstream


async def _search_for(state: ServerState, call: Call, model: ModelConfig) -> BackendSearch | None:
    """The search occ runs for ``model`` when it cannot search itself (run once per request)."""
    if not call.route.web_search or search_mode(model, call.config) != "backend":
        return None
    if call.search is None:
        call.search = await backend_search(state, call.request, call.request_id)
        call.note(f"web search through {call.config.web_search.backend if call.config.web_search else '?'}: "
                  + (f"{len(call.search.sources)} result(s)" if call.search.sources is not None
                     else f"failed ({call.search.error})"))
    return call.search


def _build(call: Call, model: ModelConfig, protocol: str, stream: bool,
           search: BackendSearch | None = None) -> bytes:
    wire = wire_for(protocol)
    request, raw_body = call.request, call.raw_body
    if search is not None:  # the model gets the results as text, and no web search tool
        request = search.request_for_model(request)
        raw_body = dumps(request) if protocol == "anthropic" else b""
    elif call.route.web_search and protocol == "openai":  # the provider searches ("native")
        provider = call.config.providers.get(model.provider)
        option = model.web_search if model.web_search in CHAT_SEARCH_OPTIONS else \
            chat_search_option(provider.base_url if provider is not None else None)
        if option is not None:  # OpenRouter's web plugin / OpenAI's web_search_options (docs/web-search.md)
            model = attrs.evolve(model, web_search=option)
        else:  # it searches on its own: chat completions cannot carry the tool
            request = without_search_tool(request)
    if raw_body is None:  # only the Anthropic wire reads it; a hot reload may have moved a model there
        raw_body = dumps(request) if protocol == "anthropic" else b""
    if model.vision is False:
        request, images = without_images(request)
        if images:
            raw_body = dumps(request)
            call.note(f"{images} image(s) sent to text-only {model.label} as [Image]")
    try:
        with collector_paused(call.body_bytes):
            return wire.build(request, raw_body, model, stream, call.note)
    except OccError:
        raise
    except Exception as exc:
        log.exception("%s translating the request for %s failed", call.request_id, model.label)
        raise TranslationError(f"occ could not translate the request for {model.label}: "
                               f"{type(exc).__name__}") from exc


# -- non-streaming -------------------------------------------------------------------------------


async def run_nonstreaming(state: ServerState, call: Call) -> dict[str, Any]:
    """The Anthropic message for a ``stream: false`` request.

    Raises:
        OccError: every attempt failed, or the classifier stopped on a request error.
    """

    thinking = thinking_requested(call.request)

    async def attempt(model: ModelConfig, provider: ProviderConfig, protocol: str,
                      timeouts: Timeouts) -> dict[str, Any]:
        search = await _search_for(state, call, model)
        body = _build(call, model, protocol, stream=False, search=search)
        url = endpoint_url(provider, protocol, model.model_id, stream=False)
        headers = _upstream_headers(provider, protocol, _key(state, provider), call, stream=False, model=model)
        raw: bytes | None = None
        call.asked = True
        with trio.move_on_after(timeouts.timeout_s) as deadline:  # ATTEMPT DEADLINE (timeout_ms)
            async with _client(state).open(url, headers=headers, body=body,
                                           connect_timeout_s=timeouts.connect_timeout_s) as response:
                raw = await _read_body(response, timeouts.stall_timeout_s, _NON_STREAM_BODY_LIMIT)
        if deadline.cancelled_caught or raw is None:
            raise UpstreamTimeout(f"no complete answer within {timeouts.timeout_s:g}s (timeout_ms)")
        try:
            parsed = loads(raw)
        except JSONDecodeError:
            raise malformed_answer(raw) from None
        message = _whole_answer(call, model, protocol, parsed, thinking=thinking)
        if search is not None:
            message = with_search_blocks(message, search)
        call.stop_reason = message.get("stop_reason")
        call.usage = message.get("usage")
        call.usage_estimated = bool(getattr(message, "usage_estimated", False))
        return message

    try:
        return await _with_request_deadline(state, call, lambda: _fallback(state, call, attempt, lambda: False))
    finally:
        spent_so_far(call, None)


def _whole_answer(call: Call, model: ModelConfig, protocol: str, parsed: Any, *, thinking: bool) -> dict[str, Any]:
    """A whole upstream answer (already parsed JSON) as the Anthropic message the client gets."""
    try:
        message = wire_for(protocol).translate_response(
            parsed, model=model, message_id=call.message_id, model_name=call.requested_model,
            input_estimate=call.input_estimate, thinking=thinking)
    except OccError:
        raise
    except Exception as exc:
        log.exception("%s translating the response of %s failed", call.request_id, model.label)
        raise TranslationError(f"occ could not translate the answer of {model.label}") from exc
    if not thinking and protocol != "anthropic":
        without_thinking(message)  # an Anthropic upstream honours the request's thinking itself
    if call.route.web_search:
        with_query(message, search_query(call.request))  # for an upstream that does not say what it searched
    restore_tool_names(message, _tool_names(call.request))
    return message


async def _with_request_deadline(state: ServerState, call: Call, run: Callable[[], Awaitable[T]]) -> T:
    """The fallback loop inside the REQUEST DEADLINE (``request_timeout_ms``) and the SHUTDOWN SCOPE: the
    latter is cancelled when the server's shutdown grace has run out, and the request then ends with
    occ's own ``overloaded_error`` ("server shutting down"), never in silence."""
    limit = call.config.request_timeout_s
    deadline = math.inf if limit is None else trio.current_time() + limit
    # one scope is both: the shutdown cancels it, the request deadline is its deadline
    with trio.CancelScope(deadline=deadline) as scope:
        state.shutdown_scopes.add(scope)
        try:
            return await run()
        finally:
            state.shutdown_scopes.discard(scope)
    if trio.current_time() < deadline:
        call.ended_by = "server_shutdown"
        raise Overloaded("server shutting down", retry_after_s=2.0)
    raise UpstreamTimeout(f"the request took longer than {limit:g}s (request_timeout_ms)")


def _whole_json(raw: bytes) -> Any:
    """The JSON object of a whole answer, or None when it is no answer (broken, or an error body:
    :func:`answer_instead_of_stream` says what it is)."""
    try:
        parsed = loads(raw)
    except JSONDecodeError:
        return None
    if not isinstance(parsed, dict) or parsed.get("error") is not None or parsed.get("type") == "error":
        return None
    return parsed


async def _read_body(response: UpstreamResponse, stall_s: float, limit: int) -> bytes:
    """A whole (non-streaming) body, its reads under the STALL GUARD (``stream_timeout_ms`` of silence from the
    start of each read), as the stream's pump keeps it: one scope for many reads, re-armed when it fires early.

    Raises:
        UpstreamStalled: the upstream went silent mid-body.
        UpstreamProtocolError: the body is larger than ``limit``.
    """
    parts: list[bytes] = []
    size = 0
    read = response.read
    resumes = response.reads_resume  # else each read has the guard's deadline to itself (below)
    read_started = trio.current_time()  # kept across a re-arm: the read made again is the same wait
    while True:
        with trio.CancelScope(deadline=read_started + stall_s) as guard:
            while True:
                if not resumes:
                    guard.deadline = read_started + stall_s
                chunk = await read()
                if not resumes:
                    guard.deadline = math.inf
                if not chunk:
                    return b"".join(parts)
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise UpstreamProtocolError(f"upstream body larger than {limit} bytes")
                read_started = trio.current_time()  # the next read's; a re-made read keeps its own
        if trio.current_time() >= read_started + stall_s:
            raise UpstreamStalled(f"no bytes from upstream for {stall_s:g}s (stream_timeout_ms)")


# -- streaming -----------------------------------------------------------------------------------


async def run_streaming(state: ServerState, call: Call, relay: Relay) -> None:
    """Stream the answer through ``relay`` to the client, and end the response.

    Before the first content event every failure falls back invisibly; after it, a failure ends
    the stream with an ``error`` event (Claude Code then retries), never a fake end of message.
    """
    builder = AnthropicStreamBuilder(message_id=call.message_id, model=call.requested_model,
                                     input_tokens=call.input_estimate, thinking=thinking_requested(call.request))

    async def attempt(model: ModelConfig, provider: ProviderConfig, protocol: str,
                      timeouts: Timeouts) -> None:
        wire = wire_for(protocol)
        search = await _search_for(state, call, model)
        body = _build(call, model, protocol, stream=True, search=search)
        url = endpoint_url(provider, protocol, model.model_id, stream=True)
        headers = _upstream_headers(provider, protocol, _key(state, provider), call, stream=True, model=model)
        builder.forget_uncommitted()
        if not builder.committed:
            builder.prelude(search.blocks if search is not None else [])
        # the upstream searches itself: its answer is gathered whole, so the search blocks come first
        make = wire.collected_translator if call.route.web_search and search is None else None
        translator = (make or wire.stream_translator)(builder, model, _tool_names(call.request))
        limit = timeouts.streaming_timeout_s
        deadline = math.inf if limit is None else trio.current_time() + limit
        failure: OccError | None = None
        call.asked = True
        with trio.move_on_at(deadline) as attempt_scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(heartbeat, relay, call.config.heartbeat_interval_s)
                try:
                    await _pump(state, call, url, headers, body, timeouts, translator, builder, relay,
                                lambda: state.board.record_success(model.key),
                                lambda parsed: _whole_answer(call, model, protocol, parsed,
                                                             thinking=builder.thinking_enabled))
                except OccError as exc:
                    failure = exc
                except Exception as exc:
                    log.exception("%s translating the stream of %s failed", call.request_id, model.label)
                    failure = TranslationError(f"occ could not translate the stream of {model.label}: "
                                               f"{type(exc).__name__}")
                finally:
                    nursery.cancel_scope.cancel()
        if attempt_scope.cancelled_caught:
            raise UpstreamTimeout(f"stream not finished within {limit:g}s (streaming_timeout_ms)")
        if failure is not None:
            raise failure
        call.stop_reason = builder.stop_reason
        call.usage = builder.usage.as_dict() if builder.usage else None
        call.usage_estimated = bool(builder.usage and builder.usage.estimated)

    try:
        await _with_request_deadline(
            state, call, lambda: _fallback(state, call, attempt, lambda: builder.committed))
    except OccError as exc:
        if builder.committed and not builder.finished:
            builder.error(exc)
            await _deliver(relay, builder.take())
        elif not builder.finished:
            await relay.fail(exc)
        await relay.end()
        raise
    finally:
        spent_so_far(call, builder.usage_so_far())
    await relay.end()


#: attempt outcomes that end before an upstream could have read the request, so cost nothing
_NOT_SENT = frozenset({"connect_error", "no_api_key", "translation_error", "occ_overloaded"})


def spent_so_far(call: Call, usage: Usage | None) -> None:
    """A request that ended without the upstream's usage (the client left, a deadline, the shutdown, a failure)
    still spent what reached an upstream: ``usage`` (what the stream reported and wrote so far), else the
    input estimate. An attempt refused with an HTTP status, or never sent (cancelled before it asked), spent
    nothing."""
    if call.usage is not None:
        return
    if not any(a.status is None and a.sent and a.outcome not in _NOT_SENT for a in call.attempts):
        return
    partial = usage if usage is not None else Usage.estimate(call.input_estimate)
    call.usage, call.usage_estimated = partial.as_dict(), partial.estimated


async def _deliver(relay: Relay, frames: bytes) -> None:
    """Write frames the builder emitted, in this task, under the relay's HAND-OFF DEADLINE
    (``client_write_timeout_ms``), shielded: once emitted they must reach the client whole, or the stream
    would skip events, so no attempt deadline may cut the write; and it is shielded from the stall guard
    around it, whose clock starts at each upstream read, so a slow client is never an upstream stall. When
    the client has read nothing for that long (connected but not reading),
    the relay cancels the request nursery: the fallback loop and the upstream connection with it, so a
    stuck client cannot hold a connection and a pool slot forever; the checkpoint after the write is where
    this task then unwinds.
    """
    if frames:
        await relay.write(frames)
        if relay.abandoned:
            await trio.lowlevel.checkpoint()  # the request scope is cancelled: unwind from here


def _looks_like_sse(head: bytes) -> bool:
    """Whether a stream's first bytes start an SSE field or comment (``data:``, ``event:``, ``:``...)."""
    start = head.lstrip()[:6]
    return not start or start.startswith((b"data", b"event", b":", b"id", b"retry"))


def _is_payload(event: SSEEvent) -> bool:
    """Anything but a ping: SSE comments never become events, and a ``ping`` event says only that the
    connection is alive, not that the model is producing anything."""
    return event.event != "ping" and not event.data.startswith(('{"type":"ping"', '{"type": "ping"'))


async def _pump(state: ServerState, call: Call, url: str, headers: dict[str, str], body: bytes,
                timeouts: Timeouts, translator: StreamTranslator, builder: AnthropicStreamBuilder,
                relay: Relay, on_commit: Callable[[], None],
                whole: Callable[[Any], dict[str, Any]]) -> None:
    """Upstream bytes through the decoder and translator to the relay.

    One upstream chunk is one iteration, in this task: read, decode, translate, and write what it made to
    the client in one send (:func:`_deliver`). The reads sit inside a scope whose deadline is the nearer
    of the STALL GUARD (``stream_timeout_ms`` of silence, counted from the start of each read) and the
    PAYLOAD GUARD (``payload_timeout_ms``: a stream made only of SSE comments and pings ends after that long,
    however lively); which of the two it was, or neither (the scope is re-armed, not moved, per read), is
    read from the deadlines when it fires. Writes to the client are shielded from it.
    ``on_commit`` runs once, when the stream first commits: that is when the model has shown it is healthy
    (a panic-mode probe settles there, not minutes later at the end of the stream). An upstream that
    answers a stream request with its whole answer as JSON (some servers ignore ``stream``) has that
    answer translated by ``whole`` and written as a stream; an error body there stays an error.
    """
    stall_s = timeouts.stall_timeout_s
    payload_s = timeouts.payload_timeout_s
    decoder = SSEDecoder()
    committed = builder.committed
    response: UpstreamResponse | None = None
    async with contextlib.AsyncExitStack() as stack:
        with trio.move_on_after(stall_s):  # STALL GUARD for connecting, sending and the response head
            response = await stack.enter_async_context(
                _client(state).open(url, headers=headers, body=body, connect_timeout_s=timeouts.connect_timeout_s))
        if response is None:
            raise UpstreamStalled(f"no answer from upstream for {stall_s:g}s (stream_timeout_ms)")
        content_type = response.content_type
        if "event-stream" not in content_type and "json" in content_type:
            raw = await _read_body(response, stall_s, _NON_STREAM_BODY_LIMIT)
            parsed = _whole_json(raw)
            if parsed is None:
                raise answer_instead_of_stream(raw)
            replay_message(builder, whole(parsed))
            await _deliver(relay, builder.take())
            if builder.committed and not committed:
                on_commit()
            return
        if "html" in content_type:  # a gateway's or a login page where the stream should be: name it
            raise malformed_answer(await _read_body(response, stall_s, _NON_STREAM_BODY_LIMIT), "an event stream")
        read = response.read
        head: bytes | None = None  # the first bytes: what to name if they never were a stream
        payload_deadline = math.inf if payload_s is None else trio.current_time() + payload_s
        ended = False
        # a read that does not resume after a cancel (httpx, through a proxy) must never be cancelled early:
        # the guard's deadline is then moved to each read and off during the rest, so it fires only when due
        resumes = response.reads_resume
        read_started = trio.current_time()
        while not ended:
            # One GUARD scope (STALL + PAYLOAD) serves many reads: its deadline is the nearer of the two as
            # of when it was opened, and it is not moved per read (a new scope, or moving a deadline, per
            # upstream delta was a tenth of the per-delta cost). When it fires, the deadlines as they are now
            # say whether that was real; if not, the read it cancelled is simply made again under a new
            # scope. A cancelled read loses nothing: it is cancelled while waiting, before reading a byte.
            # Writes to the client sit inside it shielded, and the stall clock starts at each read, so a
            # slow client is never charged to the model. A re-armed scope counts from the start of the read it
            # cancelled (read_started is kept), not from when it fired: that silence goes on.
            with trio.CancelScope(deadline=min(read_started + stall_s, payload_deadline)) as guard:
                while True:
                    if not resumes:
                        guard.deadline = min(read_started + stall_s, payload_deadline)
                    chunk = await read()
                    if not resumes:
                        guard.deadline = math.inf
                    if not chunk:
                        ended = True
                        break
                    if head is None:
                        head = chunk
                    for event in decoder.feed(chunk):
                        if payload_s is not None and _is_payload(event):
                            payload_deadline = trio.current_time() + payload_s
                        translator.feed(event)
                        if translator.done:
                            break
                    out = builder.take()
                    if out:
                        await _deliver(relay, out)
                        if not committed and builder.committed:
                            committed = True
                            on_commit()
                    if translator.done:
                        return
                    read_started = trio.current_time()  # the next read's, after the write (a re-made one keeps it)
            if guard.cancelled_caught:
                now = trio.current_time()
                if now >= payload_deadline:
                    raise UpstreamStalled(f"only SSE comments and pings from upstream for {payload_s:g}s "
                                          "(payload_timeout_ms)")
                if now >= read_started + stall_s:
                    raise UpstreamStalled(f"no bytes from upstream for {stall_s:g}s (stream_timeout_ms)")
        for event in decoder.close():
            if not translator.done:
                translator.feed(event)
        if not translator.done and not builder.committed and head is not None and not _looks_like_sse(head):
            raise malformed_answer(head, "an event stream")  # an HTML page sent as event-stream, say
        if not translator.done:
            translator.close()
        await _deliver(relay, builder.take())
