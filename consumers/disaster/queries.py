"""What staff read from the disaster projection: the victim ledger, shelters with live
occupancy, applications, and a disaster's status at a glance."""

from __future__ import annotations

from pipeline.database import Connection
from pipeline.tables import Table
from schemas.events.disaster import DAMAGE_LABELS, DamageCategory

LEDGER_COLUMNS = (
    "resident_code", "household_number", "relationship", "name", "name_kana", "birth_date",
    "sex", "address", "damage", "shelter", "support_needs", "care_needs", "contact",
    "applications", "auth_serial",
)  # fmt: skip


async def ledger(connection: Connection, disaster_id: str) -> Table:
    """The victim ledger (被災者台帳): the residents of the affected area, by household, with
    their dwelling's damage, where they are sheltered, the support roster's needs and staff
    entries. My Number is not shown: it stays sealed."""
    rows = await connection.fetch(
        """
        SELECT v.*, e.shelter_id, g.category AS damage,
               (SELECT array_to_string(n.needs, ', ') FROM disaster.support_needs n
                WHERE n.municipality = v.municipality AND n.resident_code = v.resident_code)
                   AS support_needs,
               (SELECT string_agg(a.kind || ':' || a.status, ', ' ORDER BY a.submitted_at)
                FROM disaster.applications a WHERE a.disaster_id = v.disaster_id
                AND a.municipality = v.municipality AND a.resident_code = v.resident_code)
                   AS applications
        FROM disaster.victims v
        LEFT JOIN disaster.area_dwellings p
            ON p.disaster_id = v.disaster_id AND p.address_key = v.address_key
        LEFT JOIN disaster.dwelling_damage g
            ON g.disaster_id = v.disaster_id AND g.address_key = v.address_key
        LEFT JOIN disaster.evacuees e ON e.disaster_id = v.disaster_id
            AND e.municipality = v.municipality AND e.resident_code = v.resident_code AND e.present
        WHERE v.disaster_id = $1 AND coalesce(p.inside, true)
        ORDER BY v.household_number, v.relationship, v.resident_code
        """,
        disaster_id,
    )
    return Table(
        LEDGER_COLUMNS,
        tuple(
            (
                r["resident_code"], r["household_number"], r["relationship"], r["name"],
                r["name_kana"], r["birth_date"], r["sex"], r["address"],
                _damage_label(r["damage"]), r["shelter_id"], r["support_needs"], r["care_needs"],
                r["contact"], r["applications"], r["auth_serial"],
            )
            for r in rows
        ),
    )  # fmt: skip


def _damage_label(category: str | None) -> str | None:
    """As printed: 全壊, 半壊, …; none until assessed."""
    return DAMAGE_LABELS[DamageCategory(category)] if category else None


SHELTER_COLUMNS = (
    "shelter_id", "name", "open", "capacity", "evacuees", "wide_area", "vacancy", "occupancy_pct",
)  # fmt: skip


async def shelters(connection: Connection, disaster_id: str) -> Table:
    """Each shelter's evacuees now, wide-area evacuees among them, and its vacancy."""
    rows = await connection.fetch(
        """
        SELECT s.shelter_id, s.name, s.closed_event IS NULL AS open, s.capacity,
               count(e.resident_code) AS evacuees,
               count(e.resident_code) FILTER (WHERE e.wide_area) AS wide_area
        FROM disaster.shelters s
        LEFT JOIN disaster.evacuees e
            ON e.disaster_id = s.disaster_id AND e.shelter_id = s.shelter_id AND e.present
        WHERE s.disaster_id = $1
        GROUP BY s.shelter_id, s.name, s.closed_event, s.capacity
        ORDER BY s.shelter_id
        """,
        disaster_id,
    )
    return Table(
        SHELTER_COLUMNS,
        tuple(
            (
                r["shelter_id"], r["name"], r["open"], r["capacity"], r["evacuees"],
                r["wide_area"], max(0, r["capacity"] - r["evacuees"]),
                round(100 * r["evacuees"] / r["capacity"], 1),
            )
            for r in rows
        ),
    )  # fmt: skip


APPLICATION_COLUMNS = (
    "application_id", "kind", "status", "resident_code", "household_number", "dwelling_address",
    "reason", "message", "staff", "submitted_at",
)  # fmt: skip


async def applications(
    connection: Connection, disaster_id: str, status: str | None = None
) -> Table:
    rows = await connection.fetch(
        f"SELECT {', '.join(APPLICATION_COLUMNS)} FROM disaster.applications "
        "WHERE disaster_id = $1 AND ($2::text IS NULL OR status = $2) "
        "ORDER BY submitted_at, application_id",
        disaster_id,
        status,
    )
    return Table(APPLICATION_COLUMNS, tuple(tuple(r.values()) for r in rows))


STATUS_COLUMNS = (
    "disaster_id", "municipality", "name", "kind", "occurred_on", "victims", "households",
    "sheltered", "shelters_open", "applications", "awaiting_staff", "assessed_dwellings",
)  # fmt: skip


async def status(connection: Connection, disaster_id: str | None = None) -> Table:
    """Every disaster (or one) at a glance."""
    rows = await connection.fetch(
        """
        SELECT d.disaster_id, d.municipality, d.name, d.kind, d.occurred_on,
               d.victims, d.households,
               (SELECT count(*) FROM disaster.evacuees e
                WHERE e.disaster_id = d.disaster_id AND e.present) AS sheltered,
               (SELECT count(*) FROM disaster.shelters s
                WHERE s.disaster_id = d.disaster_id AND s.closed_event IS NULL) AS shelters_open,
               (SELECT count(*) FROM disaster.applications a
                WHERE a.disaster_id = d.disaster_id) AS applications,
               (SELECT count(*) FROM disaster.applications a
                WHERE a.disaster_id = d.disaster_id AND a.status = 'matched') AS awaiting_staff,
               (SELECT count(*) FROM disaster.dwelling_damage g
                WHERE g.disaster_id = d.disaster_id) AS assessed_dwellings
        FROM disaster.disasters d
        WHERE $1::text IS NULL OR d.disaster_id = $1
        ORDER BY d.declared_at
        """,
        disaster_id,
    )
    return Table(STATUS_COLUMNS, tuple(tuple(r.values()) for r in rows))
