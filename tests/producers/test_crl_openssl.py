"""Interoperability with OpenSSL: it verifies our CRLs, and we read the CRLs of an openssl CA."""

from __future__ import annotations

import base64
import re
import shlex
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from consumers.certificates.rules import Validity, check
from pipeline.kafka import producer
from pipeline.publish import publish_many
from pipeline.settings import Settings
from producers.crl import read_crl
from producers.jpki import certificate_state, import_crl, issued_event
from producers.jpki_ca import CertificateAuthority, RevokedEntry
from schemas.codes import certificate_serial
from schemas.events.certificates import CertificateIssued, CertificateKind, RevocationReason

OPENSSL = shutil.which("openssl")
if OPENSSL is None:
    pytest.skip("the openssl binary is not installed", allow_module_level=True)

NOW = datetime(2026, 4, 1, 9, 30, tzinfo=UTC)

OPENSSL_CA_CONFIG = """\
[ca]
default_ca = test_ca

[test_ca]
dir = .
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
serial = $dir/serial
crlnumber = $dir/crlnumber
default_md = sha256
default_days = 365
default_crl_days = 7
policy = policy_anything
unique_subject = no

[policy_anything]
commonName = supplied
"""


def openssl(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert OPENSSL is not None
    return subprocess.run(
        [OPENSSL, *shlex.split(command)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )


def verify(crl: Path, ca: Path) -> str:
    """What ``openssl crl`` says of the CRL's signature.

    OpenSSL 3.0 exits 0 when the verification fails too, printing "verify failure", so the
    verdict is in the text and not in the exit status.
    """
    result = openssl(f"crl -inform DER -in {crl} -CAfile {ca} -noout", cwd=crl.parent)
    return (result.stdout + result.stderr).strip()


def test_openssl_verifies_and_lists_the_authoritys_crl(scratch: Path) -> None:
    ca = CertificateAuthority.create(now=NOW - timedelta(days=365))
    ca.save(scratch)
    entries = [
        RevokedEntry(0x0A1B_2C3D_4E5F_6071, NOW, RevocationReason.LOSS),
        RevokedEntry(0x1122_3344_5566_7788, NOW, RevocationReason.HOLDER_REQUEST),
        RevokedEntry(0x2233_4455_6677_8899, NOW, RevocationReason.BASIC_INFO_CHANGED),
        RevokedEntry(0x3344_5566_7788_99AA, NOW, RevocationReason.DEATH),
        RevokedEntry(0x4455_6677_8899_AABB, NOW, RevocationReason.EX_OFFICIO),
        RevokedEntry(0x5566_7788_99AA_BBCC, NOW, None),
    ]
    data = ca.crl(entries, this_update=NOW, next_update=NOW + timedelta(days=1), crl_number=3)
    (scratch / "crl.der").write_bytes(data)

    assert verify(scratch / "crl.der", scratch / "ca.pem") == "verify OK"
    text = openssl("crl -inform DER -in crl.der -noout -text", cwd=scratch).stdout
    for entry in entries:
        assert f"Serial Number: {entry.serial:016X}\n" in text
    for reason in (
        "Key Compromise",
        "Superseded",
        "Affiliation Changed",
        "Cessation Of Operation",
        "Privilege Withdrawn",
        "Certificate Hold",
    ):
        assert f"X509v3 CRL Reason Code: \n                {reason}\n" in text
    assert re.search(r"X509v3 CRL Number: *\n *3\n", text)

    at = data.index(bytes.fromhex("02080a1b2c3d4e5f6071")) + 9
    (scratch / "tampered.der").write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :])
    assert verify(scratch / "tampered.der", scratch / "ca.pem") == "verify failure"


def independent_ca_crl(scratch: Path) -> tuple[x509.Certificate, list[int], datetime]:
    """An `openssl ca` with one certificate revoked (keyCompromise) and one on hold, and its CRL
    as crl.pem and crl.der: (CA certificate, [revoked serial, held serial], lastUpdate)."""
    (scratch / "openssl.cnf").write_text(OPENSSL_CA_CONFIG)
    (scratch / "index.txt").write_text("")
    (scratch / "serial").write_text("1000\n")
    (scratch / "crlnumber").write_text("05\n")
    (scratch / "newcerts").mkdir()
    openssl(
        "req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout ca.key -out ca.pem"
        " -subj '/C=JP/O=Independent/CN=Independent JPKI CA'",
        cwd=scratch,
    )
    serials = []
    for holder in ("revoked", "held"):
        openssl(
            f"req -newkey rsa:2048 -nodes -subj /CN={holder}"
            f" -keyout {holder}.key -out {holder}.csr",
            cwd=scratch,
        )
        openssl(f"ca -batch -config openssl.cnf -in {holder}.csr -out {holder}.pem", cwd=scratch)
        printed = openssl(f"x509 -in {holder}.pem -noout -serial", cwd=scratch).stdout
        serials.append(int(printed.strip().removeprefix("serial="), 16))
    openssl("ca -config openssl.cnf -revoke revoked.pem -crl_reason keyCompromise", cwd=scratch)
    # openssl puts a certificate on hold with -crl_hold and an instruction, not -crl_reason.
    openssl("ca -config openssl.cnf -revoke held.pem -crl_hold holdInstructionNone", cwd=scratch)
    openssl("ca -config openssl.cnf -gencrl -out crl.pem", cwd=scratch)
    openssl("crl -in crl.pem -outform DER -out crl.der", cwd=scratch)
    printed = openssl("crl -in crl.pem -noout -lastupdate", cwd=scratch).stdout
    last_update = datetime.strptime(
        printed.strip().removeprefix("lastUpdate="), "%b %d %H:%M:%S %Y GMT"
    ).replace(tzinfo=UTC)
    authority = x509.load_pem_x509_certificate((scratch / "ca.pem").read_bytes())
    return authority, serials, last_update


def test_the_crl_of_an_independent_openssl_ca_reads(scratch: Path) -> None:
    authority, serials, last_update = independent_ca_crl(scratch)
    for name in ("crl.pem", "crl.der"):
        crl = read_crl((scratch / name).read_bytes(), authority)

        revoked, held = sorted(crl.revoked(), key=lambda entry: entry.serial)
        assert (revoked.serial, revoked.reason) == (serials[0], RevocationReason.KEY_COMPROMISE)
        assert (held.serial, held.reason) == (serials[1], None)
        assert crl.issuer == "CN=Independent JPKI CA,O=Independent,C=JP"
        assert crl.crl_number == 5
        assert crl.this_update == last_update
        assert crl.next_update == last_update + timedelta(days=7)
        assert (crl.entries, crl.released) == (2, 0)


@pytest.mark.integration
async def test_the_crl_of_an_independent_openssl_ca_imports(
    scratch: Path, platform: Settings
) -> None:
    authority, (revoked, held), _ = independent_ca_crl(scratch)
    # This center trusts the independent CA, and its cards carry the certificates openssl made.
    platform.jpki_home.mkdir(parents=True, exist_ok=True)
    (platform.jpki_home / "ca.pem").write_bytes((scratch / "ca.pem").read_bytes())
    made = [
        x509.load_pem_x509_certificate((scratch / f"{h}.pem").read_bytes())
        for h in ("revoked", "held")
    ]
    issued = [
        CertificateIssued(
            serial=certificate_serial(certificate.serial_number),
            kind=CertificateKind.USER_AUTHENTICATION,
            municipality="131016",
            resident_code=f"1310160000{n}",
            not_before=certificate.not_valid_before_utc,
            not_after=certificate.not_valid_after_utc,
            issuer=authority.subject.rfc4514_string(),
            certificate=base64.b64encode(certificate.public_bytes(Encoding.DER)).decode(),
        )
        for n, certificate in enumerate(made)
    ]
    assert [c.serial_number for c in made] == [revoked, held]
    async with producer(platform) as kafka:
        await publish_many(platform, kafka, [issued_event(platform, c) for c in issued])

    report = await import_crl(platform, (scratch / "crl.der").read_bytes(), authority)
    assert (report.outcome, report.revocations, report.suspensions) == ("imported", 1, 1)
    assert (await import_crl(platform, (scratch / "crl.pem").read_bytes(), authority)).outcome == (
        "already_imported"
    )
    now = datetime.now(UTC)
    revoked_check = check(await certificate_state(platform, certificate_serial(revoked)), "r", now)
    held_check = check(await certificate_state(platform, certificate_serial(held)), "h", now)
    assert (revoked_check.status, revoked_check.reason) == (Validity.REVOKED, "key_compromise")
    assert held_check.status is Validity.SUSPENDED
