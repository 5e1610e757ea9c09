"""The architecture, checked: sans-IO modules import neither trio nor httpx nor quart nor hypercorn,
httpx is imported only by occ/upstream.py, and every error class maps to an Anthropic error."""

from __future__ import annotations

import ast
import os

import pytest

from occ import errors

OCC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "occ")
SANS_IO = ["config.py", "errors.py", "sse.py", "routing.py", "tokens.py", "validate.py", "providers.py",
           "jsonfast.py", "wires.py", "http1.py", "ids.py", "resilience/breaker.py", "resilience/classify.py"] + [
    f"translate/{name}" for name in os.listdir(os.path.join(OCC, "translate")) if name.endswith(".py")]
IO_LIBS = {"trio", "httpx", "quart", "quart_trio", "hypercorn", "anyio"}


def imported(path: str) -> set[str]:
    with open(os.path.join(OCC, path), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", SANS_IO)
def test_sans_io_modules_do_no_io(path):
    assert not imported(path) & IO_LIBS, f"{path} imports {imported(path) & IO_LIBS}"


def test_only_upstream_imports_httpx():
    users = []
    for root, _, files in os.walk(OCC):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, name), OCC)
                if "httpx" in imported(rel):
                    users.append(rel)
    assert users == ["upstream.py"]


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_error_maps_to_an_anthropic_error():
    for cls in _subclasses(errors.OccError):
        exc = cls.__new__(cls)
        exc.message = "m"
        if cls is errors.UpstreamStatus:
            exc = errors.UpstreamStatus(503, "m")
        elif cls is errors.AllAttemptsFailed:
            exc = errors.AllAttemptsFailed([], [], [])
        status, body = errors.to_anthropic(exc)
        assert 400 <= status <= 599 and body["type"] == "error"
        assert body["error"]["type"] in {"invalid_request_error", "authentication_error", "permission_error",
                                         "not_found_error", "request_too_large", "rate_limit_error", "api_error",
                                         "timeout_error", "overloaded_error", "billing_error"}
