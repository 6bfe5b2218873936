"""The workload generator every test, benchmark and the demo share.

Deterministic from a seed and streamed (a generator, never a list), so the same call gives the
same events whether it makes a hundred or millions:

- ``sample``: kiosk requests with their delivery or cancellation, and certificate revocations
  (``platform_sample``);
- ``registers``: municipal resident registers and their changes as push files
  (``resident_register``, ``resident_changes``);
- ``nation``: a synthetic nation of municipalities calibrated to DOMAIN §8
  (``synthetic_nation``);
- ``traffic``: that nation's kiosk traffic, day by day (``national_traffic``);
- ``recorded``: the log as the issuer would leave it for that traffic (``recorded_traffic``).
"""

from producers.workload.nation import (
    NATIONAL_MUNICIPALITIES,
    SyntheticMunicipality,
    synthetic_nation,
)
from producers.workload.recorded import recorded_traffic, registry_events
from producers.workload.registers import resident_changes, resident_register
from producers.workload.sample import (
    CERTIFICATE_MIX,
    OPERATORS,
    kiosk_requests,
    platform_sample,
)
from producers.workload.traffic import (
    Traffic,
    Visit,
    national_holidays,
    national_traffic,
    tax_year,
)

__all__ = [
    "CERTIFICATE_MIX",
    "NATIONAL_MUNICIPALITIES",
    "OPERATORS",
    "SyntheticMunicipality",
    "Traffic",
    "Visit",
    "kiosk_requests",
    "national_holidays",
    "national_traffic",
    "platform_sample",
    "recorded_traffic",
    "registry_events",
    "resident_changes",
    "resident_register",
    "synthetic_nation",
    "tax_year",
]
