"""How the platform's processes use Python's garbage collector.

A projection's batch makes hundreds of thousands of short-lived objects (records, envelopes,
rows) that reference counting frees on its own; almost none form cycles. With the default
thresholds (a collection every 700 allocations), the collector still walked them over and over
and its full collections took about 40% of a replay's wall time (py-spy, ``make bench``).

So every ``bcl`` process and every worker collects seldom: the first generation at 50,000
allocations, the older ones rarely. What is alive once a process has started (modules, pydantic's
validators, the app) is frozen out of the collector's sight after start-up. Cycles are still
collected, only later; ``make bench`` reports the peak memory of replays and workers.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000
MIDDLE_THRESHOLD = 20
OLD_THRESHOLD = 100


def collect_seldom() -> None:
    """Raise the collector's thresholds for the rest of this process."""
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, OLD_THRESHOLD)


def freeze_what_is_alive() -> int:
    """Collect once, then set everything alive aside from later collections: what a process
    holds after start-up is never garbage. Returns how many objects were set aside."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
