"""Load and fault scenarios (issue #8, item 5), each a function with size and time parameters.

Usage: ``.venv/bin/python -m bench.load_faults [--cases 10000] [--clients 50] [--lamps 300000]
[SCENARIO ...]`` runs the long versions on a private, throwaway cluster (loopback only) and
prints each scenario's figures with the load average; ``tests/reliability`` runs short ones.

- ``intake``: concurrent clients post distinct cases plus 10 % re-sent with the same source id:
  exactly the distinct cases are stored, every 201 is a stored case.
- ``kill-api``: the API is SIGKILLed in the middle of that load and restarted; clients that got
  no answer re-send: no case answered 201 is missing, none is stored twice.
- ``pg-layer``: PostgreSQL restarts in the middle of a layer load: the layer keeps its previous
  version, complete (count and checksum); loading again succeeds.
- ``pg-intake``: PostgreSQL stops for a while in the middle of intake: clients get 503 with
  Retry-After (never 500), nothing is half-written, and the same API process recovers.
- ``schedulers``: two ``sibiao worker`` processes escalate the same overdue cases at once: each
  case is escalated, notified and logged exactly once.

Each scenario returns a :class:`Outcome`: its figures and the problems found (empty = passed).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from bench.load_harness import (
    Answers,
    ApiProcess,
    PrivateCluster,
    Stored,
    case_bodies,
    check_stored,
    child_env,
    load_average,
    post_cases,
    private_cluster,
)
from bench.load_layers import (
    SIBIAO,
    ingest_process,
    lamps_file,
    layer_state,
    wait_publishing,
    wait_streaming,
)
from schemas.database import make_engine, parse_url
from schemas.settings import Settings


@dataclass
class Outcome:
    """A scenario's figures and the problems it found."""

    name: str
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def expect(self, ok: bool, problem: str) -> None:
        """Record ``problem`` unless ``ok``."""
        if not ok:
            self.problems.append(problem)

    def show(self) -> str:
        """Return the figures as lines."""
        lines = [f"== {self.name} (load average {self.figures.get('load', '?')})"]
        lines += [f"   {key}: {value}" for key, value in self.figures.items() if key != "load"]
        lines += [f"   PROBLEM: {p}" for p in self.problems] or ["   ok"]
        return "\n".join(lines)


def _engine(settings: Settings) -> Engine:
    assert settings.database_url is not None
    return make_engine(parse_url(settings.database_url), pool_size=2)


def _answer_figures(outcome: Outcome, answers: Answers) -> None:
    outcome.figures.update(
        posts=answers.sent,
        statuses=dict(sorted(answers.final.items())),
        no_answer=answers.no_answer,
        answers_503=answers.status_503,
        gave_up=answers.gave_up,
        wall_s=round(answers.wall_s, 1),
        posts_per_s=round(answers.rate(), 1),
        p50_ms=round(answers.percentile(0.5), 1),
        p99_ms=round(answers.percentile(0.99), 1),
    )


def _check_cases(outcome: Outcome, stored: Stored, distinct: int, answers: Answers) -> None:
    outcome.figures.update(stored=stored.rows, created_201=len(answers.created))
    outcome.expect(stored.rows == distinct, f"{stored.rows} cases stored, {distinct} distinct sent")
    outcome.expect(stored.rows == stored.distinct, "a source id is stored twice")
    outcome.expect(stored.missing_created == 0, f"{stored.missing_created} answered 201, missing")
    outcome.expect(stored.missing_any == 0, f"{stored.missing_any} sent cases not stored")
    outcome.expect(stored.without_receive_event == 0, "cases without their receive event")
    outcome.expect(stored.orphan_events == 0, "events of cases that do not exist")
    outcome.expect(answers.gave_up == 0, f"{answers.gave_up} posts gave up")
    outcome.expect(not answers.other_5xx, f"server errors: {dict(answers.other_5xx)}")


def intake_load(
    cluster: PrivateCluster, *, cases: int = 10_000, clients: int = 50, resend: float = 0.1
) -> Outcome:
    """Post ``cases`` distinct cases (and ``resend`` of them again) with ``clients`` clients."""
    outcome = Outcome("intake")
    settings = cluster.settings(cluster.fresh("intake"))
    bodies = case_bodies("L", cases, resend)
    api = ApiProcess(settings)
    api.start()
    try:
        answers = post_cases(api.base, bodies, clients=clients)
    finally:
        api.stop()
    engine = _engine(settings)
    try:
        stored = check_stored(engine, "L", {str(b["source_id"]) for b in bodies}, answers.created)
    finally:
        engine.dispose()
    outcome.figures.update(load=load_average(), clients=clients, distinct=cases)
    _answer_figures(outcome, answers)
    _check_cases(outcome, stored, cases, answers)
    outcome.expect(len(answers.created) == cases, f"{len(answers.created)} answered 201")
    outcome.expect(answers.final[200] == len(bodies) - cases, "re-sends not all answered 200")
    return outcome


def kill_api(
    cluster: PrivateCluster,
    *,
    cases: int = 10_000,
    clients: int = 50,
    resend: float = 0.1,
    kill_after: float = 0.4,
) -> Outcome:
    """SIGKILL the API once ``kill_after`` of the posts are answered, restart it at once."""
    outcome = Outcome("kill-api")
    settings = cluster.settings(cluster.fresh("kill"))
    bodies = case_bodies("K", cases, resend)
    api = ApiProcess(settings)
    api.start()
    engine = _engine(settings)
    killed: dict[str, float] = {}

    def killer() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                done = conn.execute(text("SELECT count(*) FROM cases")).scalar_one()
            if done >= kill_after * cases:
                killed["stored_before"] = done
                started = time.monotonic()
                api.kill()
                api.start()
                killed["down_s"] = time.monotonic() - started
                return
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        answers = post_cases(api.base, bodies, clients=clients, retry_cap_s=0.5)
        thread.join(timeout=120)
    finally:
        api.stop()
    try:
        stored = check_stored(engine, "K", {str(b["source_id"]) for b in bodies}, answers.created)
    finally:
        engine.dispose()
    outcome.figures.update(
        load=load_average(),
        clients=clients,
        distinct=cases,
        killed_at_stored=killed.get("stored_before"),
        restart_s=round(killed.get("down_s", 0.0), 1),
        resent_after_no_answer=len(answers.retried_after_no_answer),
    )
    _answer_figures(outcome, answers)
    outcome.expect("stored_before" in killed, "the API was never killed (load ended first)")
    outcome.expect(api.starts == 2, f"the API started {api.starts} times")
    outcome.expect(answers.no_answer > 0, "no client noticed the kill")
    _check_cases(outcome, stored, cases, answers)
    return outcome


def pg_restart_layer(
    cluster: PrivateCluster, folder: Path, *, lamps: int = 300_000, at: str = "publish"
) -> Outcome:
    """Restart PostgreSQL in the middle of a layer load, then load the same file again.

    ``at="publish"``: every row is staged and the load waits to publish (the layer's advisory
    lock is held meanwhile), so the restart surely falls inside the load's transaction.
    ``at="stream"``: the restart comes as soon as the load has reported streamed rows.
    """
    outcome = Outcome(f"pg-layer ({at})")
    settings = cluster.settings(cluster.fresh("layer"))
    first = lamps_file(folder / "lamps-v1.gpkg", max(1000, lamps // 10), 1)
    second = lamps_file(folder / "lamps-v2.gpkg", lamps, 2)
    engine = _engine(settings)
    try:
        initial = ingest_process(settings, first)
        initial.communicate(timeout=600)
        before = layer_state(engine)
        with engine.connect() as conn:
            last_batch = conn.execute(text("SELECT max(id) FROM load_batches")).scalar_one()
        holder = engine.connect()
        if at == "publish":
            holder.execute(text("SELECT pg_advisory_lock(hashtext('sibiao.layer.street_lamp'))"))
        started = time.monotonic()
        load = ingest_process(settings, second)
        if at == "publish":
            seen = wait_publishing(engine, timeout=300)
        else:
            seen = wait_streaming(engine, int(last_batch), timeout=300)
        if seen is not None:
            cluster.cluster.restart()
        holder.invalidate()
        holder.close()
        out, err = load.communicate(timeout=600)
        interrupted_s = time.monotonic() - started
        after = layer_state(engine)
        started = time.monotonic()
        rerun = ingest_process(settings, second)
        rerun_out, rerun_err = rerun.communicate(timeout=600)
        rerun_s = time.monotonic() - started
        final = layer_state(engine)
    finally:
        engine.dispose()
    outcome.figures.update(
        load=load_average(),
        first_load=f"v{before[0]}, {before[1]} rows (exit {initial.returncode})",
        interrupted_load=f"exit {load.returncode} after {interrupted_s:.1f} s, "
        f"restart after {seen and seen['read_count']} rows were read",
        after_restart=f"v{after[0]}, {after[1]} rows, checksum same: {after[2] == before[2]}",
        rerun=f"exit {rerun.returncode}, v{final[0]}, {final[1]} rows in {rerun_s:.1f} s",
    )
    outcome.expect(initial.returncode == 0 and before[1] > 0, "the first load failed")
    outcome.expect(seen is not None, "the load finished before PostgreSQL could be restarted")
    outcome.expect(load.returncode != 0, f"the interrupted load exited 0: {out[-300:]}")
    outcome.expect(after == before, f"layer changed by the interrupted load: {before} → {after}")
    outcome.expect(rerun.returncode == 0, f"the rerun failed: {rerun_err[-300:]}")
    outcome.expect(
        final[0] == before[0] + 1 and final[1] == lamps, f"rerun did not publish: {final}"
    )
    return outcome


def pg_outage_intake(
    cluster: PrivateCluster,
    *,
    cases: int = 10_000,
    clients: int = 50,
    stop_after: float = 0.3,
    outage_s: float = 3.0,
) -> Outcome:
    """Stop PostgreSQL for ``outage_s`` once ``stop_after`` of the cases are in; keep posting."""
    outcome = Outcome("pg-intake")
    settings = cluster.settings(cluster.fresh("outage"))
    bodies = case_bodies("P", cases, 0.0)
    api = ApiProcess(settings)
    api.start()
    pid = api.pid
    engine = _engine(settings)
    seen: dict[str, Any] = {}

    def outage() -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                done = conn.execute(text("SELECT count(*) FROM cases")).scalar_one()
            if done >= stop_after * cases:
                seen["stored_before"] = done
                started = time.monotonic()
                cluster.cluster.stop()
                time.sleep(outage_s)
                cluster.cluster.start()
                seen["down_s"] = time.monotonic() - started
                return
            time.sleep(0.05)

    thread = threading.Thread(target=outage, daemon=True)
    thread.start()
    try:
        answers = post_cases(api.base, bodies, clients=clients, retry_cap_s=1.0)
        thread.join(timeout=120)
        alive = api.proc is not None and api.proc.poll() is None and api.pid == pid
    finally:
        api.stop()
    try:
        stored = check_stored(engine, "P", {str(b["source_id"]) for b in bodies}, answers.created)
    finally:
        engine.dispose()
    outcome.figures.update(
        load=load_average(),
        clients=clients,
        distinct=cases,
        stopped_at_stored=seen.get("stored_before"),
        outage_s=round(seen.get("down_s", 0.0), 1),
        retry_after_missing=answers.retry_after_missing,
    )
    _answer_figures(outcome, answers)
    outcome.expect("stored_before" in seen, "PostgreSQL was never stopped (load ended first)")
    outcome.expect(answers.status_503 > 0, "no client got a 503 during the outage")
    outcome.expect(answers.retry_after_missing == 0, "a 503 came without Retry-After")
    outcome.expect(alive and api.starts == 1, "the API process did not survive the outage")
    _check_cases(outcome, stored, cases, answers)
    return outcome


def _worker(settings: Settings, outbox: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SIBIAO, "worker", "--interval", "0.05", "--json", "--outbox", str(outbox)]
        + ["--now", "2099-01-01T00:00:00+00:00"],
        env=child_env(settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def two_schedulers(
    cluster: PrivateCluster, folder: Path, *, cases: int = 10_000, clients: int = 50
) -> Outcome:
    """Let two worker processes escalate the same ``cases`` overdue cases at once."""
    outcome = Outcome("schedulers")
    settings = cluster.settings(cluster.fresh("sched"))
    api = ApiProcess(settings)
    api.start()
    try:
        answers = post_cases(api.base, case_bodies("S", cases, 0.0), clients=clients)
    finally:
        api.stop()
    engine = _engine(settings)
    outboxes = [folder / "outbox-a.jsonl", folder / "outbox-b.jsonl"]
    started = time.monotonic()
    workers = [_worker(settings, path) for path in outboxes]
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                left = conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM cases WHERE NOT escalated) + "
                        "(SELECT count(*) FROM outbox WHERE sent_at IS NULL)"
                    )
                ).scalar_one()
            if left == 0:
                break
            time.sleep(0.1)
        took = time.monotonic() - started
    finally:
        outputs = []
        for proc in workers:
            proc.terminate()
            outputs.append(proc.communicate(timeout=60)[0])
    with engine.connect() as conn:
        escalations, per_case_max, notices, events = conn.execute(
            text(
                "SELECT (SELECT count(*) FROM escalations), "
                "(SELECT coalesce(max(n), 0) FROM (SELECT count(*) n FROM escalations "
                " GROUP BY case_id) x), (SELECT count(*) FROM outbox), "
                "(SELECT count(*) FROM case_events WHERE action = 'escalate')"
            )
        ).one()
    engine.dispose()
    split = [sum(json.loads(line)["escalated"] for line in out.splitlines()) for out in outputs]
    sent = [sum(json.loads(line)["sent"] for line in out.splitlines()) for out in outputs]
    delivered = sum(len(path.read_text().splitlines()) for path in outboxes if path.exists())
    outcome.figures.update(
        load=load_average(),
        cases=cases,
        stored=answers.final[201],
        escalated_by_worker=split,
        sent_by_worker=sent,
        escalations=escalations,
        notices_delivered=delivered,
        seconds=round(took, 1),
    )
    outcome.expect(answers.final[201] == cases, "not every case was stored")
    outcome.expect(escalations == cases, f"{escalations} escalations for {cases} cases")
    outcome.expect(per_case_max == 1, f"a case was escalated {per_case_max} times")
    outcome.expect(sum(split) == cases, f"the workers report {split} escalations")
    outcome.expect(notices == cases and events == cases, f"{notices} notices, {events} events")
    outcome.expect(delivered == cases, f"{delivered} notifications delivered for {cases}")
    return outcome


SCENARIOS: dict[str, Callable[..., Outcome]] = {
    "intake": intake_load,
    "kill-api": kill_api,
    "pg-layer": pg_restart_layer,
    "pg-intake": pg_outage_intake,
    "schedulers": two_schedulers,
}


def main(argv: list[str] | None = None) -> int:
    """Run the long versions of the chosen scenarios (all by default); print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", choices=[*SCENARIOS, []], default=[])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--lamps", type=int, default=300_000)
    args = parser.parse_args(argv)
    chosen = args.scenarios or list(SCENARIOS)
    failed = 0
    with private_cluster() as cluster:
        folder = cluster.root / "files"
        folder.mkdir()
        size = {"cases": args.cases, "clients": args.clients}
        for name in chosen:
            print(f"-- {name}: load average {load_average()}", flush=True)
            if name == "pg-layer":
                for at in ("stream", "publish"):
                    outcome = pg_restart_layer(cluster, folder, lamps=args.lamps, at=at)
                    print(outcome.show(), flush=True)
                    failed += bool(outcome.problems)
                continue
            elif name == "schedulers":
                outcome = two_schedulers(cluster, folder, **size)
            else:
                outcome = SCENARIOS[name](cluster, **size)
            print(outcome.show(), flush=True)
            failed += bool(outcome.problems)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
