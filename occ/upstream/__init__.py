"""The HTTP client to the providers: a sans-IO HTTP/1.1 parser, the pool, the client."""
