"""``occ serve`` fixes glibc's mmap threshold, for itself and its spawned workers, unless the user set it."""

from __future__ import annotations

import os
import subprocess
import sys

from occ.cli.allocator import MMAP_THRESHOLD_BYTES, fix_mmap_threshold


def test_the_users_threshold_is_kept(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert fix_mmap_threshold() is False
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == "65536"


def test_the_threshold_reaches_spawned_workers(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "x")  # so that the test's end restores what was there
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    fix_mmap_threshold()
    child = subprocess.run([sys.executable, "-c", "import os; print(os.environ['MALLOC_MMAP_THRESHOLD_'])"],
                           capture_output=True, text=True, timeout=30, check=True)
    assert child.stdout.strip() == str(MMAP_THRESHOLD_BYTES)
