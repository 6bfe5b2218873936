"""Fee statements read from the fees projection: a municipality's month of store settlement, its
fiscal year's charges, and the same for every municipality. Amounts are integer yen."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, time

from consumers.fees.rules import Member, StoreTotals, YearStatement, year_statement
from pipeline.database import Connection
from pipeline.tables import Table
from schemas.calendar import JST
from schemas.events.municipalities import MunicipalityClass

# A month's store settlement, by store operator and certificate type. Net income is what the
# municipality keeps of the fees after the stores' commission (DOMAIN §6); the BCL fee accrues
# per certificate and is settled at the fiscal year's end.
SETTLEMENT_COLUMNS = (
    "store_operator", "certificate_type", "requests", "rejected", "cancelled", "delivered",
    "certificates", "fees_collected_yen", "commission_yen", "net_income_yen", "bcl_fee_yen",
)  # fmt: skip
_SETTLEMENT_SUMS = """
    sum(requests)::bigint, sum(rejected)::bigint, sum(cancelled)::bigint, sum(delivered)::bigint,
    sum(certificates)::bigint, sum(fees_collected_yen)::bigint, sum(commission_yen)::bigint,
    sum(fees_collected_yen - commission_yen)::bigint, sum(bcl_fee_yen)::bigint
"""


async def month_settlement(connection: Connection, code: str, month: date) -> Table:
    """One municipality's month with the stores, by operator and certificate type."""
    rows = await connection.fetch(
        f"""
        SELECT store_operator, certificate_type, {_SETTLEMENT_SUMS}
        FROM fees.monthly WHERE municipality = $1 AND month = $2
        GROUP BY store_operator, certificate_type ORDER BY store_operator, certificate_type
        """,
        code,
        month,
    )
    return Table(SETTLEMENT_COLUMNS, tuple(tuple(row.values()) for row in rows))


REPORT_COLUMNS = ("municipality", "name", *SETTLEMENT_COLUMNS[2:])


async def month_report(connection: Connection, month: date) -> Table:
    """Every municipality's month with the stores, one row each."""
    rows = await connection.fetch(
        f"""
        SELECT m.municipality, coalesce(n.name, ''), {_SETTLEMENT_SUMS}
        FROM fees.monthly m
        LEFT JOIN LATERAL (
            SELECT name FROM fees.members WHERE code = m.municipality
            ORDER BY in_force_from DESC, event_id DESC LIMIT 1
        ) n ON true
        WHERE m.month = $1
        GROUP BY m.municipality, n.name ORDER BY m.municipality
        """,
        month,
    )
    return Table(REPORT_COLUMNS, tuple(tuple(row.values()) for row in rows))


def year_bounds(year: int) -> tuple[date, date]:
    """The first day of fiscal year ``year`` and the first day after it."""
    return date(year, 4, 1), date(year + 1, 4, 1)


async def members(
    connection: Connection, year: int, codes: Sequence[str] | None = None
) -> dict[str, Member]:
    """The municipalities (all, or ``codes``) as the registry stood at the end of fiscal year
    ``year`` (the yearly charges are billed then); one registered only later, as first seen."""
    end = datetime.combine(year_bounds(year)[1], time(), JST)
    rows = await connection.fetch(
        """
        SELECT DISTINCT ON (m.code) m.*, j.joined_on
        FROM fees.members m LEFT JOIN fees.joinings j USING (code)
        WHERE $1::text[] IS NULL OR m.code = ANY($1::text[])
        ORDER BY m.code, (m.in_force_from < $2) DESC,
                 CASE WHEN m.in_force_from < $2 THEN m.in_force_from END DESC,
                 m.in_force_from, m.event_id DESC
        """,
        None if codes is None else list(codes),
        end,
    )
    return {
        row["code"]: Member(
            code=row["code"],
            name=row["name"],
            municipality_class=MunicipalityClass(row["municipality_class"]),
            population=row["population"],
            uses_bcl=row["uses_bcl"],
            joined_on=row["joined_on"],
            disaster_system_since=row["disaster_system_since"],
        )
        for row in rows
    }


async def store_totals(
    connection: Connection, codes: Sequence[str], year: int
) -> dict[str, StoreTotals]:
    """The fiscal year's delivered certificates and money of each municipality."""
    first, after = year_bounds(year)
    rows = await connection.fetch(
        """
        SELECT municipality, sum(certificates)::bigint AS certificates,
               sum(fees_collected_yen)::bigint AS fees, sum(commission_yen)::bigint AS commission,
               sum(bcl_fee_yen)::bigint AS bcl_fee
        FROM fees.monthly
        WHERE municipality = ANY($1::text[]) AND month >= $2 AND month < $3
        GROUP BY municipality
        """,
        list(codes),
        first,
        after,
    )
    return {
        row["municipality"]: StoreTotals(
            row["certificates"], row["fees"], row["commission"], row["bcl_fee"]
        )
        for row in rows
    }


async def year_statement_of(
    connection: Connection, code: str, year: int
) -> tuple[Member, YearStatement] | None:
    """One municipality's fiscal year, or None when the registry does not know it."""
    found = (await members(connection, year, [code])).get(code)
    if found is None:
        return None
    totals = await store_totals(connection, [code], year)
    return found, year_statement(found, year, totals.get(code, StoreTotals()))


YEAR_COLUMNS = (
    "municipality", "name", "class", "population", "on_bcl", "joined_on", "contribution_months",
    "contribution_yen", "certificates", "bcl_fee_yen", "disaster_system_fee_yen", "owed_yen",
    "fees_collected_yen", "commission_yen", "net_yen",
)  # fmt: skip


def year_row(found: Member, statement: YearStatement) -> tuple[object, ...]:
    return (
        found.code,
        found.name,
        found.municipality_class.value,
        found.population,
        found.uses_bcl,
        found.joined_on,
        statement.contribution_months,
        statement.contribution_yen,
        statement.store.certificates,
        statement.bcl_fee_yen,
        statement.disaster_system_fee_yen,
        statement.owed_yen,
        statement.store.fees_collected_yen,
        statement.store.commission_yen,
        statement.net_yen,
    )


async def year_report(connection: Connection, year: int) -> Table:
    """Every registered municipality's fiscal year, one row each."""
    registered = await members(connection, year)
    totals = await store_totals(connection, list(registered), year)
    return Table(
        YEAR_COLUMNS,
        tuple(
            year_row(found, year_statement(found, year, totals.get(code, StoreTotals())))
            for code, found in registered.items()
        ),
    )
