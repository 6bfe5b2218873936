"""A day of kiosk traffic through both centers, decided by the real issuer.

The registered municipalities' card holders come to the kiosks at the hours residents do
(the national traffic's shape, DOMAIN §8); each request enters at its operator's center, the
issuer decides it, and the kiosk then reports it delivered (the quoted fee paid) or cancelled.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import get_args
from uuid import UUID

from pipeline.database import connect
from pipeline.settings import Settings
from producers.center import CenterGateway, CenterRouter, Outcome, recorded_outcomes
from producers.workload import SyntheticMunicipality, Traffic, Visit
from schemas.codes import Origin
from schemas.events.municipalities import MunicipalityProfile

Progress = Callable[[str, int, int], None]  # step, done, total


class KioskDayError(ValueError):
    """The day cannot run: say what to register or issue first."""


@dataclass
class KioskDayReport:
    day: date
    requests: int = 0
    issued: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    delivered: int = 0
    cancelled: int = 0
    fees_paid_yen: int = 0
    by_center: Counter[str] = field(default_factory=Counter)
    first_document: Outcome | None = None


async def run_kiosk_day(
    settings: Settings,
    codes: Sequence[str],
    day: date,
    *,
    scale: float = 1.0,
    seed: int = 7,
    decision_timeout: float = 600.0,
    progress: Progress | None = None,
) -> KioskDayReport:
    """Send the day's requests of ``codes``' card holders, wait for every decision, and report
    the kiosks' notices back. Requests are stamped with their hour of the day, so the issuer
    judges hours, closed days and certificates as of then."""
    report = KioskDayReport(day)
    nation, holders = await card_holders(settings, codes, day)
    visits = Traffic(nation, scale=scale, seed=seed, holders=holders).day(day)
    report.requests = len(visits)
    async with CenterRouter(kiosk_centers(settings), kiosk_wait=decision_timeout) as router:
        for done, visit in enumerate(visits, 1):
            await router.gateways[visit.center].submit(visit.request, at=visit.at, wait=False)
            report.by_center[visit.center] += 1
            if progress:
                progress("requests sent", done, len(visits))
        outcomes = await _decisions(settings, visits, decision_timeout, progress)
        for done, visit in enumerate(visits, 1):
            outcome = outcomes[visit.request.request_id]
            await report_notice(router.gateways[visit.center], visit, outcome, report)
            if progress:
                progress("kiosk notices", done, len(visits))
    return report


def kiosk_centers(settings: Settings) -> dict[Origin, Settings]:
    """Where the kiosks send: each center's own cluster when the centers run apart
    (``BCL_PEERS``), else both centers' gateways on this one cluster."""
    if settings.peers:
        return {c.center: c for c in settings.topology([settings.center, *settings.peers])}
    return {center: settings.model_copy(update={"center": center}) for center in get_args(Origin)}


async def report_notice(
    gateway: CenterGateway, visit: Visit, outcome: Outcome, report: KioskDayReport
) -> None:
    """The kiosk tells the center what became of an issued certificate."""
    if not outcome.issued:
        report.rejected[outcome.reason or "unknown"] += 1
        return
    report.issued += 1
    report.first_document = report.first_document or outcome
    if visit.notice == "cancelled":
        await gateway.cancel(outcome.request_id, "resident left the kiosk", visit.notice_at)
        report.cancelled += 1
    else:
        fee = outcome.fee_total_yen or 0
        await gateway.deliver(outcome.request_id, fee, visit.notice_at)
        report.delivered += 1
        report.fees_paid_yen += fee


async def _decisions(
    settings: Settings, visits: Sequence[Visit], timeout: float, progress: Progress | None
) -> dict[UUID, Outcome]:
    """Every visit's recorded decision, polled until all are in."""
    wanted = [v.request.request_id for v in visits]
    outcomes: dict[UUID, Outcome] = {}
    deadline = asyncio.get_running_loop().time() + timeout
    async with connect(settings) as connection:
        while True:
            pending = [r for r in wanted if r not in outcomes]
            outcomes.update(await recorded_outcomes(connection, pending))
            if progress:
                progress("decided by the issuer", len(outcomes), len(wanted))
            if len(outcomes) == len(wanted):
                return outcomes
            if asyncio.get_running_loop().time() > deadline:
                raise KioskDayError(
                    f"{len(wanted) - len(outcomes):,} requests undecided after {timeout:g}s: "
                    "is the worker running (`bcl worker`)?"
                )
            await asyncio.sleep(0.5)


async def card_holders(
    settings: Settings, codes: Sequence[str], day: date
) -> tuple[list[SyntheticMunicipality], dict[str, list[str]]]:
    async with connect(settings) as connection:
        profiles = {
            row["code"]: MunicipalityProfile.model_validate_json(row["profile"])
            for row in await connection.fetch(
                "SELECT code, profile::text AS profile FROM registry.municipalities "
                "WHERE code = ANY($1::text[])",
                list(codes),
            )
        }
        # Children hold cards too, but few try a kiosk (the issuer turns the under-15s away):
        # one in ten of them comes.
        holders: dict[str, list[str]] = {}
        for row in await connection.fetch(
            "SELECT c.municipality, c.serial FROM certificates.certificates c "
            "JOIN replica.residents r USING (municipality, resident_code) "
            "WHERE c.kind = 'user_authentication' AND c.municipality = ANY($1::text[]) "
            "AND (r.birth_date <= $2::date - interval '15 years' OR hashtext(c.serial) % 10 = 0) "
            "ORDER BY c.municipality, c.serial",
            list(codes),
            day,
        ):
            holders.setdefault(row["municipality"], []).append(row["serial"])
    missing = [c for c in codes if c not in profiles]
    if missing:
        raise KioskDayError(
            f"not registered: {', '.join(missing)}; add them with `bcl municipality add`"
        )
    without_cards = [c for c in codes if not holders.get(c)]
    if without_cards:
        raise KioskDayError(
            f"no card holders in {', '.join(without_cards)}; issue cards with "
            "`bcl certificate issue CODE --all`"
        )
    return [SyntheticMunicipality.registered(c, profiles[c]) for c in codes], holders
