from __future__ import annotations

import hashlib
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pipeline.signing import (
    SigningKeyError,
    generate_signing_key,
    load_private_key,
    load_public_key,
    private_key_pem,
    public_key_pem,
    read_key_pair,
    sign_digest,
    verify_digest,
    write_key_pair,
)

DIGEST = hashlib.sha256(b"resident diff push 131016 #42").digest()


def openssl_rawin() -> str | None:
    """Why the openssl interop cannot run here, or None when it can."""
    if shutil.which("openssl") is None:
        return "openssl is not installed"
    usage = subprocess.run(
        ["openssl", "pkeyutl", "-help"], capture_output=True, text=True, check=False
    )
    if "-rawin" not in usage.stdout + usage.stderr:
        return "this openssl's pkeyutl has no -rawin (needs OpenSSL 3.0+) to sign Ed25519"
    return None


needs_openssl = pytest.mark.skipif(openssl_rawin() is not None, reason=str(openssl_rawin()))


def test_a_signature_verifies_under_its_public_key_only() -> None:
    key = generate_signing_key()
    signature = sign_digest(key, DIGEST)
    assert len(signature) == 64
    assert verify_digest(key.public_key(), DIGEST, signature)

    assert not verify_digest(generate_signing_key().public_key(), DIGEST, signature)
    assert not verify_digest(key.public_key(), hashlib.sha256(b"other").digest(), signature)
    assert not verify_digest(key.public_key(), DIGEST, bytes([signature[0] ^ 1]) + signature[1:])
    assert not verify_digest(key.public_key(), DIGEST, signature[:10])
    assert not verify_digest(key.public_key(), DIGEST, b"")


def test_the_signed_message_is_the_raw_sha256_digest() -> None:
    key = generate_signing_key()
    with pytest.raises(ValueError, match="raw 32-byte SHA-256, got 64 bytes"):
        sign_digest(key, DIGEST.hex().encode())
    with pytest.raises(ValueError, match="raw 32-byte SHA-256"):
        verify_digest(key.public_key(), DIGEST[:16], b"\0" * 64)


def test_keys_round_trip_through_pem() -> None:
    key = generate_signing_key()
    private = private_key_pem(key)
    public = public_key_pem(key)
    assert private.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert public.startswith("-----BEGIN PUBLIC KEY-----")
    assert public_key_pem(key.public_key()) == public

    loaded = load_private_key(private)
    assert public_key_pem(loaded) == public
    assert verify_digest(load_public_key(public), DIGEST, sign_digest(loaded, DIGEST))
    assert verify_digest(load_public_key(public.encode()), DIGEST, sign_digest(key, DIGEST))


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        (b"", "not a PEM private key"),
        (b"hello", "not a PEM private key"),
        (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "not a PEM private key that can be read",
        ),
        (
            rsa.generate_private_key(65537, 2048).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            "an RSA key; pushes are signed with Ed25519 keys",
        ),
        (
            ec.generate_private_key(ec.SECP256R1()).private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
            r"an EC \(secp256r1\) key; pushes are signed with Ed25519 keys",
        ),
        (
            generate_signing_key().private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            ),
            "an encrypted private key",
        ),
        (public_key_pem(generate_signing_key()).encode(), "a public key, not a private key"),
    ],
)
def test_a_private_key_that_cannot_sign_pushes_is_named(pem: bytes, message: str) -> None:
    with pytest.raises(SigningKeyError, match=message):
        load_private_key(pem)


@pytest.mark.parametrize(
    ("pem", "message"),
    [
        ("", "not a PEM public key"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA", "not a PEM public key"),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            "not a PEM public key that can be read",
        ),
        (
            rsa.generate_private_key(65537, 2048)
            .public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode(),
            "an RSA key; pushes are signed with Ed25519 keys",
        ),
        (private_key_pem(generate_signing_key()).decode(), "a private key, not a public key"),
    ],
)
def test_a_public_key_that_cannot_check_pushes_is_named(pem: str, message: str) -> None:
    with pytest.raises(SigningKeyError, match=message):
        load_public_key(pem)


def test_a_key_pair_is_written_once_with_a_private_key_file(tmp_path: Path) -> None:
    private, public = write_key_pair(tmp_path / "keys", "131016")
    assert (private.name, public.name) == ("131016.key.pem", "131016.pub.pem")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    key = load_private_key(private.read_bytes())
    assert public.read_text() == public_key_pem(key)

    with pytest.raises(FileExistsError, match=r"131016\.key\.pem already exists"):
        write_key_pair(tmp_path / "keys", "131016")
    assert load_private_key(private.read_bytes()).private_bytes_raw() == key.private_bytes_raw()
    with pytest.raises(ValueError, match="plain file name"):
        write_key_pair(tmp_path, "../elsewhere")


def test_a_kept_key_pair_is_read_back_and_another_pairs_public_key_is_never_replaced(
    tmp_path: Path,
) -> None:
    assert read_key_pair(tmp_path, "131016") is None
    private, _ = write_key_pair(tmp_path, "131016")
    kept = read_key_pair(tmp_path, "131016")
    assert kept is not None
    assert kept.private_bytes_raw() == load_private_key(private.read_bytes()).private_bytes_raw()

    private.unlink()
    with pytest.raises(FileExistsError, match=r"131016\.pub\.pem already exists"):
        write_key_pair(tmp_path, "131016")
    assert not private.exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("other_public", r"131016\.key\.pem and .*131016\.pub\.pem are not one key pair"),
        ("no_private", r"131016\.pub\.pem has no private key 131016\.key\.pem beside it"),
        ("no_public", r"131016\.key\.pem has no public key 131016\.pub\.pem .*openssl pkey"),
        ("garbage_private", r"131016\.key\.pem: not a PEM private key"),
        ("rsa_public", r"131016\.pub\.pem: an RSA key; pushes are signed with Ed25519 keys"),
    ],
)
def test_a_kept_key_pair_that_cannot_serve_is_named(
    tmp_path: Path, damage: str, message: str
) -> None:
    private, public = write_key_pair(tmp_path, "131016")
    match damage:
        case "other_public":
            public.write_text(public_key_pem(generate_signing_key()))
        case "no_private":
            private.unlink()
        case "no_public":
            public.unlink()
        case "garbage_private":
            private.write_bytes(b"not a key")
        case "rsa_public":
            rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            public.write_bytes(
                rsa_key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
    with pytest.raises(SigningKeyError, match=message):
        read_key_pair(tmp_path, "131016")


@needs_openssl
def test_openssl_signs_and_we_verify(tmp_path: Path) -> None:
    private, public = write_key_pair(tmp_path, "municipality")
    digest_file, signature_file = tmp_path / "digest.bin", tmp_path / "digest.sig"
    digest_file.write_bytes(DIGEST)
    sign = ["openssl", "pkeyutl", "-sign", "-inkey", private, "-rawin"]
    subprocess.run(
        [*sign, "-in", digest_file, "-out", signature_file], check=True, capture_output=True
    )
    signature = signature_file.read_bytes()
    assert verify_digest(load_public_key(public.read_text()), DIGEST, signature)
    assert not verify_digest(
        load_public_key(public.read_text()), hashlib.sha256(b"x").digest(), signature
    )


@needs_openssl
def test_we_sign_and_openssl_verifies(tmp_path: Path) -> None:
    key = generate_signing_key()
    public = tmp_path / "municipality.pub.pem"
    public.write_text(public_key_pem(key))
    digest_file, signature_file = tmp_path / "digest.bin", tmp_path / "digest.sig"
    digest_file.write_bytes(DIGEST)
    signature_file.write_bytes(sign_digest(key, DIGEST))
    verify = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", public, "-rawin"]
    good = subprocess.run(
        [*verify, "-in", digest_file, "-sigfile", signature_file],
        capture_output=True,
        text=True,
        check=False,
    )
    assert good.returncode == 0, good.stderr
    assert "Signature Verified Successfully" in good.stdout

    digest_file.write_bytes(hashlib.sha256(b"another push").digest())
    bad = subprocess.run(
        [*verify, "-in", digest_file, "-sigfile", signature_file],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode != 0
