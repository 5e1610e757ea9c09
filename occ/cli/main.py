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
from typing import Any

import trio

from occ import __version__
from occ.core.errors import ConfigError, OccError

__all__ = ["main"]

DEFAULT_CONFIG_PATH = os.path.join("~", ".config", "occ", "config.json")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="occ",
        description="A proxy that runs Claude Code (any Anthropic Messages API client) on other model "
        "providers: OpenCode Go/Zen, or any OpenAI-chat, Anthropic, Responses or Gemini endpoint.",
    )
    parser.add_argument("--version", action="version", version=f"occ {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the proxy (default 127.0.0.1:3456)",
                           description="Run the proxy on hypercorn's trio worker until SIGINT/SIGTERM.")
    serve.add_argument("--config", metavar="PATH",
                       help=f"config file (default: $OCC_CONFIG, else {DEFAULT_CONFIG_PATH}, "
                       "else the embedded default)")
    serve.add_argument("--host", help="address to bind (overrides the config's host)")
    serve.add_argument("--port", type=int,
                       help="port to bind (overrides the config's port; 0 = any free port)")
    serve.add_argument("--workers", type=int, default=1,
                       help="worker processes (their breakers and limits are shared only with shared_state; "
                       "/metrics always counts them all)")
    serve.add_argument("--insecure-public", action="store_true",
                       help="allow binding a non-loopback address without client_api_keys")

    init = sub.add_parser("init", help="write a commented example config",
                          description="Write a commented example config file.")
    init.add_argument("path", nargs="?", default=None,
                      help=f"where to write it (default: {DEFAULT_CONFIG_PATH})")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")

    validate = sub.add_parser("validate", help="check a config file; print OK or every error",
                              description="Check a config file. Exit status 0 when valid, 1 otherwise.")
    validate.add_argument("path", nargs="?", default=None,
                          help="config file (default: found as `occ serve` finds it)")

    models = sub.add_parser("models", help="print the scenario -> model -> fallbacks table",
                            description="Print the scenario -> model (protocol) -> fallbacks table.")
    models.add_argument("--config", metavar="PATH", help="config file (default: found as `occ serve` finds it)")

    route = sub.add_parser("route", help="show the scenario, chain and reason for a request body",
                           description="Route a Messages API request body (JSON file, or - for stdin) "
                           "with the active config and print the scenario, the chain and why.")
    route.add_argument("request", help="request JSON file, or - for standard input")
    route.add_argument("--config", metavar="PATH", help="config file (default: found as `occ serve` finds it)")

    from occ.cli.ops import add_ops_commands
    from occ.cli.usage import add_usage_command

    add_ops_commands(sub)
    add_usage_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "code":
        args.claude_args = extra  # everything occ does not know goes to claude
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(_run(args) or 0)
    except KeyboardInterrupt:
        return 0
    except ConfigError as exc:
        if args.debug:
            raise
        print(f"occ: invalid config {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except (OccError, OSError, ValueError) as exc:
        if args.debug:
            raise
        print(f"occ: {exc}", file=sys.stderr)
        return 1


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
    from occ.cli.ops import run_ops_command

    return run_ops_command(args)


def _load(path: str | None) -> Any:
    from occ.config.parse import load_config

    return load_config(path)


def _serve(args: argparse.Namespace) -> int:
    from occ.observe.logs import configure_logging
    from occ.server.checks import check_bind
    from occ.server.serve import create_app, hypercorn_config

    config = _load(args.config)
    configure_logging(config, debug=args.debug)
    for warning in config.warnings:
        logging.getLogger("occ").warning("config: %s", warning)
    host = args.host or config.host
    port = config.port if args.port is None else args.port
    check_bind(host, config, insecure_public=args.insecure_public)
    if args.workers > 1:
        return _serve_workers(args, config, host, port)
    app = create_app(config, config_path=config.source)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            stop = trio.Event()
            nursery.start_soon(_wait_for_stop_signal, stop)
            from hypercorn.trio import serve as hypercorn_serve

            binds = await nursery.start(
                lambda task_status: hypercorn_serve(app, hypercorn_config(config, host=host, port=port),
                                                    shutdown_trigger=stop.wait, task_status=task_status)
            )
            url = binds[0] if binds else f"http://{host}:{port}"
            print(f"occ {__version__} listening on {url} — start Claude Code with: "
                  f"ANTHROPIC_BASE_URL={url} ANTHROPIC_AUTH_TOKEN=occ claude", flush=True)
            await stop.wait()
            # hypercorn now stops accepting and lets in-flight requests finish within the grace period
            await trio.sleep(0)
            nursery.cancel_scope.deadline = trio.current_time() + config.shutdown_grace_s + 1

    trio.run(run)
    return 0


async def _wait_for_stop_signal(stop: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            stop.set()
            return


def _serve_workers(args: argparse.Namespace, config: Any, host: str, port: int) -> int:
    from hypercorn.run import run as hypercorn_run

    from occ.server.serve import hypercorn_config

    hc = hypercorn_config(config, host=host, port=port, workers=args.workers)
    hc.worker_class = "trio"
    hc.application_path = "occ.asgi:app"
    if config.source and os.path.isfile(config.source):
        os.environ["OCC_CONFIG"] = config.source
    metrics_dir, own_dir = _metrics_dir()
    print(f"occ {__version__} listening on http://{host}:{port} with {args.workers} workers — start Claude "
          f"Code with: ANTHROPIC_BASE_URL=http://{host}:{port} ANTHROPIC_AUTH_TOKEN=occ claude", flush=True)
    try:
        return hypercorn_run(hc)
    finally:
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


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

    path = os.path.expanduser(args.path or DEFAULT_CONFIG_PATH)
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
    config = _load(args.path)
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
    print(format_route(result, lambda m: resolve_protocol(m, config.providers[m.provider])))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
