"""Reading a CRL and verifying it against the configured CA: what the CRL import trusts.

Pure: bytes and a CA certificate in, a verdict out. ``read_crl`` decides everything up front, so
a CRL it accepts can be streamed (``VerifiedCrl.revoked``) and published without a refusal
halfway through. Whether a CRL is too old is the importer's call, not a refusal here.

The entries are read from the DER directly rather than through ``cryptography``'s
``RevokedCertificate`` objects, which made streaming a million entries take 18 s against 10 s
here (on a slow machine), and would have made ``read_crl``'s look at every entry as slow again.
``cryptography`` still parses, and so validates, the whole CRL first, which is what lets the
reader below skip every check of the DER's shape.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, mldsa, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from schemas.events.certificates import RevocationReason

# How each X.509 reason reads back (``producers.jpki_ca.X509_REASON_OF`` writes them);
# certificateHold is a suspension (None). removeFromCRL is absent: it lifts a hold listed on an
# earlier (delta) CRL and revokes nothing, so such entries are only counted (``released``).
REASON_OF_X509: dict[x509.ReasonFlags, RevocationReason | None] = {
    x509.ReasonFlags.unspecified: RevocationReason.UNSPECIFIED,
    x509.ReasonFlags.key_compromise: RevocationReason.KEY_COMPROMISE,
    x509.ReasonFlags.ca_compromise: RevocationReason.KEY_COMPROMISE,
    x509.ReasonFlags.aa_compromise: RevocationReason.KEY_COMPROMISE,
    x509.ReasonFlags.affiliation_changed: RevocationReason.BASIC_INFO_CHANGED,
    x509.ReasonFlags.superseded: RevocationReason.HOLDER_REQUEST,
    x509.ReasonFlags.cessation_of_operation: RevocationReason.REMOVAL,
    x509.ReasonFlags.privilege_withdrawn: RevocationReason.EX_OFFICIO,
    x509.ReasonFlags.certificate_hold: None,
}

# CRLReason codes, RFC 5280 §5.3.1 (7 is unused).
_FLAG_OF_CODE = {
    0: x509.ReasonFlags.unspecified,
    1: x509.ReasonFlags.key_compromise,
    2: x509.ReasonFlags.ca_compromise,
    3: x509.ReasonFlags.affiliation_changed,
    4: x509.ReasonFlags.superseded,
    5: x509.ReasonFlags.cessation_of_operation,
    6: x509.ReasonFlags.certificate_hold,
    8: x509.ReasonFlags.remove_from_crl,
    9: x509.ReasonFlags.privilege_withdrawn,
    10: x509.ReasonFlags.aa_compromise,
}

_PEM_BEGIN = b"-----BEGIN X509 CRL-----"
_PEM_END = b"-----END X509 CRL-----"
_ANY_PEM_BEGIN = re.compile(rb"-----BEGIN ([ -,.-~]{1,64})-----")

# DER tags and the contents of the CRL entry extension OIDs (2.5.29.x) this reader knows.
_INTEGER = 0x02
_BOOLEAN = 0x01
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_SEQUENCE = 0x30
_REASON_CODE = bytes.fromhex("551d15")
_CERTIFICATE_ISSUER = bytes.fromhex("551d1d")
# Informational: when the key was compromised, and what a relying party should do on hold.
_INFORMATIONAL = {bytes.fromhex("551d18"), bytes.fromhex("551d17")}
# The extensions of almost every entry: a sequence of the one non-critical reason code, whose
# value (one byte) follows.
_ONLY_A_REASON = bytes.fromhex("300c300a0603551d1504030a01")
# Every entry that needs a second look (see _released) contains one of these byte strings: a
# critical extension's TRUE, the certificate issuer extension, or a reason code extension whose
# value is not one of the defined codes other than removeFromCRL.
_CRITICAL = bytes.fromhex("0101ff")
_CERTIFICATE_ISSUER_EXTENSION = bytes.fromhex("0603551d1d")
_UNUSUAL_REASON = re.compile(rb"\x06\x03\x55\x1d\x15\x04(?!\x03\x0a\x01[\x00-\x06\x09\x0a])")

# The keys a CA can sign with (cryptography's CertificateIssuerPublicKeyTypes, which isinstance
# cannot take).
_SIGNING_KEYS = (
    dsa.DSAPublicKey,
    rsa.RSAPublicKey,
    ec.EllipticCurvePublicKey,
    ed25519.Ed25519PublicKey,
    ed448.Ed448PublicKey,
    mldsa.MLDSA44PublicKey,
    mldsa.MLDSA65PublicKey,
    mldsa.MLDSA87PublicKey,
)


class CrlRefused(Exception):
    """A CRL that cannot be trusted or read; ``code`` is stable, ``message`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class CrlEntry:
    serial: int
    revoked_at: datetime
    reason: RevocationReason | None  # None: certificateHold, a suspension


@dataclass(frozen=True)
class VerifiedCrl:
    issuer: str
    crl_number: int | None
    this_update: datetime
    next_update: datetime | None
    sha256: str
    entries: int
    released: int  # removeFromCRL entries, which are not revocations
    der: bytes = field(repr=False, compare=False)

    def revoked(self) -> Iterator[CrlEntry]:
        """The revocations and suspensions, read one at a time from the DER."""
        for serial, revoked_at, flag in _scan(self.der):
            if flag is not x509.ReasonFlags.remove_from_crl:
                yield CrlEntry(serial, revoked_at, REASON_OF_X509[flag])


def read_crl(data: bytes, authority: x509.Certificate) -> VerifiedCrl:
    """Parse a DER or PEM CRL and verify it was issued and signed by ``authority``.

    Raises ``CrlRefused`` with code ``not_a_crl``, ``wrong_issuer``, ``bad_signature`` or
    ``unsupported_crl``.
    """
    der = _der_of(data)
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError as error:
        raise CrlRefused("not_a_crl", _what_it_is(data, der, error)) from None
    if crl.issuer != authority.subject:
        raise CrlRefused(
            "wrong_issuer",
            f"the CRL was issued by {crl.issuer.rfc4514_string()!r}, "
            f"not by the configured CA {authority.subject.rfc4514_string()!r}",
        )
    if not _signature_verifies(crl, der, authority.public_key()):
        raise CrlRefused(
            "bad_signature",
            f"the CRL's signature does not verify with the key of "
            f"{authority.subject.rfc4514_string()!r}: tampered, or signed by another CA with "
            "the same name",
        )
    crl_number = _check_extensions(crl)
    released = _released(der)
    return VerifiedCrl(
        issuer=crl.issuer.rfc4514_string(),
        crl_number=crl_number,
        this_update=crl.last_update_utc,
        next_update=crl.next_update_utc,
        sha256=hashlib.sha256(der).hexdigest(),
        entries=len(crl),
        released=released,
        der=der,
    )


def _der_of(data: bytes) -> bytes:
    """The DER of a PEM CRL, or ``data`` itself if it is not one."""
    begin = data.find(_PEM_BEGIN)
    if begin < 0:
        return data
    if (count := data.count(_PEM_BEGIN)) > 1:
        # Importing only the first, as before, dropped the others' revocations without a word.
        raise CrlRefused(
            "several_crls",
            f"it holds {count} PEM X509 CRLs; import each from a file of its own, the lowest "
            "CRL number first",
        )
    end = data.find(_PEM_END, begin)
    if end < 0:
        raise CrlRefused("not_a_crl", "it is a PEM X509 CRL with no END line (truncated?)")
    try:
        # Without validate=True the line breaks inside the body are skipped.
        return base64.b64decode(data[begin + len(_PEM_BEGIN) : end])
    except binascii.Error as error:
        raise CrlRefused(
            "not_a_crl", f"it is a PEM X509 CRL whose body is not base64 ({error})"
        ) from None


def _what_it_is(data: bytes, der: bytes, error: ValueError) -> str:
    """Why bytes that ``cryptography`` does not parse as a CRL are not one."""
    if der is not data:  # _der_of decoded a PEM CRL
        return f"it is a PEM X509 CRL whose content is not a well-formed CRL ({error})"
    if not data:
        return "it is empty"
    other = _ANY_PEM_BEGIN.search(data)
    if other is not None:
        return f"it is a PEM {other[1].decode('ascii').lower()}, not a CRL"
    if data[0] != _SEQUENCE:
        return "it is not DER or PEM"
    try:
        x509.load_der_x509_certificate(data)
    except ValueError:
        return f"it is DER but not a well-formed X.509 CRL ({error})"
    return "it is a DER certificate, not a CRL"


def _signature_verifies(
    crl: x509.CertificateRevocationList, der: bytes, key: CertificatePublicKeyTypes
) -> bool:
    if not isinstance(key, _SIGNING_KEYS):
        return False
    try:
        scheme = crl.signature_algorithm_parameters
        algorithm = crl.signature_hash_algorithm
        if not (
            isinstance(key, rsa.RSAPublicKey)
            and isinstance(scheme, padding.PKCS1v15 | padding.PSS)
            and algorithm is not None
        ):
            return crl.is_signature_valid(key)
        # Over the signed bytes as they are: is_signature_valid re-encodes the parsed TBSCertList
        # first, which takes 4 s for a million entries.
        key.verify(crl.signature, _tbs(der), scheme, algorithm)
    except InvalidSignature:
        return False
    except UnsupportedAlgorithm:
        raise CrlRefused(
            "unsupported_crl",
            f"its signature algorithm {crl.signature_algorithm_oid.dotted_string} is not supported",
        ) from None
    return True


def _check_extensions(crl: x509.CertificateRevocationList) -> int | None:
    """The CRL number, after refusing a CRL whose extensions change what its entries mean."""
    try:
        extensions = crl.extensions
    except ValueError as error:
        raise CrlRefused("not_a_crl", f"its extensions do not parse ({error})") from None
    crl_number = None
    for extension in extensions:
        value = extension.value
        if isinstance(value, x509.CRLNumber):
            crl_number = value.crl_number
        elif isinstance(value, x509.DeltaCRLIndicator):
            raise CrlRefused(
                "unsupported_crl",
                f"it is a delta CRL (against base CRL {value.crl_number}), which is unsupported: "
                "import the full CRL",
            )
        elif isinstance(value, x509.IssuingDistributionPoint):
            if value.indirect_crl:
                raise CrlRefused("unsupported_crl", "it is an indirect CRL, which is unsupported")
        elif extension.critical:
            raise CrlRefused(
                "unsupported_crl",
                f"it has a critical extension {extension.oid.dotted_string} "
                "this reader does not understand",
            )
    return crl_number


def _header(der: bytes, at: int) -> tuple[int, int, int]:
    """The tag, the content's start and the content's end of the DER element at ``at``."""
    tag = der[at]
    length = der[at + 1]
    start = at + 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[start : start + size])
        start += size
    return tag, start, start + length


def _tbs(der: bytes) -> bytes:
    """The signed part of a CRL (TBSCertList), header included."""
    _, start, _ = _header(der, 0)
    _, _, end = _header(der, start)
    return der[start:end]


def _revoked_certificates(der: bytes) -> tuple[int, int]:
    """Where the revokedCertificates sequence's content starts and ends (equal if absent)."""
    _, tbs, _ = _header(der, 0)
    _, at, end = _header(der, tbs)
    tag, _, after = _header(der, at)
    if tag == _INTEGER:  # version
        at = after
    for _ in range(3):  # signature, issuer, thisUpdate
        _, _, at = _header(der, at)
    if at < end and der[at] in (_UTC_TIME, _GENERALIZED_TIME):  # nextUpdate
        _, _, at = _header(der, at)
    if at < end and der[at] == _SEQUENCE:
        _, start, stop = _header(der, at)
        return start, stop
    return at, at


def _released(der: bytes) -> int:
    """How many entries are removeFromCRL, after refusing entries this reader cannot take.

    Looking at every entry takes seconds for a million of them, so the entries are first
    searched, at C speed, for the byte strings that any entry needing a look must contain; a
    CRL without them (almost all) has nothing to refuse and nothing released.
    """
    start, end = _revoked_certificates(der)
    if (
        der.find(_CRITICAL, start, end) < 0
        and der.find(_CERTIFICATE_ISSUER_EXTENSION, start, end) < 0
        and _UNUSUAL_REASON.search(der, start, end) is None
    ):
        return 0
    return sum(flag is x509.ReasonFlags.remove_from_crl for _, _, flag in _scan(der))


def _scan(der: bytes) -> Iterator[tuple[int, datetime, x509.ReasonFlags]]:
    """Each entry's serial, revocation date and reason, in order; unspecified if none is given.

    The DER has been parsed by ``cryptography`` already, so its shape is not checked again.
    """
    at, end = _revoked_certificates(der)
    while at < end:
        _, entry, at = _header(der, at)
        _, start, stop = _header(der, entry)
        serial = int.from_bytes(der[start:stop], signed=True)
        tag, start, stop = _header(der, stop)
        revoked_at = _time(tag, der[start:stop].decode("ascii"))
        if stop == at:
            flag = x509.ReasonFlags.unspecified
        elif at - stop == len(_ONLY_A_REASON) + 1 and der.startswith(_ONLY_A_REASON, stop):
            flag = _reading_of_code(der[at - 1], serial)
        else:
            flag = _reason(der, stop, serial)
        yield serial, revoked_at, flag


def _reason(der: bytes, extensions: int, serial: int) -> x509.ReasonFlags:
    """The reason among a CRL entry's extensions, refusing those that change its meaning."""
    flag = x509.ReasonFlags.unspecified
    _, at, end = _header(der, extensions)
    while at < end:
        _, extension, at = _header(der, at)
        _, start, stop = _header(der, extension)
        oid = der[start:stop]
        tag, start, stop = _header(der, stop)
        critical = tag == _BOOLEAN  # DER leaves out the default, FALSE
        if critical:
            _, start, stop = _header(der, stop)
        if oid == _REASON_CODE:
            _, start, stop = _header(der, start)
            flag = _reading_of_code(int.from_bytes(der[start:stop], signed=True), serial)
        elif oid == _CERTIFICATE_ISSUER:
            raise CrlRefused(
                "unsupported_crl",
                f"it is an indirect CRL (entry {serial:X} names a certificate issuer), "
                "which is unsupported",
            )
        elif critical and oid not in _INFORMATIONAL:
            raise CrlRefused(
                "unsupported_crl",
                f"entry {serial:X} has a critical extension {_dotted(oid)} "
                "this reader does not understand",
            )
    return flag


def _reading_of_code(code: int, serial: int) -> x509.ReasonFlags:
    flag = _FLAG_OF_CODE.get(code)
    if flag is None:
        raise CrlRefused(
            "unsupported_crl",
            f"entry {serial:X} has reason code {code}, which RFC 5280 does not define",
        )
    return flag


def _time(tag: int, text: str) -> datetime:
    """A DER UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSSZ), as RFC 5280 has them."""
    if tag == _UTC_TIME:
        text = ("19" if text >= "50" else "20") + text
    # fromisoformat takes the basic format with Z once a T separates the date; it is several
    # times faster than building the datetime from the digits.
    return datetime.fromisoformat(f"{text[:8]}T{text[8:]}")


def _dotted(oid: bytes) -> str:
    arcs = []
    value = 0
    for byte in oid:
        value = value << 7 | byte & 0x7F
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])
