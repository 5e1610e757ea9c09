"""The checks every request passes before any route sees it: occ is a local proxy holding the
user's provider keys, and neither a web page nor another machine may spend them.

:class:`Guard` runs in :class:`occ.server.app.OccApp` in front of every route, so a route added
later gets the same protection for free. In order:

1. **public bind without client keys**: occ spends the operator's keys on behalf of whoever can
   reach it. ``occ serve`` refuses to start that way (:func:`check_bind`); every other entry point
   (plain hypercorn, ``--workers``, an embedding program) learns the bind when it can (``occ.serve``
   and the CLI tell the app; ``occ.asgi`` reads hypercorn's ``--bind``) and, failing that, from
   the ASGI ``server`` address of each request. Then every request gets ``403`` and the reason is
   logged once;
2. **Host** (DNS rebinding): on a loopback bind the ``Host`` header must name this machine
   (``localhost``, a loopback address, any port) or an entry of ``allowed_hosts``;
3. **Origin** (cross-site requests): a request that carries ``Origin`` is refused unless the
   origin is in ``allowed_origins``; Claude Code and the SDKs send none. CORS preflights are
   answered only for allowed origins;
4. **client key** (``client_api_keys``): every path except ``/health`` (and ``/metrics`` when
   ``metrics_public``);
5. **Content-Type**: a request with a body must say ``application/json``. Browsers send
   ``text/plain``, form and untyped bodies cross-origin without a preflight; those get ``415``.

:func:`startup_notices` says at start-up what a newcomer would otherwise learn from a failed
request. docs/security.md gives each rule's reason. The checks themselves are plain functions of values
(header strings, the config); only :class:`Guard` keeps state (what it learned about the bind).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping

import attrs

from occ.config.model import DEFAULT_PATH, EMBEDDED_SOURCE, Config
from occ.core.errors import Forbidden, OccError, UnsupportedMediaType
from occ.observe.logs import get_logger
from occ.server.client_limits import client_identity

__all__ = [
    "Admission",
    "Guard",
    "UnsafeBind",
    "allowed_origin",
    "check_bind",
    "check_content_type",
    "check_host",
    "check_origin",
    "is_loopback",
    "startup_notices",
]

log = get_logger("occ.server.checks")

#: Answered without a client key: Claude Code's and ``occ code``'s liveness probe.
OPEN_PATHS = frozenset({"/health"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


class UnsafeBind(OccError):
    """``occ serve`` on a public address without client keys (a startup error, not a response)."""


@functools.lru_cache(maxsize=64)
def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine only.

    Cached: :meth:`Guard.admit` asks it up to three times per request, mostly about the same one or two
    strings, and ``ipaddress`` parsing costs ~2 us each time. Bounded, since a ``Host`` header is the
    client's to choose."""
    host = host.strip().lower()
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, config: Config, *, insecure_public: bool) -> None:
    """Refuse a non-loopback bind without inbound client keys: occ spends the operator's provider
    keys on behalf of whoever can reach it.

    Raises:
        UnsafeBind: the bind is public, no client keys, no ``--insecure-public``.
    """
    if is_loopback(host) or insecure_public or config.client_api_keys:
        return
    raise UnsafeBind(
        f"refusing to listen on {host}: that address is reachable from other machines and no "
        "client_api_keys are configured, so anyone who can connect would spend your provider keys. "
        "Set client_api_keys in the config, bind 127.0.0.1, or pass --insecure-public."
    )


def startup_notices(config: Config, host: str) -> list[str]:
    """What a newcomer would otherwise learn from the first failed request, one line each: providers
    the models use but hold no key for, running on the embedded defaults, a public bind.

    ``occ serve`` logs these at start-up and ``/status`` (so ``occ status``) repeats them.
    """
    notices: list[str] = []
    users: dict[str, list[str]] = {}
    for model in config.all_models():
        users.setdefault(model.provider, []).append(model.model_id)
    for name, model_ids in users.items():
        provider = config.providers.get(name)
        if provider is not None and not provider.api_keys:
            shown = ", ".join(dict.fromkeys(model_ids))
            notices.append(f"no API key for provider {name} (used by {shown}): set {provider.api_key_env} "
                           "or api_key in the config; its requests fail with 401 until then")
    if config.source == EMBEDDED_SOURCE:
        notices.append(f"no config file found ($OCC_CONFIG unset, no {DEFAULT_PATH}): using the embedded "
                       "defaults (OpenCode Go models); write one with: occ init")
    if not is_loopback(host):
        guard = ("client_api_keys are required from callers" if config.client_api_keys
                 else "no client_api_keys: anyone who can connect spends your provider keys")
        notices.append(f"listening on {host}, reachable from other machines; {guard}")
    return notices


def _split_host(value: str) -> tuple[str, str | None]:
    """``host[:port]`` (``[v6]:port`` too) as (lower-case host, port or None)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        host, rest = value[:end + 1], value[end + 1:]
        return host, rest[1:] if rest.startswith(":") else None
    if value.count(":") == 1:
        host, port = value.split(":")
        return host, port
    return value, None


def check_host(host_header: str | None, config: Config) -> None:
    """DNS rebinding: a page on ``evil.example`` whose name now resolves to 127.0.0.1 reaches occ
    with ``Host: evil.example``. This machine's names, any port, and ``allowed_hosts`` pass.

    Raises:
        Forbidden: the ``Host`` names another machine.
    """
    if host_header is None:  # HTTP/1.0 without Host: no browser sends that
        return
    host, port = _split_host(host_header)
    if is_loopback(host):
        return
    for entry in config.allowed_hosts:
        allowed_host, allowed_port = _split_host(entry)
        if allowed_host == host and (allowed_port is None or allowed_port == port):
            return
    raise Forbidden(f"Host {host_header!r} is not this machine: occ answers requests for localhost, "
                    "127.0.0.1 or [::1] only (add the name to allowed_hosts if you reach occ through it)")


def _normal_origin(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def allowed_origin(origin: str | None, config: Config) -> bool:
    """Whether ``origin`` is one of ``allowed_origins`` (its responses then carry CORS headers)."""
    return origin is not None and _normal_origin(origin) in {_normal_origin(o) for o in config.allowed_origins}


def check_origin(origin: str | None, config: Config) -> bool:
    """Whether the request may proceed; True for an allowed origin (it then gets CORS headers).

    Raises:
        Forbidden: the request carries an ``Origin`` that is not in ``allowed_origins``.
    """
    if origin is None:
        return False
    if allowed_origin(origin, config):
        return True
    raise Forbidden(f"requests from web pages are refused (Origin {origin!r} is not in allowed_origins): "
                    "a page you visit must not spend your provider keys")


def check_content_type(method: str, content_type: str | None) -> None:
    """A body must be declared JSON: ``text/plain``, form and untyped bodies are what a browser may
    send cross-origin without asking first.

    Raises:
        UnsupportedMediaType: a request with a body that is not ``application/json``.
    """
    if method not in _BODY_METHODS:
        return
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "application/json":
        shown = repr(content_type) if content_type else "none"
        raise UnsupportedMediaType(f"occ accepts only Content-Type: application/json here (got {shown})")


@attrs.frozen
class Admission:
    """What the guard decided for an admitted request."""

    #: the client's name for the per-client limiter (``key#N`` or ``addr:...``)
    client: str
    #: the (allowed) Origin the response must name in its CORS headers, if any
    origin: str | None = None
    #: this request is a CORS preflight: answer it with :func:`preflight_headers` and nothing else
    preflight: bool = False


def cors_headers(origin: str) -> dict[str, str]:
    return {"access-control-allow-origin": origin, "vary": "Origin",
            "access-control-expose-headers": "request-id, retry-after, retry-after-ms"}


def preflight_headers(origin: str, requested_headers: str | None) -> dict[str, str]:
    headers = cors_headers(origin)
    headers["access-control-allow-methods"] = "GET, POST, OPTIONS"
    headers["access-control-allow-headers"] = requested_headers or "content-type, x-api-key, authorization"
    headers["access-control-max-age"] = "600"
    return headers


@attrs.define
class Guard:
    """The checks in front of every route, plus what this app has learned about where it listens.

    ``bind_host`` is set by whoever knows it (``occ.serve``, ``occ serve``, ``occ.asgi``); when nobody
    does, a request that arrived on a non-loopback local address proves the bind public.
    """

    bind_host: str | None = None
    insecure_public: bool = False
    #: the public address that made this app refuse everything (None: not refusing)
    refusing_on: str | None = None

    def learn_bind(self, host: str, config: Config) -> None:
        """Record the address occ listens on (startup); logs the refusal once if it is unsafe."""
        self.bind_host = host
        self._check_public(host, config)

    def _check_public(self, host: str, config: Config) -> None:
        if self.refusing_on is not None or self.insecure_public or config.client_api_keys or is_loopback(host):
            return
        self.refusing_on = host
        log.error("occ is reachable on %s, a non-loopback address, and no client_api_keys are configured: "
                  "every request will be refused with 403 so that nobody else can spend your provider keys. "
                  "Set client_api_keys, bind 127.0.0.1, or start with --insecure-public "
                  "(OCC_INSECURE_PUBLIC=1 under plain hypercorn).", host)

    def _refusal(self) -> Forbidden:
        return Forbidden(f"occ refuses every request: it listens on {self.refusing_on}, which other machines "
                         "can reach, and no client_api_keys are configured (see occ's log and docs/security.md)")

    def admit(self, method: str, path: str, headers: Mapping[str, str], server: tuple[str, int | None] | None,
              peer: str | None, config: Config) -> Admission:
        """Run every check for one request.

        Raises:
            Forbidden: public bind without keys, foreign Host, foreign Origin (403).
            Unauthorized: client keys are configured and none was presented (401).
            UnsupportedMediaType: a body that is not JSON (415).
        """
        server_host = server[0] if server and server[1] is not None else None  # None: a unix socket
        if server_host is not None and self.bind_host is None and not is_loopback(server_host):
            self._check_public(server_host, config)
        if self.refusing_on is not None and not config.client_api_keys and not self.insecure_public:
            raise self._refusal()
        loopback_bind = is_loopback(self.bind_host) if self.bind_host is not None else (
            server_host is None or is_loopback(server_host))
        if loopback_bind or config.allowed_hosts:
            check_host(headers.get("host"), config)
        origin = headers.get("origin")
        allowed = check_origin(origin, config)
        if method == "OPTIONS" and allowed and "access-control-request-method" in headers:
            return Admission(client="preflight", origin=origin, preflight=True)
        if path in OPEN_PATHS or (path == "/metrics" and config.metrics_public):
            client = f"addr:{peer or 'unknown'}"
        else:
            client = client_identity(headers, peer, config)
        check_content_type(method, headers.get("content-type"))
        return Admission(client=client, origin=origin if allowed else None)
