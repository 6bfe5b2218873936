"""Disaster victim support rules (DOMAIN §7), free of I/O.

- Who is a victim: a resident active in the replica whose dwelling lies in the affected area (or
  is not located by the GIS: staff, not a missing coordinate, take a resident off the ledger).
- A card tapped at a shelter: matched to its holder in the holder's own municipality's replica,
  so an evacuee from another municipality (広域避難者) is recognised too.
- An application: matched against the ledger — same person, same dwelling, not a second
  application of the same kind — before staff see it.
- Damage: one dwelling's own assessment outranks a bulk assessment of an area; among assessments
  of the same standing the later-recorded one holds.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from uuid import UUID

from schemas.events.disaster import (
    APPLICATION_LABELS,
    ApplicationKind,
    ApplicationMatched,
    ApplicationRefusal,
    ApplicationRefused,
    ApplicationSubmitted,
    Area,
    DamageCategory,
    Point,
    ShelterTapped,
    TapMatched,
    TapRefusal,
    TapRefused,
)

# ------------------------------------------------------------------------------------- places


def inside(point: Point, area: Area) -> bool:
    """Whether ``point`` lies in the polygon ``area``; a point on its boundary is inside."""
    vertices = area.vertices
    x, y = point.lon, point.lat
    crossings = False
    for a, b in zip(vertices, (*vertices[1:], vertices[0]), strict=True):
        if _on_segment(x, y, a, b):
            return True
        if (a.lat > y) != (b.lat > y):
            # The longitude where the edge crosses the point's latitude.
            crossing = a.lon + (y - a.lat) * (b.lon - a.lon) / (b.lat - a.lat)
            if x < crossing:
                crossings = not crossings
    return crossings


def _on_segment(x: float, y: float, a: Point, b: Point) -> bool:
    cross = (b.lon - a.lon) * (y - a.lat) - (b.lat - a.lat) * (x - a.lon)
    if abs(cross) > 1e-12:
        return False
    return min(a.lon, b.lon) <= x <= max(a.lon, b.lon) and min(a.lat, b.lat) <= y <= max(
        a.lat, b.lat
    )


def in_affected_area(location: Point | None, area: Area | None) -> bool:
    """A declaration without an area covers the whole municipality; a dwelling the GIS has not
    located is kept in (staff take people off the ledger, a missing coordinate does not)."""
    return area is None or location is None or inside(location, area)


def same_address(first: str, second: str) -> bool:
    """Addresses compared as written on forms: full- and half-width alike (NFKC), spaces and
    the hyphen variants ignored."""
    return address_key(first) == address_key(second)


DASH_VARIANTS = "‐‑‒–—―−ー－"
_DASHES = str.maketrans({c: "-" for c in DASH_VARIANTS})


def address_key(address: str) -> str:
    """The address as compared on forms (``ADDRESS_KEY_SQL`` computes the same in Postgres)."""
    folded = unicodedata.normalize("NFKC", address).translate(_DASHES)
    return "".join(folded.split())


# ``address_key`` in SQL, over a column or expression named by ``{}``: the ledger is seeded in
# one statement. A contract test holds the two equal.
ADDRESS_KEY_SQL = (
    "regexp_replace(translate(normalize({}, NFKC), "
    f"'{DASH_VARIANTS}', '{'-' * len(DASH_VARIANTS)}'), '[[:space:]]', '', 'g')"
)


# ------------------------------------------------------------------------------------- cards


@dataclass(frozen=True, slots=True)
class Holder:
    """What the certificates and the replica say of a card's holder."""

    certificate_status: str  # active | suspended | revoked
    municipality: str
    resident_code: str
    resident_active: bool


def decide_tap(
    tap: ShelterTapped,
    tap_event_id: UUID,
    *,
    affected_municipality: str,
    shelter_open: bool,
    holder: Holder | None,
    checked_in: bool,
) -> TapMatched | TapRefused:
    """Match a tap at a shelter to a resident, or refuse it with a reason."""

    def refused(reason: TapRefusal, message: str) -> TapRefused:
        return TapRefused(
            disaster_id=tap.disaster_id,
            shelter_id=tap.shelter_id,
            tap_event_id=tap_event_id,
            reason=reason,
            message=message,
        )

    if not shelter_open:
        return refused(
            TapRefusal.UNKNOWN_SHELTER,
            f"shelter {tap.shelter_id} is not open for disaster {tap.disaster_id}",
        )
    if holder is None:
        return refused(
            TapRefusal.CERTIFICATE_UNKNOWN,
            f"card {tap.auth_serial} is not a known user-authentication certificate: "
            "register the evacuee by hand at the reception",
        )
    if holder.certificate_status != "active":
        return refused(
            TapRefusal.CERTIFICATE_NOT_ACTIVE,
            f"card {tap.auth_serial} is {holder.certificate_status}: register the evacuee by "
            "hand at the reception",
        )
    if not holder.resident_active:
        return refused(
            TapRefusal.RESIDENT_NOT_FOUND,
            f"the holder of card {tap.auth_serial} has no active record in the register of "
            f"{holder.municipality}",
        )
    if tap.direction == "out" and not checked_in:
        return refused(
            TapRefusal.NOT_CHECKED_IN,
            f"the holder of card {tap.auth_serial} is not checked in at {tap.shelter_id}",
        )
    return TapMatched(
        disaster_id=tap.disaster_id,
        shelter_id=tap.shelter_id,
        tap_event_id=tap_event_id,
        direction=tap.direction,
        municipality=holder.municipality,
        resident_code=holder.resident_code,
        wide_area=holder.municipality != affected_municipality,
    )


# ------------------------------------------------------------------------------ applications


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    municipality: str
    resident_code: str
    household_number: str
    address: str


def match_application(
    application: ApplicationSubmitted,
    *,
    disaster_known: bool,
    holder: Holder | None,
    victim: LedgerEntry | None,
    applied_before: Iterable[ApplicationKind],
) -> ApplicationMatched | ApplicationRefused:
    """The automatic match before staff accept: the applicant is in this disaster's ledger,
    applies for the dwelling the ledger has them at, and has not applied for this kind yet."""

    def refused(reason: ApplicationRefusal, message: str) -> ApplicationRefused:
        return ApplicationRefused(
            application_id=application.application_id,
            disaster_id=application.disaster_id,
            reason=reason,
            message=message,
        )

    kind = APPLICATION_LABELS[application.kind]
    if not disaster_known:
        return refused(
            ApplicationRefusal.DISASTER_UNKNOWN,
            f"no disaster {application.disaster_id} has been declared",
        )
    if holder is None or holder.certificate_status != "active":
        return refused(
            ApplicationRefusal.CERTIFICATE_UNKNOWN,
            f"card {application.auth_serial} is not an active user-authentication certificate",
        )
    if victim is None:
        return refused(
            ApplicationRefusal.NOT_IN_LEDGER,
            f"the applicant ({holder.municipality} {holder.resident_code}) is not in the victim "
            f"ledger of {application.disaster_id}: not a resident of the affected area when it "
            "was declared",
        )
    if not same_address(application.dwelling_address, victim.address):
        return refused(
            ApplicationRefusal.DWELLING_MISMATCH,
            f"the application names {application.dwelling_address!r} but the ledger has the "
            f"applicant at {victim.address!r}: staff must check the dwelling",
        )
    if application.kind in set(applied_before):
        return refused(
            ApplicationRefusal.DUPLICATE,
            f"the applicant already applied for {kind} in {application.disaster_id}",
        )
    return ApplicationMatched(
        application_id=application.application_id,
        disaster_id=application.disaster_id,
        municipality=victim.municipality,
        resident_code=victim.resident_code,
        household_number=victim.household_number,
    )


# ------------------------------------------------------------------------------------ damage


@dataclass(frozen=True, slots=True)
class Assessment:
    """One assessment of a dwelling: its own (``individual``) or a bulk one over an area."""

    event_id: UUID
    category: DamageCategory
    individual: bool


def assessed_damage(assessments: Iterable[Assessment]) -> DamageCategory | None:
    """The dwelling's damage: its own assessments outrank bulk ones; within each, the
    later-recorded (larger time-ordered event id) holds."""
    best = max(assessments, key=lambda a: (a.individual, a.event_id), default=None)
    return best.category if best is not None else None
