"""Short versions of the load and fault scenarios (bench/load_faults.py), on a private cluster.

The API runs as a real uvicorn subprocess on 127.0.0.1, clients are real HTTP clients, and the
counts are taken in the database afterwards. Each scenario lists the problems it found; the long
versions (10,000 cases, 50 clients) are run from the command line and recorded in
docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.load_faults import (
    intake_load,
    kill_api,
    pg_outage_intake,
    pg_restart_layer,
    two_schedulers,
)
from bench.load_harness import PrivateCluster

pytestmark = pytest.mark.slow

CASES = 600
CLIENTS = 12


def test_concurrent_intake_stores_exactly_the_distinct_cases(private: PrivateCluster) -> None:
    outcome = intake_load(private, cases=CASES, clients=CLIENTS, resend=0.1)
    assert outcome.problems == [], outcome.show()
    assert outcome.figures["statuses"] == {200: CASES // 10, 201: CASES}
    assert outcome.figures["stored"] == CASES


def test_api_killed_mid_load_loses_no_answered_case(private: PrivateCluster) -> None:
    outcome = kill_api(private, cases=CASES, clients=CLIENTS, kill_after=0.4)
    assert outcome.problems == [], outcome.show()
    assert outcome.figures["no_answer"] > 0  # clients did see the API die, and re-sent
    assert outcome.figures["stored"] == CASES


def test_pg_restart_mid_layer_load_keeps_the_previous_version(
    private: PrivateCluster, tmp_path: Path
) -> None:
    tmp_path.chmod(0o755)
    outcome = pg_restart_layer(private, tmp_path, lamps=20_000)
    assert outcome.problems == [], outcome.show()
    assert "checksum same: True" in outcome.figures["after_restart"]


def test_pg_outage_mid_intake_answers_503_and_recovers(private: PrivateCluster) -> None:
    outcome = pg_outage_intake(private, cases=CASES, clients=CLIENTS, stop_after=0.3)
    assert outcome.problems == [], outcome.show()
    assert outcome.figures["answers_503"] > 0
    assert outcome.figures["statuses"] == {201: CASES}


def test_two_schedulers_escalate_each_case_once(private: PrivateCluster, tmp_path: Path) -> None:
    outcome = two_schedulers(private, tmp_path, cases=400, clients=CLIENTS)
    assert outcome.problems == [], outcome.show()
    assert outcome.figures["escalations"] == 400
    assert sum(outcome.figures["escalated_by_worker"]) == 400
