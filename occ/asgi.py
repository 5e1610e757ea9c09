"""``hypercorn --worker-class trio 'occ.asgi:app'``: the config is found as ``occ serve`` finds it
(``$OCC_CONFIG``, ``~/.config/occ/config.json``, the embedded default).

The app learns where it listens so that a public bind without client keys is refused
(docs/security.md): from ``$OCC_BIND_HOST`` (set by ``occ serve --workers``), else from hypercorn's
own ``--bind`` on the command line, else from the address of each request. ``OCC_INSECURE_PUBLIC=1``
is ``--insecure-public``.
"""

from __future__ import annotations

import os
import sys

from occ.config.parse import load_config
from occ.observe.logs import configure_logging
from occ.server.serve import create_app


def _hypercorn_bind_hosts(argv: list[str]) -> list[str]:
    """The hosts of hypercorn's ``-b``/``--bind`` options, when this process is hypercorn."""
    program = os.path.basename(argv[0]) if argv else ""
    if "hypercorn" not in program and not argv[0].endswith(os.path.join("hypercorn", "__main__.py")):
        return []
    binds: list[str] = []
    for index, arg in enumerate(argv):
        value = None
        if arg in ("-b", "--bind") and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith("--bind="):
            value = arg.split("=", 1)[1]
        elif arg.startswith("-b") and len(arg) > 2:
            value = arg[2:]
        if value and not value.startswith(("unix:", "fd://")):
            binds.append(value.rsplit(":", 1)[0] if value.count(":") == 1 or value.startswith("[") else value)
    return binds


_config = load_config()
configure_logging(_config, quiet_if_configured=True)
app = create_app(_config, insecure_public=os.environ.get("OCC_INSECURE_PUBLIC", "") in ("1", "true", "yes"))
for _host in [os.environ["OCC_BIND_HOST"]] if os.environ.get("OCC_BIND_HOST") else _hypercorn_bind_hosts(sys.argv):
    app.state.guard.learn_bind(_host, _config)
    if app.state.guard.refusing_on is not None:
        break
