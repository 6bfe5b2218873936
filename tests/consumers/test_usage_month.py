"""Issue 8's first promise: a generated month, through the real broker, the usage projection and
`bcl usage`, reproduces DOMAIN §8's national shares within one percentage point."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date

import pytest

from pipeline.catchup import refresh
from pipeline.kafka import producer
from pipeline.projection import load_projection
from pipeline.publish import proven_by_their_edges, publish_many
from pipeline.settings import Settings
from producers.workload import (
    CERTIFICATE_MIX,
    OPERATORS,
    national_traffic,
    recorded_traffic,
    synthetic_nation,
)
from tests.helpers import settings_env

SEED = 20240301


def shares(settings: Settings, dimension: str) -> dict[str, float]:
    """Each group's share of the issued certificates of March 2024, as `bcl usage` reports it."""
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "usage", "--month", "2024-03", "--by", dimension,
         "--format", "json"],
        env=settings_env(settings), capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return {str(row[dimension]): row["share_pct"] for row in json.loads(result.stdout)}


async def test_a_generated_month_reproduces_the_national_shares(platform: Settings) -> None:
    nation = synthetic_nation(seed=SEED)
    visits = national_traffic(nation, start=date(2024, 3, 1), days=31, scale=0.008, seed=SEED)
    async with producer(platform) as client:
        events = proven_by_their_edges(platform, recorded_traffic(visits, seed=SEED))
        sent = await publish_many(platform, client, events)
    assert sent > 80_000
    await refresh(platform, load_projection("usage", platform))

    operators = shares(platform, "store_operator")
    operator_total = sum(count for count, _ in OPERATORS.values())
    for operator, (count, _) in OPERATORS.items():
        assert operators[operator.value] == pytest.approx(100 * count / operator_total, abs=1)
    kinds = shares(platform, "certificate_type")
    mix_total = sum(CERTIFICATE_MIX.values())
    for kind, count in CERTIFICATE_MIX.items():
        assert kinds[kind.value] == pytest.approx(100 * count / mix_total, abs=1)
    assert shares(platform, "outside_counter_hours")["True"] == pytest.approx(49.3, abs=1)
    assert shares(platform, "other_municipality")["True"] == pytest.approx(21.1, abs=1)
