"""Deadline arithmetic on the working calendar (Asia/Shanghai by default).

* ``working_hours``: office time only — the periods of ``working_hours`` (08:30–12:00 and
  14:00–17:30 in the packaged calendar) on working days. Counting starts at the given instant if
  it falls in a period, else at the start of the next period. A limit that ends exactly at the end
  of a period ends there (12:00, not 14:00).
* ``working_days``: N working days are N × the length of a working day (7 h) of office time. From
  an instant inside office hours that is the same clock time on the N-th following working day;
  from outside office hours (evening, weekend, holiday) it is the end of the N-th working day.
* ``natural_hours``: round the clock (emergencies), no calendar.

Working days are Monday–Friday (the calendar's weekend otherwise) minus public holidays plus
make-up working days (调休上班). A year the calendar does not cover falls back to the weekend
rule alone, and :func:`covers` tells callers so they can warn.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Final

from cases.rules import Deadline, DeadlineUnit, WorkingCalendar
from schemas.errors import InvalidInput

#: The longest span a deadline may reach before the arithmetic gives up (a safety bound).
MAX_DAYS: Final = 366 * 20


def covers(calendar: WorkingCalendar, day: date) -> bool:
    """Return whether the calendar lists the holidays of ``day``'s year."""
    return any(entry.year == day.year for entry in calendar.years)


def is_working_day(calendar: WorkingCalendar, day: date) -> bool:
    """Return whether ``day`` is a working day (weekend rule alone for uncovered years)."""
    try:
        return calendar.is_working_day(day)
    except KeyError:
        return day.weekday() not in {w.number for w in calendar.weekend}


def day_length(calendar: WorkingCalendar) -> timedelta:
    """Return the office time of one working day."""
    total = timedelta()
    for period in calendar.working_hours:
        start = datetime.combine(date(2000, 1, 3), period.start)
        total += datetime.combine(date(2000, 1, 3), period.end) - start
    return total


def _aware(moment: datetime, what: str = "start") -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"{what} must be timezone-aware, not {moment.isoformat()}")


def add_working_time(calendar: WorkingCalendar, start: datetime, amount: timedelta) -> datetime:
    """Return the instant ``amount`` of office time after ``start``."""
    _aware(start)
    if amount < timedelta(0):
        raise InvalidInput(f"cannot add a negative working time ({amount})")
    zone = calendar.zone
    now = start.astimezone(zone)
    if amount == timedelta(0):
        return now
    remaining = amount
    day = now.date()
    for _ in range(MAX_DAYS):
        if is_working_day(calendar, day):
            for period in calendar.working_hours:
                begin = datetime.combine(day, period.start, zone)
                end = datetime.combine(day, period.end, zone)
                if end <= now:
                    continue
                begin = max(begin, now)
                available = end - begin
                if remaining <= available:
                    return begin + remaining
                remaining -= available
        day += timedelta(days=1)
        now = datetime.combine(day, datetime.min.time(), zone)
    raise InvalidInput(f"a working time of {amount} does not fit in {MAX_DAYS} days")


def add_working_hours(calendar: WorkingCalendar, start: datetime, hours: float) -> datetime:
    """Return the instant ``hours`` working hours after ``start``."""
    return add_working_time(calendar, start, timedelta(hours=hours))


def add_working_days(calendar: WorkingCalendar, start: datetime, days: int) -> datetime:
    """Return the instant ``days`` working days after ``start`` (days × office day)."""
    return add_working_time(calendar, start, day_length(calendar) * days)


def add_deadline(calendar: WorkingCalendar, start: datetime, deadline: Deadline) -> datetime:
    """Return when a handling time limit started at ``start`` runs out (in the calendar's zone)."""
    _aware(start)
    if deadline.unit is DeadlineUnit.natural_hours:
        return (start + timedelta(hours=deadline.amount)).astimezone(calendar.zone)
    if deadline.unit is DeadlineUnit.working_hours:
        return add_working_hours(calendar, start, deadline.amount)
    return add_working_days(calendar, start, deadline.amount)


def working_time_between(calendar: WorkingCalendar, start: datetime, end: datetime) -> timedelta:
    """Return the office time between two instants (negative when ``end`` is before ``start``)."""
    _aware(start)
    _aware(end, "end")
    if end < start:
        return -working_time_between(calendar, end, start)
    zone = calendar.zone
    first, last = start.astimezone(zone), end.astimezone(zone)
    total = timedelta()
    day = first.date()
    while day <= last.date():
        if is_working_day(calendar, day):
            for period in calendar.working_hours:
                begin = max(datetime.combine(day, period.start, zone), first)
                stop = min(datetime.combine(day, period.end, zone), last)
                if stop > begin:
                    total += stop - begin
        day += timedelta(days=1)
    return total
