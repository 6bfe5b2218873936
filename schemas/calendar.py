"""The Japanese calendar every rule shares (DOMAIN §2, §6): Japan time, the 29 Dec – 3 Jan
closure (年末年始) and the fiscal year (年度, April–March)."""

from datetime import date
from zoneinfo import ZoneInfo

JST = ZoneInfo("Asia/Tokyo")


def is_year_end_closure(day: date) -> bool:
    """29 December – 3 January: no issuance anywhere, counters and link APs closed."""
    return (day.month, day.day) >= (12, 29) or (day.month, day.day) <= (1, 3)


def fiscal_year(day: date) -> int:
    """The fiscal year of a Japan date: April to March, named by the year it starts."""
    return day.year if day.month >= 4 else day.year - 1
