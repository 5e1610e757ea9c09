"""Safety checks before occ binds a socket, and what start-up says is missing."""

from __future__ import annotations

import ipaddress

from occ.config.model import DEFAULT_PATH, EMBEDDED_SOURCE, Config
from occ.core.errors import OccError

__all__ = ["check_bind", "is_loopback", "startup_notices"]


class UnsafeBind(OccError):
    pass


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, config: Config, *, insecure_public: bool) -> None:
    """Refuse a non-loopback bind without inbound client keys: occ spends the operator's provider
    keys on behalf of whoever can reach it."""
    if is_loopback(host) or insecure_public or getattr(config, "client_api_keys", ()):
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
