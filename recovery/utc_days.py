"""Calendar days as UTC time ranges: the filters and reads that count by day (the queue's filed and
paid days, the team's weeks, the audit log's dates) start a day at 00:00 UTC."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta


def day_start(day: date) -> datetime:
    """00:00 UTC of ``day``."""
    return datetime.combine(day, time(0), UTC)


def day_range(days: tuple[date, date]) -> tuple[datetime, datetime]:
    """The first moment of the first day and of the day after the last (UTC)."""
    first, last = days
    return day_start(first), day_start(last) + timedelta(days=1)
