"""A worker's metrics under prometheus_client's multiprocess mode: counted in its own file, with its pid
asked once (``occ.server.workers._metrics_know_their_pid``), not on every update."""

from __future__ import annotations

import subprocess
import sys

_PROGRAM = r"""
import os, sys
from occ.server.workers import _metrics_know_their_pid
_metrics_know_their_pid()
from prometheus_client import CollectorRegistry, Counter, multiprocess
counter = Counter("occ_test_requests", "test", ["route"], registry=CollectorRegistry()).labels("a")
real_getpid = os.getpid
def no_getpid():
    raise AssertionError("getpid asked on an update")
os.getpid = no_getpid
for _ in range(5):
    counter.inc()
os.getpid = real_getpid
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
print(registry.get_sample_value("occ_test_requests_total", {"route": "a"}))
print(sorted(os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"])) == [f"counter_{real_getpid()}.db"])
"""


def _run(tmp_path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": ":".join(sys.path), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    return subprocess.run([sys.executable, "-c", _PROGRAM], env=env, capture_output=True, text=True, timeout=60)


def test_a_worker_counts_in_its_own_file_without_asking_its_pid_per_update(tmp_path):
    done = _run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["5.0", "True"]


def test_without_a_multiprocess_directory_the_values_stay_prometheus_clients(monkeypatch):
    from prometheus_client import values

    from occ.server.workers import _metrics_know_their_pid

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr(values, "ValueClass", values.MutexValue)
    _metrics_know_their_pid()
    assert values.ValueClass is values.MutexValue
