"""The architecture, checked (docs/architecture.md draws it).

* ``occ/`` is layered: each folder may import only from folders below it, never from one above, and
  the module graph has no cycle. Every import counts: module level, inside functions and under
  ``TYPE_CHECKING``; a deferred import hides a cycle from Python, not from the reader.
* The sans-IO layers import neither trio nor httpx nor quart nor hypercorn.
* httpx is imported only by ``occ/upstream/client.py``.
* Translators share through lower modules (the stream builder, the request helpers, the error
  extractors), never by importing one another.
* Every error class maps to an Anthropic error.
"""

from __future__ import annotations

import ast
import os

import pytest

from occ.core import errors

OCC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "occ")

#: Top to bottom. A module may import its own layer and the layers after it.
LAYERS = ["cli", "server", "observe", "resilience", "translate", "upstream", "config", "core"]
#: Modules outside the layers: the package facade and the hypercorn entry point, which may import
#: any layer (nothing inside a layer may import them, except ``occ.__version__``).
ENTRY_POINTS = {"occ", "occ.asgi"}
SANS_IO_LAYERS = {"resilience", "translate", "config", "core"}
SANS_IO_MODULES = {"occ.upstream.http1"}
IO_LIBS = {"trio", "httpx", "quart", "quart_trio", "hypercorn", "anyio"}


def _modules() -> dict[str, str]:
    out = {}
    for root, _, files in os.walk(OCC):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(root, name)
                rel = os.path.relpath(path, os.path.dirname(OCC))[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = path
    return out


MODULES = _modules()


def _imports(module: str) -> set[str]:
    """Every module name ``module`` imports, anywhere in its body, resolved to absolute names."""
    with open(MODULES[module], encoding="utf-8") as f:
        tree = ast.parse(f.read())
    is_pkg = MODULES[module].endswith("__init__.py")
    package = module if is_pkg else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.add(mod)
            for alias in node.names:  # ``from occ.core import errors`` imports occ.core.errors
                if f"{mod}.{alias.name}" in MODULES:
                    names.add(f"{mod}.{alias.name}")
    return names


def _occ_imports(module: str) -> set[str]:
    return {n for n in _imports(module) if n in MODULES and n != module}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) in SANS_IO_LAYERS) + sorted(SANS_IO_MODULES))
def test_sans_io_modules_do_no_io(module):
    libs = {n.split(".")[0] for n in _imports(module)} & IO_LIBS
    assert not libs, f"{module} imports {libs}"


def test_only_the_upstream_client_imports_httpx():
    users = sorted(m for m in MODULES if any(n.split(".")[0] == "httpx" for n in _imports(m)))
    assert users == ["occ.upstream.client"]


def test_every_module_lives_in_a_layer():
    stray = sorted(m for m in MODULES if _layer(m) is None and m not in ENTRY_POINTS and m.count(".") >= 1
                   and m.split(".")[1] not in LAYERS)
    assert stray == [], "modules outside the layers: put each in the folder of its layer"


def test_imports_point_only_downward():
    upward = []
    for module in MODULES:
        here = _layer(module)
        for target in _occ_imports(module):
            if target == "occ" and module != "occ":
                # only the version string may be read from the facade
                continue
            there = _layer(target)
            if here is None:
                continue  # the facade and the entry point may import any layer
            if there is None or LAYERS.index(there) < LAYERS.index(here):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_import_cycles():
    graph = {m: _occ_imports(m) - {"occ"} for m in MODULES}
    # a package's __init__ is imported by every module under it; it never imports its children here
    cycles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert cycles == []


#: One module per upstream wire; ``occ.translate.wires`` selects among them.
WIRE_MODULES = {"occ.translate.openai_chat", "occ.translate.responses", "occ.translate.gemini",
                "occ.translate.anthropic_passthrough"}


def test_the_wire_modules_exist():
    assert WIRE_MODULES <= set(MODULES)


@pytest.mark.parametrize("module", sorted(WIRE_MODULES))
def test_no_wire_module_imports_another(module):
    assert _occ_imports(module) & WIRE_MODULES == set()


def test_the_facade_reads_only_the_version_from_inside_the_layers():
    """``from occ import __version__`` is the one upward read allowed: it is a constant, not code."""
    for module in MODULES:
        if _layer(module) is None:
            continue
        with open(MODULES[module], encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "occ" and node.level == 0:
                assert [a.name for a in node.names] == ["__version__"], module


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


def test_every_module_is_named_in_the_architecture_doc():
    """docs/architecture.md says what each module is for; a new module gets its line there."""
    with open(os.path.join(os.path.dirname(OCC), "docs", "architecture.md"), encoding="utf-8") as f:
        doc = f.read()
    unnamed = sorted(m for m, path in MODULES.items() if _layer(m) is not None
                     and not path.endswith(("__init__.py", "__main__.py"))
                     and f"`{os.path.basename(path)}`" not in doc)
    assert unnamed == [], "add these modules to docs/architecture.md (one line in their layer's paragraph)"
