"""A folder nothing can be written to, for the tests of a ledger that cannot write: a read-only bind
mount when the tests run as root (root writes through file modes), else mode 0555."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def read_only_dir(path: Path) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(0o755)
        return
    done = subprocess.run(["mount", "--bind", "-o", "ro", str(path), str(path)], capture_output=True, timeout=10)
    if done.returncode != 0:
        pytest.skip(f"cannot make a read-only folder as root here (mount --bind -o ro: {done.stderr.decode().strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], capture_output=True, timeout=10)
