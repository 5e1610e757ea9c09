"""The names users reach occ by keep working whatever moves inside: the facade (``occ.create_app``,
``occ.serve``), ``occ.asgi:app``, the console script, ``python -m occ.cli``, and every ``occ`` import
the README, the docs, the examples and the benchmarks show."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys
import tomllib

import pytest

import occ

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _env() -> dict[str, str]:
    env = {**os.environ, "HOME": "/nonexistent-home", "PYTHONPATH": ROOT}
    env.pop("OCC_CONFIG", None)
    return env


def test_the_facade_exports_exactly_these_names():
    assert occ.__all__ == ["__version__", "create_app", "serve"]
    from occ.server import serve as server

    assert occ.create_app is server.create_app and occ.serve is server.serve
    assert isinstance(occ.__version__, str)
    with pytest.raises(AttributeError):
        occ.no_such_name  # noqa: B018


def test_sans_io_layers_load_without_the_server():
    """The facade imports the server lazily: reading a config does not pull in trio or hypercorn."""
    code = ("import sys, occ, occ.config.parse, occ.translate.wires; "
            "print(sorted({'trio', 'hypercorn', 'quart'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=_env(), timeout=60, check=True)
    assert out.stdout.strip() == b"[]"


def test_the_asgi_entry_point_builds_an_app():
    code = "import occ.asgi; print(type(occ.asgi.app).__name__, callable(occ.asgi.app))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, env=_env(), timeout=60, check=True)
    assert out.stdout.split() == [b"OccApp", b"True"]


def test_the_console_script_and_python_m_occ_cli():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    module, _, func = scripts["occ"].partition(":")
    assert callable(getattr(importlib.import_module(module), func))
    out = subprocess.run([sys.executable, "-m", "occ.cli", "--version"], capture_output=True, env=_env(),
                         timeout=60, cwd=ROOT)
    assert out.returncode == 0 and occ.__version__.encode() in out.stdout + out.stderr


def _python_files(*folders: str) -> list[str]:
    return sorted(os.path.join(ROOT, folder, name) for folder in folders
                  for name in os.listdir(os.path.join(ROOT, folder)) if name.endswith(".py"))


def _shown_imports() -> list[tuple[str, str, str]]:
    """``(where, module, name)`` for every ``from occ... import name`` in the examples, benchmarks,
    README and docs (``name`` empty for ``import occ...``)."""
    found: list[tuple[str, str, str]] = []
    for path in _python_files("examples", "benchmarks"):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "occ":
                found += [(path, node.module or "", a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                found += [(path, a.name, "") for a in node.names if a.name.split(".")[0] == "occ"]
    docs = [os.path.join(ROOT, "README.md")] + [os.path.join(ROOT, "docs", n) for n in os.listdir(
        os.path.join(ROOT, "docs")) if n.endswith(".md")]
    for path in docs:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for module, names in re.findall(r"^\s*from (occ[\w.]*) import ([\w, ]+)$", text, re.MULTILINE):
            found += [(path, module, n.strip()) for n in names.split(",") if n.strip()]
    return found


def test_every_occ_import_the_docs_and_examples_show_exists():
    shown = _shown_imports()
    assert any(m == "occ.config.parse" for _, m, _ in shown)  # the scan finds what is there
    missing = []
    for where, module, name in shown:
        try:
            loaded = importlib.import_module(module)
        except ImportError:
            missing.append(f"{os.path.relpath(where, ROOT)}: {module}")
            continue
        if name and not hasattr(loaded, name):
            missing.append(f"{os.path.relpath(where, ROOT)}: {module}.{name}")
    assert missing == []
