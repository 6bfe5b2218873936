"""An issued certificate is admitted only with an X.509 signed by a trusted CA that says what
the event says."""

import base64
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from consumers.certificates.authorities import CA_FILE, TrustedAuthorities, checked_step
from consumers.certificates.rules import Status
from producers.jpki import Holder, card_certificates
from producers.jpki_ca import CertificateAuthority
from schemas.events.certificates import CertificateIssued

ISSUED_AT = datetime(2026, 12, 1, 9, tzinfo=UTC)
HOLDER = Holder("131016", "13101600011", date(1975, 6, 12))


@pytest.fixture(scope="module")
def authority() -> CertificateAuthority:
    return CertificateAuthority.create()


def trusting(tmp_path: Path, *authorities: CertificateAuthority) -> TrustedAuthorities:
    for authority in authorities:
        authority.save(tmp_path / authority.name.split(",")[0])
    pem = b"".join((tmp_path / a.name.split(",")[0] / CA_FILE).read_bytes() for a in authorities)
    (tmp_path / CA_FILE).write_bytes(pem)
    return TrustedAuthorities(tmp_path / CA_FILE)


def issued(authority: CertificateAuthority) -> CertificateIssued:
    return card_certificates(authority, HOLDER, ISSUED_AT, (1 << 62 | 5, 1 << 62 | 7))[1]


def test_a_certificate_of_a_trusted_ca_is_admitted(
    tmp_path: Path, authority: CertificateAuthority
) -> None:
    trusted = trusting(tmp_path, CertificateAuthority.create("Other CA"), authority)
    event = issued(authority)
    assert trusted.refusal(event) is None
    assert checked_step(trusted, None, event).state.status is Status.ACTIVE  # type: ignore[union-attr]


def test_a_certificate_signed_by_a_ca_nobody_trusts_is_refused(
    tmp_path: Path, authority: CertificateAuthority
) -> None:
    # A rogue CA of the very same name: only the signature tells them apart.
    rogue = CertificateAuthority.create()
    assert rogue.name == authority.name
    trusted = trusting(tmp_path, authority)
    step = checked_step(trusted, None, issued(rogue))
    assert step.state is None
    assert step.refusal is not None
    assert step.refusal.code == "not_from_trusted_ca"
    assert "not signed by a trusted JPKI CA" in step.refusal.message


@pytest.mark.parametrize(
    ("change", "code", "said"),
    [
        ({"certificate": None}, "no_x509", "comes without its X.509 certificate"),
        ({"certificate": "bm90IGEgY2VydGlmaWNhdGU="}, "bad_x509", "not a DER X.509"),
        ({"serial": "4000000000000009"}, "x509_mismatch", "the X.509 has serial 4000000000000007"),
        ({"not_after": ISSUED_AT}, "x509_mismatch", "the X.509 is valid"),
        ({"issuer": "CN=Someone else"}, "x509_mismatch", "the X.509's issuer is"),
    ],
)
def test_a_certificate_that_is_not_what_its_x509_says_is_refused(
    tmp_path: Path, authority: CertificateAuthority, change: dict[str, object], code: str, said: str
) -> None:
    trusted = trusting(tmp_path, authority)
    refusal = trusted.refusal(issued(authority).model_copy(update=change))
    assert refusal is not None
    assert (refusal.code, said in refusal.message) == (code, True), refusal.message


def test_with_no_trusted_ca_nothing_is_admitted_until_one_is_put_in_place(
    tmp_path: Path, authority: CertificateAuthority
) -> None:
    trusted = TrustedAuthorities(tmp_path / CA_FILE)
    refusal = trusted.refusal(issued(authority))
    assert refusal is not None
    assert refusal.code == "no_trusted_ca"
    assert str(tmp_path / CA_FILE) in refusal.message
    authority.save(tmp_path)  # `bcl certificate ca`, after the worker started
    assert trusted.refusal(issued(authority)) is None


def test_a_certificate_whose_names_do_not_parse_is_refused_not_raised(tmp_path: Path) -> None:
    authority = CertificateAuthority.create("ÀÀ CA")
    event = issued(authority)
    assert event.certificate is not None
    der = base64.b64decode(event.certificate)
    # The issuer's UTF-8 broken: the parser accepts the certificate and fails on reading it.
    broken = der.replace("ÀÀ".encode(), b"\xc3\x28\xc3\x28", 1)
    assert broken != der
    refusal = trusting(tmp_path, authority).refusal(
        event.model_copy(update={"certificate": base64.b64encode(broken).decode()})
    )
    assert refusal is not None
    assert refusal.code == "bad_x509"
