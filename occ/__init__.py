"""occ: run Claude Code (any Anthropic Messages client) on other model providers.

Three ways to use it:

* ``occ serve`` on the command line;
* plain hypercorn: ``hypercorn --worker-class trio 'occ.asgi:app'``;
* embedded in a trio program::

      app = occ.create_app(config)                  # the ASGI app
      binds = await nursery.start(occ.serve, config)  # serve it in your nursery
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import Any

__all__ = ["__version__", "create_app", "serve"]


def __getattr__(name: str) -> Any:
    """Import the server lazily, so sans-IO modules (``occ.config``...) load without trio/hypercorn."""
    if name in ("create_app", "serve"):
        from occ.server import serve as server

        return getattr(server, name)
    raise AttributeError(name)
