"""The ASGI app, the request's fallback loop, its relay and cancel scopes, and serving."""
