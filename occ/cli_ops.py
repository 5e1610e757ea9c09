"""Operational commands of the CLI (``occ status``, ``occ code``)."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_ops_commands", "run_ops_command"]


def add_ops_commands(sub: Any) -> None:
    return None


def run_ops_command(args: argparse.Namespace) -> int:
    raise SystemExit(f"occ: unknown command {args.command}")
