"""Pure values with no I/O: errors, ids, JSON, SSE, tokens, request validation."""
