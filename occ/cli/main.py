"""The ``occ`` command line.

Errors go to stderr as one clear line and exit status 1 (2 for usage errors); a traceback only
with ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import trio

from occ import __version__
from occ.core.errors import ConfigError, OccError

if TYPE_CHECKING:
    from occ.config.model import ModelConfig

__all__ = ["main"]

DEFAULT_CONFIG_PATH = os.path.join("~", ".config", "occ", "config.json")


CONFIG_HELP = (f"config file (default: $OCC_CONFIG, else {DEFAULT_CONFIG_PATH} if it exists, "
               "else the embedded default)")


def common_options() -> argparse.ArgumentParser:
    """The options every subcommand takes, spelled and explained the same way everywhere."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="PATH", default=None, help=CONFIG_HELP)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logs")
    return common


def _parser() -> argparse.ArgumentParser:
    common = common_options()
    parser = argparse.ArgumentParser(
        prog="occ",
        description="A proxy that runs Claude Code (any Anthropic Messages API client) on other model "
        "providers: OpenCode Go/Zen, or any OpenAI-chat, Anthropic, Responses or Gemini endpoint.",
    )
    parser.add_argument("--version", action="version", version=f"occ {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.set_defaults(config=None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", parents=[common], help="run the proxy (default 127.0.0.1:3456)",
                           description="Run the proxy on hypercorn's trio worker until SIGINT/SIGTERM.")
    serve.add_argument("--host", help="address to bind (overrides the config's host)")
    serve.add_argument("--port", type=int,
                       help="port to bind (overrides the config's port; 0 = any free port)")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes (their breakers and limits are shared only with shared_state; "
                       "/metrics always counts them all)")
    serve.add_argument("--insecure-public", action="store_true",
                       help="allow binding a non-loopback address without client_api_keys")

    init = sub.add_parser("init", parents=[common], help="write a commented example config",
                          description="Write a commented example config file.")
    init.add_argument("path", nargs="?", default=None,
                      help=f"where to write it (default: --config, else $OCC_CONFIG, else {DEFAULT_CONFIG_PATH})")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    validate = sub.add_parser("validate", parents=[common], help="check a config file; print OK or every error",
                              description="Check a config file: every error and every warning, one per line. "
                              "Exit status 0 when valid, 1 otherwise.")
    validate.add_argument("path", nargs="?", default=None,
                          help="config file, the same as --config PATH")

    sub.add_parser("models", parents=[common], help="print the scenario -> model -> fallbacks table",
                   description="Print the scenario -> model (protocol) -> fallbacks table.")

    route = sub.add_parser("route", parents=[common], help="show the scenario, chain and reason for a request body",
                           description="Route a Messages API request body (JSON file, or - for stdin) "
                           "with the active config and print the scenario, the chain and why.")
    route.add_argument("request", help="request JSON file, or - for standard input")

    from occ.cli.ops import add_ops_commands
    from occ.cli.prices import add_prices_command
    from occ.cli.usage import add_usage_command

    add_ops_commands(sub, common)
    add_usage_command(sub, common)
    add_prices_command(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from occ.cli.output import install_scrubbing_hooks, scrubbed_output

    install_scrubbing_hooks()  # an uncaught exception anywhere (a thread too) prints scrubbed
    with scrubbed_output():  # argparse's own errors repeat the arguments: scrubbed too
        parser = _parser()
        args, extra = parser.parse_known_args(argv)
        if args.command == "code":
            args.claude_args = extra  # everything occ does not know goes to claude
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if args.command is None:
            parser.print_help()
            return 2
        if args.command != "serve":
            return _main(args)
    return _main(args)  # serve's output is log lines, already scrubbed by every occ logger


def _main(args: argparse.Namespace) -> int:
    try:
        return int(_run(args) or 0)
    except KeyboardInterrupt:
        return 0
    except BaseException as exc:
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            raise
        lines = None if args.debug else _failure_lines(exc)
        if lines is None:  # --debug, or what only a traceback explains: the traceback, scrubbed
            from occ.cli.output import print_traceback

            print_traceback(exc)
            return 1
        for line in lines:
            print(line, file=sys.stderr)
        return 1


def _failure_lines(exc: BaseException) -> list[str] | None:
    """What to print for a failure, one line per problem; None for what only a traceback explains.

    trio delivers a failure inside a nursery as an exception group: its leaves are reported
    one by one, so a port in use is one line whether it came out of a nursery or not.
    """
    if isinstance(exc, BaseExceptionGroup):
        out: list[str] = []
        for leaf in exc.exceptions:
            lines = _failure_lines(leaf)
            if lines is None:
                return None
            out += [line for line in lines if line not in out]
        return out
    if isinstance(exc, ConfigError):
        return [f"occ: invalid config {exc.source}: {problem}" for problem in exc.problems] + [
            f"occ: warning: {exc.source}: {warning}" for warning in exc.warnings]
    if isinstance(exc, (OccError, OSError, ValueError)):
        return [f"occ: {exc}"]
    if isinstance(exc, Exception):
        return [f"occ: unexpected {type(exc).__name__}: {exc} (run with --debug for the traceback)"]
    return None


def _run(args: argparse.Namespace) -> int:
    command = args.command
    if command == "serve":
        return _serve(args)
    if command == "init":
        return _init(args)
    if command == "validate":
        return _validate(args)
    if command == "models":
        return _models(args)
    if command == "route":
        return _route(args)
    if command == "usage":
        from occ.cli.usage import run_usage

        return run_usage(args)
    if command == "prices":
        from occ.cli.prices import run_prices

        return run_prices(args)
    from occ.cli.ops import run_ops_command

    return run_ops_command(args)


def _load(path: str | None) -> Any:
    from occ.config.parse import load_config
    from occ.core.scrub import remember_secrets

    config = load_config(path)
    remember_secrets(config.secrets())  # whatever the command prints next is masked of them
    return config


def _serve(args: argparse.Namespace) -> int:
    from occ.cli.allocator import fix_mmap_threshold
    from occ.observe.logs import configure_logging
    from occ.server.checks import check_bind, startup_notices
    from occ.server.serve import BindFailed, create_app, describe_bind_failure, hypercorn_config, open_sockets

    fix_mmap_threshold()  # a large request's memory goes back to the system once it is done
    config = _load(args.config)
    configure_logging(config, debug=args.debug)
    log = logging.getLogger("occ")
    for warning in config.warnings:
        log.warning("config: %s", warning)
    host = args.host or config.host
    port = config.port if args.port is None else args.port
    check_bind(host, config, insecure_public=args.insecure_public)
    if args.workers > 1:
        return _serve_workers(args, config, host, port)
    app = create_app(config, config_path=config.source, insecure_public=args.insecure_public)
    app.state.guard.learn_bind(host, config)  # also what /status's notices name
    hc = hypercorn_config(config, host=host, port=port)
    try:
        sockets = open_sockets(hc)  # before trio starts: a busy port is one line, not an exception group
    except OSError as exc:
        raise BindFailed(describe_bind_failure(exc, host, port)) from exc
    for notice in startup_notices(config, host):
        log.warning("%s", notice)

    async def run() -> None:
        from occ.server.serve import serve_until_stopped

        async with trio.open_nursery() as nursery:
            stop = trio.Event()
            nursery.start_soon(_wait_for_stop_signal, stop)
            binds = await nursery.start(
                lambda task_status: serve_until_stopped(app, hc, sockets, stop.wait, task_status=task_status)
            )
            url = binds[0] if binds else f"http://{host}:{port}"
            print(f"occ {__version__} listening on {url} — start Claude Code with: "
                  f"ANTHROPIC_BASE_URL={url} ANTHROPIC_AUTH_TOKEN=occ claude", flush=True)
            log.info("serving on %s (config %s)", url, config.source)

    trio.run(run)
    log.info("stopped")
    return 0


async def _wait_for_stop_signal(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            stop.set()
            return


def _serve_workers(args: argparse.Namespace, config: Any, host: str, port: int) -> int:
    from occ.server.checks import startup_notices
    from occ.server.serve import SHUTDOWN_FLUSH_S, BindFailed, describe_bind_failure, hypercorn_config, open_sockets
    from occ.server.usage_writer import SHUTDOWN_FLUSH_S as LEDGER_FLUSH_S
    from occ.server.workers import run_workers

    hc = hypercorn_config(config, host=host, port=port)
    try:
        sockets = open_sockets(hc)  # bound here, inherited by the workers: a busy port is one line
    except OSError as exc:
        raise BindFailed(describe_bind_failure(exc, host, port)) from exc
    for notice in startup_notices(config, host):  # here once, not once per worker
        logging.getLogger("occ").warning("%s", notice)
    if config.shared_state is None:
        logging.getLogger("occ").info("%d workers, each with its own breakers and per-client limits (/metrics "
                                      "counts them all); set shared_state to share them", args.workers)
    if config.source and os.path.isfile(config.source):
        os.environ["OCC_CONFIG"] = config.source
    metrics_dir, own_dir = _metrics_dir()
    # the workers build their app themselves: tell their guards where they listen (checks.py)
    os.environ["OCC_BIND_HOST"] = host
    if args.insecure_public:
        os.environ["OCC_INSECURE_PUBLIC"] = "1"
    bound = sockets.insecure_sockets[0].getsockname()
    netloc = f"[{bound[0]}]:{bound[1]}" if ":" in bound[0] else f"{bound[0]}:{bound[1]}"
    print(f"occ {__version__} listening on http://{netloc} with {args.workers} workers — start Claude "
          f"Code with: ANTHROPIC_BASE_URL=http://{netloc} ANTHROPIC_AUTH_TOKEN=occ claude", flush=True)
    # a worker's own shutdown: the grace, the error events' flush, hypercorn's backstop, the ledger's last write
    budget = config.shutdown_grace_s + SHUTDOWN_FLUSH_S + 2 + LEDGER_FLUSH_S
    try:
        code = run_workers(sockets.insecure_sockets, args.workers, budget, debug=bool(getattr(args, "debug", False)))
    finally:
        for sock in sockets.insecure_sockets:
            sock.close()
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    logging.getLogger("occ").info("stopped")
    return code


def _metrics_dir() -> tuple[str, bool]:
    """Where the workers' metrics meet (prometheus_client's multiprocess mode), emptied before they start:
    ``$PROMETHEUS_MULTIPROC_DIR`` if set (the operator's, kept afterwards), else a temporary directory
    removed on exit. The spawned workers inherit the variable, so each writes its values there and any
    of them answers a scrape with the sum."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        os.makedirs(given, exist_ok=True)
        for name in os.listdir(given):
            if name.endswith(".db"):
                os.remove(os.path.join(given, name))
        return given, False
    directory = tempfile.mkdtemp(prefix="occ-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory, True


def _init(args: argparse.Namespace) -> int:
    from occ.config.parse import init_template, parse_config

    path = os.path.expanduser(args.path or args.config or os.environ.get("OCC_CONFIG") or DEFAULT_CONFIG_PATH)
    if os.path.exists(path) and not args.force:
        print(f"occ: {path} already exists (use --force to overwrite)", file=sys.stderr)
        return 1
    text = init_template()
    parse_config(json.loads(text), env={}, source="template")  # never write a config occ can't load
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {path}; edit it, then run: occ validate {path}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    if args.path and args.config and args.path != args.config:
        print(f"occ: two config files given ({args.path} and --config {args.config}): pass one", file=sys.stderr)
        return 2
    config = _load(args.path or args.config)
    for warning in config.warnings:
        print(f"warning: {warning}")
    print(f"OK: {config.source}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from occ.config.parse import format_models_table

    print(format_models_table(_load(args.config)))
    return 0


def _route(args: argparse.Namespace) -> int:
    from occ.config.presets import resolve_protocol
    from occ.core.validate import parse_messages_request
    from occ.resilience.routing import format_route, route

    config = _load(args.config)
    if args.request == "-":
        raw = sys.stdin.buffer.read()
    else:
        with open(args.request, "rb") as f:
            raw = f.read()
    request = parse_messages_request(raw)
    result = route(request, config)

    def protocol_of(model: ModelConfig) -> str:
        return resolve_protocol(model, config.providers[model.provider])

    print(format_route(result, protocol_of, lambda m: thinking_line(request, raw, m, protocol_of(m))))
    return 0


def thinking_line(request: dict[str, Any], raw: bytes, model: ModelConfig, protocol: str) -> str:
    """What ``model`` would be sent of the request's thinking and effort, read from the body occ
    would really build for it (so the report cannot drift from the translators)."""
    from occ.config.presets import thinking_caps
    from occ.core.jsonfast import dumps_str, loads
    from occ.translate.wires import wire_for

    notes: list[str] = []
    try:
        body = loads(wire_for(protocol).build(request, raw, model, bool(request.get("stream")), notes.append))
    except Exception as exc:  # a report, not a request: say what failed and go on
        return f"thinking: (the request could not be built: {type(exc).__name__})"
    if not isinstance(body, dict):
        return "thinking: (unknown)"
    if protocol == "anthropic":
        config = body.get("output_config")
        effort = config.get("effort") if isinstance(config, dict) else None
        line = (f"thinking: {dumps_str(body['thinking']) if 'thinking' in body else 'none'}, "
                f"effort: {effort or 'none'} [{thinking_caps(model).source}]")
    elif protocol == "responses":
        reasoning = body.get("reasoning")
        line = f"thinking: reasoning {dumps_str(reasoning) if reasoning else 'none'}"
    elif protocol == "gemini":
        generation = body.get("generationConfig")
        config = generation.get("thinkingConfig") if isinstance(generation, dict) else None
        line = f"thinking: thinkingConfig {dumps_str(config) if config else 'none'}"
    else:
        parts = [f"{key} {dumps_str(body[key])}" for key in ("reasoning_effort", "thinking", "enable_thinking")
                 if key in body]
        line = f"thinking: {', '.join(parts) or 'none'}"
    prefix = f"thinking for {model.label} ({thinking_caps(model).source}): "
    changes = [note.removeprefix(prefix) for note in notes if note.startswith(prefix)]
    if changes:
        line += f"; changed: {'; '.join(changes)}"
    if protocol == "anthropic":  # the rest of the body, fitted (docs/passthrough-body.md)
        from occ.config.presets import body_caps

        prefix = f"body for {model.label} ({body_caps(model).source}): "
        line += "".join(f"; body: {note.removeprefix(prefix)}" for note in notes if note.startswith(prefix))
    return line


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
