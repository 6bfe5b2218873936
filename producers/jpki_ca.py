"""A test certificate authority in the image of JPKI: RSA-2048 keys, SHA-256 signatures.

It issues the two end-entity certificates of a My Number Card and signs CRLs, so the CRL import
can be exercised end to end, and against ``openssl``, without the real J-LIS authority.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from schemas.events.certificates import CertificateKind, RevocationReason

CRL_URL = "http://127.0.0.1/jpki/crl.der"
CERTIFICATE_FILE = "ca.pem"
KEY_FILE = "ca.key.pem"

# How each revocation is written to a CRL; ``producers.crl.REASON_OF_X509`` reads them back.
# X.509 has no reason for a loss, a death or a removal: a lost card's key may be in anyone's
# hands, and a dead or removed holder's certificate has simply ceased to be needed.
X509_REASON_OF: dict[RevocationReason, x509.ReasonFlags] = {
    RevocationReason.UNSPECIFIED: x509.ReasonFlags.unspecified,
    RevocationReason.HOLDER_REQUEST: x509.ReasonFlags.superseded,
    RevocationReason.LOSS: x509.ReasonFlags.key_compromise,
    RevocationReason.KEY_COMPROMISE: x509.ReasonFlags.key_compromise,
    RevocationReason.BASIC_INFO_CHANGED: x509.ReasonFlags.affiliation_changed,
    RevocationReason.DEATH: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.REMOVAL: x509.ReasonFlags.cessation_of_operation,
    RevocationReason.EX_OFFICIO: x509.ReasonFlags.privilege_withdrawn,
}

_HOLD = x509.CRLReason(x509.ReasonFlags.certificate_hold)
_CRL_REASON_OF = {reason: x509.CRLReason(flag) for reason, flag in X509_REASON_OF.items()}

_SUBJECT_OF_KIND = {
    CertificateKind.USER_AUTHENTICATION: "JPKI user authentication certificate",
    CertificateKind.SIGNATURE: "JPKI signature certificate",
}


class CaFileError(ValueError):
    """A CA file that is missing or unusable; the message names the file and the problem."""


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    serial: int
    revoked_at: datetime
    reason: RevocationReason | None  # None: on hold (suspended), X.509 certificateHold


@cache
def _holder_key() -> rsa.RSAPrivateKey:
    # One key pair stands for every holder: generating an RSA-2048 key takes tens of
    # milliseconds, which is days for a workload of millions of residents, and nothing here
    # needs a holder's private key; what the pipeline sees is a certificate's serial, validity
    # and the CA's signature.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class CertificateAuthority:
    certificate: x509.Certificate
    private_key: rsa.RSAPrivateKey

    @classmethod
    def create(
        cls,
        name: str = "JPKI Test CA",
        *,
        organization: str = "BCL Pipeline test authority",
        now: datetime | None = None,
        years: int = 20,
    ) -> CertificateAuthority:
        """A new self-signed authority valid for ``years`` from ``now``."""
        start = now or datetime.now(UTC)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        certificate = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=round(365.25 * years)))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return cls(certificate, key)

    @property
    def name(self) -> str:
        return self.certificate.subject.rfc4514_string()

    def save(self, directory: Path) -> None:
        """Write ``ca.pem`` and ``ca.key.pem`` (mode 0600) into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        key_pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # Created with mode 0600 so the key is never readable by others, not even between
        # creation and a chmod; fchmod covers a key file that already existed with a looser mode.
        descriptor = os.open(directory / KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(descriptor, 0o600)
            file.write(key_pem)
        # Whole or not at all: consumers read it as their trust anchor at any moment.
        partial = directory / f".{CERTIFICATE_FILE}.partial"
        partial.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        os.replace(partial, directory / CERTIFICATE_FILE)

    @classmethod
    def load(cls, directory: Path) -> CertificateAuthority:
        certificate_path = directory / CERTIFICATE_FILE
        key_path = directory / KEY_FILE
        certificate_pem = _read(certificate_path)
        key_pem = _read(key_path)
        try:
            certificate = x509.load_pem_x509_certificate(certificate_pem)
        except ValueError:
            raise CaFileError(f"{certificate_path} is not a PEM certificate") from None
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except TypeError:
            # cryptography raises TypeError for an encrypted key given no password.
            raise CaFileError(f"{key_path} is encrypted; the CA key must be unencrypted") from None
        except ValueError:
            raise CaFileError(f"{key_path} is not a PEM private key") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise CaFileError(f"{key_path} is not an RSA key")
        if key.public_key() != certificate.public_key():
            raise CaFileError(f"{key_path} is not the key of the certificate in {certificate_path}")
        return cls(certificate, key)

    @classmethod
    def load_or_create(cls, directory: Path) -> CertificateAuthority:
        """The authority saved in ``directory``, or a new one saved there if it holds neither file.

        A directory holding only one of the two files is an error rather than a reason to create
        a new authority, which would silently replace a key.
        """
        if (directory / CERTIFICATE_FILE).exists() or (directory / KEY_FILE).exists():
            return cls.load(directory)
        authority = cls.create()
        authority.save(directory)
        return authority

    def issue(
        self,
        *,
        serial: int,
        kind: CertificateKind,
        not_before: datetime,
        not_after: datetime,
        public_key: rsa.RSAPublicKey | None = None,
    ) -> x509.Certificate:
        """An end-entity certificate; its subject carries no personal data."""
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "JP"),
                x509.NameAttribute(NameOID.COMMON_NAME, _SUBJECT_OF_KIND[kind]),
            ]
        )
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key or _holder_key().public_key())
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=kind is CertificateKind.SIGNATURE,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                critical=False,
            )
            .add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[x509.UniformResourceIdentifier(CRL_URL)],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                critical=False,
            )
            .sign(self.private_key, hashes.SHA256())
        )

    def crl(
        self,
        entries: Iterable[RevokedEntry],
        *,
        this_update: datetime,
        next_update: datetime,
        crl_number: int,
    ) -> bytes:
        """The DER of a CRL listing ``entries``, signed with SHA-256."""
        revoked = [_revoked_certificate(entry) for entry in entries]
        # Passed to the constructor because add_revoked_certificate copies the whole list on
        # every call, which makes a million entries quadratic.
        builder = (
            x509.CertificateRevocationListBuilder(revoked_certificates=revoked)
            .issuer_name(self.certificate.subject)
            .last_update(this_update)
            .next_update(next_update)
            .add_extension(x509.CRLNumber(crl_number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),
                critical=False,
            )
        )
        return builder.sign(self.private_key, hashes.SHA256()).public_bytes(
            serialization.Encoding.DER
        )


def _revoked_certificate(entry: RevokedEntry) -> x509.RevokedCertificate:
    if entry.reason is RevocationReason.EXPIRY:
        raise ValueError(f"serial {entry.serial:X}: an expired certificate is not listed on a CRL")
    builder = (
        x509.RevokedCertificateBuilder()
        .serial_number(entry.serial)
        .revocation_date(entry.revoked_at)
    )
    extension = _HOLD if entry.reason is None else _CRL_REASON_OF[entry.reason]
    # RFC 5280 §5.3.1: the reason code SHOULD be absent rather than "unspecified"; a reader takes
    # an entry without one as unspecified.
    if extension.reason is not x509.ReasonFlags.unspecified:
        builder = builder.add_extension(extension, critical=False)
    return builder.build()


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise CaFileError(f"{path} is missing") from None
    except OSError as error:
        raise CaFileError(f"{path} cannot be read: {error.strerror}") from None
