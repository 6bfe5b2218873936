"""The ledger is seeded in SQL and dwellings are keyed in Python: both must fold an address to
the same key, or a located dwelling would never meet its residents."""

from __future__ import annotations

import random

from consumers.disaster.rules import ADDRESS_KEY_SQL, DASH_VARIANTS, address_key
from pipeline.database import connect
from pipeline.settings import Settings

ALPHABET = (
    "0123456789０１２３４５６７８９丁目番号東京都文京区本郷神田ｶﾀｶﾅカタカナーｰ"
    "ABCａｂｃ -\u3000\t" + DASH_VARIANTS
)
SAMPLES = [
    "東京都文京区本郷1-2-3",
    "東京都文京区本郷１－２－３",
    "東京都文京区　本郷1ー2ー3",
    "東京都千代田区神田神保町1丁目2番3号",
    "ﾒｿﾞﾝ本郷 101号室",
    " 先頭と末尾の空白 ",
]


async def test_sql_and_python_fold_addresses_alike(platform: Settings) -> None:
    rng = random.Random(7)
    addresses = SAMPLES + [
        "".join(rng.choices(ALPHABET, k=rng.randint(1, 30))) for _ in range(2_000)
    ]
    async with connect(platform) as connection:
        folded = await connection.fetch(
            f"SELECT a, {ADDRESS_KEY_SQL.format('a')} AS key "
            "FROM unnest($1::text[]) WITH ORDINALITY AS t(a, n) ORDER BY n",
            addresses,
        )
    mismatches = [
        (r["a"], r["key"], address_key(r["a"])) for r in folded if r["key"] != address_key(r["a"])
    ]
    assert not mismatches, mismatches[:5]
