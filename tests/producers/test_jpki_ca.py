"""The test certificate authority and the CRL reader: round trips, mappings and refusals."""

from __future__ import annotations

import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import CRLEntryExtensionOID, NameOID

from producers.crl import REASON_OF_X509, CrlEntry, CrlRefused, read_crl
from producers.jpki_ca import (
    X509_REASON_OF,
    CaFileError,
    CertificateAuthority,
    RevokedEntry,
)
from schemas.events.certificates import CertificateKind, RevocationReason

NOW = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)
NEXT = NOW + timedelta(days=1)

# What each reason reads back as after a trip through a CRL: X.509 has fewer reasons than JPKI.
READING = {
    RevocationReason.UNSPECIFIED: RevocationReason.UNSPECIFIED,
    RevocationReason.HOLDER_REQUEST: RevocationReason.HOLDER_REQUEST,
    RevocationReason.LOSS: RevocationReason.KEY_COMPROMISE,
    RevocationReason.KEY_COMPROMISE: RevocationReason.KEY_COMPROMISE,
    RevocationReason.BASIC_INFO_CHANGED: RevocationReason.BASIC_INFO_CHANGED,
    RevocationReason.DEATH: RevocationReason.REMOVAL,
    RevocationReason.REMOVAL: RevocationReason.REMOVAL,
    RevocationReason.EX_OFFICIO: RevocationReason.EX_OFFICIO,
}


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create(now=NOW - timedelta(days=365))


def build_crl(
    ca: CertificateAuthority,
    revoked: list[x509.RevokedCertificate],
    *extensions: tuple[x509.ExtensionType, bool],
) -> bytes:
    """A CRL signed by ``ca`` with what CertificateAuthority.crl never writes."""
    builder = (
        x509.CertificateRevocationListBuilder(revoked_certificates=revoked)
        .issuer_name(ca.certificate.subject)
        .last_update(NOW)
        .next_update(NEXT)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(ca.private_key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def revoked_certificate(
    serial: int, *extensions: tuple[x509.ExtensionType, bool], at: datetime = NOW
) -> x509.RevokedCertificate:
    builder = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(at)
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.build()


def refusal(data: bytes, authority: x509.Certificate) -> CrlRefused:
    with pytest.raises(CrlRefused) as caught:
        read_crl(data, authority)
    assert str(caught.value) == caught.value.message
    return caught.value


def test_a_saved_authority_loads_back_with_a_private_key_file(
    ca: CertificateAuthority, scratch: Path
) -> None:
    ca.save(scratch / "ca")

    loaded = CertificateAuthority.load(scratch / "ca")

    assert loaded.certificate == ca.certificate
    assert loaded.private_key.private_numbers() == ca.private_key.private_numbers()
    assert loaded.name == "CN=JPKI Test CA,O=BCL Pipeline test authority,C=JP"
    assert stat.S_IMODE((scratch / "ca" / "ca.key.pem").stat().st_mode) == 0o600
    constraints = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert constraints.value.ca
    assert constraints.value.path_length == 0
    ca.certificate.verify_directly_issued_by(ca.certificate)


def test_saving_over_a_readable_key_file_makes_it_private(
    ca: CertificateAuthority, scratch: Path
) -> None:
    key_file = scratch / "ca.key.pem"
    key_file.write_text("old")
    key_file.chmod(0o644)

    ca.save(scratch)

    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert CertificateAuthority.load(scratch).certificate == ca.certificate


def test_load_names_the_missing_or_unusable_file(ca: CertificateAuthority, scratch: Path) -> None:
    with pytest.raises(CaFileError, match=r"ca\.pem is missing"):
        CertificateAuthority.load(scratch)

    ca.save(scratch)
    (scratch / "ca.key.pem").write_text("not a key")
    with pytest.raises(CaFileError, match=r"ca\.key\.pem is not a PEM private key"):
        CertificateAuthority.load(scratch)

    encrypted = ca.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    (scratch / "ca.key.pem").write_bytes(encrypted)
    with pytest.raises(CaFileError, match=r"ca\.key\.pem is encrypted"):
        CertificateAuthority.load(scratch)

    (scratch / "ca.pem").unlink()
    (scratch / "ca.pem").mkdir()
    with pytest.raises(CaFileError, match=r"ca\.pem cannot be read: Is a directory"):
        CertificateAuthority.load(scratch)
    (scratch / "ca.pem").rmdir()

    ca.save(scratch)
    CertificateAuthority.create(name="Another CA").save(scratch / "other")
    (scratch / "ca.key.pem").write_bytes((scratch / "other" / "ca.key.pem").read_bytes())
    with pytest.raises(CaFileError, match=r"ca\.key\.pem is not the key of the certificate"):
        CertificateAuthority.load(scratch)


def test_load_or_create_creates_once_and_never_replaces_half_an_authority(scratch: Path) -> None:
    created = CertificateAuthority.load_or_create(scratch / "ca")

    assert CertificateAuthority.load_or_create(scratch / "ca").certificate == created.certificate
    (scratch / "ca" / "ca.pem").unlink()
    with pytest.raises(CaFileError, match=r"ca\.pem is missing"):
        CertificateAuthority.load_or_create(scratch / "ca")


@pytest.mark.parametrize("kind", list(CertificateKind))
def test_an_issued_certificate_verifies_against_the_authority(
    ca: CertificateAuthority, kind: CertificateKind
) -> None:
    not_after = NOW + timedelta(days=5 * 365)

    certificate = ca.issue(serial=0x1234_5678_9ABC, kind=kind, not_before=NOW, not_after=not_after)

    certificate.verify_directly_issued_by(ca.certificate)
    assert certificate.serial_number == 0x1234_5678_9ABC
    assert certificate.not_valid_before_utc == NOW
    assert certificate.not_valid_after_utc == not_after
    [common_name] = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert (
        common_name.value
        == {
            CertificateKind.SIGNATURE: "JPKI signature certificate",
            CertificateKind.USER_AUTHENTICATION: "JPKI user authentication certificate",
        }[kind]
    )
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert usage.value.content_commitment is (kind is CertificateKind.SIGNATURE)
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_holders_share_one_key_unless_given_theirs(ca: CertificateAuthority) -> None:
    def issue(serial: int) -> x509.Certificate:
        return ca.issue(
            serial=serial,
            kind=CertificateKind.USER_AUTHENTICATION,
            not_before=NOW,
            not_after=NEXT,
        )

    assert issue(1).public_key() == issue(2).public_key()
    own = ca.private_key.public_key()
    given = ca.issue(
        serial=3, kind=CertificateKind.SIGNATURE, not_before=NOW, not_after=NEXT, public_key=own
    )
    assert given.public_key() == own


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(lambda crl: crl, id="DER"),
        pytest.param(
            lambda crl: x509.load_der_x509_crl(crl).public_bytes(serialization.Encoding.PEM),
            id="PEM",
        ),
    ],
)
def test_the_authoritys_crl_reads_back_with_the_documented_readings(
    ca: CertificateAuthority, encode: Callable[[bytes], bytes]
) -> None:
    written = [
        RevokedEntry(0x100 + number, NOW - timedelta(hours=number), reason)
        for number, reason in enumerate([*READING, None])
    ]
    data = encode(ca.crl(written, this_update=NOW, next_update=NEXT, crl_number=7))

    crl = read_crl(data, ca.certificate)

    assert list(crl.revoked()) == [
        CrlEntry(
            entry.serial, entry.revoked_at, None if entry.reason is None else READING[entry.reason]
        )
        for entry in written
    ]
    assert (crl.issuer, crl.crl_number, crl.entries, crl.released) == (ca.name, 7, 9, 0)
    assert (crl.this_update, crl.next_update) == (NOW, NEXT)
    assert len(crl.sha256) == 64
    for reason, reading in READING.items():
        assert REASON_OF_X509[X509_REASON_OF[reason]] is reading


def test_an_expired_certificate_is_never_written_to_a_crl(ca: CertificateAuthority) -> None:
    with pytest.raises(ValueError, match="expired"):
        ca.crl(
            [RevokedEntry(1, NOW, RevocationReason.EXPIRY)],
            this_update=NOW,
            next_update=NEXT,
            crl_number=1,
        )


def test_every_x509_reason_and_date_form_reads_as_cryptography_reads_it(
    ca: CertificateAuthority,
) -> None:
    flags = [flag for flag in x509.ReasonFlags if flag is not x509.ReasonFlags.unspecified]
    revoked = [
        revoked_certificate(0x200 + number, (x509.CRLReason(flag), False))
        for number, flag in enumerate(flags)
    ]
    revoked += [
        # Negative serials exist in the wild; a date from 2050 on is a GeneralizedTime.
        revoked_certificate(2**159 - 1, at=datetime(2051, 2, 3, 4, 5, 6, tzinfo=UTC)),
        revoked_certificate(0x7F, at=datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC)),
        revoked_certificate(
            0x300,
            (x509.CRLReason(x509.ReasonFlags.key_compromise), False),
            (x509.InvalidityDate(datetime(2026, 1, 1)), False),
        ),
    ]
    data = build_crl(ca, revoked)

    crl = read_crl(data, ca.certificate)

    def reading(entry: x509.RevokedCertificate) -> x509.ReasonFlags:
        try:
            return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            return x509.ReasonFlags.unspecified

    assert list(crl.revoked()) == [
        CrlEntry(entry.serial_number, entry.revocation_date_utc, REASON_OF_X509[reading(entry)])
        for entry in x509.load_der_x509_crl(data)
        if reading(entry) is not x509.ReasonFlags.remove_from_crl
    ]
    assert (crl.entries, crl.released, crl.crl_number) == (len(revoked), 1, None)


def test_garbage_is_not_a_crl(ca: CertificateAuthority) -> None:
    for data in (b"", b"hello, world", b"\x30\x03\x02\x01\x01"):
        assert refusal(data, ca.certificate).code == "not_a_crl"
    assert refusal(b"hello, world", ca.certificate).message == "it is not DER or PEM"


def test_a_pem_file_of_several_crls_is_refused_rather_than_read_in_part(
    ca: CertificateAuthority,
) -> None:
    first, second = (
        x509.load_der_x509_crl(
            ca.crl([], this_update=NOW, next_update=NEXT, crl_number=number)
        ).public_bytes(serialization.Encoding.PEM)
        for number in (1, 2)
    )
    refused = refusal(first + second, ca.certificate)
    assert refused.code == "several_crls"
    assert refused.message.startswith("it holds 2 PEM X509 CRLs; import each from a file")
    assert read_crl(first, ca.certificate).crl_number == 1


def test_a_certificate_is_not_a_crl(ca: CertificateAuthority) -> None:
    pem = ca.certificate.public_bytes(serialization.Encoding.PEM)
    der = ca.certificate.public_bytes(serialization.Encoding.DER)

    assert refusal(pem, ca.certificate).message == "it is a PEM certificate, not a CRL"
    assert refusal(der, ca.certificate).message == "it is a DER certificate, not a CRL"
    assert refusal(pem, ca.certificate).code == "not_a_crl"


def test_a_crl_changed_after_signing_has_a_bad_signature(ca: CertificateAuthority) -> None:
    data = ca.crl(
        [RevokedEntry(0x0A1B_2C3D_4E5F_6071, NOW, RevocationReason.LOSS)],
        this_update=NOW,
        next_update=NEXT,
        crl_number=1,
    )
    # The serial's last byte: the DER stays valid, so only the signature can tell.
    at = data.index(bytes.fromhex("02080a1b2c3d4e5f6071")) + 9
    tampered = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]

    refused = refusal(tampered, ca.certificate)

    assert refused.code == "bad_signature"
    assert "tampered, or signed by another CA with the same name" in refused.message


def test_a_crl_of_another_authority_is_refused(ca: CertificateAuthority) -> None:
    impostor = CertificateAuthority.create(now=NOW - timedelta(days=1))
    stranger = CertificateAuthority.create(name="Stranger CA", now=NOW - timedelta(days=1))
    entries = [RevokedEntry(1, NOW, None)]

    def crl_of(authority: CertificateAuthority) -> bytes:
        return authority.crl(entries, this_update=NOW, next_update=NEXT, crl_number=1)

    assert refusal(crl_of(impostor), ca.certificate).code == "bad_signature"
    wrong = refusal(crl_of(stranger), ca.certificate)
    assert wrong.code == "wrong_issuer"
    assert stranger.name in wrong.message
    assert ca.name in wrong.message


def test_delta_and_indirect_crls_are_unsupported(ca: CertificateAuthority) -> None:
    indirect = x509.IssuingDistributionPoint(
        full_name=None,
        relative_name=None,
        only_contains_user_certs=False,
        only_contains_ca_certs=False,
        only_some_reasons=None,
        indirect_crl=True,
        only_contains_attribute_certs=False,
    )
    issuer = x509.CertificateIssuer([x509.DirectoryName(ca.certificate.subject)])

    delta = refusal(build_crl(ca, [], (x509.DeltaCRLIndicator(6), True)), ca.certificate)
    assert delta.code == "unsupported_crl"
    assert "delta CRL" in delta.message
    assert refusal(build_crl(ca, [], (indirect, True)), ca.certificate).code == "unsupported_crl"
    entry_issuer = refusal(build_crl(ca, [revoked_certificate(5, (issuer, True))]), ca.certificate)
    assert entry_issuer.code == "unsupported_crl"
    assert "indirect CRL" in entry_issuer.message


def test_extensions_the_reader_does_not_know_are_refused_only_when_critical(
    ca: CertificateAuthority,
) -> None:
    unknown = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.99999.1"), b"\x05\x00")
    undefined_reason = x509.UnrecognizedExtension(CRLEntryExtensionOID.CRL_REASON, b"\x0a\x01\x07")

    assert read_crl(build_crl(ca, [revoked_certificate(5, (unknown, False))]), ca.certificate)
    entry = refusal(build_crl(ca, [revoked_certificate(5, (unknown, True))]), ca.certificate)
    assert (entry.code, entry.message) == (
        "unsupported_crl",
        "entry 5 has a critical extension 1.3.6.1.4.1.99999.1 this reader does not understand",
    )
    assert refusal(build_crl(ca, [], (unknown, True)), ca.certificate).code == "unsupported_crl"
    reason = refusal(
        build_crl(ca, [revoked_certificate(5, (undefined_reason, False))]), ca.certificate
    )
    assert (reason.code, reason.message) == (
        "unsupported_crl",
        "entry 5 has reason code 7, which RFC 5280 does not define",
    )
