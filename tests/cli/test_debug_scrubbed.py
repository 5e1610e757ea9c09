"""``--debug`` tracebacks, argparse's errors and Python's last-resort printers pass the scrubber too:
run for real, as a user would, with a key the scrubber only knows by value (no key shape)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from support.stack import ROOT

SECRET = "opaque0secret0value0without0a0shape"


def _run(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OCC_CONFIG", "OCC_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd)


def _files(tmp_path):
    config = tmp_path / "occ.json"
    config.write_text(json.dumps({"api_key": SECRET, "models": {"default": {"provider": "opencode-go",
                                                                              "model_id": "kimi-k2.6"}}}))
    request = tmp_path / "request.json"
    # a bad role that repeats the key: occ's error message quotes the value it refused
    request.write_text(json.dumps({"model": "claude-x", "max_tokens": 5,
                                   "messages": [{"role": SECRET, "content": "hi"}]}))
    return str(config), str(request)


def test_a_debug_traceback_is_scrubbed(tmp_path):
    config, request = _files(tmp_path)
    plain = _run("-m", "occ.cli.main", "route", "--config", config, request, cwd=tmp_path)
    assert plain.returncode == 1 and "messages.0.role" in plain.stderr and SECRET not in plain.stderr
    debug = _run("-m", "occ.cli.main", "route", "--debug", "--config", config, request, cwd=tmp_path)
    assert debug.returncode == 1
    assert "Traceback (most recent call last)" in debug.stderr and "InvalidRequest" in debug.stderr
    assert "[redacted]" in debug.stderr
    assert SECRET not in debug.stderr + debug.stdout


def test_argparse_errors_are_scrubbed(tmp_path):
    done = _run("-m", "occ.cli.main", "models", "sk-proj-pasted0as0an0argument0here", cwd=tmp_path)
    assert done.returncode == 2 and "unrecognized arguments" in done.stderr
    assert "sk-proj-pasted0as0an0argument0here" not in done.stderr


def test_an_uncaught_exception_in_a_thread_is_scrubbed(tmp_path):
    code = ("import threading\n"
            "from occ.cli.output import install_scrubbing_hooks\n"
            "from occ.core.scrub import remember_secrets\n"
            f"remember_secrets([{SECRET!r}])\n"
            "install_scrubbing_hooks()\n"
            f"def boom(): raise RuntimeError('upstream said: ' + {SECRET!r})\n"
            "t = threading.Thread(target=boom); t.start(); t.join()\n"
            f"raise ValueError('and the main thread: ' + {SECRET!r})\n")
    done = _run("-c", code, cwd=tmp_path)
    assert done.returncode == 1
    assert "RuntimeError: upstream said: [redacted]" in done.stderr
    assert "ValueError: and the main thread: [redacted]" in done.stderr
    assert SECRET not in done.stderr
