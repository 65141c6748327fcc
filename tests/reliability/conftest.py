"""Fixtures of the reliability tests: a private, throwaway cluster the fault scenarios may restart.

The shared cluster (tests/conftest.py) serves every other test and must never be restarted, so
the load and fault scenarios of ``bench/load_faults.py`` run on a cluster of their own, started
in a temporary folder on a free port and removed afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.load_harness import PrivateCluster, private_cluster  # noqa: E402


@pytest.fixture(scope="session")
def private() -> Iterator[PrivateCluster]:
    """Yield a private cluster with a migrated template database; remove it afterwards."""
    with private_cluster() as cluster:
        yield cluster
