"""What the CLI shows never holds a key, and ``occ code`` hands Claude Code only to an occ: run for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import trio
from support.fake_upstream import Reply
from support.stack import TEST_KEY, fake_provider, make_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PASTED = "sk-proj-pasted0into0the0wrong0field"


async def occ_cli(*args: str, home: str, path: str | None = None, stdin: bytes = b"") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OCC_CONFIG", "OCC_API_KEY")}
    env["HOME"] = home
    if path is not None:
        env["PATH"] = path
    with trio.fail_after(60):
        return await trio.run_process([sys.executable, "-m", "occ.cli.main", *args], capture_stdout=True,
                                      capture_stderr=True, check=False, env=env, cwd=ROOT, stdin=stdin)


def _write(tmp_path, data) -> str:
    path = tmp_path / "occ.json"
    path.write_text(json.dumps(data))
    return str(path)


def _base(fake, **top):
    return {"providers": {"fake": fake_provider(fake)},
            "models": {"default": {"provider": "fake", "model_id": "model-a"}}, **top}


async def test_validate_masks_a_key_pasted_into_any_field(fake, tmp_path):
    """A valid file with a key where a model id goes: a warning that names the field, never the value."""
    config = _base(fake)
    config["models"]["think"] = {"provider": "fake", "model_id": PASTED}
    config["providers"]["fake"]["headers"] = {"x-note": PASTED}  # header values count as secrets: masked
    result = await occ_cli("validate", _write(tmp_path, config), home=str(tmp_path))
    out = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, out
    assert "models.think.model_id: the value looks like an API key (not shown)" in out
    assert PASTED not in out and TEST_KEY not in out


async def test_validate_never_repeats_a_key_in_an_error(fake, tmp_path):
    config = _base(fake, port=PASTED)
    config["providers"]["fake"]["base_url"] = TEST_KEY
    result = await occ_cli("validate", _write(tmp_path, config), home=str(tmp_path))
    out = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 1
    assert "providers.fake.base_url" in out and "port" in out
    assert PASTED not in out and TEST_KEY not in out


async def test_validate_and_serve_reject_empty_and_short_client_keys(fake, tmp_path):
    for keys, needle in (([""], "client_api_keys.0: empty"), (["abc123"], "client_api_keys.0: too short")):
        path = _write(tmp_path, _base(fake, client_api_keys=keys))
        validate = await occ_cli("validate", path, home=str(tmp_path))
        serve = await occ_cli("serve", "--config", path, "--port", "0", home=str(tmp_path))
        for result in (validate, serve):
            assert result.returncode == 1
            assert needle in result.stderr.decode(), result.stderr.decode()


async def test_route_and_models_output_is_scrubbed(fake, tmp_path):
    config = _base(fake)
    config["models"]["default"]["model_id"] = PASTED
    path = _write(tmp_path, config)
    request = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 5,
                          "messages": [{"role": "user", "content": "hi"}]}).encode()
    route = await occ_cli("route", "-", "--config", path, home=str(tmp_path), stdin=request)
    models = await occ_cli("models", "--config", path, home=str(tmp_path))
    for result in (route, models):
        assert result.returncode == 0, result.stderr
        assert PASTED not in result.stdout.decode()
        assert "fake/[redacted]" in result.stdout.decode()


async def test_occ_code_refuses_a_port_held_by_something_else(fake, tmp_path):
    """claude-code-router on occ's port: occ code says what it found and which port to use."""
    fake.default("/health", Reply(status=200, headers={"server": "claude-code-router"}, body={"status": "ok"}))
    port = int(fake.url.rsplit(":", 1)[1])
    path = _write(tmp_path, _base(fake, port=port))
    result = await occ_cli("code", "--config", path, home=str(tmp_path))
    err = result.stderr.decode()
    assert result.returncode == 1
    assert f"not starting Claude Code against http://127.0.0.1:{port}" in err
    assert "something that is not occ answers there" in err and "claude-code-router" in err
    assert 'set "port": ' in err
    assert fake.requests("/health")


async def test_occ_code_accepts_a_running_occ(fake, start_occ, tmp_path):
    """With occ on the port, occ code goes on to Claude Code (here: not on PATH, so it says so)."""
    url = await start_occ(make_config(fake))
    path = _write(tmp_path, _base(fake, port=int(url.rsplit(":", 1)[1])))
    result = await occ_cli("code", "--config", path, home=str(tmp_path), path=str(tmp_path))
    assert result.returncode == 1
    assert "Claude Code is not installed" in result.stderr.decode()
