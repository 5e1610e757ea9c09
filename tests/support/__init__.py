"""Test support: fake upstreams, the stream checker, hypothesis strategies, recorded fixtures."""
