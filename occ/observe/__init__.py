"""Logs, the access line, metrics and status: fed values, never reaching up."""
