"""The resident-facing fee (交付手数料, DOMAIN §6): what a resident pays at the kiosk, from the
municipality's effective-dated schedule. The issuer quotes it on each issued outcome; the fees
projection settles what was collected; the workload generator records the same quote."""

from collections.abc import Iterable, Mapping
from datetime import datetime
from types import MappingProxyType

from schemas.calendar import japan_day
from schemas.events.issuance import CertificateType, FeeQuote
from schemas.events.municipalities import FeeEntry

# The fee when a municipality set none for a type (assumption: the common amounts, 300 yen, 450
# yen for a family register).
STANDARD_FEES: Mapping[CertificateType, int] = MappingProxyType(
    {
        CertificateType.JUMINHYO: 300,
        CertificateType.JUMINHYO_KISAI: 300,
        CertificateType.INKAN: 300,
        CertificateType.TAX_INCOME: 300,
        CertificateType.TAX_ASSESSMENT: 300,
        CertificateType.TAX_PAYMENT: 300,
        CertificateType.KOSEKI: 450,
        CertificateType.KOSEKI_FUHYO: 300,
        CertificateType.RISAI: 0,
        CertificateType.HISAI: 0,
    }
)
# Disaster certificates cost 10 yen at the store on top of any municipal fee.
DISASTER_STORE_FEE = 10
DISASTER_TYPES = frozenset({CertificateType.RISAI, CertificateType.HISAI})


def fee_quote(
    schedule: Iterable[FeeEntry], certificate_type: CertificateType, copies: int, at: datetime
) -> FeeQuote:
    """The fee at the instant of the request: the schedule's entry for the type in force that
    day (Japan time; a change takes effect at Japan midnight), else the standard fee; disaster
    certificates add the 10-yen store fee."""
    day = japan_day(at)
    entry = max(
        (e for e in schedule if e.certificate_type is certificate_type and e.effective_from <= day),
        key=lambda e: e.effective_from,
        default=None,
    )
    municipal = entry.fee_yen if entry is not None else STANDARD_FEES[certificate_type]
    per_copy = municipal + (DISASTER_STORE_FEE if certificate_type in DISASTER_TYPES else 0)
    return FeeQuote(
        per_copy_yen=per_copy,
        copies=copies,
        total_yen=per_copy * copies,
        schedule_from=entry.effective_from if entry is not None else None,
    )
