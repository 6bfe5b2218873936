"""Municipal resident registers and their changes, as the push files a municipality sends
(``resident_register``, ``resident_changes``)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from datetime import date

from schemas.inputs.resident_diff import my_number_check_digit

SURNAMES = (
    "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田",
    "佐々木", "山口", "松本", "井上", "木村", "林", "斎藤", "清水", "山崎", "森", "池田", "橋本",
)  # fmt: skip
GIVEN_NAMES = {
    "male": ("翔太", "大輔", "健太", "拓也", "蓮", "湊", "大翔", "悠真", "誠", "浩", "隆", "勇"),
    "female": ("陽子", "花子", "美咲", "結衣", "葵", "陽菜", "さくら", "恵子", "直美", "由美"),
}
TOWNS = ("本町", "中央", "栄町", "緑町", "旭町", "若葉", "桜台", "青葉台", "港町", "東町")


def resident_code(municipality: str, number: int) -> str:
    """A synthetic 住民票コード, unique per (municipality, number)."""
    return f"{(int(municipality[:5]) * 1_000_000 + number) % 10**11:011d}"


def my_number(rng: random.Random) -> str:
    first11 = f"{rng.randrange(10**11):011d}"
    return first11 + str(my_number_check_digit(first11))


def resident_register(
    municipality: str,
    residents: int,
    *,
    seed: int = 7,
    town: str = "",
    as_of: date = date(2024, 4, 1),
    seals: bool = False,
    tax_years: Sequence[int] = (),
) -> Iterator[dict[str, str]]:
    """A municipality's whole register as diff rows (one row per resident), in households.

    With ``seals``, about two adults in three have a registered seal (印鑑登録), in a seal row
    after their own; with ``tax_years``, every adult has tax facts for those fiscal years.
    Rows are plain dicts of text, the shape of a CSV row, so they can be written to a push file
    as they come; a million residents never sit in memory.
    """
    rng = random.Random(f"{seed}:{municipality}")
    made = 0
    household = 0
    while made < residents:
        household += 1
        surname = rng.choice(SURNAMES)
        block = f"{rng.randint(1, 9)}丁目{rng.randint(1, 30)}番{rng.randint(1, 20)}号"
        address = f"{town}{rng.choice(TOWNS)}{block}"
        head_sex = rng.choice(("male", "female"))
        head_name = f"{surname} {rng.choice(GIVEN_NAMES[head_sex])}"
        size = min(residents - made, rng.choices((1, 2, 3, 4, 5), (35, 28, 18, 14, 5))[0])
        moved_in = date(rng.randint(1990, 2023), rng.randint(1, 12), rng.randint(1, 28))
        for member in range(size):
            made += 1
            if member == 0:
                sex, name, relationship = head_sex, head_name, "02"
                born = date(rng.randint(1940, 1995), rng.randint(1, 12), rng.randint(1, 28))
            elif member == 1:
                sex = "female" if head_sex == "male" else "male"
                name, relationship = f"{surname} {rng.choice(GIVEN_NAMES[sex])}", "03"
                born = date(rng.randint(1940, 1995), rng.randint(1, 12), rng.randint(1, 28))
            else:
                sex = rng.choice(("male", "female"))
                name, relationship = f"{surname} {rng.choice(GIVEN_NAMES[sex])}", "04"
                born = date(rng.randint(2000, 2023), rng.randint(1, 12), rng.randint(1, 28))
            since = max(moved_in, born)
            yield {
                "municipality": municipality,
                "record": "resident",
                "resident_code": resident_code(municipality, made),
                "household_number": f"{household:015d}",
                "relationship": relationship,
                "reason": "birth" if since == born and member >= 2 else "move_in",
                "effective_date": since.isoformat(),
                "name": name,
                "birth_date": born.isoformat(),
                "sex": sex,
                "address": address,
                "head_of_household": head_name,
                "resident_since": since.isoformat(),
                "address_since": since.isoformat(),
                "notified_on": since.isoformat(),
                "my_number": my_number(rng),
            }
            adult = (as_of - born).days >= 18 * 365
            code = resident_code(municipality, made)
            if seals and adult and rng.random() < 0.66:
                yield {
                    "municipality": municipality,
                    "record": "seal",
                    "resident_code": code,
                    "seal_number": f"S{made:08d}",
                    "seal_status": "registered",
                    "effective_date": since.isoformat(),
                }
            for year in tax_years if adult else ():
                income = rng.randrange(0, 8_000_000, 1000)
                yield {
                    "municipality": municipality,
                    "record": "tax",
                    "resident_code": code,
                    "fiscal_year": str(year),
                    "income_yen": str(income),
                    "assessed_yen": str(income // 10),
                    "paid_yen": str(income // 10),
                }


def resident_changes(
    register: Iterator[dict[str, str]], changes: int, *, seed: int = 8, on: date = date(2024, 4, 2)
) -> Iterator[dict[str, str]]:
    """``changes`` diff rows against ``register``: moves within the town, moves out, deaths."""
    rng = random.Random(seed)
    rows = list(itertools.islice(register, changes * 4))
    for row in rng.sample(rows, min(changes, len(rows))):
        roll = rng.random()
        if roll < 0.6:
            yield {
                **row,
                "reason": "move_within",
                "effective_date": on.isoformat(),
                "previous_address": row["address"],
                "address": f"{rng.choice(TOWNS)}{rng.randint(1, 9)}丁目{rng.randint(1, 30)}番",
                "address_since": on.isoformat(),
                "notified_on": on.isoformat(),
            }
        elif roll < 0.85:
            yield {**row, "reason": "move_out", "effective_date": on.isoformat()}
        else:
            yield {**row, "reason": "death", "effective_date": on.isoformat()}
