"""Safety checks before occ binds a socket."""

from __future__ import annotations

import ipaddress

from occ.config.model import Config
from occ.core.errors import OccError

__all__ = ["check_bind", "is_loopback"]


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
