"""The Japanese calendar every rule shares (DOMAIN §2, §6): Japan time, the 29 Dec – 3 Jan
closure (年末年始) and the fiscal year (年度, April–March)."""

import re
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")


def japan_day(at: datetime) -> date:
    """The Japan date of an instant."""
    return at.astimezone(JST).date()


def is_year_end_closure(day: date) -> bool:
    """29 December – 3 January: no issuance anywhere, counters and link APs closed."""
    return (day.month, day.day) >= (12, 29) or (day.month, day.day) <= (1, 3)


def fiscal_year(day: date) -> int:
    """The fiscal year of a Japan date: April to March, named by the year it starts."""
    return day.year if day.month >= 4 else day.year - 1


_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")


def month_days(month: str) -> tuple[date, date]:
    """The first and last day of a month written YYYY-MM."""
    match = _MONTH.fullmatch(month)
    if match is None or not 1 <= int(match[2]) <= 12:
        raise ValueError(f"month {month!r} must be YYYY-MM with a month 01..12, e.g. 2024-03")
    first = date(int(match[1]), int(match[2]), 1)
    following = (first + timedelta(days=31)).replace(day=1)
    return first, following - timedelta(days=1)
