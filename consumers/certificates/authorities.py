"""The JPKI CAs this center trusts, and whether an issued certificate is really theirs.

A ``certificate.issued`` names a resident; the kiosks then accept its serial as that resident's
card. Beyond the JPKI edge's proof of origin, the event carries the X.509 certificate itself, and
a certificate is admitted only if that certificate is signed by a trusted CA and says what the
event says (serial, validity, issuer).

The trusted CAs are the certificates in ``ca.pem`` of ``BCL_JPKI_CA_DIR`` (default
``$BCL_HOME/jpki``, where `bcl certificate ca` keeps the test CA): the same anchors CRL imports
are verified against. The file is read again whenever it changes, so a CA made or replaced after
the worker started is trusted without a restart.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature

from consumers.certificates.rules import CertificateState, LifecycleEvent, Refusal, Step, step
from pipeline.settings import Settings
from schemas.codes import serial_number
from schemas.events.certificates import CertificateIssued

CA_FILE = "ca.pem"


@dataclass
class TrustedAuthorities:
    path: Path
    _read: tuple[int, int, int] | None = field(default=None, repr=False)
    _anchors: list[x509.Certificate] = field(default_factory=list, repr=False)

    @classmethod
    def of(cls, settings: Settings) -> TrustedAuthorities:
        return cls(settings.jpki_home / CA_FILE)

    def refusal(self, event: CertificateIssued) -> Refusal | None:
        """Why ``event`` is not a certificate issued by a trusted CA, or None if it is."""
        if event.certificate is None:
            return Refusal(
                "no_x509",
                f"certificate {event.serial} comes without its X.509 certificate; the JPKI edge "
                "sends the DER it issued with every certificate.issued",
            )
        try:
            certificate = x509.load_der_x509_certificate(binascii.a2b_base64(event.certificate))
            # The parser reads names and times lazily: a malformed one raises here, not above.
            mismatch = _mismatch(event, certificate)
        except (ValueError, binascii.Error) as error:
            return Refusal("bad_x509", f"certificate {event.serial}: not a DER X.509 ({error})")
        if mismatch is not None:
            return Refusal("x509_mismatch", f"certificate {event.serial}: {mismatch}")
        anchors = self._trusted()
        if not anchors:
            return Refusal(
                "no_trusted_ca",
                f"no JPKI CA is trusted at this center: put the CA's certificate in {self.path} "
                "(`bcl certificate ca` makes the test CA there)",
            )
        for anchor in anchors:
            try:
                certificate.verify_directly_issued_by(anchor)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return None
        return Refusal(
            "not_from_trusted_ca",
            f"certificate {event.serial} is not signed by a trusted JPKI CA "
            f"(it names {event.issuer!r}; trusted: "
            f"{', '.join(a.subject.rfc4514_string() for a in anchors)})",
        )

    def _trusted(self) -> list[x509.Certificate]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._read, self._anchors = None, []
            return []
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._read != seen:
            try:
                self._anchors = x509.load_pem_x509_certificates(self.path.read_bytes())
            except ValueError:
                self._anchors = []
            self._read = seen
        return self._anchors


def _mismatch(event: CertificateIssued, certificate: x509.Certificate) -> str | None:
    if certificate.serial_number != serial_number(event.serial):
        return f"the X.509 has serial {certificate.serial_number:X}, the event {event.serial}"
    if (certificate.not_valid_before_utc, certificate.not_valid_after_utc) != (
        event.not_before,
        event.not_after,
    ):
        return (
            f"the X.509 is valid {certificate.not_valid_before_utc} – "
            f"{certificate.not_valid_after_utc}, the event says {event.not_before} – "
            f"{event.not_after}"
        )
    issuer = certificate.issuer.rfc4514_string()
    if issuer != event.issuer:
        return f"the X.509's issuer is {issuer!r}, the event names {event.issuer!r}"
    return None


def checked_step(
    authorities: TrustedAuthorities, state: CertificateState | None, event: LifecycleEvent
) -> Step:
    """``rules.step``, an issued certificate first checked against the trusted CAs."""
    if isinstance(event, CertificateIssued):
        refusal = authorities.refusal(event)
        if refusal is not None:
            return Step(state, refusal=refusal)
    return step(state, event)
