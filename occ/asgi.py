"""``hypercorn --worker-class trio 'occ.asgi:app'``: the config is found as ``occ serve`` finds it
(``$OCC_CONFIG``, ``~/.config/occ/config.json``, the embedded default)."""

from __future__ import annotations

from occ.config.parse import load_config
from occ.observe.logs import configure_logging
from occ.server.serve import create_app

_config = load_config()
configure_logging(_config, quiet_if_configured=True)
app = create_app(_config)
