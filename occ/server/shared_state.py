"""Many processes, one proxy: the background task that keeps this process and the fleet in step.

With ``shared_state`` configured, every occ process that names the same server (Redis or Valkey) and
``key_prefix`` shares its breakers, its per-client concurrency and its ``/status`` counters. The request
path never waits on the server: it reads this process's local view synchronously (the breaker registry,
the limiter's fleet counts, the last fleet snapshot), and what it changes goes out through a memory
channel (:meth:`SharedState.publish`, never blocking, dropping when full). One task, started in the
server's nursery, owns the connection and, every ``sync_interval_ms`` or as soon as an event arrives,
sends one pipeline: the events, this process's heartbeat and counters, and the reads of the fleet.

The server is an optimisation, never a dependency: every exchange has its own deadline (``timeout_ms``,
a visible cancel scope); a refused, failed or slow exchange marks the shared state ``unavailable`` (logged
once), drops the fleet's view so every process decides alone, and the task reconnects on its own with a
growing pause. Hot reload may change or remove the URL: the session ends and the next one uses it.

What lives on the server, under ``<prefix>:``:

* ``procs`` (hash): process id -> JSON heartbeat (host, pid, version, in flight, per-client in flight,
  ``seen`` in the server's clock). A process is alive while its ``seen`` is recent, so its client slots
  are leases that lapse when it dies; readers delete stale entries.
* ``breakers`` (hash): ``provider/model`` -> the time (server ms) until which the model is open; an open
  only ever extends it (a script keeps the later deadline); a successful probe deletes it.
* ``probe:<provider/model>`` (string): the process holding the model's half-open probe, with a TTL.
* ``slots:<client>`` (sorted set): the client's requests in flight across the fleet, one member per request
  (``<process id>:<n>``) scored with its lease's end (server ms). A request takes a slot with one script
  (drop the lapsed, count, add if under ``max_concurrent_per_client``): the limit is exact while the
  processes reach the store. The process renews its slots every tick; a dead one's slots lapse with
  their lease (4 sync intervals + 2 exchange deadlines).
* ``failures`` (hash): ``provider/model`` -> the fleet's consecutive counted failures of the model; a
  success anywhere deletes it, and the process whose failure brings it to ``failure_threshold`` opens the
  model for the fleet.
* ``counts`` (hash): ``provider/model|requests``, ``provider/model|<outcome>`` and the breaker bookkeeping
  (``provider/model|breaker:opened``, ``...:closed``, ``...:panic_routed``) -> fleet totals, incremented by
  each process's deltas (they outlive the processes that counted them).

Key round-robin stays per process (each process rotates its own keys).
"""

from __future__ import annotations

import itertools
import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

import orjson
import trio

from occ import __version__
from occ.config.model import SharedStateConfig
from occ.core.errors import RateLimited
from occ.core.ids import random_hex
from occ.core.resp import Arg, ReplyError
from occ.core.scrub import scrub
from occ.observe.logs import get_logger
from occ.observe.observer import Observer
from occ.resilience.breaker import BreakerRegistry
from occ.resilience.fleet import FleetBreakers
from occ.server.client_limits import ClientLimiter
from occ.server.redis_link import LinkError, RedisLink

__all__ = ["SharedState"]

log = get_logger("occ.server.shared_state")

#: events waiting for the sync task; beyond this the request path drops them rather than wait
EVENT_BUFFER = 1024
#: how long a probe lease lasts unless renewed (the sync task renews it while the probe runs)
LEASE_S = 10.0
#: a process unseen for four sync intervals and two exchange deadlines (3 s by default; at least this)
#: is dead: its client slots and its place in /status lapse
MIN_ALIVE_S = 1.0
#: the pause before reconnecting doubles from the first to the last
RECONNECT_S = (0.25, 2.0)
#: how often a process without shared state looks at the config again (hot reload may add it)
IDLE_CHECK_S = 1.0

# KEYS[1] = breakers hash, ARGV = label, until_ms, hash ttl_ms: keep the later deadline.
_OPEN_SCRIPT = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (not cur) or tonumber(cur) < tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""
# KEYS[1] = probe key, ARGV = process id, lease ms: take the lease, or keep it if it is ours.
_LEASE_SCRIPT = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
return 0
"""
# KEYS[1] = probe key, ARGV = process id: give the lease back if it is still ours.
_RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# KEYS[1] = the client's slots, ARGV = limit, lease ms, token: take a slot if one is free. Returns the count
# with it (> 0), or minus the count when all are taken. The server's clock scores the leases.
_SLOT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
if n >= tonumber(ARGV[1]) then return -n end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n + 1
"""
# KEYS[1] = failures hash, ARGV = label: one more consecutive counted failure across the fleet.
_FAIL_SCRIPT = """
local n = redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
redis.call('PEXPIRE', KEYS[1], 86400000)
return n
"""
_DAY_MS = 86_400_000
#: the observer's breaker bookkeeping shared as fleet totals: its key -> the name /status gives the total
_BREAKER_COUNTS = {"opened": "breaker_opened", "closed": "breaker_closed", "panic_routed": "panic_routed"}

Callback = Callable[[object], None]
_LINK_ERRORS = (OSError, LinkError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError,
                ssl.SSLError)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _pairs(reply: object) -> dict[str, bytes]:
    """An HGETALL reply (a flat array in RESP2) as a dict."""
    if isinstance(reply, ReplyError):
        raise LinkError(f"the server refused a read: {reply}")
    items = reply if isinstance(reply, list) else []
    return {_text(items[i]): items[i + 1] for i in range(0, len(items) - 1, 2)}


class SharedState:
    """This process's side of the fleet: its id, the event channel, the last fleet view, the sync task."""

    def __init__(self, breakers: BreakerRegistry, limiter: ClientLimiter, observer: Observer) -> None:
        self.id = f"{socket.gethostname()}:{os.getpid()}:{random_hex()[:6]}"
        self.breakers = breakers if isinstance(breakers, FleetBreakers) else None
        self.limiter = limiter
        self.observer = observer
        self._send, self._receive = trio.open_memory_channel[tuple[Any, ...]](EVENT_BUFFER)
        if self.breakers is not None:
            self.breakers.publish = self.publish
        #: "off" (not configured), "connecting", "connected" or "unavailable"
        self.status = "off"
        self.url: str | None = None
        self.processes: list[dict[str, Any]] = []
        self.counts: dict[str, dict[str, Any]] = {}
        self.dropped = 0
        self.started = time.time()
        self._offset_ms = 0.0  # server clock minus ours
        self._published: dict[str, int] = {}  # counter field -> value already added to the fleet's
        self._stale: list[str] = []  # dead processes to delete at the next tick
        self._config: SharedStateConfig | None = None  # the session's, while one runs
        self._slots: dict[str, set[str]] = {}  # client -> the slot tokens this process holds (or may)
        self._tokens = itertools.count(1)
        if self.breakers is not None:
            self.breakers.fleet_failures = {}

    # -- the request path's side (synchronous, never waits) -----------------------------------------

    def publish(self, event: tuple[Any, ...]) -> None:
        """Hand a change to the sync task; if it is that far behind, drop it (the next tick catches up)."""
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self.dropped += 1

    async def client_slot(self, client: str, limit: int) -> tuple[str | None, bool]:
        """One of ``client``'s ``limit`` slots across the fleet: ``(token, True)`` when the store granted it,
        ``(token, False)`` when it is not connected or did not answer within ``timeout_ms`` (or with an
        error): this process then decides alone, as without sharing. The token is the request's to give back
        with :meth:`release_slot` either way; while the request runs the sync task keeps it in the store
        (renewed every tick, written again after an outage), so the fleet's count includes it.

        The one wait on the store on the request path, under its own deadline (``timeout_ms``): an atomic
        count is what makes the limit exact.

        Raises:
            RateLimited: every slot is taken across the fleet.
        """
        config = self._config
        token = f"{self.id}:{next(self._tokens)}"
        if config is None or self.status != "connected":  # kept, so the next session counts it in the fleet
            self._slots.setdefault(client, set()).add(token)
            return token, False
        answered = trio.Event()
        replies: list[object] = []

        def reply(value: object) -> None:
            replies.append(value)
            answered.set()

        held = self._slots.setdefault(client, set())
        held.add(token)
        self.publish(("slot", client, token, limit, reply))
        try:
            with trio.move_on_after(config.timeout_s):  # SLOT DEADLINE: the store answers in time, or we decide
                await answered.wait()
        except BaseException:  # the client left while we asked: whatever the store did, give it back
            self.release_slot(client, token)
            raise
        granted = replies[0] if replies else None
        if not isinstance(granted, int) or isinstance(granted, bool):
            # no answer in time, an error reply, the store gone: this process decides alone, and the request,
            # if admitted, keeps its token: the next tick (or the next session) counts it in the fleet's set
            return token, False
        if granted <= 0:
            self._drop(client, token)
            running = -granted
            raise RateLimited(f"too many concurrent requests from this client ({running} running on this and "
                              f"other occ processes, max_concurrent_per_client is {limit})", retry_after_s=1.0)
        return token, True

    def release_slot(self, client: str, token: str) -> None:
        """The request holding ``token`` ended: its slot goes back (or lapses, if the store is away)."""
        self._drop(client, token)
        if self._config is not None:
            self.publish(("unslot", client, token))

    def _drop(self, client: str, token: str) -> None:
        held = self._slots.get(client)
        if held is not None:
            held.discard(token)
            if not held:
                del self._slots[client]

    def view(self) -> dict[str, Any]:
        """What ``/status`` shows of the fleet (values only)."""
        out: dict[str, Any] = {"state": self.status}
        if self.url is not None:
            out["url"] = self.url
        if self.status == "connected":
            out["process"] = self.id
            out["processes"] = list(self.processes)
            out["models"] = {label: dict(v) for label, v in self.counts.items()}
        return out

    # -- the sync task -------------------------------------------------------------------------------

    async def run(self, current: Callable[[], SharedStateConfig | None], in_flight: Callable[[], int]) -> None:
        """For the life of the server: connect, sync, and on any failure fall back and reconnect."""
        failures = 0
        while True:
            config = current()
            if config is None:
                self._off()
                await trio.sleep(IDLE_CHECK_S)
                continue
            if self.url != config.display:
                self.url, self.status = config.display, "connecting"
            try:
                with trio.fail_after(config.timeout_s):
                    link = await RedisLink.connect(config, name=f"occ:{self.id}")
            except Exception as exc:
                self._unavailable(config, exc)
                await trio.sleep(min(RECONNECT_S[1], RECONNECT_S[0] * 2 ** failures))
                failures += 1
                continue
            try:
                await self._session(link, config, current, in_flight)
                failures = 0
            except Exception as exc:
                if self.status == "connected":
                    failures = 0
                self._unavailable(config, exc)
                await trio.sleep(min(RECONNECT_S[1], RECONNECT_S[0] * 2 ** failures))
                failures += 1
            finally:
                await link.aclose()

    def _off(self) -> None:
        if self.status != "off":
            log.info("shared state off: this process keeps its own state")
        self._fall_back()
        self.status, self.url = "off", None

    def _unavailable(self, config: SharedStateConfig, exc: BaseException) -> None:
        """Fall back to this process's own state; say so once (until the server answers again)."""
        if self.status == "unavailable":
            pass
        elif not isinstance(exc, _LINK_ERRORS):  # occ's own bug: say so, but never take the server down
            log.error("shared state sync failed (an error in occ, please report it); serving with this "
                      "process's own state, retrying in the background", exc_info=exc)
        else:
            slow = isinstance(exc, trio.TooSlowError)
            reason = "no answer within timeout_ms" if slow else str(exc) or type(exc).__name__
            log.warning("shared state unavailable at %s (%s): serving with this process's own state, "
                        "reconnecting in the background", config.display, scrub(reason))
        self._fall_back()
        self.status = "unavailable"

    def _fall_back(self) -> None:
        if self.breakers is not None:
            self.breakers.disconnect()
        self.limiter.elsewhere = {}
        self.processes, self.counts = [], {}
        self._config = None  # the slots held are kept: the next session writes them again
        while True:  # what was queued for a server that is gone no longer applies
            try:
                event = self._receive.receive_nowait()
            except trio.WouldBlock:
                break
            if event[0] == "slot":
                event[4](None)  # its request decides alone, now rather than at its deadline

    async def _session(self, link: RedisLink, config: SharedStateConfig,
                       current: Callable[[], SharedStateConfig | None], in_flight: Callable[[], int]) -> None:
        # A server that restarted empty learns this process's open breakers again.
        events: list[tuple[Any, ...]] = []
        if self.breakers is not None:
            events = [("open", label, until) for label, until in self.breakers.open_until(time.time()).items()]
        next_tick = trio.current_time()
        self._config = config
        while current() == config:
            if not events:
                with trio.move_on_at(next_tick):
                    events.append(await self._receive.receive())
            while True:
                try:
                    events.append(self._receive.receive_nowait())
                except trio.WouldBlock:
                    break
            now = trio.current_time()
            tick = now >= next_tick
            if tick:
                next_tick = now + config.sync_interval_s
            plan = self._event_commands(config, events)
            if tick:
                plan += self._tick_commands(config, in_flight())
            events = []
            if not plan:
                continue
            with trio.fail_after(config.timeout_s):
                replies = await link.pipeline([command for command, _ in plan])
            for (_, apply), reply in zip(plan, replies, strict=True):
                apply(reply)
            if tick and self.status != "connected":
                self.status = "connected"
                log.info("shared state connected: %s (%d processes alive)", config.display, len(self.processes))

    # -- commands ------------------------------------------------------------------------------------

    def _server_ms(self) -> float:
        return time.time() * 1000 + self._offset_ms

    def _event_commands(self, config: SharedStateConfig,
                        events: list[tuple[Any, ...]]) -> list[tuple[list[Arg], Callback]]:
        prefix, plan = config.key_prefix, []
        breakers = self.breakers
        for event in events:
            kind, label = event[0], event[1]
            if kind == "open":
                until = int(float(event[2]) * 1000 + self._offset_ms)  # our wall clock -> the server's
                plan.append((["EVAL", _OPEN_SCRIPT, 1, f"{prefix}:breakers", label, until, _DAY_MS], _ignore))
            elif kind == "close":
                plan.append((["HDEL", f"{prefix}:breakers", label], _ignore))
            elif kind == "release":
                plan.append((["EVAL", _RELEASE_SCRIPT, 1, f"{prefix}:probe:{label}", self.id], _ignore))
            elif kind == "slot":
                plan.append((["EVAL", _SLOT_SCRIPT, 1, f"{prefix}:slots:{label}", event[3],
                              self._lease_ms(config), event[2]], event[4]))
            elif kind == "unslot":
                plan.append((["ZREM", f"{prefix}:slots:{label}", event[2]], _ignore))
            elif kind == "fail" and breakers is not None:

                def failed(reply: object, label: str = label) -> None:
                    if isinstance(reply, int) and not isinstance(reply, bool):
                        breakers.fleet_failure(label, reply, time.time())

                plan.append((["EVAL", _FAIL_SCRIPT, 1, f"{prefix}:failures", label], failed))
            elif kind == "healthy":
                plan.append((["HDEL", f"{prefix}:failures", label], _ignore))
            elif kind == "want" and breakers is not None:
                until = time.time() + LEASE_S - 1.0  # a second of margin for the exchange itself

                def granted(reply: object, label: str = label, until: float = until) -> None:
                    breakers.grant_lease(label, reply == 1, until)

                plan.append((["EVAL", _LEASE_SCRIPT, 1, f"{prefix}:probe:{label}", self.id, int(LEASE_S * 1000)],
                             granted))
        return plan

    @staticmethod
    def _lease_ms(config: SharedStateConfig) -> int:
        """How long a process's heartbeat and its client slots last without renewal."""
        return int(max(MIN_ALIVE_S, 4 * config.sync_interval_s + 2 * config.timeout_s) * 1000)

    def _tick_commands(self, config: SharedStateConfig, in_flight: int) -> list[tuple[list[Arg], Callback]]:
        prefix = config.key_prefix
        alive_ms = self._lease_ms(config)
        heartbeat = orjson.dumps({
            "host": socket.gethostname(), "pid": os.getpid(), "version": __version__, "started": self.started,
            "seen": int(self._server_ms()), "in_flight": in_flight, "clients": self.limiter.in_flight,
        })
        plan: list[tuple[list[Arg], Callback]] = [
            (["TIME"], self._on_time),
            (["HSET", f"{prefix}:procs", self.id, heartbeat], _ignore),
            (["PEXPIRE", f"{prefix}:procs", _DAY_MS], _ignore),
        ]
        if self._stale:
            plan.append((["HDEL", f"{prefix}:procs", *self._stale], _ignore))
            self._stale = []
        for field, value in self._counters().items():
            delta = value - self._published.get(field, 0)
            if delta:
                def counted(reply: object, field: str = field, value: int = value) -> None:
                    if isinstance(reply, int):
                        self._published[field] = value

                plan.append((["HINCRBY", f"{prefix}:counts", field, delta], counted))
        if self.breakers is not None:
            for label in self.breakers.renew_leases(time.time() + LEASE_S - 1.0):
                plan.append((["PEXPIRE", f"{prefix}:probe:{label}", int(LEASE_S * 1000)], _ignore))
        until = int(self._server_ms() + alive_ms)
        for client, tokens in self._slots.items():  # leases of the requests still running here, renewed, or
            if tokens:                               # written again (a store that restarted, a new session)
                members: list[Arg] = []
                for token in tokens:
                    members += [until, token]
                plan.append((["ZADD", f"{prefix}:slots:{client}", *members], _ignore))
                plan.append((["PEXPIRE", f"{prefix}:slots:{client}", alive_ms], _ignore))
        plan += [
            (["HGETALL", f"{prefix}:procs"], lambda reply: self._on_procs(reply, alive_ms)),
            (["HGETALL", f"{prefix}:breakers"], self._on_breakers),
            (["HGETALL", f"{prefix}:failures"], self._on_failures),
            (["HGETALL", f"{prefix}:counts"], self._on_counts),
        ]
        return plan

    def _counters(self) -> dict[str, int]:
        """This process's running totals, as fields of the fleet's ``counts`` hash: requests and outcomes
        per model, and the breaker bookkeeping (opened, closed, panic-routed: ``breaker:<kind>``)."""
        out: dict[str, int] = {}
        for label, stats in list(self.observer.per_model.items()):
            out[f"{label}|requests"] = stats.requests
            for outcome, n in list(stats.outcomes.items()):
                out[f"{label}|{outcome}"] = n
        for label, history in list(self.observer.breaker_history.items()):
            for kind in _BREAKER_COUNTS:
                if history.get(kind):
                    out[f"{label}|breaker:{kind}"] = int(history[kind])
        return out

    # -- replies -------------------------------------------------------------------------------------

    def _on_time(self, reply: object) -> None:
        if isinstance(reply, list) and len(reply) == 2:
            server_ms = int(reply[0]) * 1000 + int(reply[1]) / 1000
            self._offset_ms = server_ms - time.time() * 1000

    def _on_procs(self, reply: object, alive_ms: float) -> None:
        server_now = self._server_ms()
        processes: list[dict[str, Any]] = []
        elsewhere: dict[str, int] = {}
        for proc_id, raw in _pairs(reply).items():
            try:
                info = orjson.loads(raw)
                seen = float(info["seen"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self._stale.append(proc_id)
                continue
            if server_now - seen > alive_ms:
                self._stale.append(proc_id)  # dead: its client slots lapse with it
                continue
            processes.append({"id": proc_id, "host": info.get("host"), "pid": info.get("pid"),
                              "version": info.get("version"), "in_flight": info.get("in_flight", 0),
                              "uptime_s": round(time.time() - float(info.get("started") or time.time()), 1),
                              "seen_ms_ago": max(0, round(server_now - seen))})
            if proc_id != self.id:
                for client, n in (info.get("clients") or {}).items():
                    if isinstance(n, int) and n > 0:
                        elsewhere[client] = elsewhere.get(client, 0) + n
        self.processes = sorted(processes, key=lambda p: p["id"])
        self.limiter.elsewhere = elsewhere

    def _on_breakers(self, reply: object) -> None:
        if self.breakers is None:
            return
        until: dict[str, float] = {}
        for label, raw in _pairs(reply).items():
            try:
                until[label] = (float(raw) - self._offset_ms) / 1000  # the server's clock -> our wall clock
            except ValueError:
                continue
        self.breakers.apply_fleet(until, time.time())

    def _on_failures(self, reply: object) -> None:
        if self.breakers is None:
            return
        counts: dict[str, int] = {}
        for label, raw in _pairs(reply).items():
            try:
                counts[label] = int(raw)
            except ValueError:
                continue
        self.breakers.fleet_failures = counts

    def _on_counts(self, reply: object) -> None:
        counts: dict[str, dict[str, Any]] = {}
        for field, raw in _pairs(reply).items():
            label, _, name = field.rpartition("|")
            try:
                value = int(raw)
            except ValueError:
                continue
            entry = counts.setdefault(label, {"requests": 0, "outcomes": {}})
            if name == "requests":
                entry["requests"] = value
            elif name.startswith("breaker:"):
                entry[_BREAKER_COUNTS.get(name[8:], name[8:])] = value
            else:
                entry["outcomes"][name] = value
        self.counts = counts


def _ignore(reply: object) -> None:
    return None
