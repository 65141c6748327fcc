"""Escalate missed deadlines to the supervision office (区委督查室) and deliver notifications.

:func:`escalate_due` marks running cases past their deadline as overdue and escalates each once
per deadline, and does the same for department calls not answered in time: an ``escalations``
row, an ``outbox`` notification and a timeline event, in the caller's transaction. Two processes
may run it at once: rows are taken with ``FOR [NO KEY] UPDATE SKIP LOCKED`` (a row another run
holds is left to it; case rows ``NO KEY``, so intake linking a duplicate to one never waits) and
``escalations`` is unique per (case, deadline) and per call, so each is escalated exactly once.
A reopened case has a new deadline and may be escalated again.

Notifications leave through the transactional outbox: :func:`deliver_outbox` hands unsent rows
to a pluggable :class:`Sender` and records success or the error.
"""

from __future__ import annotations

import json
import sys
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Protocol, TextIO

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects import postgresql

from cases.models import RUNNING, Escalation
from cases.store import SYSTEM_ACTOR, add_event, fetch_case
from schemas.errors import InvalidInput
from schemas.tables import cases, department_calls, escalations, outbox

SUPERVISION_OFFICE: Final = "区委督查室"
CHANNEL: Final = "notice"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One notification to send."""

    id: int
    channel: str
    recipient: str
    subject: str
    body: str
    case_id: int | None
    created_at: datetime


class Sender(Protocol):
    """Something that delivers notifications (SMS gateway, WeChat work, e-mail, a file…)."""

    def send(self, message: OutboxMessage) -> None:
        """Deliver one message or raise."""


class ConsoleSender:
    """Write each message as one line to a stream (default: standard output)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def send(self, message: OutboxMessage) -> None:
        """Print the message."""
        print(f"[{message.channel}] to {message.recipient}: {message.subject}", file=self.stream)


class FileSender:
    """Append each message as a JSON line to a file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def send(self, message: OutboxMessage) -> None:
        """Append the message."""
        record = {
            "id": message.id,
            "channel": message.channel,
            "recipient": message.recipient,
            "subject": message.subject,
            "body": message.body,
            "case_id": message.case_id,
            "created_at": message.created_at.isoformat(),
        }
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one delivery run did."""

    sent: int
    failed: int


def _escalate(conn: Connection, values: dict[str, object]) -> Escalation | None:
    stmt = postgresql.insert(escalations).values(values).on_conflict_do_nothing()
    row = conn.execute(stmt.returning(*escalations.c)).first()
    return None if row is None else Escalation.model_validate(dict(row._mapping))


def _notify(
    conn: Connection,
    *,
    subject: str,
    body: str,
    case_id: int,
    district: str,
    now: datetime,
    to: str,
) -> None:
    conn.execute(
        outbox.insert().values(
            channel=CHANNEL,
            recipient=to,
            subject=subject,
            body=body,
            case_id=case_id,
            created_at=now,
            district_code=district,
        )
    )


def _overdue_cases(conn: Connection, now: datetime, to: str, limit: int) -> list[Escalation]:
    rows = conn.execute(
        select(cases.c.id, cases.c.deadline)
        .where(
            cases.c.status.in_([s.value for s in RUNNING]),
            cases.c.deadline < now,
            cases.c.escalated.is_(False),
        )
        .order_by(cases.c.deadline, cases.c.id)
        .limit(limit)
        # NO KEY UPDATE: a FOR UPDATE here made every intake linking a duplicate to one of
        # these cases wait for the whole tick (seconds with 1,000 cases); see fetch_case.
        .with_for_update(skip_locked=True, key_share=True)
    ).all()
    done: list[Escalation] = []
    for case_id, deadline in rows:
        case = fetch_case(conn, case_id)
        unit = case.responsible_unit or case.department or "未定单位"
        reason = (
            f"案件 {case.id}（{case.item_code}）超过处置时限 {deadline.isoformat()}，"
            f"承办单位：{unit}"
        )
        found = _escalate(
            conn,
            {
                "case_id": case.id,
                "deadline": deadline,
                "reason": reason,
                "escalated_to": to,
                "at": now,
                "district_code": case.district_code,
            },
        )
        conn.execute(
            cases.update()
            .where(cases.c.id == case.id)
            .values(overdue=True, escalated=True, escalated_at=now, updated_at=now)
        )
        if found is None:  # escalated for this deadline before (flags were reset by hand)
            continue
        _notify(
            conn,
            subject=f"超时督办：案件 {case.id}",
            body=reason,
            case_id=case.id,
            district=case.district_code,
            now=now,
            to=to,
        )
        add_event(
            conn,
            case,
            "escalate",
            from_status=case.status,
            to_status=case.status,
            actor=SYSTEM_ACTOR,
            at=now,
            note=reason,
            detail={"escalation_id": found.id, "to": to},
        )
        done.append(found)
    return done


def _unanswered_calls(conn: Connection, now: datetime, to: str, limit: int) -> list[Escalation]:
    rows = conn.execute(
        select(department_calls)
        .where(
            department_calls.c.responded_at.is_(None),
            department_calls.c.deadline < now,
            department_calls.c.escalated.is_(False),
        )
        .order_by(department_calls.c.deadline, department_calls.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    done: list[Escalation] = []
    for call in rows:
        reason = (
            f"案件 {call.case_id} 呼叫 {call.department} 未在 {call.deadline.isoformat()} 前响应"
        )
        found = _escalate(
            conn,
            {
                "call_id": call.id,
                "deadline": call.deadline,
                "reason": reason,
                "escalated_to": to,
                "at": now,
                "district_code": call.district_code,
            },
        )
        conn.execute(
            department_calls.update().where(department_calls.c.id == call.id).values(escalated=True)
        )
        if found is None:
            continue
        _notify(
            conn,
            subject=f"呼叫未响应：{call.department}",
            body=reason,
            case_id=call.case_id,
            district=call.district_code,
            now=now,
            to=to,
        )
        case = fetch_case(conn, call.case_id)
        add_event(
            conn,
            case,
            "escalate",
            from_status=case.status,
            to_status=case.status,
            actor=SYSTEM_ACTOR,
            at=now,
            note=reason,
            detail={"escalation_id": found.id, "call_id": call.id, "to": to},
        )
        done.append(found)
    return done


def escalate_due(
    conn: Connection, *, now: datetime, to: str = SUPERVISION_OFFICE, limit: int = 1000
) -> list[Escalation]:
    """Escalate running cases and unanswered calls past their deadline; return what was new."""
    if now.tzinfo is None:
        raise InvalidInput("now must be timezone-aware")
    return _overdue_cases(conn, now, to, limit) + _unanswered_calls(conn, now, to, limit)


def deliver_outbox(
    conn: Connection, sender: Sender, *, now: datetime, limit: int = 100, max_attempts: int = 5
) -> Delivery:
    """Send unsent notifications (each at most ``max_attempts`` times); return the counts."""
    rows = conn.execute(
        text(
            "SELECT id, channel, recipient, subject, body, case_id, created_at FROM outbox "
            "WHERE sent_at IS NULL AND attempts < :max ORDER BY id LIMIT :limit "
            "FOR UPDATE SKIP LOCKED"
        ),
        {"max": max_attempts, "limit": limit},
    ).all()
    sent = failed = 0
    for row in rows:
        message = OutboxMessage(*row)
        try:
            sender.send(message)
        except Exception as exc:  # noqa: BLE001 - any sender failure is recorded and retried
            failed += 1
            conn.execute(
                outbox.update()
                .where(outbox.c.id == message.id)
                .values(attempts=outbox.c.attempts + 1, last_error=str(exc)[:500])
            )
            continue
        sent += 1
        conn.execute(
            outbox.update()
            .where(outbox.c.id == message.id)
            .values(attempts=outbox.c.attempts + 1, sent_at=now, last_error=None)
        )
    return Delivery(sent=sent, failed=failed)
