"""How municipalities sign their resident-data pushes: Ed25519 over the push's SHA-256 digest.

The signed message is the raw 32-byte digest, not its hex, so a municipality can sign and check
with stock openssl (``openssl pkeyutl -sign -rawin -in DIGEST``) and no library of ours.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dh, dsa, ec, ed448, rsa, x448, x25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

DIGEST_SIZE = 32

K = TypeVar("K")


class SigningKeyError(ValueError):
    """A key file or key text that cannot serve to sign or check pushes or seals."""


def generate_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


# Ed25519 signs pushes; ECDSA P-256 is the electronic seal of issued certificates (pipeline.seals).
PrivateKey = Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = Ed25519PublicKey | ec.EllipticCurvePublicKey


def private_key_pem(key: PrivateKey) -> bytes:
    """PKCS#8 PEM, unencrypted: the file itself is the secret, kept at mode 0600."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: PrivateKey | PublicKey) -> str:
    public = key.public_key() if isinstance(key, PrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    if b"-----BEGIN PUBLIC KEY-----" in pem:
        raise SigningKeyError("a public key, not a private key; signing needs the .key.pem file")
    if b"-----BEGIN CERTIFICATE-----" in pem:
        raise SigningKeyError("a certificate, not a private key")
    if b"-----BEGIN" not in pem:
        raise SigningKeyError("not a PEM private key (expected '-----BEGIN PRIVATE KEY-----')")
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError as exc:
        # cryptography signals "needs a password" with TypeError.
        raise SigningKeyError(
            "an encrypted private key; push signing keys are unencrypted PKCS#8 files "
            "protected by file permissions"
        ) from exc
    except UnsupportedAlgorithm as exc:
        raise SigningKeyError(
            f"a private key of an unsupported type ({exc}); pushes are signed with Ed25519 keys"
        ) from exc
    except ValueError as exc:
        raise SigningKeyError(f"not a PEM private key that can be read ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(f"{key_kind(key)}; pushes are signed with Ed25519 keys")
    return key


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    data = pem.encode("ascii", errors="replace") if isinstance(pem, str) else pem
    if b"PRIVATE KEY-----" in data:
        raise SigningKeyError(
            "a private key, not a public key; give the .pub.pem file and keep the private key "
            "with the municipality"
        )
    if b"-----BEGIN CERTIFICATE-----" in data:
        raise SigningKeyError("a certificate, not a public key (expected '-----BEGIN PUBLIC KEY')")
    if b"-----BEGIN" not in data:
        raise SigningKeyError("not a PEM public key (expected '-----BEGIN PUBLIC KEY-----')")
    try:
        key = serialization.load_pem_public_key(data)
    except UnsupportedAlgorithm as exc:
        raise SigningKeyError(
            f"a public key of an unsupported type ({exc}); pushes are signed with Ed25519 keys"
        ) from exc
    except ValueError as exc:
        raise SigningKeyError(f"not a PEM public key that can be read ({exc})") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(f"{key_kind(key)}; pushes are signed with Ed25519 keys")
    return key


def sign_digest(key: Ed25519PrivateKey, digest: bytes) -> bytes:
    _check_digest(digest)
    return key.sign(digest)


def verify_digest(public_key: Ed25519PublicKey, digest: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the key's signature of ``digest``; a bad or malformed signature is
    an answer (False), not an error, since it comes from outside."""
    _check_digest(digest)
    try:
        public_key.verify(signature, digest)
    except InvalidSignature:
        return False
    return True


def key_pair_paths(directory: Path, name: str) -> tuple[Path, Path]:
    """The files of the key pair ``name`` in ``directory``: private, then public."""
    if not name or name in {".", ".."} or "/" in name or os.sep in name:
        raise ValueError(f"key pair name {name!r} must be a plain file name")
    return directory / f"{name}.key.pem", directory / f"{name}.pub.pem"


def write_key_pair(directory: Path, name: str, key: PrivateKey | None = None) -> tuple[Path, Path]:
    """``key`` (by default a new push key) as ``<name>.key.pem`` (mode 0600) and
    ``<name>.pub.pem``; returns both paths. Never replaces an existing private key (what was
    signed with it would stop verifying), nor a public key of another pair."""
    private_path, public_path = key_pair_paths(directory, name)
    directory.mkdir(parents=True, exist_ok=True)
    key = key or generate_signing_key()
    public = public_key_pem(key)
    if private_path.exists():
        raise _kept_key_exists(private_path)
    if public_path.exists() and public_path.read_text() != public:
        raise _kept_key_exists(public_path)
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise _kept_key_exists(private_path) from None  # written meanwhile by another process
    with os.fdopen(fd, "wb") as out:
        out.write(private_key_pem(key))
    public_path.write_text(public)
    return private_path, public_path


def _kept_key_exists(path: Path) -> FileExistsError:
    return FileExistsError(
        f"{path} already exists; refusing to replace a signing key "
        "(move it away first if it really is to be retired)"
    )


def read_key_pair(directory: Path, name: str) -> Ed25519PrivateKey | None:
    """The push key pair ``name`` already kept in ``directory`` (as `write_key_pair` wrote it),
    checked to be one valid Ed25519 pair; None when neither file is there.

    SigningKeyError when the files cannot serve: one half missing, unreadable, not Ed25519, or
    halves of two different pairs. Pushes signed with a private key that does not match the
    registered public key would all be refused, so nothing half-right is used.
    """
    private_path, public_path = key_pair_paths(directory, name)
    if not private_path.exists() and not public_path.exists():
        return None
    if not private_path.exists():
        raise SigningKeyError(f"{public_path} has no private key {private_path.name} beside it")
    if not public_path.exists():
        raise SigningKeyError(
            f"{private_path} has no public key {public_path.name} beside it (make it with "
            f"`openssl pkey -in {private_path} -pubout -out {public_path}`)"
        )
    key = _read_key_file(private_path, load_private_key)
    public = _read_key_file(public_path, load_public_key)
    if public.public_bytes_raw() != key.public_key().public_bytes_raw():
        raise SigningKeyError(f"{private_path} and {public_path} are not one key pair")
    return key


def _read_key_file(path: Path, load: Callable[[bytes], K]) -> K:
    """``load`` applied to the file's bytes, with the file named in any refusal."""
    try:
        return load(path.read_bytes())
    except OSError as error:
        raise SigningKeyError(f"cannot read {path}: {error.strerror}") from None
    except SigningKeyError as error:
        raise SigningKeyError(f"{path}: {error}") from None


def _check_digest(digest: bytes) -> None:
    if len(digest) != DIGEST_SIZE:
        raise ValueError(
            f"a push digest is the raw {DIGEST_SIZE}-byte SHA-256, got {len(digest)} bytes"
        )


def key_kind(key: object) -> str:
    """The key's type in the words an operator would use, for error messages."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return "an RSA key"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return f"an EC ({key.curve.name}) key"
    if isinstance(key, dsa.DSAPrivateKey | dsa.DSAPublicKey):
        return "a DSA key"
    if isinstance(key, Ed25519PrivateKey | Ed25519PublicKey):
        return "an Ed25519 key"
    if isinstance(key, ed448.Ed448PrivateKey | ed448.Ed448PublicKey):
        return "an Ed448 key"
    if isinstance(key, x25519.X25519PrivateKey | x25519.X25519PublicKey):
        return "an X25519 (key agreement) key"
    if isinstance(key, x448.X448PrivateKey | x448.X448PublicKey):
        return "an X448 (key agreement) key"
    if isinstance(key, dh.DHPrivateKey | dh.DHPublicKey):
        return "a Diffie-Hellman key"
    return f"a {type(key).__name__}"
